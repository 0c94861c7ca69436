/*
 * fascia-top's private header: the map of the program.  The model
 * (model.c) is what fascia-top knows of every device, fed by the daemon's
 * publisher and a few requests; the curses view (view.c, ui.c) and the
 * plain-line printer (plain.c) only read it.
 */
#ifndef FASCIA_TOP_H
#define FASCIA_TOP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "fascia/client.h"

#define TOP_MAX_DEVICES 64
#define TOP_MAX_CHAMBERS 16
#define TOP_MAX_ALARMS 16
#define TOP_NAME_MAX 48

/* No state message for this long: the data is stale, the daemon unreachable. */
#define TOP_STALE_MS 2000
/* Bounds on the requests, so that the UI never waits long. */
#define TOP_QUERY_TIMEOUT_MS 500
#define TOP_COMMAND_TIMEOUT_MS 2500

struct top_chamber {
	double pressure;
	double setpoint;
	bool pressure_known;
	bool setpoint_known;
	char valve[12];
};

struct top_alarm {
	char id[24];
	int chamber;
	char priority[12];
	bool latched;
	bool present;
	char message[96];
};

struct top_device {
	char name[TOP_NAME_MAX];
	char state[16];
	bool have_state;    /* a state message or status reply arrived */
	int64_t updated_ms; /* monotonic time of the last state */

	bool in_session;
	char profile[TOP_NAME_MAX];
	int step;
	int cycle;
	double elapsed_s;
	double remaining_s;

	/* 0 before the device's first reading: unknown, not empty */
	int nchambers;
	struct top_chamber chambers[TOP_MAX_CHAMBERS];
	double supply;
	bool supply_known;
	double limit_mmhg; /* from "devices", 0 when unknown */

	int nalarms;
	struct top_alarm alarms[TOP_MAX_ALARMS];

	bool link_up;
	long long rtt_us;
	long long timeouts;
	long long errors;
	long long exceptions;
	long long reconnects;
	char link_error[96]; /* the link's last_error, "" when none */

	char last_event[96];
};

struct top {
	const char *control;
	const char *publish;
	struct fascia_client *client;
	struct fascia_monitor *monitor;

	struct top_device devices[TOP_MAX_DEVICES];
	int ndevices;
	int selected;
	const char *want_device; /* --device, until it shows up */

	int64_t started_ms;
	int64_t last_state_ms; /* monotonic; 0: none yet */
	int64_t devices_asked_ms;
	bool need_devices; /* a device showed up that "devices" did not list */
	uint64_t messages;
};

/* model.c */
int64_t top_now_ms(void);
struct top_device *top_device_get(struct top *t, const char *name, bool create);
int top_model_query(struct top *t);
int top_model_drain(struct top *t, int max);
void top_model_maybe_requery(struct top *t);
bool top_device_stale(const struct top *t, const struct top_device *d);
bool top_daemon_unreachable(const struct top *t);
int64_t top_silence_ms(const struct top *t);
double top_device_scale(const struct top_device *d);

/* view.c */
void view_init_colors(void);
void view_draw(const struct top *t, const char *status, bool prompt);

/* ui.c */
int ui_run(struct top *t);

/* plain.c */
int plain_run(struct top *t, long count);
void plain_format(const struct top *t, const struct top_device *d, char *buf,
		  size_t len);

#endif

/*
 * fascia-top's private header: the map of the program.  The model
 * (model.c) is what fascia-top knows of every device, fed by the daemon's
 * publisher and a few requests; history.c keeps the last sessions of the
 * selected device from the journal; the curses view (view.c, ui.c) and
 * the plain-line printer (plain.c) only read them.
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

/* The last sessions shown, and how often they are asked for. */
#define TOP_HISTORY_ROWS 5
#define TOP_HISTORY_PERIOD_MS 5000  /* at most this old otherwise */
#define TOP_HISTORY_SPACING_MS 1000 /* never asked more often */
#define TOP_HISTORY_RETRIES                                                    \
	3 /* re-asks while a session that ended still                          \
	     reads running (the journal commits after                          \
	     the event is published) */

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

struct top_session {
	char id[TOP_NAME_MAX + 32];
	char profile[TOP_NAME_MAX];
	char end_reason[16];
	char alarm[24];     /* "" when none */
	int64_t started_ms; /* Unix ms, 0 when unknown */
	double duration_s;  /* ended - started, < 0 while it runs */
};

/* The journal's last sessions of one device (the selected one). */
struct top_history {
	char device[TOP_NAME_MAX]; /* whose; "" before the first */
	bool have;                 /* an answer (or a failure) came */
	char error[160];           /* why there are none, "" when none */
	int nsessions;
	struct top_session sessions[TOP_HISTORY_ROWS];
	int64_t asked_ms; /* monotonic, 0: never */
	int64_t due_ms;   /* monotonic: the next ask */
	int retries;      /* re-asks left after a session ended */
};

struct top {
	const char *control;
	const char *publish;
	/* CURVE (--cert, --server-key): NULL for plaintext */
	const struct fascia_security *security;
	struct fascia_security security_given;
	bool refused; /* the last query's certificate was refused */
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
	struct top_history history;
};

/* main.c */
const char *top_no_reply_why(const struct top *t);

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

/* history.c */
void top_history_ended(struct top *t, const char *device);
void top_history_maybe_ask(struct top *t);

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

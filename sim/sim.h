/*
 * fascia-sim: the process around the pure model (model.h).  One libevent
 * loop serves every device's Modbus links (server.c), the ZeroMQ control
 * socket (control.c) and scheduled injections (main.c, scenario.c).
 * Single-threaded: every function here runs on the loop's thread.
 */
#ifndef FASCIA_SIM_SIM_H
#define FASCIA_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "model.h"

#define SIM_MAX_DEVICES 256

/* Link faults, applied by the server to every link of a device. */
enum sim_link_mode {
	SIM_LINK_OK,
	SIM_LINK_SILENT,     /* requests are read and dropped: no reply */
	SIM_LINK_SLOW,       /* replies delayed by link_delay_ms */
	SIM_LINK_GARBAGE,    /* replies are corrupted (bad MBAP/CRC, junk) */
	SIM_LINK_EXCEPTION,  /* every request answered with exception 04 */
	SIM_LINK_DISCONNECT, /* links closed, new ones closed on accept */
};

struct sim_server; /* server.c: the listener/serial port of one device */

struct sim_device {
	int index; /* 0-based; control requests use 1-based */
	struct sim_model model;
	enum sim_link_mode link_mode;
	unsigned link_delay_ms;    /* SIM_LINK_SLOW */
	unsigned clients;          /* Modbus clients connected now */
	struct sim_server *server; /* owned by server.c */
	char where[160];           /* "tcp:127.0.0.1:1502", "rtu:/dev/pts/3" */
	struct sim *sim;
};

struct sim {
	struct event_base *base;
	struct sim_device *dev; /* ndev devices */
	int ndev;
	int unit;           /* Modbus unit id served, 1..247 */
	bool no_fc23;       /* FC23 answered with exception 01 */
	uint64_t start_us;  /* sim_now_us() at start: "_ms" fields in
			       replies count from here */
	void *control;      /* control.c's state */
	struct event *tick; /* periodic advance of every model */
};

/* CLOCK_MONOTONIC in microseconds. */
uint64_t sim_now_us(void);

/* Bring a device's model up to now (call before serving anything). */
void sim_device_advance(struct sim_device *d);

/* ---- server.c: Modbus links ---- */

/* Listen for Modbus TCP on addr:port (port 0: ephemeral) for device d;
 * fills d->where.  Returns 0, or -1 with a message on stderr. */
int sim_server_tcp(struct sim_device *d, const char *addr, int port);
/* Serve Modbus RTU on a serial device. */
int sim_server_rtu(struct sim_device *d, const char *path, int baud,
		   char parity);
/* Serve Modbus RTU on a new pseudo-terminal; d->where names its slave
 * side; link_path (may be NULL) becomes a symlink to it. */
int sim_server_pty(struct sim_device *d, const char *link_path);
/* The device's link mode or boot state changed: apply it (close links for
 * DISCONNECT or a reboot). */
void sim_server_link_changed(struct sim_device *d);
/* Close every link and listener of d. */
void sim_server_close(struct sim_device *d);

/* ---- control.c: requests (control socket, scenario, --inject) ---- */

/*
 * Apply one request object {"cmd":..., ...} (see docs/simulator.md) and
 * return the result object (new reference), or NULL with *code set to
 * "bad_request", "unknown_command", "unknown_fault" or "unknown_device"
 * and msg filled in.
 */
json_t *sim_request(struct sim *s, json_t *req, const char **code, char *msg,
		    size_t msglen);
/* The checks of sim_request without applying anything (a scenario is
 * checked whole at start).  Returns 0, or -1 with *code and msg set. */
int sim_request_check(struct sim *s, json_t *req, const char **code, char *msg,
		      size_t msglen);
/* One request as text to one reply as text (malloc'd, never NULL):
 * {"v":1,"id":...,"ok":true,"result":{...}} or ok:false with error. */
char *sim_control_handle(struct sim *s, const char *text, size_t len);
/* Bind the ZeroMQ REP socket and serve it from s->base.  bound receives
 * the endpoint actually bound (tcp://127.0.0.1:* gives the port). */
int sim_control_open(struct sim *s, const char *endpoint, char *bound,
		     size_t boundlen);
void sim_control_close(struct sim *s);

/* ---- scenario.c: faults at given times ---- */

struct sim_event {
	uint64_t at_ms; /* from start */
	json_t *req;    /* a request object, as sim_request takes */
};

/*
 * Parse an --inject spec "NAME[,key=value...][@MS]" into a request
 * {"cmd":"inject","fault":NAME,key:value...} (numbers where they parse as
 * numbers) at MS (0 if absent).  Returns 0, or -1 with err filled in.
 */
int sim_inject_spec(const char *spec, struct sim_event *ev, char *err,
		    size_t errlen);
/*
 * Load a scenario file: a JSON array of request objects, each with
 * "at_ms".  Returns the number of events (*evs malloc'd), or -1 with err
 * naming the file and the entry.
 */
int sim_scenario_load(const char *path, struct sim_event **evs, char *err,
		      size_t errlen);

#endif

/*
 * fasciad: the daemon's internal interfaces.
 */
#ifndef FASCIAD_H
#define FASCIAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <fascia/limits.h>
#include <fascia/profile.h>
#include <fascia/regmap.h>

#include "safety.h"
#include "session.h"

/* ---- config.c: the INI file ---- */

#define FD_MAX_DEVICES 256
#define CONF_MAX_ERRORS 32

enum transport { TRANSPORT_TCP, TRANSPORT_RTU };

struct fd_device_conf {
	char name[32];
	enum transport transport;
	char host[64]; /* tcp */
	int port;
	char path[128]; /* rtu */
	int baud;
	char parity; /* 'N', 'E' or 'O' */
	int unit;
	int chambers;
	double limit_mmhg;
	int watchdog_ms;
	int line; /* where its section starts */
};

struct fd_conf {
	char control[256];
	char publish[256];
	char profiles[512];
	int tick_hz;
	int publish_hz;
	double max_session_s;
	struct ilk_config ilk;
	struct fd_device_conf dev[FD_MAX_DEVICES];
	int ndev;
	/* -B, for benchmarks only: tick as fast as the exchanges go (no
	 * sleep, no deadline); never set by the configuration file. */
	bool bench_unthrottled;
};

struct conf_error {
	int line; /* 0: the file as a whole */
	char message[160];
};

struct conf_errors {
	struct conf_error e[CONF_MAX_ERRORS];
	int n;
	int dropped; /* errors past CONF_MAX_ERRORS */
};

/* The [daemon] defaults, no device. */
void conf_default(struct fd_conf *c);
/* The built-in configuration: the defaults and one device `sim` at
 * 127.0.0.1:1502. */
void conf_builtin(struct fd_conf *c);
/* Load path into c; 0, or -1 with every error (and its line) in errs. */
int conf_load(const char *path, struct fd_conf *c, struct conf_errors *errs);
/* The same on an open stream (a file, fmemopen() in the fuzzer); name is
 * the file's name for messages and is not opened. */
int conf_load_stream(FILE *fp, const char *name, struct fd_conf *c,
		     struct conf_errors *errs);
void conf_error(struct conf_errors *errs, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- log.c: stderr and syslog (OpenBSD's verbs) ---- */

void log_init(bool to_syslog, bool verbose);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
/* Allocation that cannot fail: fatal on ENOMEM. */
void *xcalloc(size_t n, size_t size);

/* ---- device.c: one control thread per device link ---- */

#define FD_RTT_BUCKETS 12 /* round trip < 64 us << i; the last: the rest */
#define FD_OUTBOX_EVENTS 256
/*
 * Tick lateness histogram (a measurement hook, docs/performance.md): 1 us
 * buckets below 64 us, then 32 buckets per octave (3 % wide) up to about
 * 16 s; the last bucket takes the rest.  fd_late_bucket() maps microseconds
 * to a bucket, fd_late_bucket_lo() a bucket to its lowest value.
 */
#define FD_LATE_SUB 32
#define FD_LATE_BUCKETS 640

/* Link statistics, kept by the control thread. */
struct fd_link_stats {
	bool up;
	uint32_t rtt_us; /* last round trip */
	uint64_t rtt_hist[FD_RTT_BUCKETS];
	uint64_t exchanges; /* good ones */
	uint64_t timeouts;
	uint64_t exceptions; /* Modbus exception replies */
	uint64_t errors;     /* other failures (bad data, reset) */
	uint64_t reconnects; /* connections made after the first */
	bool fc23;           /* false: the FC16 + FC03 fallback */
	char last_error[96];
	uint64_t ticks;
	uint64_t late_ticks; /* began over half a period late */
	double max_late_ms;
	/* Measurement hooks (docs/performance.md), kept without allocation. */
	uint32_t late_hist[FD_LATE_BUCKETS]; /* each tick's lateness, us */
	uint32_t late_us;                    /* the last tick's */
	uint64_t skipped;  /* whole periods skipped when far behind */
	int64_t drift_ns;  /* this tick's deadline - (first deadline + (ticks
			      - 1 + skipped) * period): 0 by construction */
	uint64_t t_read_us; /* CLOCK_MONOTONIC, us: the reply of the last good
			       exchange (the values a snapshot carries) */
	bool unthrottled;   /* -B: ticking without deadlines */
};

/* What the main thread publishes about a device: a copy of the session
 * and the link, taken by the control thread after its tick. */
struct fd_snapshot {
	uint64_t tick;   /* the control thread's tick number */
	double mono_s;   /* CLOCK_MONOTONIC of the tick */
	int64_t unix_ms; /* CLOCK_REALTIME of the tick */
	enum fd_state state;
	bool have_session;
	int session_seq;
	char profile[FASCIA_PROFILE_NAME_MAX + 1];
	struct fascia_profile_pos pos;
	int chambers;
	double pressure[FASCIA_MAX_CHAMBERS];
	double setpoint[FASCIA_MAX_CHAMBERS];
	uint8_t valve[FASCIA_MAX_CHAMBERS];
	double supply;
	uint16_t status, fault; /* the device's STATUS and FAULT */
	uint16_t command;       /* last COMMAND written */
	struct fd_alarm alarm[FD_MAX_ALARMS];
	int nalarm;
	struct fd_link_stats link;
};

/* An operator's command on its way to a control thread and back. */
struct fd_command {
	enum fd_cmd cmd;
	struct fascia_profile profile; /* FD_CMD_START */
	uint64_t token;                /* the main thread's, returned with the
					  verdict */
	enum fd_verdict verdict;
	char why[160];
};

struct fd_daemon;

struct fd_device {
	int index;
	struct fd_device_conf conf;
	struct fd_daemon *daemon;
	pthread_t thread;
	bool started;

	/* Shared with the control thread, under lock.  The control thread
	 * only ever trylocks: it never waits for the main thread. */
	pthread_mutex_t lock;
	bool cmd_pending; /* cmd waits to be taken */
	bool cmd_active;  /* taken, no verdict yet */
	struct fd_command cmd;
	bool verdict_ready;      /* cmd has its verdict */
	struct fd_snapshot snap; /* the latest, for fd_device_peek() */
	bool have_snap;          /* snap holds a tick's */
	bool snap_changed;       /* its state or alarms changed since the
				    last drain: publish it at once */
	struct fd_event_rec events[FD_OUTBOX_EVENTS];
	int nevents;
	uint64_t events_dropped;
	bool stop; /* asks the thread to vent and return */
	double stop_timeout_s;
	bool vented_at_stop; /* set by the thread before it returns */

	int wake_fd; /* eventfd: the thread has news (events, a verdict, a
			change of state or alarms), not every tick's */
	struct event *wake_ev;
	void *server; /* server.c's per-device state */
};

static inline unsigned fd_late_bucket(uint64_t us)
{
	unsigned shift, i;

	if (us < 2 * FD_LATE_SUB)
		return (unsigned)us;
	shift = (unsigned)(63 - __builtin_clzll(us)) - 5;
	i = FD_LATE_SUB * shift + (unsigned)(us >> shift);
	return i < FD_LATE_BUCKETS ? i : FD_LATE_BUCKETS - 1;
}

static inline uint64_t fd_late_bucket_lo(unsigned i)
{
	unsigned shift;

	if (i < 2 * FD_LATE_SUB)
		return i;
	shift = i / FD_LATE_SUB - 1;
	return (uint64_t)(i - FD_LATE_SUB * shift) << shift;
}

/* Start the device's control thread. 0, or -1 logged. */
int fd_device_start(struct fd_device *dev);
/* Ask the thread to vent the device (for at most timeout_s) and stop. */
void fd_device_request_stop(struct fd_device *dev, double timeout_s);
/* fd_device_request_stop(), then wait for the thread (the safe shutdown). */
void fd_device_stop(struct fd_device *dev, double timeout_s);
/*
 * Hand a command to the thread.  Returns 0, or -1 when another command is
 * still pending or active on this device (the caller answers `busy`).
 */
int fd_device_submit(struct fd_device *dev, const struct fd_command *c);

/* What fd_device_drain() hands the main thread: the news.  The snapshot
 * they happened in is fd_device_peek()'s. */
struct fd_outbox {
	bool changed; /* the state or the alarms changed: publish at once */
	struct fd_event_rec events[FD_OUTBOX_EVENTS];
	int nevents;
	uint64_t events_dropped;
	bool have_verdict;
	struct fd_command cmd; /* with verdict and why */
};

/* Main thread, when dev->wake_fd is readable: take what is new. */
void fd_device_drain(struct fd_device *dev, struct fd_outbox *out);

/* Main thread: copy the latest snapshot (the thread hands one over every
 * tick but wakes the main thread only for news).  Returns whether there
 * was one. */
bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap);

/* Whether b differs from a in what makes a state message news: the state
 * or the alarms (publish.c). */
bool fd_snap_changed(const struct fd_snapshot *a, const struct fd_snapshot *b);

/* ---- profiles.c: the profile directory ---- */

#define FD_MAX_PROFILES 128

struct fd_profiles {
	char dir[512];
	struct fascia_profile p[FD_MAX_PROFILES];
	int n;
};

/* Limits every stored profile is checked against: the largest device. */
void fd_profile_limits(const struct fd_conf *c,
		       struct fascia_profile_limits *lim);
/*
 * Load every *.json in dir into a fresh set.  Returns 0, or -1 with each
 * refused file logged (naming the file and the field) and *out untouched:
 * a reload that fails keeps the old set.
 */
int fd_profiles_load(const char *dir, const struct fascia_profile_limits *lim,
		     struct fd_profiles *out);
const struct fascia_profile *fd_profiles_find(const struct fd_profiles *ps,
					      const char *name);
/*
 * Validate and store a profile (NAME.json in the directory: a temporary
 * file, fsync, rename, fsync of the directory), then add or replace it in
 * ps.  Returns 0, or -1 with err filled (EINVAL) or errno from the I/O.
 */
int fd_profiles_put(struct fd_profiles *ps, const char *json, size_t len,
		    const struct fascia_profile_limits *lim,
		    struct fascia_profile_error *err);

/* ---- server.c: the ZeroMQ sockets and the request codec ---- */

struct fd_daemon {
	struct event_base *base;
	struct fd_conf conf;
	const char *conf_path; /* NULL: built in */
	struct fd_device *dev; /* ndev, allocated */
	int ndev;
	struct fd_profiles profiles;
	struct fascia_profile_limits limits;
	void *zmq;               /* the ZeroMQ context */
	void *server;            /* server.c's state */
	char control_bound[256]; /* endpoints as bound (port of a *) */
	char publish_bound[256];
};

struct json_t; /* jansson's */

#define FD_IDENTITY_MAX 255 /* a ROUTER peer's identity, bytes */
#define FD_VERDICT_TIMEOUT_S 2.0
/* Largest request frame; a larger one disconnects its peer. */
#define FD_REQUEST_MAX (FASCIA_PROFILE_JSON_MAX + 64 * 1024)

/* How replies and messages are encoded: compact, and reals with at most 15
 * significant digits, so that a pressure rounded to 0.1 reads 24.6, not
 * 24.600000000000001. */
#define FD_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Where a reply goes: the client's ROUTER identity, and whether its
 * request came with the empty delimiter frame of a REQ socket. */
struct fd_envelope {
	unsigned char identity[FD_IDENTITY_MAX];
	size_t identity_len;
	bool delimiter;
};

/* server.c's state (d->server). */
struct fd_server {
	void *router;            /* control */
	void *pub;               /* publish */
	bool own_zmq;            /* we made d->zmq */
	struct event *router_ev; /* ZMQ_FD of the ROUTER */
	struct event *publish_timer;
	uint64_t next_token;
};

/* server.c's state for one device (dev->server). */
struct fd_dev_server {
	struct fd_daemon *daemon;
	struct fd_device *dev;
	uint64_t seq; /* of the last message published */
	bool have_snap;
	struct fd_snapshot snap; /* the latest */
	bool pending;            /* a command awaits its verdict */
	uint64_t pending_token;
	struct fd_envelope pending_env;
	struct json_t *pending_id; /* the request's id, or NULL */
	struct event *pending_timer;
};

/* Bind the ROUTER and PUB sockets and serve them from d->base. 0, or -1
 * logged (everything opened is closed again). */
int fd_server_open(struct fd_daemon *d);
/* Close both sockets, drop pending requests, free the per-device state.
 * Safe to call twice, or without fd_server_open(). */
void fd_server_close(struct fd_daemon *d);
/* Send reply (stolen) to env; without a socket (tests), drop it. */
void fd_server_send(struct fd_daemon *d, const struct fd_envelope *env,
		    struct json_t *reply);

/*
 * The request codec, pure (no sockets), for unit tests and fuzzers.
 * fd_request_decode: parse one payload.  Returns the JSON object (a new
 * reference) or NULL when the payload is not a JSON object.  *code is NULL
 * when the envelope is good (v 1, cmd a string), else the error code, with
 * msg saying why (a returned object still gives the id to echo).
 */
struct json_t *fd_request_decode(const char *buf, size_t len, const char **code,
				 char *msg, size_t msglen);
/*
 * Decode and carry out one request.  Returns the reply (a new reference),
 * or NULL when it is deferred: a device command waits for its verdict,
 * which fd_server_device_news() sends to env.
 */
struct json_t *fd_server_handle(struct fd_daemon *d, const char *buf,
				size_t len, const struct fd_envelope *env);
/* {"v":1,"id":id,"ok":false,"error":{"code","message"[,"field"]}}; id
 * NULL means null; field NULL leaves it out. */
struct json_t *fd_reply_error(struct json_t *id, const char *code,
			      const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* {"v":1,"id":id,"ok":true,"result":result}; steals result. */
struct json_t *fd_reply_ok(struct json_t *id, struct json_t *result);

/* A JSON value just built, or fatal: out of memory. */
static inline struct json_t *fd_must(struct json_t *v)
{
	if (v == NULL)
		fatalx("out of memory building JSON");
	return v;
}

/* ---- commands.c: the requests ---- */

/* Carry out a request decoded without error (fd_server_handle()'s
 * second half): the reply, or NULL when it waits for a verdict. */
struct json_t *fd_server_dispatch(struct fd_daemon *d, struct json_t *req,
				  const struct fd_envelope *env);
/* Answer the request waiting for c's verdict (c->token), if any. */
void fd_server_verdict(struct fd_daemon *d, struct fd_device *dev,
		       const struct fd_command *c);
/* dev->server, allocated on first use. */
struct fd_dev_server *fd_dev_server(struct fd_device *dev);
/* Drop its pending request and free dev->server. */
void fd_dev_server_free(struct fd_device *dev);

/* The device's server state with the latest snapshot peeked into it: what
 * a status reply or a state message shows (publish.c). */
struct fd_dev_server *fd_dev_latest(struct fd_device *dev);

/* ---- publish.c: the PUB socket's messages ---- */

/* What a device's control thread sent: publish it, answer its command. */
void fd_server_device_news(struct fd_daemon *d, struct fd_device *dev,
			   const struct fd_outbox *out);

/* CLOCK_REALTIME in ms. */
int64_t fd_unix_ms(void);
/* A device's state message, also the `status` result (seq: the last one
 * published; the status reply does not advance it).  Only the status
 * result (full) carries ticks.late_hist. */
struct json_t *fd_state_json(struct fd_device *dev, uint64_t seq,
			     int64_t now_ms, bool full);
/* The event.<device> or alarm.<device> message for one event; *topic
 * gets its topic's prefix ("event" or "alarm"). */
struct json_t *fd_event_json(struct fd_device *dev,
			     const struct fd_event_rec *e, uint64_t seq,
			     int64_t now_ms, const char **topic);
/* Publish a device's state, or one of its events (with the next seq). */
void fd_publish_state(struct fd_daemon *d, struct fd_device *dev);
void fd_publish_event(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_event_rec *e);
/* Send topic.<device> and the message (stolen) on the PUB socket. */
void fd_publish(struct fd_daemon *d, const char *topic, const char *device,
		struct json_t *msg);

#endif

/*
 * fasciad: the daemon's internal interfaces, and its map.  Every file's
 * functions are listed under its name; a name's prefix says which file it
 * lives in (fd_link_ in link.c, fd_tick_ in tick.c, ...).  The safety
 * core has headers of its own, pure code with no threads: safety.h
 * (interlock.c, state.c) and session.h (session.c).  docs/hacking.md draws
 * the threads and the path of one reading.
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

/* config.c reads the file, [daemon] and [security]; confdev.c reads the
 * [device NAME] sections, behind the configuration's own header,
 * config.h. */

#define FD_MAX_DEVICES 256
#define FD_JOURNAL_DEFAULT "/var/lib/fascia/journal.db"
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

/* What a client may do (docs/security.md): each role may do all that the
 * one before it may. */
enum fd_role {
	FD_ROLE_NONE,     /* nothing: not a role a client can have */
	FD_ROLE_OBSERVER, /* read, subscribe, vent */
	FD_ROLE_OPERATOR, /* and start, pause, resume, stop, ack */
	FD_ROLE_ADMIN,    /* and profile.put */
};

#define FD_NAME_MAX 64 /* a client's name, or the person a gateway names */

/* Who sent a request (security.c): a certificate's name and role, or the
 * local endpoint's role, or (curve = no) an unnamed admin. */
struct fd_who {
	char name[FD_NAME_MAX + 1]; /* "" : no name (curve = no) */
	char as[FD_NAME_MAX + 1];   /* the person a gateway acts for, or "" */
	enum fd_role role;
	bool gateway; /* may name the person it acts for ("as") */
};

/* [security] */
struct fd_security_conf {
	bool curve;            /* CURVE on control and publish */
	char server_cert[512]; /* the daemon's secret certificate */
	char clients[512];     /* a directory of clients' public ones */
	char local[256];       /* an ipc:// endpoint for the box, or "" */
	enum fd_role local_role;
	int server_cert_line, clients_line; /* where given, for -n */
};

struct fd_conf {
	char control[256];
	char publish[256];
	char profiles[512];
	int tick_hz;
	int publish_hz;
	double max_session_s;
	char journal[512];     /* a path, or "off" */
	bool journal_required; /* start refused while it cannot be written */
	int trace_hz;          /* trace samples a second, 0-10 */
	int trace_keep_days;
	struct ilk_config ilk;
	struct fd_security_conf sec;
	struct fd_device_conf dev[FD_MAX_DEVICES];
	int ndev;
	/* -B, for benchmarks only: tick as fast as the exchanges go (no
	 * sleep, no deadline); never set by the configuration file. */
	bool bench_unthrottled;
};

struct conf_error {
	int line;          /* 0: the file as a whole */
	char message[320]; /* a certificate's path and why */
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
/* A role's name ("observer", ...), and back: 0, or -1 for no role's. */
const char *conf_role_name(enum fd_role r);
int conf_role_parse(const char *s, enum fd_role *r);

/* ---- certs.c: the CURVE certificates (docs/security.md) ---- */

/* A client's public certificate, as read. */
struct fd_cert {
	char key[41]; /* its public key, Z85 */
	char file[512];
	struct fd_who who; /* role FD_ROLE_NONE: missing or unknown */
};

/* A directory's certificates, sorted by key. */
struct fd_certset {
	struct fd_cert *c;
	int n;
};

/*
 * Read the client certificates in dir: every NAME.key (a NAME.key_secret
 * is refused: a secret has no place there).  Each problem goes to errs at line
 * (where `clients =` is): a file that is not a certificate or has a bad
 * name is left out; one whose role is missing or unknown is kept with
 * FD_ROLE_NONE (the ZAP handler admits it: the daemon treats it as an
 * observer).  0, or -1 when dir cannot be read.
 */
int fd_certs_read(const char *dir, struct fd_certset *set,
		  struct conf_errors *errs, int line);
void fd_certs_free(struct fd_certset *set);
const struct fd_cert *fd_certs_find(const struct fd_certset *set,
				    const char *key);
/* A cheap summary of dir's files (names, sizes, times): it changes when
 * a certificate is added, removed or edited. */
uint64_t fd_certs_signature(const char *dir);
/* The daemon's secret certificate at path (a zcert_t *), or NULL with
 * why. */
void *fd_certs_server(const char *path, char *why, size_t len);
/* -n and the start: the server certificate and every client's, each
 * error with its line.  0, or -1. */
int fd_certs_check(const struct fd_conf *c, struct conf_errors *errs);
/* Whether s is a name for the record: 1-64 of A-Z a-z 0-9 . _ @ - and
 * space, not starting with a space. */
bool fd_certs_name_ok(const char *s);

/* ---- log.c: stderr and syslog (OpenBSD's verbs) ---- */

void log_init(bool to_syslog, bool verbose);
/* Start the writer thread (after daemon(): a thread does not survive the
 * fork).  From then on log_* only queue the line; before, they write it. */
void log_start(void);
/* Write what is queued, stop the writer thread; log_* write directly
 * again.  Safe without log_start(). */
void log_close(void);
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

/* ---- clock.c: the one source of time (tests define their own) ---- */

double fd_clock_mono_s(void);    /* CLOCK_MONOTONIC, s */
uint64_t fd_clock_mono_us(void); /* CLOCK_MONOTONIC, us */
int64_t fd_clock_unix_ms(void);  /* CLOCK_REALTIME, ms */

/* ---- link.c: a device's Modbus link, owned by its control thread ---- */

#define FD_RTT_BUCKETS 12 /* round trip < 64 us << i; the last: the rest */
/*
 * Tick lateness histogram (a measurement hook, docs/performance.md): 1 us
 * buckets below 64 us, then 32 buckets per octave (3 % wide) up to about
 * 16 s; the last bucket takes the rest.  fd_late_bucket() maps microseconds
 * to a bucket, fd_late_bucket_lo() a bucket to its lowest value.
 */
#define FD_LATE_SUB 32
#define FD_LATE_BUCKETS 640

/* Link and tick statistics, kept by the control thread. */
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
	uint64_t skipped;   /* whole periods skipped when far behind */
	int64_t drift_ns;   /* this tick's deadline - (first deadline + (ticks
			       - 1 + skipped) * period): 0 by construction */
	uint64_t t_read_us; /* CLOCK_MONOTONIC, us: the reply of the last good
			       exchange (the values a snapshot carries) */
	bool unthrottled;   /* -B: ticking without deadlines */
};

struct _modbus; /* libmodbus's modbus_t */

struct fd_link {
	const struct fd_device_conf *conf;
	struct _modbus *mb;
	bool connected;
	bool ever_connected;
	bool fc23;
	int fails; /* consecutive failed exchanges */
	double next_attempt_s;
	double backoff_s;
	double timeout_s; /* response timeout: 3/4 of a tick */
};

void fd_link_init(struct fd_link *l, const struct fd_device_conf *conf,
		  double timeout_s);
/* Connect when not connected and the backoff allows; failures go to
 * st->last_error. */
void fd_link_connect(struct fd_link *l, struct fd_link_stats *st, double now);
/*
 * One exchange: w out, block R into *r.  Returns 0, or -1 (not connected,
 * or the exchange failed: counted in st, the reason in st->last_error, the
 * connection closed after a few failures in a row or a broken socket).
 * A device with fewer than chambers chambers is refused.
 */
int fd_link_exchange(struct fd_link *l, struct fd_link_stats *st,
		     const struct fascia_block_w *w, int chambers,
		     struct fascia_block_r *r);
void fd_link_free(struct fd_link *l);

/* ---- tick.c: the control thread ---- */

/* What the main thread knows of a device: a copy of the session and the
 * link, taken by the control thread after its tick. */
struct fd_snapshot {
	uint64_t tick;   /* the control thread's tick number */
	double mono_s;   /* CLOCK_MONOTONIC of the tick */
	int64_t unix_ms; /* CLOCK_REALTIME of the tick */
	enum fd_state state;
	bool have_reading; /* the device has answered once: what follows
			      was read, not zero for want of a reading */
	bool have_session;
	int session_seq;
	char session_id[FD_SESSION_ID_MAX];
	char profile[FASCIA_PROFILE_NAME_MAX + 1];
	struct fascia_profile_pos pos;
	struct fd_dose dose[2]; /* the session's (session_seq & 1) and the
				   one before */
	int chambers;
	double pressure[FASCIA_MAX_CHAMBERS];
	double setpoint[FASCIA_MAX_CHAMBERS];
	uint8_t valve[FASCIA_MAX_CHAMBERS];
	double supply;
	uint16_t status, fault; /* the device's STATUS and FAULT */
	uint16_t command;       /* last COMMAND written */
	struct fd_alarm alarm[FD_MAX_ALARMS];
	int nalarm;
	uint64_t events_lost; /* events that found the outbox full */
	struct fd_link_stats link;
};

/* An operator's command on its way to a control thread. */
struct fd_command {
	enum fd_cmd cmd;
	struct fascia_profile profile;      /* FD_CMD_START */
	char session_id[FD_SESSION_ID_MAX]; /* FD_CMD_START */
	uint64_t token; /* the main thread's, returned with the
			   verdict */
};

/* ...and its answer on the way back. */
struct fd_verdict_rec {
	enum fd_cmd cmd;
	uint64_t token;
	enum fd_verdict verdict;
	char why[160];
};

#define FD_OUTBOX_EVENTS 256

/*
 * News from a control thread: its latest snapshot with the events and
 * the verdict that came before it.  The same box is the thread's own (what
 * it holds until it can hand it over), the mailbox between the threads,
 * and what the main thread takes out of it: fd_device_move() is the one
 * hand-over, each way.  Each event carries its own tick's context, so the
 * snapshot may be later than an event, never earlier.
 *
 * One command crosses per hand-over (the next is taken once the main
 * thread has taken this one's verdict), so one box holds at most the end
 * of one session and the start of the next: the snapshot's two doses are
 * enough for the main thread to have every session's final dose.
 */
struct fd_outbox {
	bool have_snap;
	struct fd_snapshot snap;
	bool changed; /* the state or the alarms changed: publish at once */
	struct fd_event_rec ev[FD_OUTBOX_EVENTS];
	int nev;
	bool have_verdict;
	struct fd_verdict_rec verdict;
};

struct fd_ctl;
struct fd_device;

/* A control thread's state for dev (freed by fd_tick_free()). */
struct fd_ctl *fd_tick_new(struct fd_device *dev, const struct fd_conf *conf);
void fd_tick_free(struct fd_ctl **c);
/* The thread: tick until asked to stop, then vent (fd_tick_vented()). */
void *fd_tick_thread(void *ctl);
/* After the thread returned: whether the device was confirmed vented. */
bool fd_tick_vented(const struct fd_ctl *c);
/* Whether b differs from a in what makes a state message news: the state,
 * the alarms or the link's last error. */
bool fd_tick_changed(const struct fd_snapshot *a, const struct fd_snapshot *b);

/* ---- device.c: a device's two threads, and what crosses between them ---- */

struct fd_daemon;
struct json_t; /* jansson's */
typedef struct json_t json_t;

#define FD_IDENTITY_MAX 255 /* a ROUTER peer's identity, bytes */

/* Where a reply goes: the socket and the client's ROUTER identity, and
 * whether its request came with the empty delimiter frame of a REQ
 * socket; and who sent it. */
struct fd_envelope {
	unsigned char identity[FD_IDENTITY_MAX];
	size_t identity_len;
	bool delimiter;
	int socket; /* FD_SOCK_CONTROL or FD_SOCK_LOCAL */
	struct fd_who who;
};

/* A device command waiting for its verdict (commands.c's). */
struct fd_pending {
	bool active;
	uint64_t token;
	struct fd_envelope env;
	struct json_t *id;  /* the request's id, or NULL */
	struct json_t *req; /* the request (what it named, for the record) */
	enum fd_cmd cmd;
	struct event *timer;
};

/* What record.c keeps of a device's session, for its record (the main
 * thread's alone). */
struct fd_record_dev {
	bool open;                  /* a session record is open */
	char id[FD_SESSION_ID_MAX]; /* its id */
	int session_seq;            /* the control thread's number for it */
	const char *end_reason;     /* what ended it, as seen so far */
	int alarm;                  /* the alarm that ended it, or -1 */
	/* From the start command until the session's "started" event. */
	bool starting;
	char start_id[FD_SESSION_ID_MAX];
	json_t *start_rec; /* FD_J_SESSION_OPEN, held */
	/* The session each latched alarm was raised in, for its ack. */
	char alarm_session[ILK_COUNT][FD_SESSION_ID_MAX];
	uint64_t events_lost; /* the snapshot's count, recorded */
};

struct fd_device {
	struct fd_device_conf conf;
	struct fd_daemon *daemon;
	pthread_t thread;
	bool started;
	struct fd_ctl *ctl;

	/* Shared with the control thread, under lock.  The control thread
	 * only ever trylocks: it never waits for the main thread. */
	pthread_mutex_t lock;
	bool cmd_pending; /* cmd waits to be taken */
	bool cmd_active;  /* taken, its verdict not yet taken back */
	struct fd_command cmd;
	bool stop; /* asks the thread to vent and return */
	double stop_timeout_s;
	struct fd_outbox box; /* from the control thread */

	int wake_fd; /* eventfd: the thread has news (events, a verdict, a
			change of state or alarms), not every tick's */
	struct event *wake_ev;

	/* The main thread's alone. */
	uint64_t seq;              /* of the last message published */
	uint64_t events_lost_told; /* the snapshot's events_lost, logged */
	char error_told[96];       /* the link's last error, logged */
	struct fd_pending pending;
	struct fd_record_dev rec;
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

/* Move src's news into dst: the snapshot, the change, as many events as
 * dst has room for (the rest stay in src, in order) and the verdict.
 * Returns whether dst holds news (events, a verdict or a change). */
bool fd_device_move(struct fd_outbox *dst, struct fd_outbox *src);
/* Start the device's control thread (SCHED_FIFO where allowed, which is
 * logged once where not). 0, or -1 logged. */
int fd_device_start(struct fd_device *dev);
/* Ask the thread to vent the device (for at most timeout_s) and stop. */
void fd_device_request_stop(struct fd_device *dev, double timeout_s);
/* fd_device_request_stop(), then wait for the thread (the safe shutdown);
 * logs whether the device was confirmed vented. */
void fd_device_stop(struct fd_device *dev, double timeout_s);
/*
 * Hand a command to the thread.  Returns 0, or -1 when another command is
 * still pending or active on this device (the caller answers `busy`).
 */
int fd_device_submit(struct fd_device *dev, const struct fd_command *c);
/* Main thread: copy the latest snapshot (the thread hands one over every
 * tick but wakes the main thread only for news).  Returns whether there
 * was one. */
bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap);
/* Main thread: take the news out of the mailbox, the snapshot with it,
 * under one lock, into out (emptied first). */
void fd_device_take(struct fd_device *dev, struct fd_outbox *out);
/* Control thread: take a waiting command, if the lock is free at once. */
bool fd_device_take_command(struct fd_device *dev, struct fd_command *c);
/* Control thread: hand over what out holds, if the lock is free at once,
 * and wake the main thread for news.  Returns whether a stop was asked. */
bool fd_device_post(struct fd_device *dev, struct fd_outbox *out);
/* Main thread: hand news to its consumers (publish.c, commands.c, the
 * log), in that order; the wake-up's callback, and tests', call it. */
void fd_device_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news);

/* ---- profiles.c: the profile directory ---- */

#define FD_MAX_PROFILES 128
#define FD_MAX_REFUSED 32 /* refused files a set names; the rest counted */

struct fd_profiles {
	char dir[512];
	struct fascia_profile p[FD_MAX_PROFILES];
	int n;
	/* The files the load refused, in name order (err.file the path). */
	struct fascia_profile_error refused[FD_MAX_REFUSED];
	int nrefused; /* every refused file, also past FD_MAX_REFUSED */
};

/*
 * What holds for every device, the limits a file in the directory is
 * loaded against: FASCIA_MAX_CHAMBERS chambers, FASCIA_CEILING_MMHG and
 * the configured session maximum.  Whether a profile fits one device is
 * checked when a session starts on it.
 */
void fd_profiles_load_limits(const struct fd_conf *c,
			     struct fascia_profile_limits *lim);
/*
 * The limits a profile.put is checked against: the largest device's
 * chambers and limit and the session maximum, so that a put of a profile
 * no device can hold is refused at once.  Tighter than the load's: what
 * a put stores always loads.
 */
void fd_profiles_limits(const struct fd_conf *c,
			struct fascia_profile_limits *lim);
/*
 * Load every *.json in dir into a fresh set.  A file that is refused (it
 * does not parse or validate against lim, its profile's name is not its
 * file's, the set is full) is refused alone: logged with its path, the
 * field, the reason and what to do, and named in out->refused; the others
 * load.  Returns 0 with *out the fresh set (which may be empty), or -1
 * with the reason logged and *out untouched when the directory itself
 * cannot be read (missing, not a directory, unreadable, name too long).
 */
int fd_profiles_load(const char *dir, const struct fascia_profile_limits *lim,
		     struct fd_profiles *out);
/*
 * Whether device dc can run p: no more chambers than it has, a maximum
 * not above its limit_mmhg (what session.c's start() enforces).  Returns
 * true, or false with the reasons in why, "; " between two.
 */
bool fd_profiles_fits(const struct fascia_profile *p,
		      const struct fd_device_conf *dc, char *why, size_t len);
const struct fascia_profile *fd_profiles_find(const struct fd_profiles *ps,
					      const char *name);
/*
 * A profile.put, first step (no I/O): parse and validate json into *out,
 * check that its name is a safe file name and that ps has room for it (a
 * new name, or one it replaces).  Returns 0, or -1 with err filled
 * (err->field names the field, "" for the set as a whole) and errno
 * EINVAL (a bad profile or name) or ENOSPC (FD_MAX_PROFILES already);
 * *out is then unspecified.
 */
int fd_profiles_check(const struct fd_profiles *ps, const char *json,
		      size_t len, const struct fascia_profile_limits *lim,
		      struct fascia_profile *out,
		      struct fascia_profile_error *err);
/*
 * The file to store for p, NAME.json in ps->dir: its canonical document,
 * indented, with a final newline (what fd_profiles_load() reads back as
 * p).  Never NULL (out of memory is fatal); the caller frees it.
 */
char *fd_profiles_text(const struct fascia_profile *p);
/*
 * The last step, once the file is on disk: add p to ps where its name
 * sorts, or replace the profile of that name.  Returns 0, or -1 with
 * errno ENOSPC and ps unchanged when p is a new name and ps is full
 * (another new name was added since fd_profiles_check()).
 */
int fd_profiles_add(struct fd_profiles *ps, const struct fascia_profile *p);

/* ---- store.c: disk work off the libevent loop ---- */

struct event_base;
struct fd_store;

/* Called on the loop's thread when a write is done: err 0, or an errno. */
typedef void (*fd_store_done)(int err, void *arg);

/* A store whose thread writes files and whose callbacks run on base.
 * Fatal when the thread cannot start. */
struct fd_store *fd_store_new(struct event_base *base);
/* Finish every queued write (their callbacks run), stop the thread and
 * free *s; NULL-safe, clears *s. */
void fd_store_destroy(struct fd_store **s);
/*
 * Write len bytes of data (copied) to dir/name as a state file: a
 * temporary name, fsync, rename, fsync of the directory.  done(err, arg)
 * runs later on the loop.  Returns 0, or -1 with errno EAGAIN (the queue
 * is full) and done not called.
 */
int fd_store_write(struct fd_store *s, const char *dir, const char *name,
		   const void *data, size_t len, fd_store_done done, void *arg);

/* ---- journal.c: the treatment record's writer (docs/records.md) ---- */

/*
 * One SQLite file (WAL, synchronous=FULL) owned by a writer thread of its
 * own, fed by a bounded queue from the main thread.  The main thread never
 * waits for the disk: fd_journal_put() queues and returns.  What a record
 * holds is a JSON object (the contract is docs/records.md, "What reaches
 * the writer"); the object is the writer's once queued.  journal.c is the
 * queue and the thread; the SQLite side is jwrite.c (the records) and
 * jfile.c (the file), behind the journal's own header, journal.h.
 */
enum fd_jkind {
	FD_J_LOG,           /* one log entry; the writer gives it its seq */
	FD_J_PROFILE,       /* a profile document as run, once per sha256 */
	FD_J_SESSION_OPEN,  /* a session started */
	FD_J_SAMPLE,        /* a trace sample and the dose so far */
	FD_J_SESSION_CLOSE, /* a session ended: its summary */
};

#define FD_JOURNAL_QUEUE 8192 /* records waiting for the disk */
/* The file's, which the reader (qread.c) shares: PRAGMA application_id
 * ("FASC"), and a chamber without a reading in a trace row. */
#define FD_JOURNAL_APP_ID 0x46415343
#define FD_JOURNAL_TRACE_NULL INT16_MIN

/* What the main thread knows of the writer (fd_journal_health()). */
struct fd_journal_health {
	bool ok;                  /* the last open or commit succeeded */
	char error[200];          /* !ok: why, in words ("disk full: ...") */
	int64_t since_ms;         /* !ok: when the trouble began (Unix ms) */
	uint64_t queued;          /* records put, in all */
	uint64_t committed;       /* the number of the last committed record */
	uint64_t lost;            /* records the full queue refused, in all */
	uint64_t samples_dropped; /* trace samples refused (queue half full) */
	unsigned waiting;         /* records in the queue now */
	uint64_t next_seq;        /* the seq the next log entry gets */
};

struct fd_journal;
/* Called on the loop when the writer has committed or its health changed;
 * fd_journal_health() says what it is now. */
typedef void (*fd_journal_changed)(void *arg);

/*
 * -n: whether path can hold the journal (opened or created read-write,
 * a journal of a version this daemon reads).  0, or -1 with why.
 * Nothing is written to a journal that exists.
 */
int fd_journal_check(const char *path, char *why, size_t len);
/*
 * Open path on the calling thread (at start, before the devices): create
 * or check the schema (migrating an older version), close each session
 * left `running` as `interrupted` (logged here and in the journal), then
 * start the writer.  When the file cannot be opened the journal is still
 * made, unhealthy, and its writer retries every second.  changed(arg)
 * runs on base.  Fatal only when the thread cannot start.
 */
struct fd_journal *fd_journal_open(struct event_base *base, const char *path,
				   int trace_keep_days,
				   fd_journal_changed changed, void *arg);
/*
 * Queue rec (stolen, also on failure) of kind.  Returns the record's
 * number (1, 2, ...: committed in that order), or 0 when it was refused:
 * the queue is full (counted in lost; the next log entry's seq skips the
 * lost ones and the writer logs how many), or an FD_J_SAMPLE found it half
 * full (samples_dropped: room is kept for alarms and session ends).
 */
uint64_t fd_journal_put(struct fd_journal *j, enum fd_jkind kind,
			struct json_t *rec);
void fd_journal_health(struct fd_journal *j, struct fd_journal_health *h);
/* Write what is queued (for at most timeout_s), stop the writer and free
 * *j; NULL-safe, clears *j. */
void fd_journal_close(struct fd_journal **j, double timeout_s);

/* ---- query.c: history, session.get and log, off the loop ---- */

/* query.c is the reader thread and its queue; qargs.c checks the
 * arguments and qread.c runs the queries, behind the queries' own header,
 * query.h. */
struct fd_query;
/* A query's answer, on the loop: result (stolen) or, when result is NULL,
 * an error code of the protocol with field ("" or the argument) and msg. */
typedef void (*fd_query_done)(struct json_t *result, const char *code,
			      const char *field, const char *msg, void *arg);

/* A reader thread with its own read-only connection to path; its answers
 * come on base.  Fatal when the thread cannot start. */
struct fd_query *fd_query_new(struct event_base *base, const char *path);
/*
 * Check the arguments of req (a request of cmd "history", "session.get"
 * or "log") at once, then run it on the reader thread.  Returns 0 (done()
 * will run), or -1 with *reply set (bad arguments: bad_request naming the
 * field; or busy: the reader's queue is full) and done not called.
 */
int fd_query_submit(struct fd_query *q, const char *cmd, struct json_t *req,
		    fd_query_done done, void *arg, struct json_t **reply);
/* Answer what is queued, stop the thread, free *q; NULL-safe. */
void fd_query_destroy(struct fd_query **q);

/* ---- record.c: the main thread's side of the treatment record ---- */

/* An alarm of the daemon rather than of one device (the journal's):
 * every device's state shows it, and alarm.<device> says when it is
 * raised and cleared. */
struct fd_daemon_alarm {
	bool present;
	int64_t since_ms;
	char message[256];
};

/* Open the journal and its reader (unless journal = off) and start the
 * trace's timer.  Before the devices start. */
void fd_record_open(struct fd_daemon *d);
/* Close every session still open as `shutdown` (after the devices have
 * stopped and their last news was taken), write what is queued, close. */
void fd_record_close(struct fd_daemon *d);
/* A device's news: its events into the log, sessions opened and closed. */
void fd_record_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news);
/* A daemon event (start, stop, reload) into the log. */
void fd_record_daemon(struct fd_daemon *d, const char *event, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
/* A state-changing command's outcome (or any command's refusal for its
 * role), reply as sent (ok, or the error); req the request (what it
 * named); env who sent it (by, as). */
void fd_record_command(struct fd_daemon *d, const char *cmd, json_t *req,
		       const struct fd_envelope *env, json_t *reply);
/*
 * A start about to be handed over: check its patient and note, that the
 * record can be written (journal_required), give c its session id, and
 * hold what the session's record needs until its "started" event (env:
 * who started it, the session's operator).  0, or
 * -1 with *reply the refusal.
 */
int fd_record_start(struct fd_daemon *d, struct fd_device *dev, json_t *req,
		    const struct fd_envelope *env,
		    const struct fascia_profile *p, struct fd_command *c,
		    json_t **reply);
/* The start given to fd_record_start() was refused: forget it. */
void fd_record_start_refused(struct fd_device *dev);
/* Whether what is recorded now will be written: true, or false with why
 * (the journal's trouble).  Always true with journal = off. */
bool fd_record_writable(struct fd_daemon *d, char *why, size_t len);
/*
 * Send reply (stolen) to env once every record queued so far is
 * committed: a device command's answer comes once what it did is in the
 * record (an ack's alarm, a start's session).  While the record cannot be
 * written, at once, with result.recorded {committed: false, message}; so
 * too after FD_VERDICT_TIMEOUT_S of a slow disk.
 */
void fd_record_send_committed(struct fd_daemon *d,
			      const struct fd_envelope *env, json_t *reply);

/* ---- security.c: CURVE at run time (docs/security.md) ---- */

/* With curve = yes: read the certificates, start CZMQ's zauth on d->zmq
 * and the thread that watches the clients directory.  Before the sockets
 * bind.  0, or -1 logged.  Nothing with curve = no. */
int fd_security_open(struct fd_daemon *d);
/* Make sock a CURVE server with the daemon's certificate (curve = yes)
 * and count its failed handshakes under what ("control", "publish").
 * Before it binds.  0, or -1 logged. */
int fd_security_socket(struct fd_daemon *d, void *sock, const char *what);
/* Who sent m, a client's frame received on socket (FD_SOCK_*; NULL:
 * none came): false when no one the daemon admits now (a key removed from
 * the clients directory): the request is dropped unanswered. */
struct zmq_msg_t;
bool fd_security_who(struct fd_daemon *d, int socket, struct zmq_msg_t *m,
		     struct fd_who *who);
/* SIGHUP: read the clients directory again now. */
void fd_security_reload(struct fd_daemon *d);
/* status's "security": CURVE, the clients known, failed handshakes. */
struct json_t *fd_security_status(struct fd_daemon *d);
/* After the sockets are closed. NULL-safe. */
void fd_security_close(struct fd_daemon *d);

/* ---- notify.c: systemd's supervision (sd_notify; docs/install.md) ---- */

/* WATCHDOG=1 goes only while every control thread has ticked within
 * this. */
#define FD_NOTIFY_TICKED_S 1.0

/* Under systemd (NOTIFY_SOCKET): READY=1 and STATUS=, and the watchdog's
 * timer when WATCHDOG_USEC asks for one.  Once the sockets listen and the
 * devices run.  Nothing outside systemd. */
void fd_notify_ready(struct fd_daemon *d);
/* A device's news: STATUS= again when a state changed. */
void fd_notify_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news);
/* SIGHUP: RELOADING=1 before the reload, READY=1 after (done). */
void fd_notify_reloading(struct fd_daemon *d, bool done);
/* STOPPING=1, before the devices vent. */
void fd_notify_stopping(struct fd_daemon *d);
void fd_notify_close(struct fd_daemon *d);
/* STATUS='s line: "2 devices: sim idle, left running", from state[]. */
void fd_notify_status_text(struct fd_daemon *d, const enum fd_state *state,
			   char *out, size_t len);
/* Whether every device's control thread ticked within FD_NOTIFY_TICKED_S
 * of now; else false with why. */
bool fd_notify_alive(struct fd_daemon *d, double now, char *why, size_t len);

/* ---- server.c: the ZeroMQ sockets and the request codec ---- */

struct fd_daemon {
	struct event_base *base;
	struct fd_conf conf;
	const char *conf_path; /* NULL: built in */
	struct fd_device *dev; /* ndev, allocated */
	int ndev;
	struct fd_profiles profiles;
	struct fascia_profile_limits limits;
	struct fd_store *store;     /* disk work (profile.put) */
	struct fd_journal *journal; /* NULL: journal = off */
	struct fd_query *query;
	struct fd_daemon_alarm journal_alarm;
	void *record;            /* record.c's state */
	void *zmq;               /* the ZeroMQ context */
	void *server;            /* server.c's state */
	void *security;          /* security.c's (NULL: curve = no) */
	void *notify;            /* notify.c's (NULL: not under systemd) */
	char control_bound[256]; /* endpoints as bound (port of a *) */
	char publish_bound[256];
	char local_bound[256]; /* "" : no local endpoint */
	uint64_t next_token;   /* of the last device command */
	struct fd_outbox news; /* what the last wake-up took */
};

#define FD_VERDICT_TIMEOUT_S 2.0
/* Largest request frame; a larger one disconnects its peer. */
#define FD_REQUEST_MAX (FASCIA_PROFILE_JSON_MAX + 64 * 1024)

/* How replies and messages are encoded: compact, and reals with at most 15
 * significant digits, so that a pressure rounded to 0.1 reads 24.6, not
 * 24.600000000000001. */
#define FD_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* The ROUTER sockets: control, and the optional local one. */
enum { FD_SOCK_CONTROL, FD_SOCK_LOCAL, FD_SOCKS };

/* One ROUTER and its event (the callback's argument). */
struct fd_router {
	struct fd_daemon *d;
	int index; /* FD_SOCK_* */
	void *sock;
	struct event *ev; /* its ZMQ_FD */
};

/* server.c's state (d->server). */
struct fd_server {
	struct fd_router router[FD_SOCKS]; /* sock NULL: not opened */
	void *pub;                         /* publish */
	bool own_zmq;                      /* we made d->zmq */
	struct event *publish_timer;
};

/* Bind the ROUTER and PUB sockets and serve them from d->base. 0, or -1
 * logged (everything opened is closed again). */
int fd_server_open(struct fd_daemon *d);
/* Close both sockets.  Safe to call twice, or without fd_server_open(). */
void fd_server_close(struct fd_daemon *d);
/* Send reply (stolen) to env; without a socket (tests), drop it. */
void fd_server_send(struct fd_daemon *d, const struct fd_envelope *env,
		    struct json_t *reply);

/*
 * The request codec, pure (no sockets), for unit tests and fuzzers.
 * fd_server_decode: parse one payload.  Returns the JSON object (a new
 * reference) or NULL when the payload is not a JSON object.  *code is NULL
 * when the envelope is good (v 1, cmd a string), else the error code, with
 * msg saying why (a returned object still gives the id to echo).
 */
struct json_t *fd_server_decode(const char *buf, size_t len, const char **code,
				char *msg, size_t msglen);
/*
 * Decode and carry out one request.  Returns the reply (a new reference),
 * or NULL when it is deferred: a device command waits for its verdict,
 * which fd_commands_news() sends to env.
 */
struct json_t *fd_server_handle(struct fd_daemon *d, const char *buf,
				size_t len, const struct fd_envelope *env);
/* {"v":1,"id":id,"ok":false,"error":{"code","message"[,"field"]}}; id
 * NULL means null; field NULL leaves it out. */
struct json_t *fd_server_error(struct json_t *id, const char *code,
			       const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* {"v":1,"id":id,"ok":true,"result":result}; steals result. */
struct json_t *fd_server_ok(struct json_t *id, struct json_t *result);

/* A JSON value just built, or fatal: out of memory. */
static inline struct json_t *fd_must(struct json_t *v)
{
	if (v == NULL)
		fatalx("out of memory building JSON");
	return v;
}

/* ---- commands.c: the requests ---- */

/* Carry out a request decoded without error (fd_server_handle()'s
 * second half): the reply, or NULL when it waits for a verdict (or for the
 * disk, for profile.put). */
struct json_t *fd_commands_dispatch(struct fd_daemon *d, struct json_t *req,
				    const struct fd_envelope *env);
/* A device's news: answer the request waiting for its verdict, if any. */
void fd_commands_news(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_outbox *news);
/* Drop every request still waiting (at shutdown). */
void fd_commands_close(struct fd_daemon *d);

/* ---- publish.c: the PUB socket's messages ---- */

/* A device's news: its events (with the next seq each), then its state if
 * it changed. */
void fd_publish_news(struct fd_daemon *d, struct fd_device *dev,
		     const struct fd_outbox *news);
/* The state message of snap (NULL: nothing heard yet), with the next
 * seq. */
void fd_publish_state(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_snapshot *snap);
/*
 * Pure functions of what they are given.  A device's state message, also
 * the `status` result: snap NULL is a device never heard from (seq: the
 * last one published; the status reply does not advance it).  Only the
 * status result (full) carries ticks.late_hist.
 */
struct json_t *fd_publish_state_json(const char *device,
				     const struct fd_snapshot *snap,
				     const struct fd_daemon_alarm *journal,
				     uint64_t seq, int64_t now_ms, bool full);
/* alarm.<device> for a daemon alarm raised or cleared (the journal's), to
 * every device. */
void fd_publish_daemon_alarm(struct fd_daemon *d, const char *id,
			     const struct fd_daemon_alarm *a);
/* The event.<device> or alarm.<device> message of one event; *topic gets
 * its topic's prefix ("event" or "alarm"). */
struct json_t *fd_publish_event_json(const char *device,
				     const struct fd_event_rec *e, uint64_t seq,
				     const char **topic);
/* Whether e is published: a change between sub-states of FAULT, which
 * are published as one "fault", is logged only. */
bool fd_publish_wanted(const struct fd_event_rec *e);
/* Send topic.<device> and the message (stolen) on the PUB socket. */
void fd_publish(struct fd_daemon *d, const char *topic, const char *device,
		struct json_t *msg);

#endif

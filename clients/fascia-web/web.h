/*
 * fascia-web: the clinic console in a browser, a client of one fasciad per
 * treatment room (docs/man/fascia-web.1).  This is the program's map: every
 * file's functions under its name.
 *
 *   main.c     options, -n, --add-user, the loop, signals, the clock
 *   log.c      logging to stderr from a writer thread (never blocks the loop)
 *   config.c   the INI file, [web] and [room NAME], with each error's line
 *   users.c    the users file (NAME:ROLE:HASH), --add-user, and the
 *              password checker, an argon2id worker thread
 *   auth.c     browser sessions, cookies, CSRF tokens, rate-limited logins
 *   room.c     each room's daemon: a control DEALER and a SUB, served from
 *              the loop through ZMQ_FD; requests matched by id; the latest
 *              state of every device; whether the room is live
 *   tally.c    sessions by end reason, counted from the room's history
 *   events.c   Server-Sent Events: the snapshot, then every change
 *   api.c      the /api/ routes and the one role table of forwarded
 *              commands
 *   metrics.c  /metrics (Prometheus text) and /healthz
 *   http.c     evhttp, the routes, the static files, and the replies
 *              every route shares
 *   tls.c      HTTPS: OpenSSL's context and bufferevent_openssl
 *
 * One thread runs the libevent loop and everything in it; two more run
 * beside it, each behind a queue: log.c's writer and users.c's password
 * checker.  Nothing in the loop blocks: the daemons are asked through
 * non-blocking sockets with a deadline, and a login's 50 ms of argon2id
 * runs on the checker.
 */
#ifndef FASCIA_WEB_H
#define FASCIA_WEB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <jansson.h>

/* What the files share by pointer only. */
struct bufferevent;
struct event;
struct event_base;
struct evhttp;
struct evhttp_request;
struct ssl_ctx_st;
struct tally;
struct web;
struct web_auth;
struct web_room;
struct web_sse;
struct web_verifier;

#define WEB_VERSION "0.1"

#define WEB_MAX_ROOMS 64
#define WEB_ROOM_NAME_MAX 31 /* [A-Za-z0-9_-] */
#define WEB_DEVICE_NAME_MAX 31
#define WEB_DEVICES_MAX 256 /* per room: a daemon's FD_MAX_DEVICES */
#define WEB_NAME_MAX 64     /* a user: what fasciad takes as "as" */
#define WEB_PATH_MAX 512
#define WEB_ENDPOINT_MAX 256
#define WEB_ERRORS_MAX 32

/* A request to a daemon is sent within WEB_SEND_WAIT_MS (while its
 * connection is up) or not at all, and answered within
 * WEB_REPLY_TIMEOUT_MS of being sent, or the browser is told 504. */
#define WEB_SEND_WAIT_MS 1000
#define WEB_REPLY_TIMEOUT_MS 3000
/* A room that sent nothing for this long is silent (not live). */
#define WEB_SILENT_MS 2000
#define WEB_KEEPALIVE_S 15
/* An event stream whose unsent output passes this is dropped (the
 * default of sse_queue_kb). */
#define WEB_SSE_QUEUE_MAX (1024 * 1024)
#define WEB_BODY_MAX (64 * 1024)
#define WEB_HEADERS_MAX (16 * 1024)

/* What a user may do (the role table: api.c).  Each role may do all that
 * the one before it may, as the daemon's roles (docs/security.md). */
enum web_role {
	WEB_ROLE_NONE,
	WEB_ROLE_OBSERVER, /* watch, read the record, vent */
	WEB_ROLE_OPERATOR, /* and start, pause, resume, stop, ack */
	WEB_ROLE_ADMIN,    /* and nothing more through the console yet */
};

/* ---- config.c: the INI file ---- */

struct web_error {
	const char *file; /* the configuration's or the users file's path */
	int line;         /* 0: the file as a whole */
	char message[400];
};

struct web_errors {
	struct web_error e[WEB_ERRORS_MAX];
	int n;
	int dropped;
};

struct web_room_conf {
	char name[WEB_ROOM_NAME_MAX + 1];
	char control[WEB_ENDPOINT_MAX];
	char publish[WEB_ENDPOINT_MAX];
	char server_key[WEB_PATH_MAX]; /* Z85 or a public certificate */
	int line;                      /* its [room NAME] */
	int control_line, publish_line, server_key_line;
};

struct web_conf {
	char host[256]; /* listen = HOST:PORT, host without brackets */
	int port;       /* 0: any free port */
	char tls_cert[WEB_PATH_MAX], tls_key[WEB_PATH_MAX];
	char users[WEB_PATH_MAX]; /* "": no users (loopback only) */
	char cert[WEB_PATH_MAX];  /* the console's CURVE secret certificate */
	char static_dir[WEB_PATH_MAX];
	size_t sse_queue_max; /* sse_queue_kb: a stream's unsent output */
	int listen_line, tls_cert_line, tls_key_line, users_line, cert_line,
		static_line;
	struct web_room_conf rooms[WEB_MAX_ROOMS];
	int nrooms;
};

/* Record an error at file:line (line 0: no line). */
void conf_error(struct web_errors *errs, const char *file, int line,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Print each as FILE:LINE: message on stderr. */
void conf_print_errors(const struct web_errors *errs);
/* Read path into *c: 0, or -1 with the reasons in errs. */
int conf_load(const char *path, struct web_conf *c, struct web_errors *errs);
/* The files it names: TLS, CURVE keys, the static directory (users.c
 * reads the users file).  0, or -1 with errs. */
int conf_check_files(const char *path, const struct web_conf *c,
		     struct web_errors *errs);
/* Whether host names the loopback interface (127/8, ::1, localhost). */
bool conf_loopback(const char *host);
const char *conf_role_name(enum web_role r);
/* 0 and *r for observer, operator or admin; -1 otherwise. */
int conf_role_parse(const char *s, enum web_role *r);
/* 1-64 of A-Z a-z 0-9 . _ @ - and inner spaces: fasciad's "as". */
bool conf_user_name_ok(const char *name);
/* 1-31 of A-Z a-z 0-9 _ - : a room's or a device's name. */
bool conf_name_ok(const char *name);

/* ---- users.c: the users file and the password checker ---- */

#define WEB_HASH_MAX 128 /* crypto_pwhash_STRBYTES */
#define WEB_PASSWORD_MAX 1024

struct web_user {
	char name[WEB_NAME_MAX + 1];
	enum web_role role;
	char hash[WEB_HASH_MAX];
};

struct web_users {
	struct web_user *v;
	size_t n;
};

/* Read the users file (NAME:ROLE:HASH lines, # comments): 0, or -1 with
 * each bad line in errs. */
int users_load(const char *path, struct web_users *out,
	       struct web_errors *errs);
void users_free(struct web_users *u);
const struct web_user *users_find(const struct web_users *u, const char *name);
/* --add-user: the password from stdin, the file written whole (a
 * temporary, fsync, rename), mode 0600.  An exit status. */
int users_add(const char *path, const char *name, const char *role);

/* Called on the loop with the checker's verdict. */
typedef void (*verify_fn)(struct web *w, bool ok, void *arg);
/* Start and stop the checker thread; stop answers what waits with false. */
int verifier_start(struct web *w);
void verifier_stop(struct web *w);
/* Check password against hash (NULL: an unknown user, checked against a
 * decoy so that the time taken says nothing).  -1 when too many wait. */
int verifier_submit(struct web *w, const char *hash, const char *password,
		    verify_fn fn, void *arg);

/* ---- auth.c: sessions, CSRF, logins ---- */

#define WEB_TOKEN_HEX 64 /* 32 random bytes */

struct web_session {
	char id[WEB_TOKEN_HEX + 1]; /* the cookie's value */
	char csrf[WEB_TOKEN_HEX + 1];
	char user[WEB_NAME_MAX + 1];
	enum web_role role;
	int64_t created_ms, used_ms; /* monotonic */
};

int auth_open(struct web *w);
void auth_close(struct web *w);
/* The request's session, from its cookie (touched), or NULL.  Without
 * users it is the one "local" admin session, whose cookie the reply
 * then sets. */
struct web_session *auth_session(struct web *w, struct evhttp_request *req);
/* The session with id, touched, unless it is gone or expired (an event
 * stream's check). */
struct web_session *auth_find(struct web *w, const char *id);
/* Whether the request carries s's CSRF token (X-CSRF-Token, else
 * form_token) and s's cookie. */
bool auth_csrf_ok(const struct web_session *s, struct evhttp_request *req,
		  const char *form_token);
/* Drop expired sessions (the keepalive timer's sweep). */
void auth_sweep(struct web *w);
/* The users file was read again: sessions follow it. */
void auth_users_changed(struct web *w);
void auth_login_cb(struct evhttp_request *req, void *arg);
void auth_logout_cb(struct evhttp_request *req, void *arg);

/* ---- room.c: a room's daemon ---- */

/* A daemon's reply (text as it came, and parsed), or NULL for none in
 * time. */
typedef void (*room_reply_fn)(struct web_room *r, const char *text, size_t len,
			      json_t *reply, void *arg);

struct room_call {
	TAILQ_ENTRY(room_call) entry;
	struct web_room *room;
	json_int_t id;
	char *text; /* the request, until sent */
	size_t len;
	bool sent;
	struct event *timer;
	room_reply_fn fn;
	void *arg;
};
TAILQ_HEAD(room_calls, room_call);

struct web_room {
	struct web *w;
	const struct web_room_conf *conf;
	const char *name;
	void *ctl, *sub; /* DEALER, SUB */
	struct event *ctl_ev, *sub_ev;
	struct room_calls calls;
	json_int_t next_id;
	json_t *states;     /* device -> its latest state message */
	int64_t heard_mono; /* 0: never */
	int64_t heard_ms;   /* Unix ms of the last message, 0: never */
	bool live;
	struct tally *tally;
	uint64_t messages, bad_messages;
};

int rooms_open(struct web *w);
void rooms_close(struct web *w);
struct web_room *room_find(struct web *w, const char *name);
/*
 * Send req (an object: "v" and "id" are set) to the room's daemon; fn is
 * called once, from the loop, with the reply or NULL.  Returns 0, or -1
 * (fn is then not called) when it cannot even be queued.
 */
int room_request(struct web_room *r, json_t *req, room_reply_fn fn, void *arg);
/* The 250 ms timer's look: a live room that has been silent too long. */
void rooms_tick(struct web *w);
/* Every pending call answered with NULL (the shutdown). */
void room_cancel_all(struct web_room *r);
/* {"room","live","last_heard_ms"} */
json_t *room_status_json(const struct web_room *r);
/* /api/state's body: every room with its devices' latest states. */
json_t *rooms_state_json(struct web *w);
/* The room's devices' names, sorted (a new array of strings). */
json_t *room_device_names(const struct web_room *r);

/* ---- tally.c: sessions by end reason ---- */

struct tally *tally_new(struct web_room *r);
void tally_free(struct tally **t);
/* Count again: at once (from_scratch: the daemon came back, its record
 * may be another), or soon after a session may have ended. */
void tally_refresh(struct tally *t, bool from_scratch);
/* device -> {end_reason: count}; NULL while unknown (journal off,
 * never answered). */
const json_t *tally_counts(const struct tally *t);
/* The end reasons the record knows, NULL-terminated. */
extern const char *const tally_reasons[];

/* ---- events.c: Server-Sent Events ---- */

int sse_open(struct web *w);
void sse_close(struct web *w);
void sse_cb(struct evhttp_request *req, void *arg);
/* "event: NAME" with data to every stream (data: a JSON object). */
void sse_broadcast(struct web *w, const char *event, json_t *data);
/* End the streams of a session that ended (logout, user removed). */
void sse_end_session(struct web *w, const char *session_id);
size_t sse_clients(const struct web *w);

/* ---- api.c: /api/ ---- */

void api_me_cb(struct evhttp_request *req, void *arg);
void api_state_cb(struct evhttp_request *req, void *arg);
/* /api/ROOM/...: the forwarded commands and reads. */
void api_route(struct web *w, struct evhttp_request *req, const char *path);

/* ---- metrics.c ---- */

void metrics_cb(struct evhttp_request *req, void *arg);
void healthz_cb(struct evhttp_request *req, void *arg);

/* ---- http.c: the server and what every route shares ---- */

int http_open(struct web *w);
void http_close(struct web *w);
/* The security headers and Content-Type of every reply. */
void http_headers(struct web *w, struct evhttp_request *req,
		  const char *content_type);
/* A JSON reply (body stolen), Cache-Control: no-store. */
void http_json(struct web *w, struct evhttp_request *req, int code,
	       json_t *body);
void http_json_text(struct web *w, struct evhttp_request *req, int code,
		    const char *text, size_t len);
/* {"ok":false,"error":{"code","message"}} */
void http_error(struct web *w, struct evhttp_request *req, int code,
		const char *ecode, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void http_text(struct web *w, struct evhttp_request *req, int code,
	       const char *content_type, const char *text);
void http_redirect(struct web *w, struct evhttp_request *req, const char *to);
/* The peer's address ("127.0.0.1"), for the logs and the rate limit. */
const char *http_peer(struct evhttp_request *req);
/* The request's body as a NUL-terminated string (malloc'd), NULL when
 * there is none or it is too long. */
char *http_body(struct evhttp_request *req);
/* A file of the static directory (path: relative, checked) with code;
 * with message, an HTML page gets it as the text of its element
 * id="message" (the login page's refusals). */
void http_static(struct web *w, struct evhttp_request *req, const char *path,
		 int code, const char *message);

/* ---- the program's state (main.c) ---- */

struct web_stats {
	uint64_t logins_ok, logins_failed, logins_limited;
	uint64_t forwarded, forward_timeouts, csrf_refused, role_refused;
	uint64_t sse_dropped, sse_events;
};

struct web {
	const char *conf_path;
	struct web_conf conf;
	struct web_users users;
	bool no_users; /* development: every visitor is admin "local" */
	struct event_base *base;
	struct evhttp *http;
	struct ssl_ctx_st *tls; /* NULL: plain HTTP */
	char listen_url[300];
	int static_fd;
	struct web_auth *auth;
	struct web_verifier *verifier;
	struct web_sse *sse;
	void *zctx;
	struct web_room *rooms;
	int nrooms;
	struct event *tick; /* 250 ms: liveness, keepalive, sweeps */
	struct web_stats stats;
};

/* Unix ms and monotonic ms: every time the program reads comes from one
 * of these. */
int64_t web_now_ms(void);
int64_t web_mono_ms(void);
/* Allocation failure is fatal in this program. */
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

/* ---- log.c ---- */

void log_init(bool verbose);
void log_start(void); /* from now on, lines go through the writer */
void log_close(void);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* ---- tls.c: HTTPS ---- */

/* The server's TLS context from tls_cert (a PEM chain) and tls_key; NULL
 * with why (OpenSSL's reason) filled. */
struct ssl_ctx_st *tls_context(const char *cert, const char *key, char *why,
			       size_t len);
void tls_free(struct ssl_ctx_st *ctx); /* NULL-safe */
/* evhttp's bufferevent maker for a TLS listener (arg: the context). */
struct bufferevent *tls_bufferevent(struct event_base *base, void *arg);

#endif

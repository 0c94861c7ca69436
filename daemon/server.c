/*
 * fasciad's control socket: a ZeroMQ ROUTER served from the main thread's
 * libevent loop, and the PUB socket beside it.  Each request is one JSON
 * object (docs/protocol.md), decoded here and carried out by commands.c;
 * a device command's reply waits for its verdict.  Nothing here blocks:
 * every send and receive is ZMQ_DONTWAIT, and the decoding is a pure
 * function of the payload.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <czmq.h>
#include <event2/event.h>
#include <jansson.h>

#include "fasciad.h"

/* Requests handled per wake-up before yielding to other events. */
#define ROUTER_BUDGET 256

/* ---- replies ---- */

json_t *fd_server_ok(json_t *id, json_t *result)
{
	return fd_must(json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
				 id ? id : json_null(), "ok", 1, "result",
				 result));
}

json_t *fd_server_error(json_t *id, const char *code, const char *field,
			const char *fmt, ...)
{
	char msg[512];
	json_t *err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a message quoting client input may hold cut UTF-8 */
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (err == NULL)
		err = fd_must(json_pack("{s:s, s:s}", "code", code, "message",
					"(message not UTF-8)"));
	if (field != NULL &&
	    json_object_set_new(err, "field", json_string(field)) < 0)
		json_object_set_new(err, "field", json_string("?"));
	return fd_must(json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
				 id ? id : json_null(), "ok", 0, "error", err));
}

/* ---- decoding ---- */

json_t *fd_server_decode(const char *buf, size_t len, const char **code,
			 char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *req, *v, *cmd;

	*code = "bad_request";
	req = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL) {
		snprintf(msg, msglen, "not JSON (UTF-8): %s at byte %d",
			 jerr.text, jerr.position);
		return NULL;
	}
	if (!json_is_object(req)) {
		snprintf(msg, msglen, "a request is a JSON object");
		json_decref(req);
		return NULL;
	}
	v = json_object_get(req, "v");
	cmd = json_object_get(req, "cmd");
	if (v == NULL) {
		snprintf(msg, msglen, "\"v\" is missing");
	} else if (!json_is_integer(v) || json_integer_value(v) != 1) {
		snprintf(msg, msglen, "\"v\": protocol version 1 only");
	} else if (cmd == NULL) {
		snprintf(msg, msglen, "\"cmd\" is missing");
	} else if (!json_is_string(cmd)) {
		snprintf(msg, msglen, "\"cmd\" must be a string");
	} else {
		*code = NULL;
		msg[0] = '\0';
	}
	return req;
}

/* The field the error names, from a decode message ("\"v\" ..."). */
static const char *decode_field(const char *msg)
{
	if (strncmp(msg, "\"v\"", 3) == 0)
		return "v";
	if (strncmp(msg, "\"cmd\"", 5) == 0)
		return "cmd";
	return NULL;
}

json_t *fd_server_handle(struct fd_daemon *d, const char *buf, size_t len,
			 const struct fd_envelope *env)
{
	const char *code;
	char msg[256];
	json_t *req, *reply;

	req = fd_server_decode(buf, len, &code, msg, sizeof(msg));
	if (code != NULL) {
		reply = fd_server_error(req ? json_object_get(req, "id") : NULL,
					code, decode_field(msg), "%s", msg);
		json_decref(req);
		return reply;
	}
	reply = fd_commands_dispatch(d, req, env);
	json_decref(req);
	return reply;
}

/* ---- the sockets ---- */

/* After a send outside router_cb: the edge may have gone by. */
static void recheck_router(struct fd_router *r)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	if (r->ev != NULL &&
	    zmq_getsockopt(r->sock, ZMQ_EVENTS, &ev, &sz) == 0 &&
	    (ev & ZMQ_POLLIN))
		event_active(r->ev, EV_READ, 0);
}

static void send_frames(void *sock, const struct fd_envelope *env,
			const char *text)
{
	if (zmq_send(sock, env->identity, env->identity_len,
		     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		goto fail;
	if (env->delimiter &&
	    zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		goto fail;
	if (zmq_send(sock, text, strlen(text), ZMQ_DONTWAIT) < 0)
		goto fail;
	return;
fail:
	/* the peer is gone or its queue is full: drop the reply */
	log_debug("control: reply dropped: %s", zmq_strerror(zmq_errno()));
}

void fd_server_send(struct fd_daemon *d, const struct fd_envelope *env,
		    json_t *reply)
{
	struct fd_server *sv = d->server;
	struct fd_router *r;
	char *text;

	if (sv != NULL && env->identity_len > 0 && env->socket >= 0 &&
	    env->socket < FD_SOCKS &&
	    (r = &sv->router[env->socket])->sock != NULL) {
		if ((text = json_dumps(reply, FD_JSON_FLAGS)) == NULL)
			fatalx("out of memory encoding a reply");
		send_frames(r->sock, env, text);
		free(text);
		recheck_router(r);
	}
	json_decref(reply);
}

/* Receive the rest of a multipart message and count its frames. */
static int drain_frames(void *sock)
{
	int more = 1, n = 0;
	size_t sz = sizeof(more);
	zmq_msg_t m;

	while (more) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			break;
		}
		n++;
		zmq_msg_close(&m);
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) < 0)
			break;
	}
	return n;
}

static bool rcvmore(void *sock)
{
	int more = 0;
	size_t sz = sizeof(more);

	return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more;
}

/*
 * One request: [identity][empty, from REQ][payload].  Anything else is
 * answered with bad_request (to the identity, when there is one).  Who
 * sent it comes with the payload (security.c); one the daemon no longer
 * admits gets no reply.  Returns -1 when nothing was there to receive.
 */
static int serve_one(struct fd_router *r)
{
	struct fd_envelope env;
	zmq_msg_t f[2];
	int nf = 0, extra = 0;
	size_t len;
	json_t *reply;
	bool admitted;

	memset(&env, 0, sizeof(env));
	env.socket = r->index;
	zmq_msg_init(&f[0]);
	if (zmq_msg_recv(&f[0], r->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&f[0]);
		return -1;
	}
	len = zmq_msg_size(&f[0]);
	env.identity_len = len < FD_IDENTITY_MAX ? len : FD_IDENTITY_MAX;
	memcpy(env.identity, zmq_msg_data(&f[0]), env.identity_len);
	zmq_msg_close(&f[0]);
	while (nf < 2 && rcvmore(r->sock)) {
		zmq_msg_init(&f[nf]);
		if (zmq_msg_recv(&f[nf], r->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&f[nf]);
			break;
		}
		nf++;
	}
	if (rcvmore(r->sock))
		extra = drain_frames(r->sock);
	if (nf == 2 && zmq_msg_size(&f[0]) == 0) {
		env.delimiter = true;
		zmq_msg_close(&f[0]);
		f[0] = f[1];
		nf = 1;
	}
	/* the routing id's frame is the ROUTER's own: the properties
	 * (ZAP's User-Id) come with the client's */
	admitted = fd_security_who(r->d, r->index, nf > 0 ? &f[nf - 1] : NULL,
				   &env.who);
	if (!admitted)
		reply = NULL;
	else if (nf != 1 || extra > 0 || len > FD_IDENTITY_MAX)
		reply = fd_server_error(
			NULL, "bad_request", NULL, "expected one JSON frame%s",
			env.delimiter ? " after the delimiter" : "");
	else
		reply = fd_server_handle(r->d, zmq_msg_data(&f[0]),
					 zmq_msg_size(&f[0]), &env);
	for (int i = 0; i < nf; i++)
		zmq_msg_close(&f[i]);
	if (reply != NULL)
		fd_server_send(r->d, &env, reply);
	return 0;
}

/*
 * ZMQ_FD is edge-triggered: it signals that ZMQ_EVENTS changed, not that
 * a message waits.  Serve until ZMQ_EVENTS has no POLLIN (re-read after
 * each reply: a send can consume the edge), at most ROUTER_BUDGET
 * requests per wake-up so a flood cannot starve the other events.
 */
static void router_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_router *r = arg;
	int ev, n;
	size_t sz;

	(void)fd;
	(void)what;
	for (n = 0; n < ROUTER_BUDGET; n++) {
		sz = sizeof(ev);
		if (zmq_getsockopt(r->sock, ZMQ_EVENTS, &ev, &sz) < 0) {
			log_warnx("control: ZMQ_EVENTS: %s",
				  zmq_strerror(zmq_errno()));
			return;
		}
		if (!(ev & ZMQ_POLLIN) || serve_one(r) < 0)
			return;
	}
	event_active(r->ev, EV_READ, 0);
}

/* Every device's state at publish_hz, from the latest snapshot. */
static void publish_cb(evutil_socket_t fd, short what, void *arg)
{
	static struct fd_snapshot snap; /* large; the main thread is one */
	struct fd_daemon *d = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < d->ndev; i++)
		fd_publish_state(d, &d->dev[i],
				 fd_device_peek(&d->dev[i], &snap) ? &snap
								   : NULL);
}

static int setopt(void *sock, int opt, int v, const char *name)
{
	if (zmq_setsockopt(sock, opt, &v, sizeof(v)) == 0)
		return 0;
	log_warnx("zmq_setsockopt %s: %s", name, zmq_strerror(zmq_errno()));
	return -1;
}

/*
 * The local endpoint's socket file: mode 0660, the daemon's group, from
 * the bind on (a umask for the bind, then chmod: ZeroMQ creates it with
 * the umask's mode).  Plaintext, it is guarded by these permissions.
 */
static int bind_local(void *s, const char *endpoint)
{
	mode_t old = umask(0117);
	int rc = zmq_bind(s, endpoint);

	umask(old);
	if (rc == 0 && chmod(endpoint + strlen("ipc://"), 0660) < 0) {
		log_warn("local: chmod %s", endpoint + strlen("ipc://"));
		return -1;
	}
	return rc;
}

/*
 * A socket of type bound to endpoint; its address as bound in bound.
 * what names it in messages; the local one is plaintext, the others
 * CURVE servers when curve = yes.
 */
static void *open_socket(struct fd_daemon *d, int type, const char *what,
			 const char *endpoint, char *bound, size_t boundlen)
{
	void *s = zmq_socket(d->zmq, type);
	int64_t max = FD_REQUEST_MAX;
	size_t sz = boundlen;
	bool local = strcmp(what, "local") == 0;

	if (s == NULL) {
		log_warnx("zmq_socket: %s", zmq_strerror(zmq_errno()));
		return NULL;
	}
	if (setopt(s, ZMQ_LINGER, 0, "ZMQ_LINGER") < 0 ||
	    (type == ZMQ_ROUTER &&
	     (setopt(s, ZMQ_ROUTER_MANDATORY, 0, "ZMQ_ROUTER_MANDATORY") < 0 ||
	      zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0)) ||
	    (type == ZMQ_PUB && setopt(s, ZMQ_SNDHWM, 1000, "ZMQ_SNDHWM") < 0))
		goto fail;
	if (!local && fd_security_socket(d, s, what) < 0)
		goto fail;
	if ((local ? bind_local(s, endpoint) : zmq_bind(s, endpoint)) < 0) {
		log_warnx("cannot bind %s %s: %s", what, endpoint,
			  zmq_strerror(zmq_errno()));
		goto fail;
	}
	if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &sz) < 0)
		snprintf(bound, boundlen, "%s", endpoint);
	return s;
fail:
	zmq_close(s);
	return NULL;
}

static int open_router(struct fd_daemon *d, int index, const char *endpoint,
		       char *bound, size_t boundlen)
{
	struct fd_router *r = &((struct fd_server *)d->server)->router[index];
	int fd;
	size_t sz = sizeof(fd);

	r->d = d;
	r->index = index;
	r->sock = open_socket(d, ZMQ_ROUTER,
			      index == FD_SOCK_LOCAL ? "local" : "control",
			      endpoint, bound, boundlen);
	if (r->sock == NULL)
		return -1;
	if (zmq_getsockopt(r->sock, ZMQ_FD, &fd, &sz) < 0) {
		log_warnx("ZMQ_FD: %s", zmq_strerror(zmq_errno()));
		return -1;
	}
	r->ev = event_new(d->base, fd, EV_READ | EV_PERSIST, router_cb, r);
	if (r->ev == NULL || event_add(r->ev, NULL) < 0)
		fatalx("libevent: cannot add the server's events");
	/* messages may have queued before the event was added */
	event_active(r->ev, EV_READ, 0);
	return 0;
}

int fd_server_open(struct fd_daemon *d)
{
	struct fd_server *sv = xcalloc(1, sizeof(*sv));
	int hz = d->conf.publish_hz > 0 ? d->conf.publish_hz : 10;
	struct timeval tv = {0, 1000000 / hz};

	d->server = sv;
	if (d->zmq == NULL) {
		/* CZMQ's context, where its zauth answers ZAP; CZMQ is not
		 * to catch our signals (libevent does) */
		zsys_handler_set(NULL);
		if ((d->zmq = zsys_init()) == NULL)
			fatal("zsys_init");
		sv->own_zmq = true;
	}
	if (fd_security_open(d) < 0)
		goto fail;
	if (open_router(d, FD_SOCK_CONTROL, d->conf.control, d->control_bound,
			sizeof(d->control_bound)) < 0 ||
	    (d->conf.sec.local[0] &&
	     open_router(d, FD_SOCK_LOCAL, d->conf.sec.local, d->local_bound,
			 sizeof(d->local_bound)) < 0))
		goto fail;
	sv->pub = open_socket(d, ZMQ_PUB, "publish", d->conf.publish,
			      d->publish_bound, sizeof(d->publish_bound));
	if (sv->pub == NULL)
		goto fail;
	sv->publish_timer = event_new(d->base, -1, EV_PERSIST, publish_cb, d);
	if (sv->publish_timer == NULL ||
	    evtimer_add(sv->publish_timer, &tv) < 0)
		fatalx("libevent: cannot add the server's events");
	log_info("control on %s, publishing on %s%s%s%s", d->control_bound,
		 d->publish_bound, d->local_bound[0] ? ", local on " : "",
		 d->local_bound, d->conf.sec.curve ? ", CURVE" : ", plaintext");
	return 0;
fail:
	fd_server_close(d);
	return -1;
}

void fd_server_close(struct fd_daemon *d)
{
	struct fd_server *sv = d->server;

	if (sv == NULL)
		return;
	for (int i = 0; i < FD_SOCKS; i++) {
		if (sv->router[i].ev != NULL)
			event_free(sv->router[i].ev);
		if (sv->router[i].sock != NULL)
			zmq_close(sv->router[i].sock);
	}
	if (sv->publish_timer != NULL)
		event_free(sv->publish_timer);
	if (sv->pub != NULL)
		zmq_close(sv->pub);
	fd_security_close(d);
	if (sv->own_zmq) {
		zsys_shutdown();
		d->zmq = NULL;
	}
	free(sv);
	d->server = NULL;
}

/*
 * fasciad's control socket: a ZeroMQ ROUTER served from the main thread's
 * libevent loop.  Each request is one JSON object (docs/protocol.md);
 * queries are answered at once from the latest snapshots, device commands
 * go to the device's control thread and are answered when its verdict
 * comes back through fd_server_device_news(), or with `internal` after
 * FD_VERDICT_TIMEOUT_S.  Nothing here blocks: every send and receive is
 * ZMQ_DONTWAIT, and the decoding is a pure function of the payload.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <zmq.h>

#include "fasciad.h"

/* Requests handled per wake-up before yielding to other events. */
#define ROUTER_BUDGET 256

static void router_cb(evutil_socket_t fd, short what, void *arg);

/* ---- replies ---- */

static json_t *must(json_t *v)
{
	if (v == NULL)
		fatalx("out of memory building JSON");
	return v;
}

json_t *fd_reply_ok(json_t *id, json_t *result)
{
	return must(json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
			      id ? id : json_null(), "ok", 1, "result",
			      result));
}

json_t *fd_reply_error(json_t *id, const char *code, const char *field,
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
		err = must(json_pack("{s:s, s:s}", "code", code, "message",
				     "(message not UTF-8)"));
	if (field != NULL &&
	    json_object_set_new(err, "field", json_string(field)) < 0)
		json_object_set_new(err, "field", json_string("?"));
	return must(json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
			      id ? id : json_null(), "ok", 0, "error", err));
}

/* ---- decoding ---- */

json_t *fd_request_decode(const char *buf, size_t len, const char **code,
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

	req = fd_request_decode(buf, len, &code, msg, sizeof(msg));
	if (code != NULL) {
		reply = fd_reply_error(req ? json_object_get(req, "id") : NULL,
				       code, decode_field(msg), "%s", msg);
		json_decref(req);
		return reply;
	}
	reply = fd_server_dispatch(d, req, env);
	json_decref(req);
	return reply;
}

/* ---- arguments ---- */

/* The string argument key: NULL with *reply set when it is missing or
 * not a string. */
static const char *arg_string(json_t *req, const char *key, json_t **reply)
{
	json_t *id = json_object_get(req, "id");
	json_t *v = json_object_get(req, key);

	if (v == NULL)
		*reply = fd_reply_error(id, "bad_request", key,
					"\"%s\" is missing", key);
	else if (!json_is_string(v))
		*reply = fd_reply_error(id, "bad_request", key,
					"\"%s\" must be a string", key);
	else
		return json_string_value(v);
	return NULL;
}

static struct fd_device *find_device(struct fd_daemon *d, const char *name)
{
	for (int i = 0; i < d->ndev; i++)
		if (strcmp(d->dev[i].conf.name, name) == 0)
			return &d->dev[i];
	return NULL;
}

/* The device named by "device": NULL with *reply set. */
static struct fd_device *arg_device(struct fd_daemon *d, json_t *req,
				    json_t **reply)
{
	const char *name = arg_string(req, "device", reply);
	struct fd_device *dev;

	if (name == NULL)
		return NULL;
	if ((dev = find_device(d, name)) == NULL)
		*reply = fd_reply_error(json_object_get(req, "id"),
					"unknown_device", "device",
					"no device \"%.64s\"", name);
	return dev;
}

struct fd_dev_server *fd_dev_server(struct fd_device *dev)
{
	struct fd_dev_server *ds = dev->server;

	if (ds == NULL) {
		ds = dev->server = xcalloc(1, sizeof(*ds));
		ds->daemon = dev->daemon;
		ds->dev = dev;
	}
	return ds;
}

/* ---- queries ---- */

static json_t *cmd_hello(struct fd_daemon *d, json_t *req,
			 const struct fd_envelope *env)
{
	json_t *names = must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(names, json_string(d->dev[i].conf.name));
	return fd_reply_ok(
		json_object_get(req, "id"),
		must(json_pack("{s:i, s:s, s:o, s:i, s:i}", "protocol", 1,
			       "version", "0.1", "devices", names, "tick_hz",
			       d->conf.tick_hz, "publish_hz",
			       d->conf.publish_hz)));
}

static json_t *device_summary(struct fd_device *dev)
{
	struct fd_dev_server *ds = fd_dev_latest(dev);
	const struct fd_device_conf *c = &dev->conf;
	char address[200];

	if (c->transport == TRANSPORT_TCP)
		snprintf(address, sizeof(address), "%s:%d", c->host, c->port);
	else
		snprintf(address, sizeof(address), "%s", c->path);
	return must(json_pack(
		"{s:s, s:s, s:i, s:s, s:s, s:i, s:f, s:{s:b}}", "name", c->name,
		"state",
		fd_state_name(ds->have_snap ? ds->snap.state : FD_OFFLINE),
		"chambers", c->chambers, "transport",
		c->transport == TRANSPORT_TCP ? "tcp" : "rtu", "address",
		address, "unit", c->unit, "limit_mmhg", c->limit_mmhg, "link",
		"up", ds->have_snap && ds->snap.link.up));
}

static json_t *cmd_devices(struct fd_daemon *d, json_t *req,
			   const struct fd_envelope *env)
{
	json_t *list = must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, device_summary(&d->dev[i]));
	return fd_reply_ok(json_object_get(req, "id"),
			   must(json_pack("{s:o}", "devices", list)));
}

static json_t *dev_state(struct fd_device *dev)
{
	return fd_state_json(dev, fd_dev_server(dev)->seq, fd_unix_ms(), true);
}

static json_t *cmd_status(struct fd_daemon *d, json_t *req,
			  const struct fd_envelope *env)
{
	struct fd_device *dev;
	json_t *reply = NULL, *list;

	(void)env;
	if (json_object_get(req, "device") != NULL) {
		if ((dev = arg_device(d, req, &reply)) == NULL)
			return reply;
		return fd_reply_ok(json_object_get(req, "id"), dev_state(dev));
	}
	list = must(json_array());
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, dev_state(&d->dev[i]));
	return fd_reply_ok(json_object_get(req, "id"),
			   must(json_pack("{s:o}", "devices", list)));
}

static json_t *cmd_profiles(struct fd_daemon *d, json_t *req,
			    const struct fd_envelope *env)
{
	json_t *list = must(json_array());

	(void)env;
	for (int i = 0; i < d->profiles.n; i++) {
		const struct fascia_profile *p = &d->profiles.p[i];
		double s = fascia_profile_duration_s(p);

		json_array_append_new(
			list,
			must(json_pack(
				"{s:s, s:s, s:i, s:f, s:f}", "name", p->name,
				"description", p->description, "chambers",
				p->chambers, "max_pressure_mmhg",
				p->max_pressure_mmhg, "duration_s",
				isfinite(s) ? round(s * 10) / 10 : 0.0)));
	}
	return fd_reply_ok(json_object_get(req, "id"),
			   must(json_pack("{s:o}", "profiles", list)));
}

static json_t *cmd_profile_get(struct fd_daemon *d, json_t *req,
			       const struct fd_envelope *env)
{
	json_t *reply = NULL, *id = json_object_get(req, "id"), *doc;
	const struct fascia_profile *p;
	const char *name;
	char *text;

	(void)env;
	if ((name = arg_string(req, "name", &reply)) == NULL)
		return reply;
	if ((p = fd_profiles_find(&d->profiles, name)) == NULL)
		return fd_reply_error(id, "unknown_profile", "name",
				      "no profile \"%.64s\"", name);
	if ((text = fascia_profile_to_json(p)) == NULL)
		return fd_reply_error(id, "internal", NULL,
				      "cannot encode profile %s", p->name);
	doc = json_loads(text, 0, NULL);
	free(text);
	if (doc == NULL)
		return fd_reply_error(id, "internal", NULL,
				      "cannot encode profile %s", p->name);
	return fd_reply_ok(id, must(json_pack("{s:o}", "profile", doc)));
}

static json_t *cmd_profile_put(struct fd_daemon *d, json_t *req,
			       const struct fd_envelope *env)
{
	json_t *id = json_object_get(req, "id");
	json_t *doc = json_object_get(req, "profile");
	struct fascia_profile_error err;
	char *text;
	int rc;

	(void)env;
	if (doc == NULL)
		return fd_reply_error(id, "bad_request", "profile",
				      "\"profile\" is missing");
	if (!json_is_object(doc))
		return fd_reply_error(id, "bad_request", "profile",
				      "\"profile\" must be an object");
	if ((text = json_dumps(doc, FD_JSON_FLAGS)) == NULL)
		fatalx("out of memory encoding a profile");
	rc = fd_profiles_put(&d->profiles, text, strlen(text), &d->limits,
			     &err);
	free(text);
	if (rc < 0 && errno == EINVAL)
		return fd_reply_error(id, "invalid_profile", err.field,
				      "%s%s%s", err.field,
				      err.field[0] ? ": " : "", err.message);
	if (rc < 0) {
		log_warnx("profile.put: %s", err.message);
		return fd_reply_error(id, "internal", NULL, "%s", err.message);
	}
	return fd_reply_ok(
		id, must(json_pack("{s:O, s:b}", "name",
				   json_object_get(doc, "name"), "stored", 1)));
}

static json_t *cmd_history(struct fd_daemon *d, json_t *req,
			   const struct fd_envelope *env)
{
	(void)d;
	(void)env;
	return fd_reply_ok(json_object_get(req, "id"),
			   must(json_pack("{s:[]}", "entries")));
}

/* ---- device commands ---- */

static void pending_clear(struct fd_dev_server *ds)
{
	ds->pending = false;
	json_decref(ds->pending_id);
	ds->pending_id = NULL;
	if (ds->pending_timer != NULL)
		evtimer_del(ds->pending_timer);
}

static void send_reply(struct fd_daemon *d, const struct fd_envelope *env,
		       json_t *reply);

static void verdict_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct fd_dev_server *ds = arg;
	json_t *reply;

	(void)fd;
	(void)what;
	if (!ds->pending)
		return;
	log_warnx("%s: no verdict on command %llu within %.0f s",
		  ds->dev->conf.name, (unsigned long long)ds->pending_token,
		  FD_VERDICT_TIMEOUT_S);
	reply = fd_reply_error(ds->pending_id, "internal", NULL,
			       "no verdict from %s within %.0f s",
			       ds->dev->conf.name, FD_VERDICT_TIMEOUT_S);
	pending_clear(ds);
	send_reply(ds->daemon, &ds->pending_env, reply);
}

/* Hold the request until the verdict with token comes back. */
static void pending_set(struct fd_dev_server *ds, uint64_t token, json_t *id,
			const struct fd_envelope *env)
{
	struct event_base *base = ds->daemon ? ds->daemon->base : NULL;
	struct timeval tv = {(time_t)FD_VERDICT_TIMEOUT_S, 0};

	ds->pending = true;
	ds->pending_token = token;
	ds->pending_id = id ? json_incref(id) : NULL;
	if (env != NULL)
		ds->pending_env = *env;
	else
		memset(&ds->pending_env, 0, sizeof(ds->pending_env));
	if (ds->pending_timer == NULL && base != NULL)
		ds->pending_timer = evtimer_new(base, verdict_timeout, ds);
	if (ds->pending_timer != NULL)
		evtimer_add(ds->pending_timer, &tv);
}

static uint64_t next_token(struct fd_daemon *d)
{
	static uint64_t without_server;
	struct fd_server *sv = d->server;

	return sv ? ++sv->next_token : ++without_server;
}

static json_t *device_command(struct fd_daemon *d, json_t *req,
			      const struct fd_envelope *env, enum fd_cmd cmd)
{
	json_t *reply = NULL, *id = json_object_get(req, "id");
	const struct fascia_profile *p = NULL;
	struct fd_dev_server *ds;
	struct fd_device *dev;
	struct fd_command *c;
	const char *pname;

	if ((dev = arg_device(d, req, &reply)) == NULL)
		return reply;
	if (cmd == FD_CMD_START) {
		if ((pname = arg_string(req, "profile", &reply)) == NULL)
			return reply;
		if ((p = fd_profiles_find(&d->profiles, pname)) == NULL)
			return fd_reply_error(id, "unknown_profile", "profile",
					      "no profile \"%.64s\"", pname);
	}
	ds = fd_dev_server(dev);
	if (ds->pending)
		return fd_reply_error(id, "busy", NULL,
				      "another command is being applied to %s",
				      dev->conf.name);
	c = xcalloc(1, sizeof(*c));
	c->cmd = cmd;
	c->token = next_token(d);
	if (p != NULL)
		c->profile = *p;
	if (fd_device_submit(dev, c) < 0) {
		free(c);
		return fd_reply_error(id, "busy", NULL,
				      "another command is being applied to %s",
				      dev->conf.name);
	}
	pending_set(ds, c->token, id, env);
	free(c);
	return NULL;
}

#define DEVICE_CMD(fn, cmd)                                                    \
	static json_t *fn(struct fd_daemon *d, json_t *req,                    \
			  const struct fd_envelope *env)                       \
	{                                                                      \
		return device_command(d, req, env, cmd);                       \
	}
DEVICE_CMD(cmd_start, FD_CMD_START)
DEVICE_CMD(cmd_pause, FD_CMD_PAUSE)
DEVICE_CMD(cmd_resume, FD_CMD_RESUME)
DEVICE_CMD(cmd_stop, FD_CMD_STOP)
DEVICE_CMD(cmd_vent, FD_CMD_VENT)
DEVICE_CMD(cmd_ack, FD_CMD_ACK)

static const struct command {
	const char *name;
	json_t *(*fn)(struct fd_daemon *, json_t *, const struct fd_envelope *);
} commands[] = {
	{"hello", cmd_hello},
	{"devices", cmd_devices},
	{"status", cmd_status},
	{"profiles", cmd_profiles},
	{"profile.get", cmd_profile_get},
	{"profile.put", cmd_profile_put},
	{"start", cmd_start},
	{"pause", cmd_pause},
	{"resume", cmd_resume},
	{"stop", cmd_stop},
	{"vent", cmd_vent},
	{"ack", cmd_ack},
	{"history", cmd_history},
};

json_t *fd_server_dispatch(struct fd_daemon *d, json_t *req,
			   const struct fd_envelope *env)
{
	const char *name = json_string_value(json_object_get(req, "cmd"));
	size_t i;

	for (i = 0; name && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].fn(d, req, env);
	return fd_reply_error(json_object_get(req, "id"), "unknown_command",
			      "cmd", "no command \"%.64s\"", name ? name : "");
}

/* ---- the verdicts ---- */

static json_t *verdict_reply(struct fd_dev_server *ds,
			     const struct fd_command *c)
{
	static const char *const codes[] = {
		[FD_OK] = NULL,
		[FD_PENDING] = "internal",
		[FD_EBUSY] = "busy",
		[FD_EINTERLOCK] = "interlock",
		[FD_EFORBIDDEN] = "forbidden",
	};
	const char *code = "internal";
	enum fd_state st = ds->have_snap ? ds->snap.state : FD_OFFLINE;

	if ((unsigned)c->verdict <= FD_EFORBIDDEN)
		code = codes[c->verdict];
	if (code == NULL)
		return fd_reply_ok(ds->pending_id,
				   must(json_pack("{s:s, s:s}", "device",
						  ds->dev->conf.name, "state",
						  fd_state_name(st))));
	return fd_reply_error(ds->pending_id, code, NULL, "%s",
			      c->why[0] ? c->why : fd_cmd_name(c->cmd));
}

void fd_server_verdict(struct fd_daemon *d, struct fd_device *dev,
		       const struct fd_command *c)
{
	struct fd_dev_server *ds = fd_dev_server(dev);
	json_t *reply;

	if (!ds->pending || c->token != ds->pending_token)
		return; /* answered already (timed out) */
	reply = verdict_reply(ds, c);
	pending_clear(ds);
	send_reply(d, &ds->pending_env, reply);
}

/* ---- the sockets ---- */

/* After a send outside router_cb: the edge may have gone by. */
static void recheck_router(struct fd_server *sv)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	if (sv->router_ev != NULL &&
	    zmq_getsockopt(sv->router, ZMQ_EVENTS, &ev, &sz) == 0 &&
	    (ev & ZMQ_POLLIN))
		event_active(sv->router_ev, EV_READ, 0);
}

static void send_frames(struct fd_server *sv, const struct fd_envelope *env,
			const char *text)
{
	if (zmq_send(sv->router, env->identity, env->identity_len,
		     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		goto fail;
	if (env->delimiter &&
	    zmq_send(sv->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		goto fail;
	if (zmq_send(sv->router, text, strlen(text), ZMQ_DONTWAIT) < 0)
		goto fail;
	return;
fail:
	/* the peer is gone or its queue is full: drop the reply */
	log_debug("control: reply dropped: %s", zmq_strerror(zmq_errno()));
}

/* Send reply (stolen) to env; without a socket (tests), drop it. */
static void send_reply(struct fd_daemon *d, const struct fd_envelope *env,
		       json_t *reply)
{
	struct fd_server *sv = d->server;
	char *text;

	if (sv != NULL && sv->router != NULL && env->identity_len > 0) {
		if ((text = json_dumps(reply, FD_JSON_FLAGS)) == NULL)
			fatalx("out of memory encoding a reply");
		send_frames(sv, env, text);
		free(text);
		recheck_router(sv);
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
 * answered with bad_request (to the identity, when there is one).
 * Returns -1 when nothing was there to receive.
 */
static int serve_one(struct fd_daemon *d, struct fd_server *sv)
{
	struct fd_envelope env;
	zmq_msg_t f[2];
	int nf = 0, extra = 0;
	size_t len;
	json_t *reply;

	memset(&env, 0, sizeof(env));
	zmq_msg_init(&f[0]);
	if (zmq_msg_recv(&f[0], sv->router, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&f[0]);
		return -1;
	}
	len = zmq_msg_size(&f[0]);
	env.identity_len = len < FD_IDENTITY_MAX ? len : FD_IDENTITY_MAX;
	memcpy(env.identity, zmq_msg_data(&f[0]), env.identity_len);
	zmq_msg_close(&f[0]);
	while (nf < 2 && rcvmore(sv->router)) {
		zmq_msg_init(&f[nf]);
		if (zmq_msg_recv(&f[nf], sv->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&f[nf]);
			break;
		}
		nf++;
	}
	if (rcvmore(sv->router))
		extra = drain_frames(sv->router);
	if (nf == 2 && zmq_msg_size(&f[0]) == 0) {
		env.delimiter = true;
		zmq_msg_close(&f[0]);
		f[0] = f[1];
		nf = 1;
	}
	if (nf != 1 || extra > 0 || len > FD_IDENTITY_MAX) {
		reply = fd_reply_error(
			NULL, "bad_request", NULL, "expected one JSON frame%s",
			env.delimiter ? " after the delimiter" : "");
	} else {
		reply = fd_server_handle(d, zmq_msg_data(&f[0]),
					 zmq_msg_size(&f[0]), &env);
	}
	for (int i = 0; i < nf; i++)
		zmq_msg_close(&f[i]);
	if (reply != NULL)
		send_reply(d, &env, reply);
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
	struct fd_daemon *d = arg;
	struct fd_server *sv = d->server;
	int ev, n;
	size_t sz;

	(void)fd;
	(void)what;
	for (n = 0; n < ROUTER_BUDGET; n++) {
		sz = sizeof(ev);
		if (zmq_getsockopt(sv->router, ZMQ_EVENTS, &ev, &sz) < 0) {
			log_warnx("control: ZMQ_EVENTS: %s",
				  zmq_strerror(zmq_errno()));
			return;
		}
		if (!(ev & ZMQ_POLLIN) || serve_one(d, sv) < 0)
			return;
	}
	event_active(sv->router_ev, EV_READ, 0);
}

static void publish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_daemon *d = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < d->ndev; i++)
		fd_publish_state(d, &d->dev[i]);
}

static int setopt(void *sock, int opt, int v, const char *name)
{
	if (zmq_setsockopt(sock, opt, &v, sizeof(v)) == 0)
		return 0;
	log_warnx("zmq_setsockopt %s: %s", name, zmq_strerror(zmq_errno()));
	return -1;
}

/* A socket of type bound to endpoint; its address as bound in bound. */
static void *open_socket(void *zmq, int type, const char *endpoint, char *bound,
			 size_t boundlen)
{
	void *s = zmq_socket(zmq, type);
	int64_t max = FD_REQUEST_MAX;
	size_t sz = boundlen;

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
	if (zmq_bind(s, endpoint) < 0) {
		log_warnx("cannot bind %s: %s", endpoint,
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

int fd_server_open(struct fd_daemon *d)
{
	struct fd_server *sv = xcalloc(1, sizeof(*sv));
	int hz = d->conf.publish_hz > 0 ? d->conf.publish_hz : 10;
	struct timeval tv = {0, 1000000 / hz};
	int fd;
	size_t sz = sizeof(fd);

	d->server = sv;
	if (d->zmq == NULL) {
		if ((d->zmq = zmq_ctx_new()) == NULL)
			fatal("zmq_ctx_new");
		sv->own_zmq = true;
	}
	sv->router = open_socket(d->zmq, ZMQ_ROUTER, d->conf.control,
				 d->control_bound, sizeof(d->control_bound));
	sv->pub = open_socket(d->zmq, ZMQ_PUB, d->conf.publish,
			      d->publish_bound, sizeof(d->publish_bound));
	if (sv->router == NULL || sv->pub == NULL)
		goto fail;
	if (zmq_getsockopt(sv->router, ZMQ_FD, &fd, &sz) < 0) {
		log_warnx("ZMQ_FD: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	sv->router_ev =
		event_new(d->base, fd, EV_READ | EV_PERSIST, router_cb, d);
	sv->publish_timer = event_new(d->base, -1, EV_PERSIST, publish_cb, d);
	if (sv->router_ev == NULL || sv->publish_timer == NULL ||
	    event_add(sv->router_ev, NULL) < 0 ||
	    evtimer_add(sv->publish_timer, &tv) < 0)
		fatalx("libevent: cannot add the server's events");
	for (int i = 0; i < d->ndev; i++)
		fd_dev_server(&d->dev[i]);
	/* messages may have queued before the event was added */
	event_active(sv->router_ev, EV_READ, 0);
	log_info("control on %s, publishing on %s", d->control_bound,
		 d->publish_bound);
	return 0;
fail:
	fd_server_close(d);
	return -1;
}

void fd_server_close(struct fd_daemon *d)
{
	struct fd_server *sv = d->server;

	for (int i = 0; i < d->ndev; i++) {
		struct fd_dev_server *ds = d->dev[i].server;

		if (ds == NULL)
			continue;
		pending_clear(ds);
		if (ds->pending_timer != NULL)
			event_free(ds->pending_timer);
		free(ds);
		d->dev[i].server = NULL;
	}
	if (sv == NULL)
		return;
	if (sv->router_ev != NULL)
		event_free(sv->router_ev);
	if (sv->publish_timer != NULL)
		event_free(sv->publish_timer);
	if (sv->router != NULL)
		zmq_close(sv->router);
	if (sv->pub != NULL)
		zmq_close(sv->pub);
	if (sv->own_zmq) {
		zmq_ctx_term(d->zmq);
		d->zmq = NULL;
	}
	free(sv);
	d->server = NULL;
}

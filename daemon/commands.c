/*
 * fasciad's requests: their arguments, the queries answered at once from
 * the latest snapshots, and the device commands, which go to the device's
 * control thread and are answered when its verdict comes back
 * (fd_server_verdict(), from fd_server_device_news()) or with `internal`
 * after FD_VERDICT_TIMEOUT_S.  server.c decodes the requests and moves
 * the frames; nothing here touches a socket.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "fasciad.h"

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
	json_t *names = fd_must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(names, json_string(d->dev[i].conf.name));
	return fd_reply_ok(
		json_object_get(req, "id"),
		fd_must(json_pack("{s:i, s:s, s:o, s:i, s:i}", "protocol", 1,
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
	return fd_must(json_pack(
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
	json_t *list = fd_must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, device_summary(&d->dev[i]));
	return fd_reply_ok(json_object_get(req, "id"),
			   fd_must(json_pack("{s:o}", "devices", list)));
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
	list = fd_must(json_array());
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, dev_state(&d->dev[i]));
	return fd_reply_ok(json_object_get(req, "id"),
			   fd_must(json_pack("{s:o}", "devices", list)));
}

static json_t *cmd_profiles(struct fd_daemon *d, json_t *req,
			    const struct fd_envelope *env)
{
	json_t *list = fd_must(json_array());

	(void)env;
	for (int i = 0; i < d->profiles.n; i++) {
		const struct fascia_profile *p = &d->profiles.p[i];
		double s = fascia_profile_duration_s(p);

		json_array_append_new(
			list,
			fd_must(json_pack(
				"{s:s, s:s, s:i, s:f, s:f}", "name", p->name,
				"description", p->description, "chambers",
				p->chambers, "max_pressure_mmhg",
				p->max_pressure_mmhg, "duration_s",
				isfinite(s) ? round(s * 10) / 10 : 0.0)));
	}
	return fd_reply_ok(json_object_get(req, "id"),
			   fd_must(json_pack("{s:o}", "profiles", list)));
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
	return fd_reply_ok(id, fd_must(json_pack("{s:o}", "profile", doc)));
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
		id, fd_must(json_pack("{s:O, s:b}", "name",
				   json_object_get(doc, "name"), "stored", 1)));
}

static json_t *cmd_history(struct fd_daemon *d, json_t *req,
			   const struct fd_envelope *env)
{
	(void)d;
	(void)env;
	return fd_reply_ok(json_object_get(req, "id"),
			   fd_must(json_pack("{s:[]}", "entries")));
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

void fd_dev_server_free(struct fd_device *dev)
{
	struct fd_dev_server *ds = dev->server;

	if (ds == NULL)
		return;
	pending_clear(ds);
	if (ds->pending_timer != NULL)
		event_free(ds->pending_timer);
	free(ds);
	dev->server = NULL;
}

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
	fd_server_send(ds->daemon, &ds->pending_env, reply);
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
				   fd_must(json_pack("{s:s, s:s}", "device",
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
	fd_server_send(d, &ds->pending_env, reply);
}

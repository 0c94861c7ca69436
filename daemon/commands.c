/*
 * fasciad's requests: their arguments, the queries answered at once from
 * the latest snapshots, profile.put (answered once the store has the file
 * on disk), and the device commands, which go to the device's control
 * thread and are answered when its verdict comes back with the device's
 * news (fd_commands_news()) or with `internal` after FD_VERDICT_TIMEOUT_S.
 * server.c decodes the requests and moves the frames; nothing here touches a
 * socket.
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
		*reply = fd_server_error(id, "bad_request", key,
					 "\"%s\" is missing", key);
	else if (!json_is_string(v))
		*reply = fd_server_error(id, "bad_request", key,
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
		*reply = fd_server_error(json_object_get(req, "id"),
					 "unknown_device", "device",
					 "no device \"%.64s\"", name);
	return dev;
}

/* ---- queries ---- */

static json_t *cmd_hello(struct fd_daemon *d, json_t *req,
			 const struct fd_envelope *env)
{
	json_t *names = fd_must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(names, json_string(d->dev[i].conf.name));
	return fd_server_ok(
		json_object_get(req, "id"),
		fd_must(json_pack("{s:i, s:s, s:o, s:i, s:i}", "protocol", 1,
				  "version", "0.1", "devices", names, "tick_hz",
				  d->conf.tick_hz, "publish_hz",
				  d->conf.publish_hz)));
}

static json_t *device_summary(struct fd_device *dev)
{
	const struct fd_device_conf *c = &dev->conf;
	struct fd_snapshot *sn = xcalloc(1, sizeof(*sn));
	bool have = fd_device_peek(dev, sn);
	char address[200];
	json_t *o;

	if (c->transport == TRANSPORT_TCP)
		snprintf(address, sizeof(address), "%s:%d", c->host, c->port);
	else
		snprintf(address, sizeof(address), "%s", c->path);
	o = fd_must(json_pack(
		"{s:s, s:s, s:i, s:s, s:s, s:i, s:f, s:{s:b}}", "name", c->name,
		"state", fd_state_name(have ? sn->state : FD_OFFLINE),
		"chambers", c->chambers, "transport",
		c->transport == TRANSPORT_TCP ? "tcp" : "rtu", "address",
		address, "unit", c->unit, "limit_mmhg", c->limit_mmhg, "link",
		"up", have && sn->link.up));
	free(sn);
	return o;
}

static json_t *cmd_devices(struct fd_daemon *d, json_t *req,
			   const struct fd_envelope *env)
{
	json_t *list = fd_must(json_array());

	(void)env;
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, device_summary(&d->dev[i]));
	return fd_server_ok(json_object_get(req, "id"),
			    fd_must(json_pack("{s:o}", "devices", list)));
}

/* A status result: the latest snapshot, peeked (not taken: the news
 * stays for its wake-up). */
static json_t *dev_state(struct fd_device *dev)
{
	struct fd_snapshot *sn = xcalloc(1, sizeof(*sn));
	json_t *o;

	o = fd_publish_state_json(dev->conf.name,
				  fd_device_peek(dev, sn) ? sn : NULL,
				  &dev->daemon->journal_alarm, dev->seq,
				  fd_clock_unix_ms(), true);
	free(sn);
	return o;
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
		return fd_server_ok(json_object_get(req, "id"), dev_state(dev));
	}
	list = fd_must(json_array());
	for (int i = 0; i < d->ndev; i++)
		json_array_append_new(list, dev_state(&d->dev[i]));
	return fd_server_ok(
		json_object_get(req, "id"),
		fd_must(json_pack("{s:o, s:o}", "devices", list, "security",
				  fd_security_status(d))));
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
	return fd_server_ok(json_object_get(req, "id"),
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
		return fd_server_error(id, "unknown_profile", "name",
				       "no profile \"%.64s\"", name);
	if ((text = fascia_profile_to_json(p)) == NULL)
		return fd_server_error(id, "internal", NULL,
				       "cannot encode profile %s", p->name);
	doc = json_loads(text, 0, NULL);
	free(text);
	if (doc == NULL)
		return fd_server_error(id, "internal", NULL,
				       "cannot encode profile %s", p->name);
	return fd_server_ok(id, fd_must(json_pack("{s:o}", "profile", doc)));
}

/* A profile.put waiting for its file to be on disk. */
struct put {
	struct fd_daemon *d;
	struct fd_envelope env;
	json_t *id;
	struct fascia_profile p;
};

static void put_done(int err, void *arg)
{
	struct put *put = arg;
	json_t *reply, *what;

	if (err == 0 && fd_profiles_add(&put->d->profiles, &put->p) < 0)
		err = errno;
	if (err == 0) {
		reply = fd_server_ok(
			put->id, fd_must(json_pack("{s:s, s:b}", "name",
						   put->p.name, "stored", 1)));
	} else {
		log_warnx("profile.put %s: %s", put->p.name, strerror(err));
		reply = fd_server_error(put->id, "internal", NULL,
					"profile %s not stored: %s",
					put->p.name, strerror(err));
	}
	what = fd_must(json_pack("{s:s}", "profile", put->p.name));
	fd_record_command(put->d, "profile.put", what, &put->env, reply);
	json_decref(what);
	fd_server_send(put->d, &put->env, reply);
	json_decref(put->id);
	free(put);
}

/* Validated here, written by the store's thread (fsync has no place in
 * the loop), answered when the file is on disk. */
static json_t *cmd_profile_put(struct fd_daemon *d, json_t *req,
			       const struct fd_envelope *env)
{
	json_t *id = json_object_get(req, "id");
	json_t *doc = json_object_get(req, "profile");
	struct fascia_profile_error err;
	char *text, file[FASCIA_PROFILE_NAME_MAX + 8];
	struct put *put;
	int rc;

	if (doc == NULL)
		return fd_server_error(id, "bad_request", "profile",
				       "\"profile\" is missing");
	if (!json_is_object(doc))
		return fd_server_error(id, "bad_request", "profile",
				       "\"profile\" must be an object");
	if ((text = json_dumps(doc, FD_JSON_FLAGS)) == NULL)
		fatalx("out of memory encoding a profile");
	put = xcalloc(1, sizeof(*put));
	rc = fd_profiles_check(&d->profiles, text, strlen(text), &d->limits,
			       &put->p, &err);
	free(text);
	if (rc < 0) {
		free(put);
		if (errno == EINVAL)
			return fd_server_error(id, "invalid_profile", err.field,
					       "%s%s%s", err.field,
					       err.field[0] ? ": " : "",
					       err.message);
		return fd_server_error(id, "internal", NULL, "%s", err.message);
	}
	put->d = d;
	put->id = id ? json_incref(id) : NULL;
	if (env != NULL)
		put->env = *env;
	snprintf(file, sizeof(file), "%s.json", put->p.name);
	text = fd_profiles_text(&put->p);
	rc = fd_store_write(d->store, d->profiles.dir, file, text, strlen(text),
			    put_done, put);
	free(text);
	if (rc < 0) {
		json_decref(put->id);
		free(put);
		return fd_server_error(id, "busy", NULL,
				       "profile writes are queued already; "
				       "try again");
	}
	return NULL;
}

/* A query of the record, waiting for the reader thread. */
struct query_wait {
	struct fd_daemon *d;
	struct fd_envelope env;
	json_t *id;
};

static void query_done(json_t *result, const char *code, const char *field,
		       const char *msg, void *arg)
{
	struct query_wait *w = arg;
	json_t *reply;

	if (result != NULL)
		reply = fd_server_ok(w->id, result);
	else
		reply = fd_server_error(w->id, code,
					field && field[0] ? field : NULL, "%s",
					msg);
	fd_server_send(w->d, &w->env, reply);
	json_decref(w->id);
	free(w);
}

/* history, session.get and log: answered by the reader thread. */
static json_t *cmd_query(struct fd_daemon *d, json_t *req,
			 const struct fd_envelope *env)
{
	json_t *id = json_object_get(req, "id"), *reply = NULL;
	struct query_wait *w;

	if (d->query == NULL)
		return fd_server_error(id, "internal", NULL,
				       "no treatment record is kept here: "
				       "journal = off in the configuration");
	w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->id = id ? json_incref(id) : NULL;
	if (env != NULL)
		w->env = *env;
	if (fd_query_submit(d->query,
			    json_string_value(json_object_get(req, "cmd")), req,
			    query_done, w, &reply) < 0) {
		json_decref(w->id);
		free(w);
		return reply;
	}
	return NULL;
}

/* ---- device commands ---- */

static void pending_clear(struct fd_pending *pd)
{
	pd->active = false;
	json_decref(pd->id);
	pd->id = NULL;
	json_decref(pd->req);
	pd->req = NULL;
	if (pd->timer != NULL)
		evtimer_del(pd->timer);
}

void fd_commands_close(struct fd_daemon *d)
{
	for (int i = 0; i < d->ndev; i++) {
		struct fd_pending *pd = &d->dev[i].pending;

		pending_clear(pd);
		if (pd->timer != NULL)
			event_free(pd->timer);
		pd->timer = NULL;
	}
}

static void verdict_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct fd_device *dev = arg;
	struct fd_pending *pd = &dev->pending;
	json_t *reply;

	(void)fd;
	(void)what;
	if (!pd->active)
		return;
	log_warnx("%s: no verdict on command %llu within %.0f s",
		  dev->conf.name, (unsigned long long)pd->token,
		  FD_VERDICT_TIMEOUT_S);
	reply = fd_server_error(pd->id, "internal", NULL,
				"no verdict from %s within %.0f s",
				dev->conf.name, FD_VERDICT_TIMEOUT_S);
	fd_record_command(dev->daemon, fd_cmd_name(pd->cmd), pd->req, &pd->env,
			  reply);
	pending_clear(pd);
	fd_server_send(dev->daemon, &pd->env, reply);
}

/* Hold the request until the verdict with token comes back. */
static void pending_set(struct fd_device *dev, uint64_t token, enum fd_cmd cmd,
			json_t *req, const struct fd_envelope *env)
{
	json_t *id = json_object_get(req, "id");
	struct fd_pending *pd = &dev->pending;
	struct event_base *base = dev->daemon ? dev->daemon->base : NULL;
	struct timeval tv = {(time_t)FD_VERDICT_TIMEOUT_S, 0};

	pd->active = true;
	pd->token = token;
	pd->cmd = cmd;
	pd->id = id ? json_incref(id) : NULL;
	pd->req = json_incref(req);
	if (env != NULL)
		pd->env = *env;
	else
		memset(&pd->env, 0, sizeof(pd->env));
	if (pd->timer == NULL && base != NULL)
		pd->timer = evtimer_new(base, verdict_timeout, dev);
	if (pd->timer != NULL)
		evtimer_add(pd->timer, &tv);
}

static json_t *device_command(struct fd_daemon *d, json_t *req,
			      const struct fd_envelope *env, enum fd_cmd cmd)
{
	json_t *reply = NULL, *id = json_object_get(req, "id");
	const struct fascia_profile *p = NULL;
	struct fd_device *dev;
	struct fd_command *c;
	const char *pname;
	char why[200];

	if ((dev = arg_device(d, req, &reply)) == NULL)
		return reply;
	if (cmd == FD_CMD_START) {
		if ((pname = arg_string(req, "profile", &reply)) == NULL)
			return reply;
		if ((p = fd_profiles_find(&d->profiles, pname)) == NULL)
			return fd_server_error(id, "unknown_profile", "profile",
					       "no profile \"%.64s\"", pname);
	}
	if (dev->pending.active)
		return fd_server_error(id, "busy", NULL,
				       "another command is being applied to %s",
				       dev->conf.name);
	/* An ack is answered once its alarm is in the record: while the
	 * record cannot be written, the alarm stays unacknowledged. */
	if (cmd == FD_CMD_ACK && d->conf.journal_required &&
	    !fd_record_writable(d, why, sizeof(why)))
		return fd_server_error(id, "interlock", NULL,
				       "cannot ack: the alarm cannot be "
				       "recorded as acknowledged (%s); the "
				       "device stays vented meanwhile",
				       why);
	c = xcalloc(1, sizeof(*c));
	c->cmd = cmd;
	c->token = ++d->next_token;
	if (p != NULL) {
		c->profile = *p;
		if (fd_record_start(d, dev, req, env, p, c, &reply) < 0) {
			free(c);
			return reply;
		}
	}
	if (fd_device_submit(dev, c) < 0) {
		free(c);
		fd_record_start_refused(dev);
		return fd_server_error(id, "busy", NULL,
				       "another command is being applied to %s",
				       dev->conf.name);
	}
	pending_set(dev, c->token, cmd, req, env);
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

/*
 * The commands, and the role each needs (docs/security.md): every client
 * may read and vent (lowering pressure is always allowed), an operator
 * treats, an admin changes the profiles.  `recorded` ones change
 * something, and their outcome goes into the record's log (refusals too).
 */
static const struct command {
	const char *name;
	json_t *(*fn)(struct fd_daemon *, json_t *, const struct fd_envelope *);
	enum fd_role need;
	bool recorded;
} commands[] = {
	{"hello", cmd_hello, FD_ROLE_OBSERVER, false},
	{"devices", cmd_devices, FD_ROLE_OBSERVER, false},
	{"status", cmd_status, FD_ROLE_OBSERVER, false},
	{"profiles", cmd_profiles, FD_ROLE_OBSERVER, false},
	{"profile.get", cmd_profile_get, FD_ROLE_OBSERVER, false},
	{"profile.put", cmd_profile_put, FD_ROLE_ADMIN, true},
	{"start", cmd_start, FD_ROLE_OPERATOR, true},
	{"pause", cmd_pause, FD_ROLE_OPERATOR, true},
	{"resume", cmd_resume, FD_ROLE_OPERATOR, true},
	{"stop", cmd_stop, FD_ROLE_OPERATOR, true},
	{"vent", cmd_vent, FD_ROLE_OBSERVER, true},
	{"ack", cmd_ack, FD_ROLE_OPERATOR, true},
	{"history", cmd_query, FD_ROLE_OBSERVER, false},
	{"session.get", cmd_query, FD_ROLE_OBSERVER, false},
	{"log", cmd_query, FD_ROLE_OBSERVER, false},
};

/* The refusal of cmd to who: forbidden, naming the role needed. */
static json_t *forbidden(json_t *req, const struct command *cmd,
			 const struct fd_who *who)
{
	json_t *reply = fd_server_error(
		json_object_get(req, "id"), "forbidden", NULL,
		"%s needs the %s role; %s%s has %s", cmd->name,
		conf_role_name(cmd->need),
		who->name[0] ? who->name : "this client",
		who->as[0] ? " (as a gateway)" : "", conf_role_name(who->role));

	json_object_set_new(json_object_get(reply, "error"), "role",
			    json_string(conf_role_name(cmd->need)));
	return reply;
}

static bool is_forbidden(json_t *reply)
{
	const char *code = json_string_value(
		json_object_get(json_object_get(reply, "error"), "code"));

	return code != NULL && strcmp(code, "forbidden") == 0;
}

/* "as": the person a gateway certificate acts for, into who->as.  0, or
 * -1 with *reply the refusal. */
static int acting_for(json_t *req, struct fd_who *who, json_t **reply)
{
	json_t *v = json_object_get(req, "as");

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || !fd_certs_name_ok(json_string_value(v))) {
		*reply = fd_server_error(
			json_object_get(req, "id"), "bad_request", "as",
			"\"as\" must be 1 to %d of A-Z a-z 0-9 "
			". _ @ - and space",
			FD_NAME_MAX);
		return -1;
	}
	if (!who->gateway) {
		*reply = fd_server_error(
			json_object_get(req, "id"), "forbidden", "as",
			"\"as\" is for a gateway certificate "
			"(gateway = yes); %s is not one",
			who->name[0] ? who->name : "this client");
		return -1;
	}
	snprintf(who->as, sizeof(who->as), "%s", json_string_value(v));
	return 0;
}

json_t *fd_commands_dispatch(struct fd_daemon *d, json_t *req,
			     const struct fd_envelope *env)
{
	const char *name = json_string_value(json_object_get(req, "cmd"));
	struct fd_envelope e = {.who.role = FD_ROLE_ADMIN}; /* tests: none */
	const struct command *cmd = NULL;
	json_t *reply = NULL;

	for (size_t i = 0; name && i < sizeof(commands) / sizeof(commands[0]);
	     i++)
		if (strcmp(commands[i].name, name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		return fd_server_error(
			json_object_get(req, "id"), "unknown_command", "cmd",
			"no command \"%.64s\"", name ? name : "");
	if (env != NULL)
		e = *env;
	if (acting_for(req, &e.who, &reply) == 0)
		reply = e.who.role < cmd->need ? forbidden(req, cmd, &e.who)
					       : cmd->fn(d, req, &e);
	/* deferred ones are recorded when answered; a refusal of who may
	 * do what is recorded whatever the command */
	if (reply != NULL && (cmd->recorded || is_forbidden(reply)))
		fd_record_command(d, name, req, &e, reply);
	return reply;
}

/* ---- the verdicts ---- */

static json_t *verdict_reply(struct fd_device *dev,
			     const struct fd_outbox *news)
{
	static const char *const codes[] = {
		[FD_OK] = NULL,
		[FD_PENDING] = "internal",
		[FD_EBUSY] = "busy",
		[FD_EINTERLOCK] = "interlock",
		[FD_EFORBIDDEN] = "forbidden",
	};
	const struct fd_verdict_rec *v = &news->verdict;
	const char *code = "internal";
	enum fd_state st = news->have_snap ? news->snap.state : FD_OFFLINE;

	if ((unsigned)v->verdict <= FD_EFORBIDDEN)
		code = codes[v->verdict];
	if (code == NULL)
		return fd_server_ok(dev->pending.id,
				    fd_must(json_pack("{s:s, s:s}", "device",
						      dev->conf.name, "state",
						      fd_state_name(st))));
	return fd_server_error(dev->pending.id, code, NULL, "%s",
			       v->why[0] ? v->why : fd_cmd_name(v->cmd));
}

void fd_commands_news(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_outbox *news)
{
	struct fd_pending *pd = &dev->pending;
	json_t *reply;

	if (!news->have_verdict || !pd->active ||
	    news->verdict.token != pd->token)
		return; /* none, or answered already (timed out) */
	reply = verdict_reply(dev, news);
	fd_record_command(d, fd_cmd_name(pd->cmd), pd->req, &pd->env, reply);
	if (pd->cmd == FD_CMD_START && news->verdict.verdict != FD_OK)
		fd_record_start_refused(dev);
	/* the device is free for the next command at once; the answer waits
	 * for the record (an ack's alarm, a start's session) */
	pending_clear(pd);
	fd_record_send_committed(d, &pd->env, reply);
}

/*
 * The rooms: one fasciad each, reached over ZeroMQ with the console's own
 * CURVE certificate (a gateway's: it may name the person it acts for).
 * Each room has two sockets, served from the libevent loop through their
 * ZMQ_FD and never waited on:
 *
 *   a DEALER on the daemon's control endpoint, for the requests the
 *   browsers' calls become.  Every request carries an id of the console's
 *   and its reply is matched by it, so that any number may be in flight;
 *   each is sent within WEB_SEND_WAIT_MS while a connection is up
 *   (ZMQ_IMMEDIATE: nothing waits in a queue for a daemon that is down),
 *   and answered within WEB_REPLY_TIMEOUT_MS, or its caller hears NULL.
 *
 *   a SUB on the daemon's publisher: the latest state message of every
 *   device is kept as it came (the snapshot a new browser gets), and each
 *   message is handed on to the event streams.  A room that sends nothing
 *   for WEB_SILENT_MS (a daemon publishes every device's state ten times a
 *   second) is silent: not live, and the streams are told.
 *
 * ZMQ_FD is edge-triggered and tells only that something may have
 * changed: each wake-up reads ZMQ_EVENTS and takes what is there, and any
 * send is followed by another look, as a send may have swallowed the edge.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zmq.h>

#include <fascia/client.h>

#include "web.h"

#define ROOM_MSG_MAX (16 * 1024 * 1024) /* a session's trace, and more */
#define ROOM_BATCH 256 /* messages per wake-up, then the rest later */
#define ROOM_HEARTBEAT_MS 1000

static void on_ctl(evutil_socket_t fd, short what, void *arg);
static void on_sub(evutil_socket_t fd, short what, void *arg);

/* Whether sock has flag (ZMQ_POLLIN, ZMQ_POLLOUT) ready now. */
static bool ready(void *sock, int flag)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	return zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) == 0 && (ev & flag);
}

static void *room_socket(struct web *w, const struct web_room_conf *rc,
			 int type, const char *endpoint)
{
	struct fascia_security sec = {.cert = w->conf.cert,
				      .server_key = rc->server_key};
	int linger = 0, one = 1, hb = ROOM_HEARTBEAT_MS, hbt = 3 * hb;
	int hwm = 10000;
	int64_t max = ROOM_MSG_MAX;
	void *s = zmq_socket(w->zctx, type);

	if (s == NULL ||
	    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0 ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb, sizeof(hb)) < 0 ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof(hbt)) < 0 ||
	    (type == ZMQ_DEALER &&
	     zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one)) < 0) ||
	    (type == ZMQ_SUB &&
	     (zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "state.", 6) < 0 ||
	      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "alarm.", 6) < 0 ||
	      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "event.", 6) < 0)) ||
	    (w->conf.cert[0] && fascia_security_apply(s, &sec) < 0) ||
	    zmq_connect(s, endpoint) < 0) {
		log_warn("room %s: cannot connect to %s", rc->name, endpoint);
		if (s != NULL)
			zmq_close(s);
		return NULL;
	}
	return s;
}

static struct event *watch(struct web *w, void *sock, event_callback_fn fn,
			   struct web_room *r)
{
	int fd = -1;
	size_t sz = sizeof(fd);
	struct event *ev;

	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0 ||
	    (ev = event_new(w->base, fd, EV_READ | EV_PERSIST, fn, r)) ==
		    NULL ||
	    event_add(ev, NULL) < 0)
		fatalx("room %s: cannot watch its socket", r->name);
	return ev;
}

static int room_open(struct web *w, struct web_room *r,
		     const struct web_room_conf *rc)
{
	r->w = w;
	r->conf = rc;
	r->name = rc->name;
	r->next_id = 1;
	TAILQ_INIT(&r->calls);
	if ((r->states = json_object()) == NULL)
		fatalx("out of memory");
	r->ctl = room_socket(w, rc, ZMQ_DEALER, rc->control);
	r->sub = room_socket(w, rc, ZMQ_SUB, rc->publish);
	if (r->ctl == NULL || r->sub == NULL)
		return -1;
	r->ctl_ev = watch(w, r->ctl, on_ctl, r);
	r->sub_ev = watch(w, r->sub, on_sub, r);
	r->tally = tally_new(r);
	log_info("room %s: control %s, publish %s, %s", r->name, rc->control,
		 rc->publish, w->conf.cert[0] ? "CURVE" : "plaintext");
	return 0;
}

int rooms_open(struct web *w)
{
	if ((w->zctx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new");
	w->nrooms = w->conf.nrooms;
	w->rooms = xcalloc((size_t)w->nrooms, sizeof(*w->rooms));
	for (int i = 0; i < w->nrooms; i++)
		if (room_open(w, &w->rooms[i], &w->conf.rooms[i]) < 0)
			return -1;
	return 0;
}

void rooms_close(struct web *w)
{
	for (int i = 0; i < w->nrooms; i++) {
		struct web_room *r = &w->rooms[i];

		room_cancel_all(r);
		tally_free(&r->tally);
		if (r->ctl_ev)
			event_free(r->ctl_ev);
		if (r->sub_ev)
			event_free(r->sub_ev);
		if (r->ctl)
			zmq_close(r->ctl);
		if (r->sub)
			zmq_close(r->sub);
		json_decref(r->states);
	}
	free(w->rooms);
	w->rooms = NULL;
	w->nrooms = 0;
	if (w->zctx != NULL)
		zmq_ctx_term(w->zctx);
	w->zctx = NULL;
}

struct web_room *room_find(struct web *w, const char *name)
{
	for (int i = 0; i < w->nrooms; i++)
		if (strcmp(w->rooms[i].name, name) == 0)
			return &w->rooms[i];
	return NULL;
}

/* ---- requests ---- */

static void finish(struct room_call *c, const char *text, size_t len,
		   json_t *reply)
{
	struct web_room *r = c->room;

	TAILQ_REMOVE(&r->calls, c, entry);
	event_free(c->timer);
	c->fn(r, text, len, reply, c->arg);
	free(c->text);
	free(c);
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct room_call *c = arg;

	(void)fd;
	(void)what;
	log_debug("room %s: request %lld %s", c->room->name, (long long)c->id,
		  c->sent ? "unanswered" : "not sent: no connection");
	finish(c, NULL, 0, NULL);
}

/* Hand c to the socket if a connection takes it; false otherwise. */
static bool try_send(struct web_room *r, struct room_call *c)
{
	struct timeval tv = {WEB_REPLY_TIMEOUT_MS / 1000,
			     (WEB_REPLY_TIMEOUT_MS % 1000) * 1000};

	if (zmq_send(r->ctl, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return false;
	if (zmq_send(r->ctl, c->text, c->len, ZMQ_DONTWAIT) < 0) {
		log_warn("room %s: a request cut in half", r->name);
		return false;
	}
	c->sent = true;
	free(c->text);
	c->text = NULL;
	evtimer_add(c->timer, &tv); /* from now on, the reply's wait */
	event_active(r->ctl_ev, EV_READ, 0);
	return true;
}

static void flush_unsent(struct web_room *r)
{
	struct room_call *c;

	TAILQ_FOREACH(c, &r->calls, entry)
	{
		if (!c->sent && !try_send(r, c))
			return;
	}
}

int room_request(struct web_room *r, json_t *req, room_reply_fn fn, void *arg)
{
	struct timeval tv = {WEB_SEND_WAIT_MS / 1000,
			     (WEB_SEND_WAIT_MS % 1000) * 1000};
	struct room_call *c;
	bool earlier_unsent = false;

	json_object_set_new(req, "v", json_integer(1));
	json_object_set_new(req, "id", json_integer(r->next_id));
	c = xcalloc(1, sizeof(*c));
	if ((c->text = json_dumps(req, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	c->len = strlen(c->text);
	c->room = r;
	c->id = r->next_id++;
	c->fn = fn;
	c->arg = arg;
	if ((c->timer = evtimer_new(r->w->base, on_call_timeout, c)) == NULL)
		fatalx("out of memory");
	evtimer_add(c->timer, &tv);
	TAILQ_INSERT_TAIL(&r->calls, c, entry);
	for (struct room_call *o = TAILQ_FIRST(&r->calls); o != c;
	     o = TAILQ_NEXT(o, entry))
		earlier_unsent |= !o->sent;
	if (!earlier_unsent) /* in order: behind the ones still waiting */
		try_send(r, c);
	return 0;
}

void room_cancel_all(struct web_room *r)
{
	struct room_call *c;

	while ((c = TAILQ_FIRST(&r->calls)) != NULL)
		finish(c, NULL, 0, NULL);
}

/* One whole message; its last frame as text (malloc'd) or NULL. */
static char *recv_last(void *sock, size_t *len, int *nframes)
{
	zmq_msg_t m;
	char *text = NULL;
	int more = 1;
	size_t sz;

	*nframes = 0;
	while (more) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			free(text);
			return NULL;
		}
		(*nframes)++;
		free(text);
		*len = zmq_msg_size(&m);
		text = malloc(*len + 1);
		if (text == NULL)
			fatalx("out of memory");
		memcpy(text, zmq_msg_data(&m), *len);
		text[*len] = '\0';
		sz = sizeof(more);
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) < 0)
			more = 0;
		zmq_msg_close(&m);
	}
	return text;
}

/* The call a reply answers: by id; "id": null (the daemon could not read
 * the request) is the oldest one sent. */
static struct room_call *call_of(struct web_room *r, const json_t *id)
{
	struct room_call *c;

	TAILQ_FOREACH(c, &r->calls, entry)
	{
		if (!c->sent)
			continue;
		if (json_is_null(id) || id == NULL ||
		    (json_is_integer(id) && json_integer_value(id) == c->id))
			return c;
	}
	return NULL;
}

static void take_reply(struct web_room *r)
{
	size_t len = 0;
	int nframes;
	char *text = recv_last(r->ctl, &len, &nframes);
	json_t *reply;
	struct room_call *c;

	if (text == NULL)
		return;
	reply = json_loadb(text, len, 0, NULL);
	if (!json_is_object(reply) ||
	    !json_is_boolean(json_object_get(reply, "ok"))) {
		r->bad_messages++;
		log_warnx("room %s: a reply that is not the protocol's",
			  r->name);
	} else if ((c = call_of(r, json_object_get(reply, "id"))) != NULL) {
		finish(c, text, len, reply);
	} /* else a late reply to a call that timed out */
	json_decref(reply);
	free(text);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct web_room *r = arg;
	int n = 0;

	(void)fd;
	(void)what;
	while (n < ROOM_BATCH && ready(r->ctl, ZMQ_POLLIN)) {
		take_reply(r);
		n++;
	}
	if (ready(r->ctl, ZMQ_POLLOUT))
		flush_unsent(r);
	if (n == ROOM_BATCH)
		event_active(r->ctl_ev, EV_READ, 0);
}

/* ---- the publisher ---- */

json_t *room_status_json(const struct web_room *r)
{
	return json_pack("{s:s,s:b,s:o}", "room", r->name, "live", r->live,
			 "last_heard_ms",
			 r->heard_ms ? json_integer(r->heard_ms) : json_null());
}

static void set_live(struct web_room *r, bool live)
{
	r->live = live;
	if (live)
		log_info("room %s: live", r->name);
	else
		log_warnx("room %s: not answering: nothing heard for %d ms "
			  "(the daemon is down, or the server key is wrong)",
			  r->name, WEB_SILENT_MS);
	sse_broadcast(r->w, "room", room_status_json(r));
	if (live)
		tally_refresh(r->tally, true);
}

void rooms_tick(struct web *w)
{
	int64_t now = web_mono_ms();

	for (int i = 0; i < w->nrooms; i++) {
		struct web_room *r = &w->rooms[i];

		if (r->live && now - r->heard_mono > WEB_SILENT_MS)
			set_live(r, false);
	}
}

static bool rests(const char *state)
{
	return state != NULL &&
	       (strcmp(state, "idle") == 0 || strcmp(state, "fault") == 0 ||
		strcmp(state, "offline") == 0);
}

/* A message on topic KIND.DEVICE, msg's device the same. */
static void take_message(struct web_room *r, const char *kind,
			 const char *device, json_t *msg)
{
	if (strcmp(kind, "state") == 0) {
		if (json_object_get(r->states, device) == NULL &&
		    json_object_size(r->states) >= WEB_DEVICES_MAX)
			return;
		json_object_set(r->states, device, msg);
		sse_broadcast(
			r->w, "state",
			json_pack("{s:s,s:O}", "room", r->name, "state", msg));
	} else if (strcmp(kind, "alarm") == 0) {
		sse_broadcast(
			r->w, "alarm",
			json_pack("{s:s,s:O}", "room", r->name, "alarm", msg));
	} else if (strcmp(kind, "event") == 0 &&
		   strcmp(json_string_value(json_object_get(msg, "kind")) ?: "",
			  "state") == 0 &&
		   rests(json_string_value(json_object_get(msg, "to")))) {
		tally_refresh(r->tally, false); /* a session may have ended */
	}
}

static void take_published(struct web_room *r)
{
	size_t len = 0;
	char topic[80], *text;
	const char *dot, *device;
	zmq_msg_t f;
	int more = 0, nframes;
	size_t sz = sizeof(more), tlen;
	json_t *msg;

	zmq_msg_init(&f);
	if (zmq_msg_recv(&f, r->sub, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&f);
		return;
	}
	tlen = zmq_msg_size(&f);
	snprintf(topic, sizeof(topic), "%.*s",
		 (int)(tlen < sizeof(topic) ? tlen : 0),
		 (const char *)zmq_msg_data(&f));
	zmq_getsockopt(r->sub, ZMQ_RCVMORE, &more, &sz);
	zmq_msg_close(&f);
	text = more ? recv_last(r->sub, &len, &nframes) : NULL;
	msg = text != NULL && nframes == 1 ? json_loadb(text, len, 0, NULL)
					   : NULL;
	free(text);
	device = json_string_value(json_object_get(msg, "device"));
	dot = strchr(topic, '.');
	if (!json_is_object(msg) || dot == NULL || device == NULL ||
	    !conf_name_ok(device) || strcmp(dot + 1, device) != 0) {
		r->bad_messages++;
		json_decref(msg);
		return;
	}
	topic[dot - topic] = '\0';
	r->messages++;
	r->heard_mono = web_mono_ms();
	r->heard_ms = web_now_ms();
	if (!r->live)
		set_live(r, true);
	take_message(r, topic, device, msg);
	json_decref(msg);
}

static void on_sub(evutil_socket_t fd, short what, void *arg)
{
	struct web_room *r = arg;
	int n = 0;

	(void)fd;
	(void)what;
	while (n < ROOM_BATCH && ready(r->sub, ZMQ_POLLIN)) {
		take_published(r);
		n++;
	}
	if (n == ROOM_BATCH)
		event_active(r->sub_ev, EV_READ, 0);
}

/* ---- what the browsers are given ---- */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *room_device_names(const struct web_room *r)
{
	size_t n = json_object_size(r->states), i = 0;
	const char **names = xcalloc(n ? n : 1, sizeof(*names));
	const char *key;
	json_t *v, *out = json_array();

	json_object_foreach(r->states, key, v) names[i++] = key;
	qsort(names, n, sizeof(*names), by_name);
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_string(names[i]));
	free(names);
	return out;
}

json_t *rooms_state_json(struct web *w)
{
	json_t *rooms = json_array(), *room, *devices, *names;
	size_t i;

	for (int k = 0; k < w->nrooms; k++) {
		struct web_room *r = &w->rooms[k];

		room = room_status_json(r);
		devices = json_array();
		names = room_device_names(r);
		for (i = 0; i < json_array_size(names); i++)
			json_array_append(
				devices,
				json_object_get(
					r->states,
					json_string_value(
						json_array_get(names, i))));
		json_decref(names);
		json_object_set_new(room, "devices", devices);
		json_array_append_new(rooms, room);
	}
	return json_pack("{s:o}", "rooms", rooms);
}

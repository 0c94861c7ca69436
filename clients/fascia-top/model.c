/*
 * fascia-top's model: what it knows of every device.  It is filled from the
 * daemon's publisher (state., event., alarm. topics) and, at start and when
 * an unknown device shows up, from the "devices" and "status" requests.
 * Every state message is complete (docs/protocol.md), so each one replaces
 * what the model held for its device; nothing depends on an earlier one.
 * A value the daemon does not know (no reading yet: no chambers, a null
 * supply) stays unknown here, never 0.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "top.h"

int64_t top_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t len, json_t *v, const char *dflt)
{
	const char *s = json_is_string(v) ? json_string_value(v) : dflt;

	snprintf(dst, len, "%s", s);
}

static const char *str_or(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "?";
}

static double num(json_t *v, bool *known)
{
	if (known)
		*known = json_is_number(v);
	return json_is_number(v) ? json_number_value(v) : 0.0;
}

static long long count(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

struct top_device *top_device_get(struct top *t, const char *name, bool create)
{
	struct top_device *d;
	int i;

	for (i = 0; i < t->ndevices; i++)
		if (strcmp(t->devices[i].name, name) == 0)
			return &t->devices[i];
	if (!create || t->ndevices == TOP_MAX_DEVICES || name[0] == '\0' ||
	    strlen(name) >= TOP_NAME_MAX)
		return NULL;
	d = &t->devices[t->ndevices];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->state, sizeof(d->state), "?");
	if (t->want_device && strcmp(t->want_device, name) == 0) {
		t->selected = t->ndevices;
		t->want_device = NULL;
	}
	t->ndevices++;
	return d;
}

static void take_session(struct top_device *d, json_t *s)
{
	d->in_session = json_is_object(s);
	if (!d->in_session) {
		d->profile[0] = '\0';
		d->step = d->cycle = 0;
		d->elapsed_s = d->remaining_s = 0;
		return;
	}
	copy_str(d->profile, sizeof(d->profile), json_object_get(s, "profile"),
		 "?");
	d->step = (int)count(s, "step");
	d->cycle = (int)count(s, "cycle");
	d->elapsed_s = num(json_object_get(s, "elapsed_s"), NULL);
	d->remaining_s = num(json_object_get(s, "remaining_s"), NULL);
}

static void take_chambers(struct top_device *d, json_t *list)
{
	size_t i, n = json_is_array(list) ? json_array_size(list) : 0;

	if (n > TOP_MAX_CHAMBERS)
		n = TOP_MAX_CHAMBERS;
	for (i = 0; i < n; i++) {
		json_t *c = json_array_get(list, i);
		struct top_chamber *ch = &d->chambers[i];

		ch->pressure = num(json_object_get(c, "pressure"),
				   &ch->pressure_known);
		ch->setpoint = num(json_object_get(c, "setpoint"),
				   &ch->setpoint_known);
		copy_str(ch->valve, sizeof(ch->valve),
			 json_object_get(c, "valve"), "");
	}
	d->nchambers = (int)n;
}

static void take_alarms(struct top_device *d, json_t *list)
{
	size_t i, n = json_is_array(list) ? json_array_size(list) : 0;

	if (n > TOP_MAX_ALARMS)
		n = TOP_MAX_ALARMS;
	for (i = 0; i < n; i++) {
		json_t *a = json_array_get(list, i);
		struct top_alarm *al = &d->alarms[i];

		copy_str(al->id, sizeof(al->id), json_object_get(a, "id"), "?");
		copy_str(al->priority, sizeof(al->priority),
			 json_object_get(a, "priority"), "?");
		copy_str(al->message, sizeof(al->message),
			 json_object_get(a, "message"), "");
		al->chamber = (int)count(a, "chamber");
		al->latched = json_is_true(json_object_get(a, "latched"));
		al->present = json_is_true(json_object_get(a, "present"));
	}
	d->nalarms = (int)n;
}

static void take_link(struct top_device *d, json_t *link)
{
	d->link_up = json_is_true(json_object_get(link, "up"));
	d->rtt_us = count(link, "rtt_us");
	d->timeouts = count(link, "timeouts");
	d->errors = count(link, "errors");
	d->exceptions = count(link, "exceptions");
	d->reconnects = count(link, "reconnects");
	copy_str(d->link_error, sizeof(d->link_error),
		 json_object_get(link, "last_error"), "");
}

/* A state message or one device's status result. */
static void take_state(struct top *t, json_t *msg)
{
	json_t *name = json_object_get(msg, "device");
	struct top_device *d;

	if (!json_is_string(name))
		return;
	d = top_device_get(t, json_string_value(name), true);
	if (!d)
		return;
	if (!d->have_state && d->limit_mmhg == 0)
		t->need_devices = true;
	/* back to idle: a session ended, even when its event was lost */
	if (d->have_state && strcmp(d->state, "idle") != 0 &&
	    strcmp(str_or(json_object_get(msg, "state")), "idle") == 0)
		top_history_ended(t, d->name);
	copy_str(d->state, sizeof(d->state), json_object_get(msg, "state"),
		 "?");
	take_session(d, json_object_get(msg, "session"));
	take_chambers(d, json_object_get(msg, "chambers"));
	take_alarms(d, json_object_get(msg, "alarms"));
	take_link(d, json_object_get(msg, "link"));
	d->supply = num(json_object_get(msg, "supply"), &d->supply_known);
	d->have_state = true;
	d->updated_ms = top_now_ms();
}

/*
 * Whether an event says a session ended: a session event other than
 * started, paused and resumed (completed, stopped, vented by the
 * operator ...: docs/protocol.md), or a state change to idle.
 */
static bool session_ended(json_t *ev)
{
	const char *kind = str_or(json_object_get(ev, "kind"));
	const char *text = str_or(json_object_get(ev, "text"));

	if (strcmp(kind, "state") == 0)
		return strcmp(str_or(json_object_get(ev, "to")), "idle") == 0;
	return strcmp(kind, "session") == 0 &&
	       strncmp(text, "started", 7) != 0 &&
	       strcmp(text, "paused") != 0 && strcmp(text, "resumed") != 0;
}

static void take_event(struct top *t, const char *topic, json_t *msg)
{
	json_t *name = json_object_get(msg, "device");
	json_t *text = json_object_get(msg, "text");
	struct top_device *d;

	if (!json_is_string(name))
		return;
	d = top_device_get(t, json_string_value(name), true);
	if (!d)
		return;
	if (strncmp(topic, "alarm.", 6) == 0) {
		snprintf(d->last_event, sizeof(d->last_event), "alarm %s %s",
			 str_or(json_object_get(msg, "alarm")),
			 str_or(json_object_get(msg, "kind")));
	} else if (json_is_string(text)) {
		snprintf(d->last_event, sizeof(d->last_event), "%s",
			 json_string_value(text));
	}
	if (strncmp(topic, "event.", 6) == 0 && session_ended(msg))
		top_history_ended(t, d->name);
}

static void take_devices(struct top *t, json_t *result)
{
	json_t *list = json_object_get(result, "devices");
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
	{
		json_t *name = json_object_get(v, "name");
		struct top_device *d;

		if (!json_is_string(name))
			continue;
		d = top_device_get(t, json_string_value(name), true);
		if (!d)
			continue;
		d->limit_mmhg = num(json_object_get(v, "limit_mmhg"), NULL);
		if (!d->have_state)
			copy_str(d->state, sizeof(d->state),
				 json_object_get(v, "state"), "?");
	}
}

/* One request with a bounded wait: the result object, or NULL. */
static json_t *query(struct top *t, const char *cmd)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	json_t *rep, *result = NULL;

	if (!req)
		return NULL;
	rep = fascia_client_call(t->client, req);
	t->refused = !rep && errno == EACCES; /* CURVE: see top_no_reply_why */
	json_decref(req);
	if (rep && json_is_true(json_object_get(rep, "ok")))
		result = json_incref(json_object_get(rep, "result"));
	json_decref(rep);
	return result;
}

/*
 * Ask the daemon for its devices and their status, so that the view shows
 * something before the first publish.  Returns 0, or -1 when the daemon
 * did not answer.
 */
int top_model_query(struct top *t)
{
	json_t *res, *v;
	size_t i;

	t->devices_asked_ms = top_now_ms();
	t->need_devices = false;
	res = query(t, "devices");
	if (!res)
		return -1;
	take_devices(t, res);
	json_decref(res);
	res = query(t, "status");
	if (!res)
		return -1;
	json_array_foreach(json_object_get(res, "devices"), i, v)
		take_state(t, v);
	t->need_devices = false;
	t->last_state_ms = top_now_ms();
	json_decref(res);
	return 0;
}

/* A new device showed up on the publisher: learn its limit, at most every
 * 2 s, and only while the daemon publishes (so the request is answered). */
void top_model_maybe_requery(struct top *t)
{
	if (!t->need_devices || top_daemon_unreachable(t))
		return;
	if (top_now_ms() - t->devices_asked_ms < TOP_STALE_MS)
		return;
	top_model_query(t);
}

/*
 * Take every message waiting on the monitor, at most max (so that a flood
 * cannot starve the keyboard).  Returns how many were taken, -1 on error.
 */
int top_model_drain(struct top *t, int max)
{
	char topic[128];
	json_t *msg;
	int n = 0, rc;

	while (n < max) {
		rc = fascia_monitor_next(t->monitor, 0, topic, sizeof(topic),
					 &msg);
		if (rc == 0)
			break;
		if (rc < 0)
			return n ? n : -1;
		n++;
		t->messages++;
		if (strncmp(topic, "state.", 6) == 0) {
			take_state(t, msg);
			t->last_state_ms = top_now_ms();
		} else {
			take_event(t, topic, msg);
		}
		json_decref(msg);
	}
	return n;
}

int64_t top_silence_ms(const struct top *t)
{
	int64_t since = t->last_state_ms ? t->last_state_ms : t->started_ms;

	return top_now_ms() - since;
}

bool top_daemon_unreachable(const struct top *t)
{
	return top_silence_ms(t) > TOP_STALE_MS;
}

bool top_device_stale(const struct top *t, const struct top_device *d)
{
	if (top_daemon_unreachable(t))
		return true;
	return !d->have_state || top_now_ms() - d->updated_ms > TOP_STALE_MS;
}

/* The full scale of a device's chamber bars, in mmHg. */
double top_device_scale(const struct top_device *d)
{
	double scale = d->limit_mmhg > 0 ? d->limit_mmhg : 60.0;
	int i;

	for (i = 0; i < d->nchambers; i++) {
		if (d->chambers[i].pressure > scale)
			scale = d->chambers[i].pressure;
		if (d->chambers[i].setpoint > scale)
			scale = d->chambers[i].setpoint;
	}
	return scale;
}

/*
 * fascia-top's last sessions: the journal's newest sessions of the
 * selected device (`history` {device, limit}, docs/records.md), for the
 * panel under the chambers.  They are asked for when a device is selected,
 * soon after one of its sessions ends (an event, or its state back to
 * idle), and otherwise every TOP_HISTORY_PERIOD_MS; never more often than
 * every TOP_HISTORY_SPACING_MS, and not while the daemon is unreachable (a
 * request then would only hold up the screen).  The journal commits a
 * session's end a little after the event is published, so while the
 * newest session still reads "running" on a device that is idle again it
 * is asked for again, a few times, a second apart.  A refusal (the journal
 * is off, or cannot be read) is kept as the panel's text.
 */
#include <stdio.h>
#include <string.h>

#include "top.h"

static void copy_str(char *dst, size_t len, json_t *v, const char *dflt)
{
	snprintf(dst, len, "%s",
		 json_is_string(v) ? json_string_value(v) : dflt);
}

static int64_t ms_of(json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

/* A session of the device ended: ask soon (if it is the one shown). */
void top_history_ended(struct top *t, const char *device)
{
	struct top_history *h = &t->history;

	if (strcmp(h->device, device) != 0)
		return;
	h->due_ms = top_now_ms();
	h->retries = TOP_HISTORY_RETRIES;
}

static void take_session(struct top_session *s, json_t *o)
{
	int64_t a = ms_of(json_object_get(o, "started"));
	int64_t z = ms_of(json_object_get(o, "ended"));

	copy_str(s->id, sizeof(s->id), json_object_get(o, "id"), "?");
	copy_str(s->profile, sizeof(s->profile), json_object_get(o, "profile"),
		 "?");
	copy_str(s->end_reason, sizeof(s->end_reason),
		 json_object_get(o, "end_reason"), "?");
	copy_str(s->alarm, sizeof(s->alarm), json_object_get(o, "alarm"), "");
	s->started_ms = a;
	s->duration_s = a > 0 && z >= a ? (double)(z - a) / 1000.0 : -1.0;
}

/* The reply (NULL: none came) into h; whether to re-ask soon. */
static bool take_reply(struct top_history *h, const struct top_device *d,
		       json_t *rep)
{
	json_t *err = json_object_get(rep, "error");
	json_t *list =
		json_object_get(json_object_get(rep, "result"), "sessions");
	size_t i, n;

	h->have = true;
	h->error[0] = '\0';
	if (rep == NULL) {
		snprintf(h->error, sizeof(h->error),
			 "sessions: no reply to history within %d ms",
			 TOP_QUERY_TIMEOUT_MS);
		return false;
	}
	if (!json_is_true(json_object_get(rep, "ok"))) {
		snprintf(h->error, sizeof(h->error), "sessions: %s: %s",
			 json_is_string(json_object_get(err, "code"))
				 ? json_string_value(
					   json_object_get(err, "code"))
				 : "error",
			 json_is_string(json_object_get(err, "message"))
				 ? json_string_value(
					   json_object_get(err, "message"))
				 : "");
		return false;
	}
	if (!json_is_array(list)) {
		/* a daemon from before the journal: {"entries":[]} */
		snprintf(h->error, sizeof(h->error),
			 "sessions: not recorded (this fasciad keeps no "
			 "journal)");
		return false;
	}
	n = json_array_size(list);
	if (n > TOP_HISTORY_ROWS)
		n = TOP_HISTORY_ROWS;
	for (i = 0; i < n; i++)
		take_session(&h->sessions[i], json_array_get(list, i));
	h->nsessions = (int)n;
	return n > 0 && strcmp(h->sessions[0].end_reason, "running") == 0 &&
	       strcmp(d->state, "idle") == 0;
}

/* Ask now if it is time to; at most one request, bounded by the query
 * timeout. */
void top_history_maybe_ask(struct top *t)
{
	struct top_history *h = &t->history;
	const struct top_device *d;
	int64_t now = top_now_ms();
	json_t *req, *rep;
	bool again;

	if (t->ndevices == 0)
		return;
	d = &t->devices[t->selected];
	if (strcmp(h->device, d->name) != 0) {
		memset(h, 0, sizeof(*h));
		snprintf(h->device, sizeof(h->device), "%s", d->name);
		h->due_ms = now;
	}
	if (now < h->due_ms || top_daemon_unreachable(t) ||
	    (h->asked_ms != 0 && now - h->asked_ms < TOP_HISTORY_SPACING_MS))
		return;
	req = json_pack("{s:s,s:s,s:i}", "cmd", "history", "device", d->name,
			"limit", TOP_HISTORY_ROWS);
	if (req == NULL)
		return;
	h->asked_ms = now;
	rep = fascia_client_call(t->client, req);
	json_decref(req);
	again = take_reply(h, d, rep) && h->retries > 0;
	json_decref(rep);
	if (again)
		h->retries--;
	else
		h->retries = 0;
	h->due_ms = top_now_ms() +
		    (again ? TOP_HISTORY_SPACING_MS : TOP_HISTORY_PERIOD_MS);
}

/*
 * Sessions by end reason, per device, for /metrics' fascia_sessions_total:
 * counted from the room's treatment record (`history`), kept here, and
 * brought up to date when a session may have ended (a device came to
 * rest), every minute, and from scratch when the daemon comes back.
 *
 * The record can hold years of sessions, so a pass after the first reads
 * only what it must: the sessions that started at or after the watermark,
 * which is the start of the oldest session still running at the last
 * pass (or of the newest one seen, when none was running).  The ids of the
 * sessions already counted from there on are kept, so that none is
 * counted twice; older ones are done with.  A pass reads pages of 1000,
 * one request at a time, and a pass that fails (no reply, an error) leaves
 * the counts as they were.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "web.h"

#define TALLY_PAGE 1000
#define TALLY_DELAY_MS 300 /* after a device comes to rest: its record */
#define TALLY_PERIOD_S 60

const char *const tally_reasons[] = {"completed", "stopped",  "vented",
				     "fault",     "shutdown", "interrupted",
				     NULL};

struct tally {
	struct web_room *room;
	json_t *counts;    /* device -> {reason: n}; NULL: not known */
	json_t *seen;      /* id -> started, counted, started >= watermark */
	int64_t watermark; /* history's since; 0: from the first */
	bool busy, again, again_scratch;
	/* the pass in progress */
	json_t *pass_counts, *pass_seen;
	int64_t pass_since, open_min, max_started;
	bool any_open;
	char before[128];
	struct event *later, *period;
};

static void begin(struct tally *t, bool scratch);

static void on_later(evutil_socket_t fd, short what, void *arg)
{
	struct tally *t = arg;

	(void)fd;
	(void)what;
	if (t->room->live)
		begin(t, false);
}

struct tally *tally_new(struct web_room *r)
{
	struct tally *t = xcalloc(1, sizeof(*t));
	struct timeval period = {TALLY_PERIOD_S, 0};

	t->room = r;
	t->seen = json_object();
	t->later = evtimer_new(r->w->base, on_later, t);
	t->period = event_new(r->w->base, -1, EV_PERSIST, on_later, t);
	if (t->seen == NULL || t->later == NULL || t->period == NULL ||
	    event_add(t->period, &period) < 0)
		fatalx("out of memory");
	return t;
}

void tally_free(struct tally **tp)
{
	struct tally *t = *tp;

	if (t == NULL)
		return;
	event_free(t->later);
	event_free(t->period);
	json_decref(t->counts);
	json_decref(t->seen);
	json_decref(t->pass_counts);
	json_decref(t->pass_seen);
	free(t);
	*tp = NULL;
}

const json_t *tally_counts(const struct tally *t)
{
	return t != NULL ? t->counts : NULL;
}

void tally_refresh(struct tally *t, bool from_scratch)
{
	struct timeval tv = {0, TALLY_DELAY_MS * 1000};

	if (t == NULL)
		return;
	if (from_scratch)
		begin(t, true);
	else if (!evtimer_pending(t->later, NULL))
		evtimer_add(t->later, &tv);
}

static void on_page(struct web_room *r, const char *text, size_t len,
		    json_t *reply, void *arg);

static void ask_page(struct tally *t)
{
	json_t *req =
		json_pack("{s:s,s:i}", "cmd", "history", "limit", TALLY_PAGE);

	if (t->pass_since > 0)
		json_object_set_new(req, "since", json_integer(t->pass_since));
	if (t->before[0])
		json_object_set_new(req, "before", json_string(t->before));
	room_request(t->room, req, on_page, t);
	json_decref(req);
}

static void begin(struct tally *t, bool scratch)
{
	if (t->busy) {
		t->again = true;
		t->again_scratch |= scratch;
		return;
	}
	t->busy = true;
	if (scratch || t->counts == NULL) {
		t->pass_counts = json_object();
		t->pass_seen = json_object();
		t->pass_since = 0;
	} else {
		t->pass_counts = json_deep_copy(t->counts);
		t->pass_seen = json_copy(t->seen);
		t->pass_since = t->watermark;
	}
	t->open_min = INT64_MAX;
	t->max_started = t->pass_since;
	t->any_open = false;
	t->before[0] = '\0';
	ask_page(t);
}

static void end_pass(struct tally *t, bool done)
{
	const char *id;
	json_t *v, *tmp;

	if (done) {
		t->watermark = t->any_open ? t->open_min : t->max_started;
		json_object_foreach_safe(t->pass_seen, tmp, id, v)
		{
			if (json_integer_value(v) < t->watermark)
				json_object_del(t->pass_seen, id);
		}
		json_decref(t->counts);
		json_decref(t->seen);
		t->counts = t->pass_counts;
		t->seen = t->pass_seen;
	} else {
		json_decref(t->pass_counts);
		json_decref(t->pass_seen);
	}
	t->pass_counts = t->pass_seen = NULL;
	t->busy = false;
	if (t->again) {
		bool scratch = t->again_scratch;

		t->again = t->again_scratch = false;
		begin(t, scratch);
	}
}

/* Count one summary of the page. */
static void count(struct tally *t, const json_t *s)
{
	const char *id = json_string_value(json_object_get(s, "id"));
	const char *dev = json_string_value(json_object_get(s, "device"));
	const char *why = json_string_value(json_object_get(s, "end_reason"));
	json_int_t started = json_integer_value(json_object_get(s, "started"));
	json_t *per;

	if (id == NULL || dev == NULL || why == NULL || strlen(id) >= 128)
		return;
	snprintf(t->before, sizeof(t->before), "%s", id);
	if (started > t->max_started)
		t->max_started = started;
	if (strcmp(why, "running") == 0) {
		t->any_open = true;
		if (started < t->open_min)
			t->open_min = started;
		return;
	}
	if (json_object_get(t->pass_seen, id) != NULL)
		return;
	json_object_set_new(t->pass_seen, id, json_integer(started));
	if ((per = json_object_get(t->pass_counts, dev)) == NULL) {
		per = json_object();
		json_object_set_new(t->pass_counts, dev, per);
	}
	json_object_set_new(
		per, why,
		json_integer(json_integer_value(json_object_get(per, why)) +
			     1));
}

static void on_page(struct web_room *r, const char *text, size_t len,
		    json_t *reply, void *arg)
{
	struct tally *t = arg;
	json_t *result = json_object_get(reply, "result");
	json_t *sessions = json_object_get(result, "sessions"), *s;
	size_t i;

	(void)text;
	(void)len;
	if (reply == NULL || !json_is_true(json_object_get(reply, "ok")) ||
	    !json_is_array(sessions)) {
		if (reply != NULL) {
			log_debug("room %s: no session counts: history "
				  "refused",
				  r->name);
			json_decref(t->counts); /* journal = off, say */
			t->counts = NULL;
		}
		end_pass(t, false);
		return;
	}
	json_array_foreach(sessions, i, s) count(t, s);
	if (json_is_true(json_object_get(result, "more")) &&
	    json_array_size(sessions) > 0)
		ask_page(t);
	else
		end_pass(t, true);
}

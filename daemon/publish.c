/*
 * What fasciad publishes on its PUB socket: each device's full state (at
 * publish_hz and on every change of state or alarms) and its events and
 * alarms as they come from the control thread.  A message is a pure
 * function of what it is built from: a snapshot, or an event with the
 * context of its own tick.  Every message stands
 * alone — PUB drops messages to slow or late subscribers, so none is a
 * delta — and carries the device's seq, which advances by one for every
 * message on any of the device's topics, so a subscriber sees its gaps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zmq.h>

#include "fasciad.h"

static void set(json_t *obj, const char *key, json_t *v)
{
	if (json_object_set_new(obj, key, fd_must(v)) < 0)
		fatalx("out of memory building JSON");
}

/* A pressure or a time: rounded to 0.1, null when not a number. */
static json_t *num1(double v)
{
	if (!isfinite(v))
		return json_null();
	return json_real(round(v * 10) / 10);
}

/* A message from elsewhere: cut or garbled UTF-8 must not lose it all. */
static json_t *text_json(const char *t)
{
	json_t *v = json_string(t);

	return v != NULL ? v : json_string("(not UTF-8)");
}

static const char *valve_name(uint8_t v)
{
	static const char *const names[] = {"hold", "inflate", "deflate"};

	return v < 3 ? names[v] : "unknown";
}

/* A session as its state message and its events show it. */
static json_t *session_json(bool have, const char *id, const char *profile,
			    const struct fascia_profile_pos *pos)
{
	if (!have)
		return json_null();
	return json_pack("{s:s, s:s, s:i, s:i, s:o, s:o}", "id", id, "profile",
			 profile, "step", pos->step, "cycle", pos->cycle,
			 "elapsed_s", fd_must(num1(pos->elapsed_s)),
			 "remaining_s", fd_must(num1(pos->remaining_s)));
}

/* Unknown is not zero: before the device's first reading, no chamber. */
static json_t *chambers_json(const struct fd_snapshot *s)
{
	json_t *a = fd_must(json_array());
	int n = s->chambers < FASCIA_MAX_CHAMBERS ? s->chambers
						  : FASCIA_MAX_CHAMBERS;

	if (!s->have_reading)
		n = 0;

	for (int i = 0; i < n; i++)
		json_array_append_new(
			a, fd_must(json_pack(
				   "{s:o, s:o, s:s}", "pressure",
				   fd_must(num1(s->pressure[i])), "setpoint",
				   fd_must(num1(s->setpoint[i])), "valve",
				   valve_name(s->valve[i]))));
	return a;
}

/* Monotonic seconds of the snapshot's clock as Unix ms. */
static int64_t unix_of(const struct fd_snapshot *s, double mono_s)
{
	double ms = (double)s->unix_ms - (s->mono_s - mono_s) * 1000.0;

	return isfinite(ms) ? (int64_t)llround(ms) : s->unix_ms;
}

/* A measured value, or null where the alarm measures nothing. */
static json_t *measure_json(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* The daemon's alarm as one of a device's: not latched (it clears itself
 * once the journal writes again), never acknowledged. */
static json_t *daemon_alarm_json(const char *id,
				 const struct fd_daemon_alarm *da)
{
	json_t *o = json_pack("{s:s, s:i, s:s, s:b, s:b, s:I}", "id", id,
			      "chamber", 0, "priority", "medium", "latched", 0,
			      "present", 1, "since", (json_int_t)da->since_ms);

	set(o, "message", text_json(da->message));
	return fd_must(o);
}

static json_t *alarms_json(const struct fd_snapshot *s,
			   const struct fd_daemon_alarm *journal)
{
	json_t *a = fd_must(json_array());
	int n = s->nalarm < FD_MAX_ALARMS ? s->nalarm : FD_MAX_ALARMS;

	if (journal != NULL && journal->present)
		json_array_append_new(a, daemon_alarm_json("journal", journal));
	for (int i = 0; i < n; i++) {
		const struct fd_alarm *al = &s->alarm[i];
		const struct ilk_row *row = &ilk_rows[al->id % ILK_COUNT];
		json_t *o =
			json_pack("{s:s, s:i, s:s, s:b, s:b, s:I}", "id",
				  row->name, "chamber", al->chamber, "priority",
				  ilk_priority_name(row->priority), "latched",
				  1, "present", al->present, "since",
				  (json_int_t)unix_of(s, al->since_s));

		set(o, "message", text_json(al->message));
		json_array_append_new(a, fd_must(o));
	}
	return a;
}

static json_t *link_json(const struct fd_link_stats *l)
{
	json_t *hist = fd_must(json_array());
	json_t *o;

	for (int i = 0; i < FD_RTT_BUCKETS; i++)
		json_array_append_new(hist, json_integer(l->rtt_hist[i]));
	o = fd_must(json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "up", l->up,
		"rtt_us", (json_int_t)l->rtt_us, "timeouts",
		(json_int_t)l->timeouts, "exceptions",
		(json_int_t)l->exceptions, "errors", (json_int_t)l->errors,
		"reconnects", (json_int_t)l->reconnects, "exchanges",
		(json_int_t)l->exchanges, "fc23", l->fc23, "rtt_hist", hist));
	set(o, "last_error", text_json(l->last_error));
	set(o, "t_read_us", json_integer((json_int_t)l->t_read_us));
	set(o, "t_built_us", json_integer((json_int_t)fd_clock_mono_us()));
	return o;
}

/* The lowest lateness (us) at or below which a fraction q of the ticks
 * began: a bucket's lower bound, so within 3 % (1 us below 64 us). */
static uint64_t late_quantile(const struct fd_link_stats *l, double q)
{
	uint64_t n = 0, want, acc = 0;

	for (unsigned i = 0; i < FD_LATE_BUCKETS; i++)
		n += l->late_hist[i];
	if (n == 0)
		return 0;
	want = (uint64_t)ceil(q * (double)n);
	for (unsigned i = 0; i < FD_LATE_BUCKETS; i++) {
		acc += l->late_hist[i];
		if (acc >= want)
			return fd_late_bucket_lo(i);
	}
	return fd_late_bucket_lo(FD_LATE_BUCKETS - 1);
}

/* Sparse: [lowest us of the bucket, count] for non-empty buckets. */
static json_t *late_hist_json(const struct fd_link_stats *l)
{
	json_t *hist = fd_must(json_array());

	for (unsigned i = 0; i < FD_LATE_BUCKETS; i++)
		if (l->late_hist[i] != 0)
			json_array_append_new(
				hist, fd_must(json_pack(
					      "[I, I]",
					      (json_int_t)fd_late_bucket_lo(i),
					      (json_int_t)l->late_hist[i])));
	return hist;
}

/* The measurement hooks of the tick (docs/performance.md).  The
 * histogram, most of a message's size, goes in status replies only. */
static json_t *ticks_json(const struct fd_link_stats *l, bool full)
{
	json_t *o;

	o = fd_must(json_pack(
		"{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:b}", "count",
		(json_int_t)l->ticks, "late", (json_int_t)l->late_ticks,
		"max_late_ms", fd_must(num1(l->max_late_ms)), "late_us",
		(json_int_t)l->late_us, "late_p50_us",
		(json_int_t)late_quantile(l, 0.5), "late_p99_us",
		(json_int_t)late_quantile(l, 0.99), "drift_ns",
		(json_int_t)l->drift_ns, "skipped", (json_int_t)l->skipped,
		"unthrottled", l->unthrottled));
	if (full)
		set(o, "late_hist", late_hist_json(l));
	return o;
}

json_t *fd_publish_state_json(const char *device, const struct fd_snapshot *s,
			      const struct fd_daemon_alarm *journal,
			      uint64_t seq, int64_t now_ms, bool full)
{
	static const struct fd_snapshot offline; /* state 0: offline */
	const struct fd_snapshot *sn = s ? s : &offline;
	json_t *o;

	o = fd_must(json_pack("{s:i, s:s, s:I, s:I, s:s}", "v", 1, "device",
			      device, "seq", (json_int_t)seq, "time",
			      (json_int_t)now_ms, "state",
			      fd_state_name(sn->state)));
	set(o, "session",
	    session_json(sn->have_session, sn->session_id, sn->profile,
			 &sn->pos));
	set(o, "chambers", chambers_json(sn));
	set(o, "supply", sn->have_reading ? num1(sn->supply) : json_null());
	set(o, "alarms", alarms_json(sn, journal));
	set(o, "link", link_json(&sn->link));
	set(o, "device_status",
	    sn->have_reading ? json_pack("{s:i, s:i}", "status", sn->status,
					 "fault", sn->fault)
			     : json_null());
	set(o, "ticks", ticks_json(&sn->link, full));
	set(o, "events_lost", json_integer((json_int_t)sn->events_lost));
	return o;
}

static void event_fields(json_t *o, const struct fd_event_rec *e)
{
	const struct ilk_row *row = &ilk_rows[e->alarm % ILK_COUNT];
	json_t *text = text_json(e->text);

	switch (e->kind) {
	case FD_E_STATE:
		set(o, "kind", json_string("state"));
		set(o, "from", json_string(fd_state_name(e->from)));
		set(o, "to", json_string(fd_state_name(e->to)));
		set(o, "cause", json_string(fd_event_name(e->cause)));
		set(o, "text", text);
		break;
	case FD_E_SESSION:
		set(o, "kind", json_string("session"));
		set(o, "session",
		    session_json(e->ctx.have_session, e->ctx.session_id,
				 e->ctx.profile, &e->ctx.pos));
		set(o, "text", text);
		break;
	case FD_E_LINK:
		set(o, "kind", json_string("link"));
		set(o, "up", json_boolean(strncmp(e->text, "up", 2) == 0));
		set(o, "text", text);
		break;
	case FD_E_ALARM:
	case FD_E_ALARM_ACK:
		set(o, "kind",
		    json_string(e->kind == FD_E_ALARM ? "raised"
						      : "acknowledged"));
		set(o, "alarm", json_string(row->name));
		set(o, "chamber", json_integer(e->chamber));
		set(o, "priority",
		    json_string(ilk_priority_name(row->priority)));
		if (e->kind == FD_E_ALARM) {
			set(o, "value", measure_json(e->value));
			set(o, "threshold", measure_json(e->threshold));
		}
		set(o, "message", text);
		break;
	default:
		set(o, "kind", json_string("unknown"));
		set(o, "text", text);
	}
}

json_t *fd_publish_event_json(const char *device, const struct fd_event_rec *e,
			      uint64_t seq, const char **topic)
{
	json_t *o;

	*topic = e->kind == FD_E_ALARM || e->kind == FD_E_ALARM_ACK ? "alarm"
								    : "event";
	o = fd_must(json_pack("{s:i, s:s, s:I, s:I}", "v", 1, "device", device,
			      "seq", (json_int_t)seq, "time",
			      (json_int_t)e->ctx.unix_ms));
	event_fields(o, e);
	return o;
}

bool fd_publish_wanted(const struct fd_event_rec *e)
{
	return e->kind != FD_E_STATE ||
	       strcmp(fd_state_name(e->from), fd_state_name(e->to)) != 0;
}

void fd_publish(struct fd_daemon *d, const char *topic, const char *device,
		json_t *msg)
{
	struct fd_server *sv = d->server;
	char t[128], *text;

	if (sv == NULL || sv->pub == NULL) {
		json_decref(msg);
		return;
	}
	snprintf(t, sizeof(t), "%s.%s", topic, device);
	if ((text = json_dumps(msg, FD_JSON_FLAGS)) == NULL)
		fatalx("out of memory encoding a message");
	json_decref(msg);
	/* PUB never blocks: at SNDHWM it drops, which seq shows */
	if (zmq_send(sv->pub, t, strlen(t), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(sv->pub, text, strlen(text), ZMQ_DONTWAIT) < 0)
		log_debug("publish %s: %s", t, zmq_strerror(zmq_errno()));
	free(text);
}

void fd_publish_state(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_snapshot *snap)
{
	dev->seq++;
	fd_publish(d, "state", dev->conf.name,
		   fd_publish_state_json(dev->conf.name, snap,
					 &d->journal_alarm, dev->seq,
					 fd_clock_unix_ms(), false));
}

void fd_publish_daemon_alarm(struct fd_daemon *d, const char *id,
			     const struct fd_daemon_alarm *a)
{
	struct fd_snapshot *sn = xcalloc(1, sizeof(*sn));

	for (int i = 0; i < d->ndev; i++) {
		struct fd_device *dev = &d->dev[i];
		json_t *o;

		dev->seq++;
		o = fd_must(json_pack("{s:i, s:s, s:I, s:I, s:s, s:s, s:i, "
				      "s:s}",
				      "v", 1, "device", dev->conf.name, "seq",
				      (json_int_t)dev->seq, "time",
				      (json_int_t)fd_clock_unix_ms(), "kind",
				      a->present ? "raised" : "cleared",
				      "alarm", id, "chamber", 0, "priority",
				      "medium"));
		if (a->present) { /* it measures nothing */
			set(o, "value", json_null());
			set(o, "threshold", json_null());
		}
		set(o, "message", text_json(a->message));
		fd_publish(d, "alarm", dev->conf.name, o);
		/* and at once the state that shows it, or no longer */
		fd_publish_state(d, dev, fd_device_peek(dev, sn) ? sn : NULL);
	}
	free(sn);
}

void fd_publish_news(struct fd_daemon *d, struct fd_device *dev,
		     const struct fd_outbox *news)
{
	const char *topic;
	json_t *msg;

	for (int i = 0; i < news->nev; i++) {
		if (!fd_publish_wanted(&news->ev[i]))
			continue;
		dev->seq++;
		msg = fd_publish_event_json(dev->conf.name, &news->ev[i],
					    dev->seq, &topic);
		fd_publish(d, topic, dev->conf.name, msg);
	}
	if (news->changed && news->have_snap)
		fd_publish_state(d, dev, &news->snap);
}

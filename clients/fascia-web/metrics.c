/*
 * GET /metrics: every room's devices in the Prometheus text format
 * (version 0.0.4), read from the latest state messages the rooms
 * published, so a scrape asks no daemon anything; and GET /healthz.
 *
 * Names have the fascia_ prefix and base units (seconds), except the
 * pressures, which stay mmHg as the whole system speaks them and say so
 * (_mmhg); counters end in _total.  Labels: room, device, chamber (1-based),
 * and what a sample is about (state, alarm, priority, end_reason).  A
 * value the daemon does not know (a pressure before the first reading)
 * has no sample.  The daemon's link histogram has no sum: the state message
 * carries the buckets alone, so fascia_link_rtt_seconds has _bucket and
 * _count.
 *
 * Neither route needs a session: scrapers and load balancers have none.
 * They say nothing of patients, but they do say what is being done in
 * every room: serve them to the monitoring network only (fascia-web(1)).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "web.h"

static const char *const states[] = {"offline", "idle",      "running",
				     "paused",  "releasing", "venting",
				     "fault",   NULL};

/* What each family's samples are drawn from: one device's state. */
typedef void (*device_fn)(struct evbuffer *b, const char *labels,
			  const json_t *st);

static void family(struct evbuffer *b, const char *name, const char *type,
		   const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
			    type);
}

/* A label value as the format quotes it. */
static void quote(char *out, size_t size, const char *v)
{
	size_t n = 0;

	for (; *v && n + 3 < size; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			out[n++] = '\\';
			out[n++] = *v == '\n' ? 'n' : *v;
		} else {
			out[n++] = *v;
		}
	}
	out[n] = '\0';
}

static void number(struct evbuffer *b, const char *name, const char *labels,
		   double v)
{
	if (isfinite(v))
		evbuffer_add_printf(b, "%s{%s} %.10g\n", name, labels, v);
}

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Each device of each room, with its labels room="R",device="D". */
static void each_device(struct web *w, struct evbuffer *b, device_fn fn)
{
	char labels[128];
	const char *dev;
	json_t *st;

	for (int i = 0; i < w->nrooms; i++)
		json_object_foreach(w->rooms[i].states, dev, st)
		{
			snprintf(labels, sizeof(labels),
				 "room=\"%s\",device=\"%s\"", w->rooms[i].name,
				 dev);
			fn(b, labels, st);
		}
}

static void state_samples(struct evbuffer *b, const char *labels,
			  const json_t *st)
{
	const char *now = json_string_value(json_object_get(st, "state"));

	for (int i = 0; states[i] != NULL; i++)
		evbuffer_add_printf(
			b, "fascia_device_state{%s,state=\"%s\"} %d\n", labels,
			states[i], now != NULL && strcmp(now, states[i]) == 0);
}

static void link_up_samples(struct evbuffer *b, const char *labels,
			    const json_t *st)
{
	evbuffer_add_printf(b, "fascia_link_up{%s} %d\n", labels,
			    json_is_true(json_object_get(
				    json_object_get(st, "link"), "up")));
}

static void chamber_samples(struct evbuffer *b, const char *labels,
			    const json_t *st, const char *key, const char *name)
{
	const json_t *chambers = json_object_get(st, "chambers"), *c;
	char l[160];
	size_t i;

	json_array_foreach(chambers, i, c)
	{
		snprintf(l, sizeof(l), "%s,chamber=\"%zu\"", labels, i + 1);
		number(b, name, l, num(c, key));
	}
}

static void pressure_samples(struct evbuffer *b, const char *labels,
			     const json_t *st)
{
	chamber_samples(b, labels, st, "pressure",
			"fascia_chamber_pressure_mmhg");
}

static void setpoint_samples(struct evbuffer *b, const char *labels,
			     const json_t *st)
{
	chamber_samples(b, labels, st, "setpoint",
			"fascia_chamber_setpoint_mmhg");
}

static void supply_samples(struct evbuffer *b, const char *labels,
			   const json_t *st)
{
	number(b, "fascia_supply_pressure_mmhg", labels, num(st, "supply"));
}

/* fascia_alarm_present (listed: raised, not acknowledged) or, with
 * cause, fascia_alarm_cause_present (its cause still there). */
static void alarms(struct evbuffer *b, const char *labels, const json_t *st,
		   bool cause)
{
	const json_t *list = json_object_get(st, "alarms"), *a;
	char id[64], prio[32];
	size_t i;

	json_array_foreach(list, i, a)
	{
		quote(id, sizeof(id),
		      json_string_value(json_object_get(a, "id")) ?: "");
		quote(prio, sizeof(prio),
		      json_string_value(json_object_get(a, "priority")) ?: "");
		evbuffer_add_printf(
			b,
			"fascia_alarm_%spresent{%s,alarm=\"%s\",chamber=\"%d\","
			"priority=\"%s\"} %d\n",
			cause ? "cause_" : "", labels, id,
			(int)json_integer_value(json_object_get(a, "chamber")),
			prio,
			cause ? json_is_true(json_object_get(a, "present"))
			      : 1);
	}
}

static void alarm_samples(struct evbuffer *b, const char *labels,
			  const json_t *st)
{
	alarms(b, labels, st, false);
}

static void alarm_cause_samples(struct evbuffer *b, const char *labels,
				const json_t *st)
{
	alarms(b, labels, st, true);
}

/* link.rtt_hist[i] counts round trips under 64 µs << i, the last one the
 * rest: cumulative buckets with those bounds. */
static void rtt_samples(struct evbuffer *b, const char *labels,
			const json_t *st)
{
	const json_t *hist =
		json_object_get(json_object_get(st, "link"), "rtt_hist");
	size_t n = json_array_size(hist);
	long long sum = 0;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		sum += json_integer_value(json_array_get(hist, i));
		if (i + 1 < n)
			evbuffer_add_printf(b,
					    "fascia_link_rtt_seconds_bucket{%s,"
					    "le=\"%g\"} %lld\n",
					    labels, 64e-6 * (double)(1u << i),
					    sum);
	}
	evbuffer_add_printf(
		b,
		"fascia_link_rtt_seconds_bucket{%s,le=\"+Inf\"} %lld\n"
		"fascia_link_rtt_seconds_count{%s} %lld\n",
		labels, sum, labels, sum);
}

/* The counters: a member of one of the state's objects. */
struct counter {
	const char *name, *object, *key, *help;
};

static const struct counter counters[] = {
	{"fascia_link_exchanges_total", "link", "exchanges",
	 "Modbus exchanges with the device"},
	{"fascia_link_timeouts_total", "link", "timeouts",
	 "exchanges the device did not answer in time"},
	{"fascia_link_exceptions_total", "link", "exceptions",
	 "Modbus exception replies"},
	{"fascia_link_errors_total", "link", "errors", "other link errors"},
	{"fascia_link_reconnects_total", "link", "reconnects",
	 "reconnections of the link"},
	{"fascia_ticks_total", "ticks", "count", "control ticks"},
	{"fascia_ticks_late_total", "ticks", "late",
	 "ticks that began over half a period late"},
	{"fascia_ticks_skipped_total", "ticks", "skipped",
	 "periods skipped: a tick over a period late"},
	{"fascia_events_lost_total", NULL, "events_lost",
	 "events the control thread could not hand over"},
};

static void counter_family(struct web *w, struct evbuffer *b,
			   const struct counter *c)
{
	char labels[128];
	const char *dev;
	const json_t *st, *o, *v;

	family(b, c->name, "counter", c->help);
	for (int i = 0; i < w->nrooms; i++)
		json_object_foreach(w->rooms[i].states, dev, st)
		{
			o = c->object ? json_object_get(st, c->object) : st;
			snprintf(labels, sizeof(labels),
				 "room=\"%s\",device=\"%s\"", w->rooms[i].name,
				 dev);
			v = json_object_get(o, c->key);
			if (json_is_integer(v))
				evbuffer_add_printf(
					b, "%s{%s} %lld\n", c->name, labels,
					(long long)json_integer_value(v));
		}
}

static void sessions_family(struct web *w, struct evbuffer *b)
{
	const json_t *counts, *per;
	const char *dev;

	family(b, "fascia_sessions_total", "counter",
	       "sessions ended, by how they ended (the treatment record)");
	for (int i = 0; i < w->nrooms; i++) {
		if ((counts = tally_counts(w->rooms[i].tally)) == NULL)
			continue;
		json_t *names = room_device_names(&w->rooms[i]), *name;
		size_t k;

		json_array_foreach(names, k, name)
		{
			dev = json_string_value(name);
			per = json_object_get(counts, dev);
			for (int j = 0; tally_reasons[j] != NULL; j++)
				evbuffer_add_printf(
					b,
					"fascia_sessions_total{room=\"%s\","
					"device=\"%s\",end_reason=\"%s\"} "
					"%lld\n",
					w->rooms[i].name, dev, tally_reasons[j],
					(long long)json_integer_value(
						json_object_get(
							per,
							tally_reasons[j])));
		}
		json_decref(names);
	}
}

static void rooms_family(struct web *w, struct evbuffer *b)
{
	family(b, "fascia_room_up", "gauge",
	       "whether the room's daemon was heard in the last 2 s");
	for (int i = 0; i < w->nrooms; i++)
		evbuffer_add_printf(b, "fascia_room_up{room=\"%s\"} %d\n",
				    w->rooms[i].name, w->rooms[i].live);
	family(b, "fascia_room_last_heard_timestamp_seconds", "gauge",
	       "when the room's daemon was last heard, Unix time");
	for (int i = 0; i < w->nrooms; i++)
		if (w->rooms[i].heard_ms)
			evbuffer_add_printf(
				b,
				"fascia_room_last_heard_timestamp_seconds{room="
				"\"%s\"} %.3f\n",
				w->rooms[i].name,
				w->rooms[i].heard_ms / 1000.0);
}

static void console_families(struct web *w, struct evbuffer *b)
{
	const struct web_stats *s = &w->stats;

	family(b, "fascia_web_sse_clients", "gauge", "open event streams");
	evbuffer_add_printf(b, "fascia_web_sse_clients %zu\n", sse_clients(w));
	family(b, "fascia_web_sse_dropped_total", "counter",
	       "event streams dropped for not reading");
	evbuffer_add_printf(b, "fascia_web_sse_dropped_total %llu\n",
			    (unsigned long long)s->sse_dropped);
	family(b, "fascia_web_sse_events_total", "counter",
	       "events sent to the streams");
	evbuffer_add_printf(b, "fascia_web_sse_events_total %llu\n",
			    (unsigned long long)s->sse_events);
	family(b, "fascia_web_logins_total", "counter", "logins, by outcome");
	evbuffer_add_printf(
		b,
		"fascia_web_logins_total{outcome=\"ok\"} %llu\n"
		"fascia_web_logins_total{outcome=\"failed\"} %llu\n"
		"fascia_web_logins_total{outcome=\"limited\"} %llu\n",
		(unsigned long long)s->logins_ok,
		(unsigned long long)s->logins_failed,
		(unsigned long long)s->logins_limited);
	family(b, "fascia_web_forwarded_total", "counter",
	       "requests forwarded to the daemons");
	evbuffer_add_printf(b, "fascia_web_forwarded_total %llu\n",
			    (unsigned long long)s->forwarded);
	family(b, "fascia_web_forward_timeouts_total", "counter",
	       "forwarded requests that got no reply in time");
	evbuffer_add_printf(b, "fascia_web_forward_timeouts_total %llu\n",
			    (unsigned long long)s->forward_timeouts);
	family(b, "fascia_web_refused_total", "counter",
	       "POSTs refused before reaching a daemon, by reason");
	evbuffer_add_printf(b,
			    "fascia_web_refused_total{reason=\"csrf\"} %llu\n"
			    "fascia_web_refused_total{reason=\"role\"} %llu\n",
			    (unsigned long long)s->csrf_refused,
			    (unsigned long long)s->role_refused);
}

/* The device families, in order: a family's samples stay together. */
static const struct {
	const char *name, *type, *help;
	device_fn fn;
} device_families[] = {
	{"fascia_device_state", "gauge",
	 "1 for the device's current state, 0 for the others", state_samples},
	{"fascia_link_up", "gauge", "whether the link to the device is up",
	 link_up_samples},
	{"fascia_chamber_pressure_mmhg", "gauge",
	 "a chamber's pressure as last read, mmHg", pressure_samples},
	{"fascia_chamber_setpoint_mmhg", "gauge", "a chamber's setpoint, mmHg",
	 setpoint_samples},
	{"fascia_supply_pressure_mmhg", "gauge", "the supply pressure, mmHg",
	 supply_samples},
	{"fascia_alarm_present", "gauge",
	 "1 for each alarm raised and not yet acknowledged", alarm_samples},
	{"fascia_alarm_cause_present", "gauge",
	 "whether an alarm's cause is still there (ack is refused while it "
	 "is)",
	 alarm_cause_samples},
	{"fascia_link_rtt_seconds", "histogram",
	 "Modbus round trips since the daemon started (no _sum: the daemon "
	 "publishes the buckets alone)",
	 rtt_samples},
};

void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	struct evbuffer *b = evbuffer_new();
	size_t i;

	if (b == NULL)
		fatalx("out of memory");
	rooms_family(w, b);
	for (i = 0; i < sizeof(device_families) / sizeof(device_families[0]);
	     i++) {
		family(b, device_families[i].name, device_families[i].type,
		       device_families[i].help);
		each_device(w, b, device_families[i].fn);
	}
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		counter_family(w, b, &counters[i]);
	sessions_family(w, b);
	console_families(w, b);
	http_headers(w, req, "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

void healthz_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	struct evbuffer *b = evbuffer_new();
	int64_t now = web_now_ms();

	if (b == NULL)
		fatalx("out of memory");
	evbuffer_add_printf(b, "ok\n");
	for (int i = 0; i < w->nrooms; i++) {
		const struct web_room *r = &w->rooms[i];

		if (r->live)
			evbuffer_add_printf(b, "room %s live\n", r->name);
		else if (r->heard_ms)
			evbuffer_add_printf(
				b,
				"room %s silent, last heard %lld s "
				"ago\n",
				r->name, (long long)(now - r->heard_ms) / 1000);
		else
			evbuffer_add_printf(b, "room %s silent, never heard\n",
					    r->name);
	}
	http_headers(w, req, "text/plain; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/*
 * fascia-sim's requests: inject, clear, status and stats.  sim_request() is
 * the one place a request is applied, whether it comes from the ZeroMQ REP
 * control socket (served here from the libevent loop), a scenario file or
 * an --inject option; sim_request_check() runs the same checks without
 * applying anything so that a bad scenario fails at start.
 *
 * Requests count chambers and devices from 1; the model counts from 0.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "sim.h"

#define CONTROL_MAX_MSG 65536 /* ZMQ_MAXMSGSIZE: larger peers are dropped */
#define CONTROL_BATCH                                                          \
	64 /* requests served per wake-up before the                           \
	      loop gets a turn */
#define LINK_DELAY_MS_DEFAULT 200
#define LINK_DELAY_MS_MAX 60000
#define MMHG_MAX 3000.0 /* what a pressure register can carry */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

struct control {
	void *ctx;
	void *sock;
	struct event *ev;
};

/* A request parsed and checked, ready to apply. */
struct action {
	enum { ACT_INJECT, ACT_CLEAR, ACT_STATUS, ACT_STATS } cmd;
	struct sim_device *dev;
	bool all;               /* clear "all" */
	bool is_link;           /* the fault is SIM_FAULT_LINK */
	struct sim_fault fault; /* kind, chamber (0-based, -1 none) ... */
	enum sim_link_mode link_mode;
	unsigned link_delay_ms;
};

static const char *const link_names[] = {
	[SIM_LINK_OK] = "ok",
	[SIM_LINK_SILENT] = "silent",
	[SIM_LINK_SLOW] = "slow",
	[SIM_LINK_GARBAGE] = "garbage",
	[SIM_LINK_EXCEPTION] = "exception",
	[SIM_LINK_DISCONNECT] = "disconnect",
};

static const char *const sensor_names[] = {
	[SIM_SENSOR_STUCK] = "stuck",
	[SIM_SENSOR_NOISE] = "noise",
	[SIM_SENSOR_OFFSET] = "offset",
	[SIM_SENSOR_RANGE] = "range",
};

static const char *const command_names[] = {
	[FASCIA_CMD_IDLE] = "idle",
	[FASCIA_CMD_RUN] = "run",
	[FASCIA_CMD_VENT] = "vent",
	[FASCIA_CMD_RESET] = "reset",
};

static const char *const valve_names[] = {
	[FASCIA_VALVE_CLOSED] = "closed",
	[FASCIA_VALVE_INFLATING] = "inflating",
	[FASCIA_VALVE_DEFLATING] = "deflating",
};

/* STATUS bit i is named status_bit_names[i]. */
static const char *const status_bit_names[] = {
	"ready",      "running",           "venting",     "watchdog_tripped",
	"estop",      "garment_connected", "relief_open", "sensor_fault",
	"pump_fault", "overlimit",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int fail(const char **code, char *msg, size_t msglen, const char *c,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const char **code, char *msg, size_t msglen, const char *c,
		const char *fmt, ...)
{
	va_list ap;

	*code = c;
	if (msg != NULL && msglen > 0) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Index of name in names[n], or -1. */
static int lookup(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

/* A number for a reply: rounded to 1/scale, null when not finite (jansson
 * cannot carry NaN). */
static json_t *jnum(double v, double scale)
{
	double r;

	if (!isfinite(v))
		return json_null();
	r = round(v * scale) / scale;
	return json_real(r == 0 ? 0.0 : r); /* no -0.0 */
}

static json_t *jmmhg(double v)
{
	return jnum(v, 100.0);
}

/* Milliseconds from the simulator's start to a model time. */
static json_int_t ms_since_start(const struct sim *s, uint64_t us)
{
	return us > s->start_us ? (json_int_t)((us - s->start_us) / 1000) : 0;
}

/* ---- checking a request ---- */

/* "chamber": an integer 1..chambers, stored 0-based.  Absent: -1 if not
 * required. */
static int get_chamber(json_t *req, const struct sim_model *m, bool required,
		       int *out, const char **code, char *msg, size_t len)
{
	json_t *v = json_object_get(req, "chamber");
	json_int_t c;

	*out = -1;
	if (v == NULL && !required)
		return 0;
	if (v == NULL)
		return fail(code, msg, len, "bad_request",
			    "chamber: required, an integer in 1..%d",
			    m->p.chambers);
	if (!json_is_integer(v))
		return fail(code, msg, len, "bad_request",
			    "chamber: expected an integer in 1..%d",
			    m->p.chambers);
	c = json_integer_value(v);
	if (c < 1 || c > m->p.chambers)
		return fail(code, msg, len, "bad_request",
			    "chamber: %lld outside 1..%d", (long long)c,
			    m->p.chambers);
	*out = (int)c - 1;
	return 0;
}

/* A number field within lo..hi.  Absent and not required: *out = dflt. */
static int get_number(json_t *req, const char *key, bool required, double dflt,
		      double lo, double hi, double *out, const char **code,
		      char *msg, size_t len)
{
	json_t *v = json_object_get(req, key);
	double x;

	*out = dflt;
	if (v == NULL && !required)
		return 0;
	if (v == NULL)
		return fail(code, msg, len, "bad_request",
			    "%s: required, a number in %g..%g", key, lo, hi);
	if (!json_is_number(v))
		return fail(code, msg, len, "bad_request",
			    "%s: expected a number in %g..%g", key, lo, hi);
	x = json_number_value(v);
	if (!isfinite(x) || x < lo || x > hi)
		return fail(code, msg, len, "bad_request",
			    "%s: %g outside %g..%g", key, x, lo, hi);
	*out = x;
	return 0;
}

/* A string field that must be one of names[n]; absent and not required:
 * *out = dflt. */
static int get_choice(json_t *req, const char *key, const char *const *names,
		      size_t n, bool required, int dflt, int *out,
		      const char **code, char *msg, size_t len)
{
	json_t *v = json_object_get(req, key);
	char list[128] = "";
	size_t used = 0;
	int i;

	*out = dflt;
	if (v == NULL && !required)
		return 0;
	if (v != NULL && json_is_string(v)) {
		i = lookup(names, n, json_string_value(v));
		if (i >= 0) {
			*out = i;
			return 0;
		}
	}
	for (size_t k = 0; k < n && used < sizeof(list); k++) {
		if (names[k] == NULL)
			continue;
		used += snprintf(list + used, sizeof(list) - used, "%s%s",
				 used ? "|" : "", names[k]);
	}
	if (v == NULL)
		return fail(code, msg, len, "bad_request", "%s: required, %s",
			    key, list);
	return fail(code, msg, len, "bad_request", "%s: expected %s", key,
		    list);
}

static int get_device(struct sim *s, json_t *req, struct sim_device **out,
		      const char **code, char *msg, size_t len)
{
	json_t *v = json_object_get(req, "device");
	json_int_t n = 1;

	if (v != NULL) {
		if (!json_is_integer(v))
			return fail(code, msg, len, "bad_request",
				    "device: expected an integer in 1..%d",
				    s->ndev);
		n = json_integer_value(v);
		if (n < 1 || n > s->ndev)
			return fail(code, msg, len, "unknown_device",
				    "device %lld: this simulator has %d "
				    "(1..%d)",
				    (long long)n, s->ndev, s->ndev);
	}
	*out = &s->dev[n - 1];
	return 0;
}

/* The arguments of an injected fault. */
static int get_fault_args(json_t *req, struct action *a, const char **code,
			  char *msg, size_t len)
{
	const struct sim_model *m = &a->dev->model;
	struct sim_fault *f = &a->fault;
	int i, r = 0;
	double x;

	switch (f->kind) {
	case SIM_FAULT_OVERPRESSURE:
		r = get_chamber(req, m, true, &f->chamber, code, msg, len);
		if (r == 0)
			r = get_number(req, "mmhg", true, 0, 0.1, MMHG_MAX,
				       &f->mmhg, code, msg, len);
		break;
	case SIM_FAULT_VALVE_STUCK: {
		static const char *const states[] = {"open", "closed"};

		r = get_chamber(req, m, true, &f->chamber, code, msg, len);
		if (r == 0)
			r = get_choice(req, "state", states, NELEM(states),
				       true, 0, &i, code, msg, len);
		if (r == 0)
			f->stuck = i == 0 ? SIM_STUCK_OPEN : SIM_STUCK_CLOSED;
		break;
	}
	case SIM_FAULT_LEAK:
		r = get_chamber(req, m, true, &f->chamber, code, msg, len);
		if (r == 0)
			r = get_number(req, "mmhg_s", true, 0, 0, MMHG_MAX,
				       &f->mmhg_s, code, msg, len);
		break;
	case SIM_FAULT_BLOCKED:
		r = get_chamber(req, m, true, &f->chamber, code, msg, len);
		break;
	case SIM_FAULT_SENSOR:
		r = get_chamber(req, m, true, &f->chamber, code, msg, len);
		if (r == 0)
			r = get_choice(req, "mode", sensor_names,
				       NELEM(sensor_names), true, 0, &i, code,
				       msg, len);
		if (r != 0)
			break;
		f->sensor_mode = (enum sim_sensor_mode)i;
		/* stuck without a value: stuck where the reading was */
		r = get_number(req, "value", i != SIM_SENSOR_STUCK, NAN,
			       -MMHG_MAX, MMHG_MAX, &x, code, msg, len);
		f->value = x;
		break;
	case SIM_FAULT_LINK:
		r = get_choice(req, "mode", link_names, NELEM(link_names), true,
			       0, &i, code, msg, len);
		if (r == 0 && i == SIM_LINK_OK)
			r = fail(code, msg, len, "bad_request",
				 "mode: \"ok\" is no fault; clear the link "
				 "fault instead");
		if (r == 0)
			r = get_number(req, "delay_ms", false,
				       LINK_DELAY_MS_DEFAULT, 0,
				       LINK_DELAY_MS_MAX, &x, code, msg, len);
		if (r == 0 && x != floor(x))
			r = fail(code, msg, len, "bad_request",
				 "delay_ms: expected an integer");
		if (r == 0) {
			a->link_mode = (enum sim_link_mode)i;
			a->link_delay_ms = (unsigned)x;
		}
		break;
	default: /* freeze, estop, garment_off, pump_fail, reboot: none */
		break;
	}
	return r;
}

/* Parse and check req into a; nothing is changed. */
static int parse_request(struct sim *s, json_t *req, struct action *a,
			 const char **code, char *msg, size_t len)
{
	json_t *cmd, *fault;
	const char *name;
	int kind;

	memset(a, 0, sizeof(*a));
	a->fault.chamber = -1;
	if (!json_is_object(req))
		return fail(code, msg, len, "bad_request",
			    "a request is a JSON object");
	cmd = json_object_get(req, "cmd");
	if (cmd == NULL)
		return fail(code, msg, len, "bad_request", "cmd: required");
	if (!json_is_string(cmd))
		return fail(code, msg, len, "bad_request",
			    "cmd: expected a string");
	name = json_string_value(cmd);
	if (strcmp(name, "inject") == 0)
		a->cmd = ACT_INJECT;
	else if (strcmp(name, "clear") == 0)
		a->cmd = ACT_CLEAR;
	else if (strcmp(name, "status") == 0)
		a->cmd = ACT_STATUS;
	else if (strcmp(name, "stats") == 0)
		a->cmd = ACT_STATS;
	else
		return fail(code, msg, len, "unknown_command",
			    "unknown command \"%.64s\" (inject, clear, status, "
			    "stats)",
			    name);

	if (get_device(s, req, &a->dev, code, msg, len) != 0)
		return -1;
	if (a->cmd == ACT_STATUS || a->cmd == ACT_STATS)
		return 0;

	fault = json_object_get(req, "fault");
	if (fault == NULL)
		return fail(code, msg, len, "bad_request", "fault: required");
	if (!json_is_string(fault))
		return fail(code, msg, len, "bad_request",
			    "fault: expected a string");
	name = json_string_value(fault);
	if (a->cmd == ACT_CLEAR && strcmp(name, "all") == 0) {
		a->all = true;
		return 0;
	}
	kind = sim_fault_from_name(name);
	if (kind < 0 || kind >= SIM_FAULT_COUNT)
		return fail(code, msg, len, "unknown_fault",
			    "unknown fault \"%.64s\" (see fascia-sim --help)",
			    name);
	a->fault.kind = (enum sim_fault_kind)kind;
	a->is_link = kind == SIM_FAULT_LINK;
	if (a->cmd == ACT_INJECT)
		return get_fault_args(req, a, code, msg, len);
	/* clear: an optional chamber, for faults that take one */
	switch (a->fault.kind) {
	case SIM_FAULT_OVERPRESSURE:
	case SIM_FAULT_VALVE_STUCK:
	case SIM_FAULT_LEAK:
	case SIM_FAULT_BLOCKED:
	case SIM_FAULT_SENSOR:
		return get_chamber(req, &a->dev->model, false,
				   &a->fault.chamber, code, msg, len);
	default:
		if (json_object_get(req, "chamber") != NULL)
			return fail(code, msg, len, "bad_request",
				    "chamber: %s takes no chamber", name);
		return 0;
	}
}

int sim_request_check(struct sim *s, json_t *req, const char **code, char *msg,
		      size_t msglen)
{
	struct action a;

	return parse_request(s, req, &a, code, msg, msglen);
}

/* ---- results ---- */

static json_t *fault_object(const char *name, int chamber)
{
	json_t *o = json_object();

	json_object_set_new(o, "fault", json_string(name));
	if (chamber >= 0)
		json_object_set_new(o, "chamber", json_integer(chamber + 1));
	return o;
}

static json_t *active_faults(const struct sim_device *d)
{
	const struct sim_model *m = &d->model;
	json_t *list = json_array(), *o;

	for (int i = 0; i < m->p.chambers && i < FASCIA_MAX_CHAMBERS; i++) {
		const struct sim_chamber *c = &m->ch[i];

		if (c->surge_mmhg > 0) {
			o = fault_object("overpressure", i);
			json_object_set_new(o, "mmhg", jmmhg(c->surge_mmhg));
			json_array_append_new(list, o);
		}
		if (c->stuck != SIM_STUCK_NONE) {
			o = fault_object("valve_stuck", i);
			json_object_set_new(
				o, "state",
				json_string(c->stuck == SIM_STUCK_OPEN
						    ? "open"
						    : "closed"));
			json_array_append_new(list, o);
		}
		if (c->leak_mmhg_s > 0) {
			o = fault_object("leak", i);
			json_object_set_new(o, "mmhg_s", jmmhg(c->leak_mmhg_s));
			json_array_append_new(list, o);
		}
		if (c->blocked)
			json_array_append_new(list, fault_object("blocked", i));
		if (c->sensor_faulty) {
			o = fault_object("sensor", i);
			json_object_set_new(
				o, "mode",
				json_string(
					(unsigned)c->sensor_mode <
							NELEM(sensor_names)
						? sensor_names[c->sensor_mode]
						: "unknown"));
			json_object_set_new(o, "value", jmmhg(c->sensor_value));
			json_array_append_new(list, o);
		}
	}
	if (m->frozen)
		json_array_append_new(list, fault_object("freeze", -1));
	if (m->estop)
		json_array_append_new(list, fault_object("estop", -1));
	if (m->garment_off)
		json_array_append_new(list, fault_object("garment_off", -1));
	if (m->pump_failed)
		json_array_append_new(list, fault_object("pump_fail", -1));
	if (sim_model_booting(m))
		json_array_append_new(list, fault_object("reboot", -1));
	if (d->link_mode != SIM_LINK_OK &&
	    (unsigned)d->link_mode < NELEM(link_names)) {
		o = fault_object("link", -1);
		json_object_set_new(o, "mode",
				    json_string(link_names[d->link_mode]));
		json_object_set_new(o, "delay_ms",
				    json_integer(d->link_delay_ms));
		json_array_append_new(list, o);
	}
	return list;
}

static json_t *status_result(struct sim_device *d)
{
	const struct sim_model *m = &d->model;
	json_t *r = json_object(), *bits = json_array(), *chambers;
	json_t *link;
	uint16_t st = 0;

	if (sim_model_read(m, FASCIA_REG_STATUS, 1, &st) != 0)
		st = 0;
	for (unsigned i = 0; i < NELEM(status_bit_names); i++)
		if (st & (1u << i))
			json_array_append_new(bits,
					      json_string(status_bit_names[i]));

	json_object_set_new(r, "device", json_integer(d->index + 1));
	json_object_set_new(
		r, "uptime_ms",
		json_integer(
			m->now_us > m->boot_us
				? (json_int_t)((m->now_us - m->boot_us) / 1000)
				: 0));
	json_object_set_new(r, "command",
			    json_string(m->command < NELEM(command_names)
						? command_names[m->command]
						: "unknown"));
	json_object_set_new(r, "status_bits", json_integer(st));
	json_object_set_new(r, "status", bits);
	json_object_set_new(r, "fault", json_integer(m->fault));
	json_object_set_new(r, "supply", jmmhg(m->supply));
	json_object_set_new(r, "limit", jmmhg(m->limit_mmhg));
	json_object_set_new(r, "hw_relief", jmmhg(m->p.hw_relief_mmhg));
	json_object_set_new(r, "watchdog_ms", json_integer(m->watchdog_ms));
	json_object_set_new(r, "heartbeat", json_integer(m->heartbeat));
	/* When HEARTBEAT last changed and when the watchdog tripped, in ms
	 * since start (firmware samples, 1 ms): trip - change is the
	 * watchdog's own reaction, free of any client's polling. */
	json_object_set_new(r, "heartbeat_changed_ms",
			    m->watchdog_armed
				    ? json_integer(ms_since_start(
					      d->sim, m->heartbeat_changed_us))
				    : json_null());
	json_object_set_new(r, "watchdog_tripped_ms",
			    m->watchdog_tripped_us
				    ? json_integer(ms_since_start(
					      d->sim, m->watchdog_tripped_us))
				    : json_null());
	json_object_set_new(r, "pump", json_boolean(m->pump_on));
	json_object_set_new(r, "venting", json_boolean(sim_model_venting(m)));
	json_object_set_new(r, "booting", json_boolean(sim_model_booting(m)));
	json_object_set_new(r, "frozen", json_boolean(m->frozen));
	json_object_set_new(r, "estop", json_boolean(m->estop));
	json_object_set_new(r, "garment_connected",
			    json_boolean(!m->garment_off));
	json_object_set_new(r, "pump_failed", json_boolean(m->pump_failed));
	json_object_set_new(r, "exchanges", json_integer(m->exchanges));
	json_object_set_new(r, "vent_writes", json_integer(m->vent_writes));

	chambers = json_array();
	for (int i = 0; i < m->p.chambers && i < FASCIA_MAX_CHAMBERS; i++) {
		const struct sim_chamber *c = &m->ch[i];
		json_t *o = json_object();

		json_object_set_new(o, "pressure", jmmhg(c->pressure));
		json_object_set_new(o, "reading", jmmhg(c->reading));
		json_object_set_new(o, "setpoint", jmmhg(c->setpoint));
		json_object_set_new(o, "valve",
				    json_string(c->valve < NELEM(valve_names)
							? valve_names[c->valve]
							: "unknown"));
		json_object_set_new(o, "relief_open",
				    json_boolean(c->relief_open));
		json_array_append_new(chambers, o);
	}
	json_object_set_new(r, "chambers", chambers);
	json_object_set_new(r, "faults", active_faults(d));

	link = json_object();
	json_object_set_new(
		link, "mode",
		json_string((unsigned)d->link_mode < NELEM(link_names)
				    ? link_names[d->link_mode]
				    : "unknown"));
	json_object_set_new(link, "delay_ms", json_integer(d->link_delay_ms));
	json_object_set_new(link, "clients", json_integer(d->clients));
	json_object_set_new(r, "link", link);
	return r;
}

static json_t *stats_result(struct sim *s, struct sim_device *d)
{
	const struct sim_model *m = &d->model;
	json_t *r = json_object(), *list = json_array();

	for (unsigned i = 0; i < m->nrec; i++) {
		const struct sim_record *rec = sim_model_record_at(m, i);
		const char *name;
		bool shown, vented;
		json_t *o;

		if (rec == NULL)
			break;
		name = sim_fault_name(rec->kind);
		shown = rec->first_read != 0;
		vented = rec->vented_us != 0;
		o = json_object();
		json_object_set_new(o, "fault",
				    json_string(name ? name : "unknown"));
		json_object_set_new(
			o, "injected_ms",
			json_integer(ms_since_start(s, rec->injected_us)));
		json_object_set_new(
			o, "shown_ms",
			shown ? json_integer(ms_since_start(s, rec->shown_us))
			      : json_null());
		json_object_set_new(
			o, "vented_ms",
			vented ? json_integer(ms_since_start(s, rec->vented_us))
			       : json_null());
		json_object_set_new(o, "exchanges",
				    vented ? json_integer(rec->exchanges)
					   : json_null());
		if (vented) {
			uint64_t from =
				shown ? rec->shown_us : rec->injected_us;
			double lat = rec->vented_us > from
					     ? (double)(rec->vented_us - from) /
						       1000.0
					     : 0.0;

			json_object_set_new(o, "latency_ms", jnum(lat, 1000.0));
			lat = rec->vented_us > rec->cause_us
				      ? (double)(rec->vented_us -
						 rec->cause_us) /
						1000.0
				      : 0.0;
			json_object_set_new(o, "cause_to_vent_ms",
					    jnum(lat, 1000.0));
		} else {
			json_object_set_new(o, "latency_ms", json_null());
			json_object_set_new(o, "cause_to_vent_ms", json_null());
		}
		json_array_append_new(list, o);
	}
	json_object_set_new(r, "device", json_integer(d->index + 1));
	json_object_set_new(r, "exchanges", json_integer(m->exchanges));
	json_object_set_new(r, "vent_writes", json_integer(m->vent_writes));
	json_object_set_new(r, "reactions", list);
	return r;
}

/* ---- applying a request ---- */

static json_t *apply_inject(struct sim *s, struct action *a, const char **code,
			    char *msg, size_t len)
{
	struct sim_device *d = a->dev;
	const char *name = sim_fault_name(a->fault.kind);
	json_t *r;

	d->model.io_us = sim_now_us(); /* the injection's arrival */
	if (a->is_link) {
		d->link_mode = a->link_mode;
		d->link_delay_ms = a->link_delay_ms;
		sim_model_record(&d->model, SIM_FAULT_LINK);
		sim_server_link_changed(d);
	} else {
		if (sim_model_inject(&d->model, &a->fault) != 0) {
			fail(code, msg, len, "bad_request",
			     "%s: the model refused it (%s)", name,
			     strerror(errno));
			return NULL;
		}
		if (a->fault.kind == SIM_FAULT_REBOOT)
			sim_server_link_changed(d);
	}
	r = json_object();
	json_object_set_new(r, "device", json_integer(d->index + 1));
	json_object_set_new(r, "fault", json_string(name));
	if (a->fault.chamber >= 0)
		json_object_set_new(r, "chamber",
				    json_integer(a->fault.chamber + 1));
	json_object_set_new(r, "injected_ms",
			    json_integer(ms_since_start(s, d->model.now_us)));
	return r;
}

static json_t *apply_clear(struct action *a, const char **code, char *msg,
			   size_t len)
{
	struct sim_device *d = a->dev;
	const char *name = a->all ? "all" : sim_fault_name(a->fault.kind);
	bool link_was = d->link_mode != SIM_LINK_OK;
	json_t *r;

	if (a->all) {
		sim_model_clear_all(&d->model);
	} else if (!a->is_link && sim_model_clear(&d->model, a->fault.kind,
						  a->fault.chamber) != 0) {
		fail(code, msg, len, "bad_request",
		     "%s: the model refused to clear it (%s)", name,
		     strerror(errno));
		return NULL;
	}
	if (a->all || a->is_link) {
		d->link_mode = SIM_LINK_OK;
		d->link_delay_ms = 0;
	}
	/* clearing everything may also end a reboot */
	if (a->all || (a->is_link && link_was))
		sim_server_link_changed(d);
	r = json_object();
	json_object_set_new(r, "device", json_integer(d->index + 1));
	json_object_set_new(r, "cleared", json_string(name));
	if (a->fault.chamber >= 0)
		json_object_set_new(r, "chamber",
				    json_integer(a->fault.chamber + 1));
	return r;
}

json_t *sim_request(struct sim *s, json_t *req, const char **code, char *msg,
		    size_t msglen)
{
	struct action a;

	if (parse_request(s, req, &a, code, msg, msglen) != 0)
		return NULL;
	sim_device_advance(a.dev);
	switch (a.cmd) {
	case ACT_INJECT:
		return apply_inject(s, &a, code, msg, msglen);
	case ACT_CLEAR:
		return apply_clear(&a, code, msg, msglen);
	case ACT_STATUS:
		return status_result(a.dev);
	case ACT_STATS:
		return stats_result(s, a.dev);
	}
	fail(code, msg, msglen, "internal", "unhandled command");
	return NULL;
}

/* ---- the control protocol ---- */

static char *dump_reply(json_t *reply)
{
	char *text = json_dumps(reply, DUMP_FLAGS);

	json_decref(reply);
	if (text == NULL) {
		/* out of memory, or an id jansson cannot dump */
		text = strdup("{\"v\":1,\"id\":null,\"ok\":false,\"error\":"
			      "{\"code\":\"internal\",\"message\":"
			      "\"cannot encode the reply\"}}");
		if (text == NULL) {
			fputs("fascia-sim: out of memory\n", stderr);
			abort();
		}
	}
	return text;
}

/* A message may quote client input cut at a byte count: keep it valid
 * UTF-8 by replacing what is not ASCII. */
static json_t *text_string(const char *msg)
{
	json_t *j = json_string(msg);
	char buf[256];
	size_t i;

	if (j != NULL)
		return j;
	for (i = 0; msg[i] != '\0' && i < sizeof(buf) - 1; i++)
		buf[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
	buf[i] = '\0';
	return json_string(buf);
}

static char *error_reply(json_t *id, const char *code, const char *msg)
{
	json_t *reply = json_object(), *err = json_object();

	json_object_set_new(reply, "v", json_integer(1));
	json_object_set(reply, "id", id ? id : json_null());
	json_object_set_new(reply, "ok", json_false());
	json_object_set_new(err, "code", json_string(code));
	json_object_set_new(err, "message", text_string(msg));
	json_object_set_new(reply, "error", err);
	return dump_reply(reply);
}

char *sim_control_handle(struct sim *s, const char *text, size_t len)
{
	json_t *req, *id = NULL, *v, *result, *reply;
	json_error_t jerr;
	const char *code = "internal";
	char msg[256] = "";
	char *out;

	req = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL) {
		snprintf(msg, sizeof(msg), "not JSON: %s at offset %d",
			 jerr.text, jerr.position);
		return error_reply(NULL, "bad_request", msg);
	}
	if (!json_is_object(req)) {
		json_decref(req);
		return error_reply(NULL, "bad_request",
				   "a request is a JSON object");
	}
	id = json_object_get(req, "id");
	v = json_object_get(req, "v");
	if (v != NULL && (!json_is_number(v) || json_number_value(v) != 1)) {
		out = error_reply(id, "bad_request",
				  "v: this simulator speaks version 1");
		json_decref(req);
		return out;
	}
	result = sim_request(s, req, &code, msg, sizeof(msg));
	if (result == NULL) {
		out = error_reply(id, code, msg);
		json_decref(req);
		return out;
	}
	reply = json_object();
	json_object_set_new(reply, "v", json_integer(1));
	json_object_set(reply, "id", id ? id : json_null());
	json_object_set_new(reply, "ok", json_true());
	json_object_set_new(reply, "result", result);
	json_decref(req);
	return dump_reply(reply);
}

/* ---- the ZeroMQ REP socket ---- */

static bool readable(void *sock)
{
	int events = 0;
	size_t sz = sizeof(events);

	if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &sz) != 0)
		return false;
	return (events & ZMQ_POLLIN) != 0;
}

/* Receive one request (every frame of it) and send its reply.  Returns 0,
 * or -1 when nothing was there. */
static int serve_one(struct sim *s, void *sock)
{
	zmq_msg_t frame;
	int more = 0;
	size_t sz = sizeof(more);
	char *reply;

	zmq_msg_init(&frame);
	if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&frame);
		return -1;
	}
	if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
		/* a REP socket must answer: drain the rest, then refuse */
		do {
			zmq_msg_close(&frame);
			zmq_msg_init(&frame);
			if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0)
				break;
			sz = sizeof(more);
		} while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 &&
			 more);
		reply = error_reply(NULL, "bad_request",
				    "a request is one frame");
	} else {
		reply = sim_control_handle(s, zmq_msg_data(&frame),
					   zmq_msg_size(&frame));
	}
	zmq_msg_close(&frame);
	if (zmq_send(sock, reply, strlen(reply), ZMQ_DONTWAIT) < 0)
		fprintf(stderr, "fascia-sim: control: reply not sent: %s\n",
			zmq_strerror(errno));
	free(reply);
	return 0;
}

/*
 * ZMQ_FD only signals edges: serve until ZMQ_EVENTS shows no POLLIN,
 * checking it again after every send.  After a batch the loop gets a turn
 * and the event is made active again so the rest is not forgotten.
 */
static void control_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;
	struct control *c = s->control;
	int n = 0;

	(void)fd;
	(void)what;
	while (readable(c->sock)) {
		if (n++ == CONTROL_BATCH) {
			event_active(c->ev, EV_READ, 0);
			return;
		}
		if (serve_one(s, c->sock) != 0)
			break;
	}
}

int sim_control_open(struct sim *s, const char *endpoint, char *bound,
		     size_t boundlen)
{
	struct control *c;
	int64_t maxsize = CONTROL_MAX_MSG;
	int linger = 0;
	int fd;
	size_t sz;
	char last[256] = "";

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		fprintf(stderr, "fascia-sim: out of memory\n");
		return -1;
	}
	c->ctx = zmq_ctx_new();
	if (c->ctx == NULL)
		goto zfail;
	c->sock = zmq_socket(c->ctx, ZMQ_REP);
	if (c->sock == NULL)
		goto zfail;
	if (zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxsize,
			   sizeof(maxsize)) != 0 ||
	    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0)
		goto zfail;
	if (zmq_bind(c->sock, endpoint) != 0) {
		int err = errno;

		fprintf(stderr, "fascia-sim: control %s: cannot bind: %s%s\n",
			endpoint, zmq_strerror(err),
			err == EADDRINUSE
				? " (another fascia-sim? give each one its "
				  "own control endpoint with -c, e.g. -c "
				  "tcp://127.0.0.1:7413)"
				: "");
		goto fail;
	}
	sz = sizeof(last);
	if (zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, last, &sz) != 0)
		goto zfail;
	last[sizeof(last) - 1] = '\0';
	if (bound != NULL && boundlen > 0)
		snprintf(bound, boundlen, "%s", last);
	sz = sizeof(fd);
	if (zmq_getsockopt(c->sock, ZMQ_FD, &fd, &sz) != 0)
		goto zfail;
	c->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, control_cb, s);
	if (c->ev == NULL || event_add(c->ev, NULL) != 0) {
		fprintf(stderr, "fascia-sim: control: cannot watch socket\n");
		goto fail;
	}
	s->control = c;
	/* anything that arrived before the watch would give no edge */
	event_active(c->ev, EV_READ, 0);
	return 0;

zfail:
	fprintf(stderr, "fascia-sim: control %s: %s\n", endpoint,
		zmq_strerror(errno));
fail:
	if (c->ev != NULL)
		event_free(c->ev);
	if (c->sock != NULL)
		zmq_close(c->sock);
	if (c->ctx != NULL)
		zmq_ctx_term(c->ctx);
	free(c);
	return -1;
}

void sim_control_close(struct sim *s)
{
	struct control *c = s->control;

	if (c == NULL)
		return;
	if (c->ev != NULL)
		event_free(c->ev);
	zmq_close(c->sock);
	zmq_ctx_term(c->ctx);
	free(c);
	s->control = NULL;
}

/*
 * The interlock table (docs/safety.md): one row per hazard with its
 * reaction, its priority, when its cause counts as present and its
 * thresholds with their bounds; then the checks, grouped by what they look
 * at (the device as a whole, each chamber).  Every check sees the same
 * input: what this tick's exchange read and wrote.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "safety.h"

#define RATE_WINDOW_S 0.1
/* A chamber told to empty (setpoint 0, out of a running session) must be
 * below FASCIA_VENTED_MMHG within this: venting 80 mmHg takes < 1 s. */
#define UNVENTED_S 5.0

#define NOPARAM                                                                \
	{                                                                      \
		NULL, NULL, 0, 0, 0                                            \
	}
#define P(key, unit, def, lo, hi)                                              \
	{                                                                      \
		key, unit, def, lo, hi                                         \
	}
#define ROW(id, name, hazard, react, prio, presence, p0, p1)                   \
	[id] = {id, name, hazard, react, prio, presence, {p0, p1}}

/* One row a hazard, in the order of docs/safety.md. */
const char *ilk_priority_name(enum ilk_priority p)
{
	return p == ILK_PRIO_HIGH ? "high" : "medium";
}

const struct ilk_row ilk_rows[ILK_COUNT] = {
	ROW(ILK_OVERPRESSURE, "overpressure", "tissue injury", ILK_REACT_VENT,
	    ILK_PRIO_HIGH, ILK_PRESENT_WHILE_TRIPPING,
	    P("overpressure_margin_mmhg", "mmHg", 5, 0, 10), NOPARAM),
	ROW(ILK_DEVIATION, "deviation", "leak, kinked hose, stuck valve",
	    ILK_REACT_VENT, ILK_PRIO_MEDIUM, ILK_PRESENT_BY_CHECK,
	    P("deviation_mmhg", "mmHg", 15, 5, 30),
	    P("deviation_s", "s", 2, 0.5, 10)),
	ROW(ILK_RATE, "rate", "valve stuck open", ILK_REACT_VENT, ILK_PRIO_HIGH,
	    ILK_PRESENT_WHILE_TRIPPING,
	    P("rate_margin_mmhg_s", "mmHg/s", 20, 5, 40), NOPARAM),
	ROW(ILK_HOLD_TIME, "hold_time", "ischaemia", ILK_REACT_VENT,
	    ILK_PRIO_HIGH, ILK_PRESENT_UNTIL_REACTION,
	    P("hold_mmhg", "mmHg", 30, 10, 50), P("hold_s", "s", 120, 10, 600)),
	ROW(ILK_SESSION_TIME, "session_time", "over-treatment",
	    ILK_REACT_RELEASE, ILK_PRIO_MEDIUM, ILK_PRESENT_UNTIL_REACTION,
	    P("session_margin", "fraction", 0.10, 0, 0.5), NOPARAM),
	ROW(ILK_STALE, "stale", "frozen firmware or sensor", ILK_REACT_VENT,
	    ILK_PRIO_HIGH, ILK_PRESENT_WHILE_TRIPPING,
	    P("stale_ms", "ms", 200, 50, 1000),
	    P("stuck_sensor_ms", "ms", 1000, 200, 5000)),
	ROW(ILK_HEARTBEAT, "heartbeat", "device ignores our writes",
	    ILK_REACT_VENT, ILK_PRIO_HIGH, ILK_PRESENT_WHILE_TRIPPING,
	    P("heartbeat_ticks", "ticks", 3, 2, 10), NOPARAM),
	ROW(ILK_COMMS, "comms", "link lost", ILK_REACT_OFFLINE, ILK_PRIO_HIGH,
	    ILK_PRESENT_WHILE_TRIPPING, P("comms_ticks", "ticks", 3, 2, 10),
	    NOPARAM),
	ROW(ILK_ESTOP, "estop", "e-stop pressed", ILK_REACT_VENT, ILK_PRIO_HIGH,
	    ILK_PRESENT_WHILE_TRIPPING, NOPARAM, NOPARAM),
	ROW(ILK_GARMENT, "garment", "garment off", ILK_REACT_VENT,
	    ILK_PRIO_MEDIUM, ILK_PRESENT_WHILE_TRIPPING, NOPARAM, NOPARAM),
	ROW(ILK_SENSOR, "sensor", "sensor failure", ILK_REACT_VENT,
	    ILK_PRIO_HIGH, ILK_PRESENT_WHILE_TRIPPING,
	    P("sensor_min_mmhg", "mmHg", -5, -20, 0),
	    P("sensor_max_mmhg", "mmHg", 300, 100, 300)),
	ROW(ILK_DEVICE_FAULT, "device_fault", "device-side fault",
	    ILK_REACT_VENT, ILK_PRIO_HIGH, ILK_PRESENT_BY_CHECK, NOPARAM,
	    NOPARAM),
	ROW(ILK_DEADLINE, "deadline", "daemon overloaded", ILK_REACT_VENT,
	    ILK_PRIO_MEDIUM, ILK_PRESENT_UNTIL_REACTION,
	    P("deadline_ticks", "ticks", 3, 2, 10), NOPARAM),
};

void ilk_config_default(struct ilk_config *c)
{
	for (int i = 0; i < ILK_COUNT; i++)
		for (int j = 0; j < 2; j++)
			c->v[i][j] = ilk_rows[i].param[j].def;
}

void ilk_reset(struct ilk_state *s, double now_s)
{
	memset(s, 0, sizeof(*s));
	s->sample_changed_s = now_s;
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		s->deviation_since[i] = -1;
		s->hold_since[i] = -1;
		s->stuck_since[i] = -1;
		s->unvented_since[i] = -1;
	}
}

struct eval {
	const struct ilk_config *c;
	struct ilk_state *s;
	const struct ilk_input *in;
	struct ilk_trip *trips;
	int max, n;
	unsigned tripped; /* rows whose trip condition holds now */
	unsigned cause;   /* rows whose check says the cause is present
			     (ILK_PRESENT_BY_CHECK) */
};

/* A row trips: value is what was measured against threshold (NAN, both,
 * for a row that measures nothing: the e-stop), in the row's unit. */
static void trip(struct eval *e, enum ilk_id id, int chamber, double value,
		 double threshold, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void trip(struct eval *e, enum ilk_id id, int chamber, double value,
		 double threshold, const char *fmt, ...)
{
	struct ilk_trip *t;
	va_list ap;

	if (e->tripped & (1u << id))
		return;
	e->tripped |= 1u << id;
	if (e->n >= e->max)
		return;
	t = &e->trips[e->n++];
	t->id = id;
	t->chamber = chamber;
	t->value = value;
	t->threshold = threshold;
	va_start(ap, fmt);
	vsnprintf(t->message, sizeof(t->message), fmt, ap);
	va_end(ap);
}

/* A row whose presence is ILK_PRESENT_BY_CHECK: its cause is there. */
static void cause(struct eval *e, enum ilk_id id)
{
	e->cause |= 1u << id;
}

static double param(const struct eval *e, enum ilk_id id, int j)
{
	return e->c->v[id][j];
}

/*
 * Running, a chamber must follow its setpoint both ways.  Otherwise
 * (paused, releasing, idle, venting, fault) it must at least come down: a
 * chamber that stays above its setpoint (a blocked hose) is the same
 * hazard, and is still present while it stays up.
 */
static void deviation(struct eval *e, int i, double p, double sp)
{
	const struct ilk_input *in = e->in;
	struct ilk_state *s = e->s;
	double limit = param(e, ILK_DEVIATION, 0);
	bool off = in->running ? fabs(p - sp) > limit : p - sp > limit;
	bool unvented = !in->running && sp <= 0 && p >= FASCIA_VENTED_MMHG;

	/* Told to empty, a chamber that stays above 5 mmHg (a hose blocked
	 * at a pressure below the deviation threshold) trips after
	 * UNVENTED_S: a release must end. */
	if (!unvented) {
		s->unvented_since[i] = -1;
	} else {
		if (s->unvented_since[i] < 0)
			s->unvented_since[i] = in->now_s;
		if (in->now_s - s->unvented_since[i] >= UNVENTED_S) {
			trip(e, ILK_DEVIATION, i + 1, p, FASCIA_VENTED_MMHG,
			     "still %.1f mmHg %.0f s after it was told to vent "
			     "(limits %.0f mmHg within %.0f s)",
			     p, in->now_s - s->unvented_since[i],
			     FASCIA_VENTED_MMHG, UNVENTED_S);
			cause(e, ILK_DEVIATION);
		}
	}

	if (!off) {
		s->deviation_since[i] = -1;
		return;
	}
	if (s->deviation_since[i] < 0)
		s->deviation_since[i] = in->now_s;
	if (in->now_s - s->deviation_since[i] >= param(e, ILK_DEVIATION, 1))
		trip(e, ILK_DEVIATION, i + 1, fabs(p - sp), limit,
		     "%.1f mmHg, %.1f mmHg off its setpoint %.1f for %.1f s "
		     "(limits %.0f mmHg, %.1f s)",
		     p, fabs(p - sp), sp, in->now_s - s->deviation_since[i],
		     limit, param(e, ILK_DEVIATION, 1));
	/* Above its setpoint (a blocked hose) the cause outlasts the vent;
	 * below it, the vent answers it. */
	if (p - sp > limit)
		cause(e, ILK_DEVIATION);
}

/*
 * A reading that does not move at all while its valve moves air is a
 * stuck sensor: the firmware regulates on it, so the true pressure is
 * anyone's guess.  (A real sensor's noise moves a live reading every
 * sample; near 0 mmHg a deflating chamber may rightly read the same.)
 */
static void stuck_sensor(struct eval *e, int i, double p)
{
	const struct ilk_input *in = e->in;
	struct ilk_state *s = e->s;
	uint8_t v = in->r->valve[i];
	bool moving = v == FASCIA_VALVE_INFLATING ||
		      (v == FASCIA_VALVE_DEFLATING && p > FASCIA_VENTED_MMHG);

	if (!s->primed || !moving || p != s->last_reading[i]) {
		s->stuck_since[i] = -1;
	} else {
		if (s->stuck_since[i] < 0)
			s->stuck_since[i] = in->now_s;
		if ((in->now_s - s->stuck_since[i]) * 1000 >=
		    param(e, ILK_STALE, 1)) {
			trip(e, ILK_STALE, i + 1,
			     (in->now_s - s->stuck_since[i]) * 1000,
			     param(e, ILK_STALE, 1),
			     "reading stuck at %.1f mmHg for %.0f ms while "
			     "its valve %s (limit %.0f ms)",
			     p, (in->now_s - s->stuck_since[i]) * 1000,
			     v == FASCIA_VALVE_INFLATING ? "inflates"
							 : "deflates",
			     param(e, ILK_STALE, 1));
		}
	}
	s->last_reading[i] = p;
}

/*
 * The newest kept reading at least RATE_WINDOW_S old, or -1.  The rise is
 * measured over that window, but every tick: between two ticks, sensor
 * noise alone looks like a steep rate; a surge shows in the first reading
 * after it.
 */
static int rate_reference(const struct ilk_state *s, double now)
{
	unsigned n = s->hist_n < ILK_HISTORY ? s->hist_n : ILK_HISTORY;

	for (unsigned k = 1; k <= n; k++) {
		unsigned j = (s->hist_n - k) % ILK_HISTORY;

		if (now - s->hist_t[j] >= RATE_WINDOW_S - 1e-9)
			return (int)j;
	}
	return -1;
}

static void remember(struct ilk_state *s, const struct ilk_input *in)
{
	unsigned j = s->hist_n % ILK_HISTORY;

	s->hist_t[j] = in->now_s;
	for (int i = 0; i < in->chambers; i++)
		s->hist_p[j][i] = in->r->pressure_mmhg[i];
	s->hist_n++;
}

/* Rows that look at block R, per chamber. */
static void chambers(struct eval *e)
{
	const struct ilk_input *in = e->in;
	struct ilk_state *s = e->s;
	double limit = in->in_session ? in->max_pressure : in->device_limit;
	double over = limit + param(e, ILK_OVERPRESSURE, 0);
	int old = rate_reference(s, in->now_s);
	double max_rate =
		(in->in_session ? in->max_ramp : FASCIA_MAX_RAMP_MMHG_S) +
		param(e, ILK_RATE, 0);

	for (int i = 0; i < in->chambers; i++) {
		double p = in->r->pressure_mmhg[i];
		double sp = in->setpoint[i];

		if (p < param(e, ILK_SENSOR, 0) ||
		    p > param(e, ILK_SENSOR, 1)) {
			trip(e, ILK_SENSOR, i + 1, p,
			     p < 0 ? param(e, ILK_SENSOR, 0)
				   : param(e, ILK_SENSOR, 1),
			     "reading %.1f mmHg is outside the sensor's range "
			     "(limit %.0f mmHg)",
			     p,
			     p < 0 ? param(e, ILK_SENSOR, 0)
				   : param(e, ILK_SENSOR, 1));
			continue; /* the other rows cannot trust it */
		}
		if (p > over)
			trip(e, ILK_OVERPRESSURE, i + 1, p, over,
			     "%.1f mmHg is above the %.1f mmHg ceiling", p,
			     over);
		if (old >= 0) {
			double dt = in->now_s - s->hist_t[old];
			double rate = (p - s->hist_p[old][i]) / dt;

			if (rate > max_rate)
				trip(e, ILK_RATE, i + 1, rate, max_rate,
				     "rising at %.1f mmHg/s over %.0f ms, "
				     "above %.1f mmHg/s",
				     rate, dt * 1000, max_rate);
		}
		deviation(e, i, p, sp);
		stuck_sensor(e, i, p);
		if (p > param(e, ILK_HOLD_TIME, 0)) {
			if (s->hold_since[i] < 0)
				s->hold_since[i] = in->now_s;
			if (in->now_s - s->hold_since[i] >=
			    param(e, ILK_HOLD_TIME, 1))
				trip(e, ILK_HOLD_TIME, i + 1,
				     in->now_s - s->hold_since[i],
				     param(e, ILK_HOLD_TIME, 1),
				     "%.1f mmHg, above %.0f mmHg for %.0f s "
				     "without a break (limit %.0f s)",
				     p, param(e, ILK_HOLD_TIME, 0),
				     in->now_s - s->hold_since[i],
				     param(e, ILK_HOLD_TIME, 1));
		} else {
			s->hold_since[i] = -1;
		}
	}
	remember(s, in);
}

/* What the device's fault means, in words: the cause present now first,
 * then what it latched. */
static const char *device_fault_words(const struct fascia_block_r *r)
{
	if (r->status & FASCIA_ST_RELIEF_OPEN ||
	    r->fault == FASCIA_FAULT_RELIEF)
		return "the mechanical relief valve opened: a chamber went "
		       "far above its limit";
	if (r->status & FASCIA_ST_PUMP_FAULT || r->fault == FASCIA_FAULT_PUMP)
		return "the device's pump failed";
	if (r->status & FASCIA_ST_WATCHDOG_TRIPPED ||
	    r->fault == FASCIA_FAULT_WATCHDOG)
		return "the device's watchdog tripped: it stopped hearing "
		       "from the daemon (a restart, a lost link) and vented "
		       "the garment; an ack clears it";
	if (r->status & FASCIA_ST_OVERLIMIT ||
	    r->fault == FASCIA_FAULT_OVERLIMIT)
		return "the device vented a chamber above its LIMIT; an ack "
		       "clears it";
	if (r->fault == FASCIA_FAULT_ESTOP)
		return "the device latched an e-stop; an ack clears it once "
		       "released";
	if (r->fault == FASCIA_FAULT_SENSOR)
		return "the device latched a sensor fault";
	return "the device reports a fault";
}

/* Rows that look at the device as a whole. */
static void device(struct eval *e)
{
	const struct ilk_input *in = e->in;
	const struct fascia_block_r *r = in->r;
	struct ilk_state *s = e->s;
	uint16_t lag = (uint16_t)(in->heartbeat - r->heartbeat_echo);

	if (r->status & FASCIA_ST_ESTOP)
		trip(e, ILK_ESTOP, 0, NAN, NAN, "e-stop pressed");
	if (!(r->status & FASCIA_ST_GARMENT_CONNECTED))
		trip(e, ILK_GARMENT, 0, NAN, NAN, "garment disconnected");
	if (r->status & FASCIA_ST_SENSOR_FAULT)
		trip(e, ILK_SENSOR, 0, NAN, NAN,
		     "the device reports a sensor fault");
	if (r->sample != s->last_sample || !s->primed) {
		s->last_sample = r->sample;
		s->sample_changed_s = in->now_s;
	} else if ((in->now_s - s->sample_changed_s) * 1000 >=
		   param(e, ILK_STALE, 0)) {
		trip(e, ILK_STALE, 0, (in->now_s - s->sample_changed_s) * 1000,
		     param(e, ILK_STALE, 0),
		     "SAMPLE unchanged for %.0f ms (limit %.0f ms)",
		     (in->now_s - s->sample_changed_s) * 1000,
		     param(e, ILK_STALE, 0));
	}
	if (lag >= param(e, ILK_HEARTBEAT, 0) && lag < 0x8000)
		trip(e, ILK_HEARTBEAT, 0, lag, param(e, ILK_HEARTBEAT, 0),
		     "HEARTBEAT_ECHO lags by %u writes (limit %.0f)",
		     (unsigned)lag, param(e, ILK_HEARTBEAT, 0));
	/* A latched FAULT that a row above already explains (e-stop,
	 * sensor) is not a second alarm. */
	if ((r->status & ILK_DEVICE_BITS) ||
	    (r->fault != FASCIA_FAULT_NONE &&
	     !(e->tripped & (1u << ILK_ESTOP | 1u << ILK_SENSOR)))) {
		trip(e, ILK_DEVICE_FAULT, 0, NAN, NAN,
		     "%s (FAULT %u, STATUS 0x%03x)", device_fault_words(r),
		     (unsigned)r->fault, (unsigned)r->status);
		/* A latched bit or FAULT is cleared by the ack's RESET; the
		 * relief valve and the pump are present while they show. */
		if (r->status & ILK_DEVICE_LIVE_BITS)
			cause(e, ILK_DEVICE_FAULT);
	}
}

/* Each row's presence rule (its data) applied to what this tick saw. */
static unsigned present_mask(const struct eval *e)
{
	unsigned m = 0;

	for (int i = 0; i < ILK_COUNT; i++) {
		unsigned bit = 1u << i;

		switch (ilk_rows[i].presence) {
		case ILK_PRESENT_WHILE_TRIPPING:
			m |= e->tripped & bit;
			break;
		case ILK_PRESENT_UNTIL_REACTION:
			break;
		case ILK_PRESENT_BY_CHECK:
			m |= e->cause & bit;
			break;
		}
	}
	return m;
}

int ilk_check(const struct ilk_config *c, struct ilk_state *s,
	      const struct ilk_input *in, struct ilk_trip *trips, int max,
	      unsigned *present)
{
	struct eval e = {.c = c, .s = s, .in = in, .trips = trips, .max = max};

	s->late_ticks = in->late ? s->late_ticks + 1 : 0;
	if (s->late_ticks >= param(&e, ILK_DEADLINE, 0))
		trip(&e, ILK_DEADLINE, 0, s->late_ticks,
		     param(&e, ILK_DEADLINE, 0),
		     "%d ticks in a row began over half a period late "
		     "(limit %.0f)",
		     s->late_ticks, param(&e, ILK_DEADLINE, 0));
	if (!in->exchange_ok) {
		if (++s->bad_exchanges >= param(&e, ILK_COMMS, 0))
			trip(&e, ILK_COMMS, 0, s->bad_exchanges,
			     param(&e, ILK_COMMS, 0),
			     "no good exchange for %d ticks (limit %.0f)",
			     s->bad_exchanges, param(&e, ILK_COMMS, 0));
		*present = present_mask(&e);
		return e.n;
	}
	s->bad_exchanges = 0;
	if (in->in_session && in->session_length_s > 0 &&
	    in->session_elapsed_s >
		    in->session_length_s *
			    (1 + param(&e, ILK_SESSION_TIME, 0))) {
		trip(&e, ILK_SESSION_TIME, 0, in->session_elapsed_s,
		     in->session_length_s *
			     (1 + param(&e, ILK_SESSION_TIME, 0)),
		     "session ran %.1f s, past its %.0f s + %.0f %% (%.1f s)",
		     in->session_elapsed_s, in->session_length_s,
		     param(&e, ILK_SESSION_TIME, 0) * 100,
		     in->session_length_s *
			     (1 + param(&e, ILK_SESSION_TIME, 0)));
	}
	device(&e);
	chambers(&e);
	s->primed = true;
	*present = present_mask(&e);
	return e.n;
}

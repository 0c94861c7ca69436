/*
 * One device's session, one tick at a time: interlocks first, then the
 * operator's command, then what the state asks of the device.  Every state
 * change goes through change(), which asks the state table (state.c) and
 * runs the new state's entry actions (enter()).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "session.h"

void fd_session_init(struct fd_session *s, const struct fd_session_conf *c,
		     double now)
{
	memset(s, 0, sizeof(*s));
	s->c = *c;
	s->state = FD_OFFLINE;
	s->command = FASCIA_CMD_VENT; /* safe start */
	s->last_now = now;
	ilk_reset(&s->ilk, now);
}

static struct fd_event_rec *event(struct fd_session *s, enum fd_event_kind kind,
				  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct fd_event_rec *event(struct fd_session *s, enum fd_event_kind kind,
				  const char *fmt, ...)
{
	struct fd_event_rec *e;
	va_list ap;

	if (s->nev < FD_TICK_EVENTS) {
		e = &s->ev[s->nev++];
	} else {
		s->ev_lost++; /* FD_TICK_EVENTS is wrong: see session.h */
		e = &s->ev_spare;
	}
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->from = e->to = s->state;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return e;
}

static void zero_setpoints(struct fd_session *s)
{
	memset(s->setpoint, 0, sizeof(s->setpoint));
}

/* What entering a state does, every entry action in one place.  What a
 * state does on every tick it lasts is progress()'s. */
static void enter(struct fd_session *s, enum fd_state to)
{
	switch (to) {
	case FD_IDLE:
		s->have_profile = false;
		/* FALLTHROUGH */
	case FD_OFFLINE:
	case FD_VENTING:
	case FD_FAULT:
		/*
		 * Out of a session the device is held vented (master vent
		 * open), not merely idle with its valves closed: a garment
		 * at rest is at atmospheric pressure, and a sensor offset
		 * the firmware regulated a chamber on shows up as a reading
		 * below 0 once the air is let out.
		 */
		s->command = FASCIA_CMD_VENT;
		zero_setpoints(s);
		break;
	case FD_RUNNING:
	case FD_PAUSED:
	case FD_RELEASING:
	case FD_FAULT_RELEASING: /* ramp down from where the setpoints are */
		s->command = FASCIA_CMD_RUN;
		break;
	case FD_FAULT_RESETTING:
		zero_setpoints(s);
		s->command = FASCIA_CMD_RESET;
		break;
	case FD_STATE_COUNT:
		break;
	}
}

/* The one place the state changes: the table decides, the change is an
 * event naming its cause, and the new state's entry actions run (on a
 * transition to the same state too: a second trip vents again).  -1 when
 * the table refuses. */
static int change(struct fd_session *s, enum fd_event ev)
{
	int to = fd_transition(s->state, ev);
	struct fd_event_rec *e;

	if (to < 0)
		return -1;
	if ((enum fd_state)to != s->state) {
		e = event(s, FD_E_STATE, "%s -> %s", fd_state_name(s->state),
			  fd_state_name(to));
		e->to = to;
		e->cause = ev;
		s->state = to;
	}
	enter(s, to);
	return 0;
}

bool fd_session_vented(const struct fd_session *s)
{
	if (!s->have_r)
		return false;
	for (int i = 0; i < s->c.chambers; i++)
		if (s->r.pressure_mmhg[i] >= FASCIA_VENTED_MMHG)
			return false;
	return true;
}

static bool in_session(const struct fd_session *s)
{
	return s->have_profile &&
	       (s->state == FD_RUNNING || s->state == FD_PAUSED ||
		s->state == FD_RELEASING);
}

static double release_rate(const struct fd_session *s)
{
	if (s->have_profile)
		return fascia_profile_release_rate(&s->profile);
	return FASCIA_PROFILE_RELEASE_MMHG_S;
}

static void ramp_all(struct fd_session *s, const double *target, double rate,
		     double dt)
{
	for (int i = 0; i < s->c.chambers; i++)
		s->setpoint[i] =
			fascia_ramp_toward(s->setpoint[i], target[i], rate, dt);
}

static struct fd_alarm *find_alarm(struct fd_session *s, enum ilk_id id,
				   int chamber)
{
	for (int i = 0; i < s->nalarm; i++)
		if (s->alarm[i].id == id && s->alarm[i].chamber == chamber)
			return &s->alarm[i];
	return NULL;
}

/*
 * A trip: the alarm latches and the state follows the row's reaction.  In
 * a fault, a row that trips again (its cause still there) has been
 * answered already; a new alarm moves the state again, and a lost link
 * always does.
 */
static void raise_alarm(struct fd_session *s, const struct ilk_trip *t,
			unsigned present, double now, bool *vent_now)
{
	const struct ilk_row *row = &ilk_rows[t->id];
	struct fd_alarm *a = find_alarm(s, t->id, t->chamber);
	struct fd_event_rec *e;
	bool fresh = false;

	if (a == NULL) {
		/* One alarm per row: a row's later chambers update it. */
		for (int i = 0; i < s->nalarm; i++)
			if (s->alarm[i].id == t->id)
				a = &s->alarm[i];
	}
	if (a == NULL && s->nalarm < FD_MAX_ALARMS) {
		a = &s->alarm[s->nalarm++];
		a->id = t->id;
		a->chamber = t->chamber;
		a->since_s = now;
		a->value = t->value;
		a->threshold = t->threshold;
		snprintf(a->message, sizeof(a->message), "%s", t->message);
		e = event(s, FD_E_ALARM, "%s", t->message);
		e->alarm = t->id;
		e->chamber = t->chamber;
		e->value = t->value;
		e->threshold = t->threshold;
		fresh = true;
	}
	if (a)
		a->present = present & (1u << t->id);
	if (row->reaction == ILK_REACT_OFFLINE) {
		s->link_up = false;
		event(s, FD_E_LINK, "down: %s", t->message);
		change(s, FD_EV_LINK_DOWN);
		return;
	}
	if (!fresh && fd_state_is_fault(s->state))
		return;
	change(s, row->reaction == ILK_REACT_RELEASE ? FD_EV_TRIP_RELEASE
						     : FD_EV_TRIP);
	if (row->reaction == ILK_REACT_VENT && s->link_up)
		*vent_now = true;
}

/* A FAULT the device latched for a cause already alarmed (the e-stop,
 * the sensor) stays until the RESET of an ack: not a second alarm. */
static bool explained(const struct fd_session *s, const struct ilk_trip *t)
{
	if (t->id != ILK_DEVICE_FAULT || (s->r.status & ILK_DEVICE_BITS))
		return false;
	for (int i = 0; i < s->nalarm; i++)
		if ((s->alarm[i].id == ILK_ESTOP &&
		     s->r.fault == FASCIA_FAULT_ESTOP) ||
		    (s->alarm[i].id == ILK_SENSOR &&
		     s->r.fault == FASCIA_FAULT_SENSOR))
			return true;
	return false;
}

static void interlocks(struct fd_session *s, const struct fd_tick_in *in,
		       bool *vent_now)
{
	struct ilk_trip trips[ILK_COUNT];
	struct ilk_input ii = {
		.now_s = in->now,
		.exchange_ok = in->exchange_ok,
		.late = in->late,
		.r = &s->r,
		.heartbeat = s->heartbeat,
		.chambers = s->c.chambers,
		.setpoint = s->setpoint,
		.running = s->state == FD_RUNNING,
		/* A session's fault keeps its profile's limits until the
		 * ack: a surge that tripped it is still "present". */
		.in_session = in_session(s) ||
			      (fd_state_is_fault(s->state) && s->have_profile),
		.max_pressure = s->have_profile ? s->profile.max_pressure_mmhg
						: s->c.limit_mmhg,
		.max_ramp = s->have_profile ? s->profile.max_ramp_mmhg_s
					    : FASCIA_MAX_RAMP_MMHG_S,
		.device_limit = s->c.limit_mmhg,
		.session_elapsed_s = s->t,
		.session_length_s =
			s->have_profile ? fascia_profile_duration_s(&s->profile)
					: 0,
	};
	unsigned present;
	int n;

	n = ilk_check(&s->c.ilk, &s->ilk, &ii, trips, ILK_COUNT, &present);
	for (int i = 0; i < s->nalarm; i++)
		s->alarm[i].present = present & (1u << s->alarm[i].id);
	for (int i = 0; i < n; i++)
		if (!explained(s, &trips[i]))
			raise_alarm(s, &trips[i], present, in->now, vent_now);
}

static const struct fd_alarm *first_present(const struct fd_session *s)
{
	for (int i = 0; i < s->nalarm; i++)
		if (s->alarm[i].present)
			return &s->alarm[i];
	return NULL;
}

static enum fd_verdict refuse(struct fd_session *s, enum fd_verdict v,
			      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum fd_verdict refuse(struct fd_session *s, enum fd_verdict v,
			      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return v;
}

const char *fd_cmd_name(enum fd_cmd c)
{
	static const char *const names[] = {
		[FD_CMD_NONE] = "none",   [FD_CMD_START] = "start",
		[FD_CMD_PAUSE] = "pause", [FD_CMD_RESUME] = "resume",
		[FD_CMD_STOP] = "stop",   [FD_CMD_VENT] = "vent",
		[FD_CMD_ACK] = "ack",
	};

	return (unsigned)c <= FD_CMD_ACK ? names[c] : "unknown";
}

static bool device_latched(const struct fd_session *s)
{
	return s->r.fault != FASCIA_FAULT_NONE ||
	       (s->r.status & ILK_DEVICE_LATCHED_BITS);
}

/* Why a command cannot go while the link is down (its name, then the
 * device's WATCHDOG_MS). */
#define LINK_DOWN_WHY                                                          \
	"cannot %s: the link to the device is down and nothing reaches it; "   \
	"the device's own watchdog vents it %d ms after the last exchange"

/* An acknowledgement refused: a RESET handshake under way ends. */
static enum fd_verdict ack_refused(struct fd_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum fd_verdict ack_refused(struct fd_session *s, const char *fmt, ...)
{
	va_list ap;

	change(s, FD_EV_ACK_REFUSED);
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return FD_EINTERLOCK;
}

/* The acknowledgement: refused while a cause is present or the chambers
 * are not vented; a latched device fault is cleared with a RESET first
 * (FD_FAULT_RESETTING), and the verdict waits for the reading after it. */
static enum fd_verdict ack(struct fd_session *s)
{
	const struct fd_alarm *a = first_present(s);

	if (!fd_state_is_fault(s->state))
		return refuse(s, FD_EFORBIDDEN, "nothing to acknowledge: %s",
			      fd_state_name(s->state));
	if (!s->link_up)
		return ack_refused(s, LINK_DOWN_WHY, "ack", s->c.watchdog_ms);
	if (a)
		return ack_refused(s, "%s is still present: %s",
				   ilk_rows[a->id].name, a->message);
	if (!fd_session_vented(s))
		return ack_refused(s, "the chambers are not vented yet");
	if (device_latched(s)) {
		if (s->state == FD_FAULT_RESETTING)
			return ack_refused(
				s, "the device kept FAULT %u after RESET",
				(unsigned)s->r.fault);
		change(s, FD_EV_RESET);
		return FD_PENDING;
	}
	/* The operator has acknowledged the past: the interlocks' memory
	 * (readings kept for the rate, timers) starts afresh. */
	ilk_reset(&s->ilk, s->last_now);
	change(s, FD_EV_ACK);
	for (int i = 0; i < s->nalarm; i++) {
		struct fd_event_rec *e =
			event(s, FD_E_ALARM_ACK, "%s", s->alarm[i].message);
		e->alarm = s->alarm[i].id;
		e->chamber = s->alarm[i].chamber;
	}
	s->nalarm = 0;
	return FD_OK;
}

/*
 * What makes a command impossible for safety's sake, whatever the state
 * table would say: nothing reaches a device whose link is down, a device
 * in a fault takes only vent and ack, and one still venting before idle
 * takes no session.  Such a refusal is `interlock`, with what to do;
 * `forbidden` is for a command the state does not take (pause while
 * idle).  Returns the refusal, or FD_OK.
 */
static enum fd_verdict unsafe_now(struct fd_session *s, enum fd_cmd cmd)
{
	if (!s->link_up)
		return refuse(s, FD_EINTERLOCK, LINK_DOWN_WHY, fd_cmd_name(cmd),
			      s->c.watchdog_ms);
	if (fd_state_is_fault(s->state) && cmd != FD_CMD_VENT)
		return refuse(s, FD_EINTERLOCK,
			      "cannot %s: the device is in fault (%s); "
			      "acknowledge it (ack) once its cause is gone",
			      fd_cmd_name(cmd),
			      s->nalarm > 0 ? ilk_rows[s->alarm[0].id].name
					    : "no alarm");
	if (cmd == FD_CMD_START && s->state == FD_OFFLINE)
		return refuse(s, FD_EINTERLOCK,
			      "cannot start: the device is not ready (it is "
			      "vented before it is idle)");
	return FD_OK;
}

static enum fd_verdict start(struct fd_session *s,
			     const struct fascia_profile *p, const char *id)
{
	if (s->state != FD_IDLE || p == NULL)
		return refuse(s, FD_EFORBIDDEN,
			      "cannot start: the device is %s",
			      fd_state_name(s->state));
	if (s->r.fault != FASCIA_FAULT_NONE)
		return refuse(s, FD_EINTERLOCK,
			      "cannot start: device fault %u is latched",
			      (unsigned)s->r.fault);
	if (!(s->r.status & FASCIA_ST_GARMENT_CONNECTED))
		return refuse(s, FD_EINTERLOCK,
			      "cannot start: no garment connected");
	if (s->r.status & FASCIA_ST_ESTOP)
		return refuse(s, FD_EINTERLOCK,
			      "cannot start: the e-stop is pressed");
	if (p->chambers > s->c.chambers)
		return refuse(s, FD_EINTERLOCK,
			      "cannot start: the profile has %d chambers, the "
			      "device %d",
			      p->chambers, s->c.chambers);
	if (p->max_pressure_mmhg > s->c.limit_mmhg)
		return refuse(
			s, FD_EINTERLOCK,
			"cannot start: the profile's maximum %.1f mmHg is "
			"above the device limit %.1f mmHg",
			p->max_pressure_mmhg, s->c.limit_mmhg);
	s->profile = *p;
	s->have_profile = true;
	s->t = 0;
	memset(&s->pos, 0, sizeof(s->pos));
	s->session_seq++;
	snprintf(s->session_id, sizeof(s->session_id), "%s", id ? id : "");
	fd_dose_begin(&s->dose[s->session_seq & 1], s->session_seq,
		      s->c.chambers, s->last_now, s->r.pressure_mmhg);
	zero_setpoints(s);
	change(s, FD_EV_START);
	event(s, FD_E_SESSION, "started %s", p->name);
	return FD_OK;
}

static enum fd_verdict command(struct fd_session *s,
			       const struct fd_tick_in *in)
{
	static const enum fd_event map[] = {
		[FD_CMD_PAUSE] = FD_EV_PAUSE,
		[FD_CMD_RESUME] = FD_EV_RESUME,
		[FD_CMD_STOP] = FD_EV_STOP,
		[FD_CMD_VENT] = FD_EV_VENT,
	};
	static const char *const what[] = {
		[FD_CMD_PAUSE] = "paused",
		[FD_CMD_RESUME] = "resumed",
		[FD_CMD_STOP] = "stopped",
		[FD_CMD_VENT] = "vented by the operator",
	};
	bool had_session = in_session(s);
	enum fd_verdict v;

	/* ack has its own rules (ack()) */
	if (in->cmd != FD_CMD_NONE && in->cmd != FD_CMD_ACK &&
	    (v = unsafe_now(s, in->cmd)) != FD_OK)
		return v;
	switch (in->cmd) {
	case FD_CMD_NONE:
		return FD_OK;
	case FD_CMD_START:
		return start(s, in->profile, in->session_id);
	case FD_CMD_ACK:
		return ack(s);
	case FD_CMD_PAUSE:
	case FD_CMD_RESUME:
	case FD_CMD_STOP:
	case FD_CMD_VENT:
		if (change(s, map[in->cmd]) < 0)
			return refuse(
				s, FD_EFORBIDDEN, "cannot %s: the device is %s",
				fd_cmd_name(in->cmd), fd_state_name(s->state));
		if (in->cmd != FD_CMD_VENT || had_session)
			event(s, FD_E_SESSION, "%s", what[in->cmd]);
		return FD_OK;
	}
	return FD_EFORBIDDEN;
}

static bool released(const struct fd_session *s)
{
	for (int i = 0; i < s->c.chambers; i++)
		if (s->setpoint[i] > 0)
			return false;
	return true;
}

/* What a state does on every tick it lasts (enter() did the rest). */
static void progress(struct fd_session *s, double dt)
{
	static const double zero[FASCIA_MAX_CHAMBERS];
	double target[FASCIA_MAX_CHAMBERS];

	switch (s->state) {
	case FD_OFFLINE:
		if (s->link_up && fd_session_vented(s) && !device_latched(s))
			change(s, FD_EV_READY);
		break;
	case FD_RUNNING:
		s->t += dt;
		fascia_profile_targets(&s->profile, s->t, target, &s->pos);
		ramp_all(s, target, s->profile.max_ramp_mmhg_s, dt);
		if (s->pos.done && change(s, FD_EV_END) == 0)
			event(s, FD_E_SESSION, "completed");
		break;
	case FD_PAUSED:
		ramp_all(s, zero, release_rate(s), dt);
		break;
	case FD_RELEASING:
		ramp_all(s, zero, release_rate(s), dt);
		if (released(s) && fd_session_vented(s))
			change(s, FD_EV_RELEASED);
		break;
	case FD_VENTING:
		if (fd_session_vented(s))
			change(s, FD_EV_RELEASED);
		break;
	case FD_FAULT_RELEASING:
		/* A release reaction ramps down gently, then vents. */
		ramp_all(s, zero, release_rate(s), dt);
		if (released(s))
			change(s, FD_EV_RELEASED);
		break;
	case FD_IDLE:
	case FD_FAULT:
	case FD_FAULT_RESETTING:
	case FD_STATE_COUNT:
		break;
	}
}

bool fd_session_at_rest(enum fd_state st)
{
	return st == FD_IDLE || st == FD_OFFLINE || st == FD_FAULT ||
	       st == FD_FAULT_RESETTING;
}

enum fd_verdict fd_session_tick(struct fd_session *s,
				const struct fd_tick_in *in, bool *vent_now)
{
	double dt = in->now - s->last_now;
	struct fd_dose *dose;
	enum fd_verdict v;

	*vent_now = false;
	s->last_now = in->now;
	if (dt < 0)
		dt = 0;
	if (in->exchange_ok) {
		s->r = *in->r;
		s->have_r = true;
		if (!s->link_up) {
			s->link_up = true;
			ilk_reset(&s->ilk, in->now);
			event(s, FD_E_LINK, "up");
		}
	}
	/* The interval up to this reading, in the state it was spent in,
	 * with the setpoints written meanwhile. */
	dose = &s->dose[s->session_seq & 1];
	fd_dose_add(dose, s->state, in->now, s->r.pressure_mmhg, s->setpoint);
	/* Nothing to check on a link that never came up. */
	if (in->exchange_ok || s->link_up)
		interlocks(s, in, vent_now);
	/* The handshake is the ack's: without it, it is void. */
	if (s->state == FD_FAULT_RESETTING && in->cmd != FD_CMD_ACK)
		change(s, FD_EV_ACK_REFUSED);
	v = command(s, in);
	progress(s, dt);
	dose = &s->dose[s->session_seq & 1];
	if (dose->open && fd_session_at_rest(s->state))
		dose->open = false;
	return v;
}

void fd_session_block_w(struct fd_session *s, struct fascia_block_w *w)
{
	memset(w, 0, sizeof(*w));
	w->heartbeat = ++s->heartbeat;
	w->command = s->command;
	w->watchdog_ms = (uint16_t)s->c.watchdog_ms;
	w->limit_mmhg = s->c.limit_mmhg;
	w->pump = true;
	for (int i = 0; i < s->c.chambers; i++)
		w->setpoint_mmhg[i] = fmin(s->setpoint[i], s->c.limit_mmhg);
}

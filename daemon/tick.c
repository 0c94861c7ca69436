/*
 * A device's control thread.  It ticks on absolute CLOCK_MONOTONIC
 * deadlines: one exchange (link.c), then the session (interlocks, state,
 * setpoints: session.c), and a second exchange at once when an interlock
 * tripped, so that the VENT is the very next request the device receives.
 * Then it hands the tick's snapshot and events over (device.c).
 *
 * It never waits for the main thread and makes no call that blocks but
 * its own link's: no log, no disk.  Its news (a link up or down, the
 * FC16 fallback, a stop not confirmed vented) reaches the log through the
 * snapshot and the events, which the main thread reports.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "fasciad.h"

struct fd_ctl {
	struct fd_device *dev;
	struct fd_link link;
	struct fd_session s;
	struct fd_link_stats st;
	bool cmd_active; /* cmd taken, no verdict yet: fed to every tick */
	struct fd_command cmd;
	struct fd_outbox out;    /* held until the main thread can take it */
	uint64_t events_lost;    /* found out full */
	struct fd_snapshot told; /* the last one marked changed */
	bool told_any;
	double period_s;
	uint64_t tick;
	bool unthrottled; /* -B (benchmarks only): no deadlines */
	bool vented;      /* at the stop */
};

struct fd_ctl *fd_tick_new(struct fd_device *dev, const struct fd_conf *conf)
{
	struct fd_session_conf sc = {
		.chambers = dev->conf.chambers,
		.limit_mmhg = dev->conf.limit_mmhg,
		.watchdog_ms = dev->conf.watchdog_ms,
		.max_session_s = conf->max_session_s,
		.ilk = conf->ilk,
	};
	struct fd_ctl *c = xcalloc(1, sizeof(*c));

	c->dev = dev;
	c->unthrottled = conf->bench_unthrottled;
	c->period_s = 1.0 / conf->tick_hz;
	fd_link_init(&c->link, &dev->conf, c->period_s * 0.75);
	fd_session_init(&c->s, &sc, fd_clock_mono_s());
	return c;
}

void fd_tick_free(struct fd_ctl **c)
{
	if (*c == NULL)
		return;
	fd_link_free(&(*c)->link);
	free(*c);
	*c = NULL;
}

bool fd_tick_vented(const struct fd_ctl *c)
{
	return c->vented;
}

/* A change worth a state message at once: the state, the alarms, or why
 * the link fails (which the main thread logs once per reason). */
bool fd_tick_changed(const struct fd_snapshot *a, const struct fd_snapshot *b)
{
	if (a->state != b->state || a->nalarm != b->nalarm ||
	    strcmp(a->link.last_error, b->link.last_error) != 0)
		return true;
	for (int i = 0; i < a->nalarm; i++)
		if (a->alarm[i].id != b->alarm[i].id ||
		    a->alarm[i].chamber != b->alarm[i].chamber ||
		    a->alarm[i].present != b->alarm[i].present)
			return true;
	return false;
}

/* One exchange: the session's block W out, block R in.  0, or -1. */
static int exchange(struct fd_ctl *c, struct fascia_block_r *r)
{
	struct fascia_block_w w;

	fd_session_block_w(&c->s, &w);
	return fd_link_exchange(&c->link, &c->st, &w, c->s.c.chambers, r);
}

static void fill_snapshot(struct fd_ctl *c, double now)
{
	struct fd_snapshot *sn = &c->out.snap;
	const struct fd_session *s = &c->s;

	sn->tick = c->tick;
	sn->mono_s = now;
	sn->unix_ms = fd_clock_unix_ms();
	sn->state = s->state;
	sn->have_reading = s->have_r;
	sn->have_session = s->have_profile &&
			   (s->state == FD_RUNNING || s->state == FD_PAUSED ||
			    s->state == FD_RELEASING);
	sn->session_seq = s->session_seq;
	memcpy(sn->session_id, s->session_id, sizeof(sn->session_id));
	memcpy(sn->dose, s->dose, sizeof(sn->dose));
	if (s->have_profile) {
		memcpy(sn->profile, s->profile.name, sizeof(sn->profile));
		sn->pos = s->pos;
	}
	sn->chambers = s->c.chambers;
	for (int i = 0; i < s->c.chambers; i++) {
		sn->pressure[i] = s->r.pressure_mmhg[i];
		sn->setpoint[i] = s->setpoint[i];
		sn->valve[i] = s->r.valve[i];
	}
	sn->supply = s->r.supply_mmhg;
	sn->status = s->r.status;
	sn->fault = s->r.fault;
	sn->command = s->command;
	memcpy(sn->alarm, s->alarm, sizeof(sn->alarm));
	sn->nalarm = s->nalarm;
	sn->link = c->st;
	c->out.have_snap = true;
}

/* This tick's events into the outbox, each with this tick's context. */
static void queue_events(struct fd_ctl *c)
{
	const struct fd_snapshot *sn = &c->out.snap;

	for (int i = 0; i < c->s.nev; i++) {
		struct fd_event_rec *e;

		if (c->out.nev == FD_OUTBOX_EVENTS) {
			c->events_lost++;
			continue;
		}
		e = &c->out.ev[c->out.nev++];
		*e = c->s.ev[i];
		e->ctx.tick = sn->tick;
		e->ctx.unix_ms = sn->unix_ms;
		e->ctx.have_session = sn->have_session;
		e->ctx.session_seq = sn->session_seq;
		memcpy(e->ctx.session_id, sn->session_id,
		       sizeof(e->ctx.session_id));
		memcpy(e->ctx.profile, sn->profile, sizeof(e->ctx.profile));
		e->ctx.pos = sn->pos;
	}
	c->s.nev = 0;
	/* what could not be queued, here or in the session: the snapshot
	 * always goes over, so the count does */
	c->out.snap.events_lost = c->events_lost + c->s.ev_lost;
	if (!c->told_any || fd_tick_changed(&c->told, &c->out.snap)) {
		c->told = c->out.snap;
		c->told_any = true;
		c->out.changed = true;
	}
}

/* The tick: the exchange, the session with the command being applied
 * (fed again every tick until it has its verdict), the reaction's second
 * exchange, then the snapshot and the events. */
static void tick(struct fd_ctl *c, double now, bool late)
{
	struct fascia_block_r r;
	struct fd_tick_in in = {.now = now, .late = late, .r = &r};
	enum fd_verdict v;
	bool vent_now;

	if (c->cmd_active) {
		in.cmd = c->cmd.cmd;
		in.profile = &c->cmd.profile;
		in.session_id = c->cmd.session_id;
	}
	fd_link_connect(&c->link, &c->st, now);
	in.exchange_ok = exchange(c, &r) == 0;
	v = fd_session_tick(&c->s, &in, &vent_now);
	if (vent_now)
		exchange(c, &r);
	if (in.cmd != FD_CMD_NONE && v != FD_PENDING) {
		struct fd_verdict_rec *vr = &c->out.verdict;

		vr->cmd = c->cmd.cmd;
		vr->token = c->cmd.token;
		vr->verdict = v;
		snprintf(vr->why, sizeof(vr->why), "%s",
			 v == FD_OK ? "" : c->s.why);
		c->out.have_verdict = true;
		c->cmd_active = false;
	}
	fill_snapshot(c, now);
	queue_events(c);
}

/* One command at a time: the next is taken once this one's verdict is
 * handed over. */
static void take_command(struct fd_ctl *c)
{
	if (!c->cmd_active && !c->out.have_verdict &&
	    fd_device_take_command(c->dev, &c->cmd))
		c->cmd_active = true;
}

static void prepare_thread(void)
{
	volatile char stack[64 * 1024];

	/* Touch the stack a tick will use: no first-touch fault later. */
	for (size_t i = 0; i < sizeof(stack); i += 4096)
		stack[i] = 0;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
}

static void timespec_add(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

static double ts_s(const struct timespec *t)
{
	return (double)t->tv_sec + t->tv_nsec / 1e9;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* The measurement hooks: lateness into the histogram, and the drift of
 * the deadline from first + n * period, in whole nanoseconds (the
 * deadlines are sums of an integer period, so it stays 0). */
static void count_late(struct fd_ctl *c, double late_s, int64_t first_ns,
		       const struct timespec *deadline, long period_ns)
{
	uint64_t us = late_s > 0 ? (uint64_t)(late_s * 1e6) : 0;
	uint64_t n = c->st.ticks + c->st.skipped; /* this tick's index */

	c->st.late_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	c->st.late_hist[fd_late_bucket(us)]++;
	c->st.drift_ns = ts_ns(deadline) - (first_ns + (int64_t)n * period_ns);
}

/* Safe shutdown: VENT every tick until vented or the time is up. */
static void shutdown_vent(struct fd_ctl *c, double timeout_s)
{
	double end = fd_clock_mono_s() + timeout_s;
	struct fascia_block_r r;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	c->s.command = FASCIA_CMD_VENT;
	memset(c->s.setpoint, 0, sizeof(c->s.setpoint));
	c->vented = false;
	while (!c->vented && fd_clock_mono_s() < end) {
		fd_link_connect(&c->link, &c->st, fd_clock_mono_s());
		if (exchange(c, &r) == 0) {
			c->vented = true;
			for (int i = 0; i < c->s.c.chambers; i++)
				if (r.pressure_mmhg[i] >= FASCIA_VENTED_MMHG)
					c->vented = false;
		}
		timespec_add(&next, (long)(c->period_s * 1e9));
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
}

/* Wait for the next deadline and count how late this tick begins.
 * Returns whether it is late (over half a period). */
static bool wait_deadline(struct fd_ctl *c, struct timespec *deadline,
			  long period_ns, int64_t first_ns, double *now)
{
	double late_s;

	if (c->tick > 0)
		timespec_add(deadline, period_ns);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline,
			       NULL) == EINTR)
		;
	*now = fd_clock_mono_s();
	late_s = *now - ts_s(deadline);
	if (late_s > c->period_s / 2)
		c->st.late_ticks++;
	c->st.max_late_ms = fmax(c->st.max_late_ms, late_s * 1000);
	count_late(c, late_s, first_ns, deadline, period_ns);
	/* Far behind: skip whole periods, keeping the phase. */
	while (late_s > c->period_s) {
		timespec_add(deadline, period_ns);
		c->st.skipped++;
		late_s -= c->period_s;
	}
	return late_s > c->period_s / 2;
}

/* One turn of the thread: a command in, the tick, the news out.  Returns
 * whether a stop was asked. */
static bool turn(struct fd_ctl *c, double now, bool late)
{
	c->tick++;
	c->st.ticks++;
	take_command(c);
	tick(c, now, late);
	return fd_device_post(c->dev, &c->out);
}

void *fd_tick_thread(void *arg)
{
	struct fd_ctl *c = arg;
	struct timespec deadline;
	long period_ns = (long)(c->period_s * 1e9);
	int64_t first_ns;
	double timeout_s;

	prepare_thread();
	c->st.unthrottled = c->unthrottled;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	timespec_add(&deadline, period_ns);
	first_ns = ts_ns(&deadline);
	for (;;) {
		double now;
		bool late = false;

		if (c->unthrottled) {
			/* -B, benchmarks only: the next tick at once. */
			now = fd_clock_mono_s();
		} else {
			late = wait_deadline(c, &deadline, period_ns, first_ns,
					     &now);
		}
		if (turn(c, now, late))
			break;
	}
	/* Written before the stop, under the lock fd_device_post() took. */
	timeout_s = c->dev->stop_timeout_s;
	shutdown_vent(c, timeout_s);
	return NULL;
}

/*
 * One control thread per device link.  It owns its modbus_t and ticks on
 * absolute CLOCK_MONOTONIC deadlines: one exchange (FC23, or FC16 + FC03
 * for a device without FC23), then the session (interlocks, state,
 * setpoints), and a second exchange at once when an interlock tripped, so
 * that the VENT is the very next request the device receives.
 *
 * It never waits for the main thread: commands and news cross under a
 * mutex that this side only trylocks, and an eventfd wakes the main loop.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <modbus.h>

#include "fasciad.h"

#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 2.0
#define FAILS_TO_RECONNECT 3
#define THREAD_STACK (256 * 1024)

/* The link, owned by the control thread. */
struct link {
	modbus_t *mb;
	bool connected;
	bool ever_connected;
	bool fc23;
	int fails; /* consecutive failed exchanges */
	double next_attempt_s;
	double backoff_s;
	double timeout_s; /* response timeout: 3/4 of a tick */
};

/* What the thread holds until it can hand it over. */
struct pending_out {
	struct fd_event_rec ev[FD_OUTBOX_EVENTS];
	int nev;
	uint64_t dropped;
	bool have_verdict;
	struct fd_command cmd; /* the command being applied */
	bool active;
	bool changed; /* the snapshot's state or alarms changed */
};

struct ctl {
	struct fd_device *dev;
	struct link link;
	struct fd_session s;
	struct fd_link_stats st;
	struct pending_out out;
	struct fd_snapshot snap;
	struct fd_snapshot told; /* the last one marked changed */
	bool told_any;
	double period_s;
	uint64_t tick;
	bool unthrottled; /* -B (benchmarks only): no deadlines */
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the link ---- */

static void link_error(struct ctl *c, const char *what)
{
	snprintf(c->st.last_error, sizeof(c->st.last_error), "%s: %s", what,
		 modbus_strerror(errno));
}

static void link_close(struct ctl *c, double now)
{
	struct link *l = &c->link;

	if (l->connected)
		modbus_close(l->mb);
	if (c->st.up)
		log_warnx("device %s: link down (%s)", c->dev->conf.name,
			  c->st.last_error);
	l->connected = false;
	c->st.up = false;
	l->next_attempt_s = now + l->backoff_s;
	l->backoff_s = fmin(l->backoff_s * 2, BACKOFF_MAX_S);
}

static modbus_t *link_new(const struct fd_device_conf *d, double timeout_s)
{
	modbus_t *mb;
	uint32_t sec = (uint32_t)timeout_s;
	uint32_t usec = (uint32_t)((timeout_s - sec) * 1e6);

	if (d->transport == TRANSPORT_TCP) {
		char port[16];

		snprintf(port, sizeof(port), "%d", d->port);
		mb = modbus_new_tcp_pi(d->host, port);
	} else {
		mb = modbus_new_rtu(d->path, d->baud, d->parity, 8, 1);
	}
	if (mb == NULL)
		return NULL;
	modbus_set_slave(mb, d->unit);
	/* Recovery is ours: libmodbus's would sleep in the tick. */
	modbus_set_error_recovery(mb, MODBUS_ERROR_RECOVERY_NONE);
	modbus_set_response_timeout(mb, sec, usec);
	modbus_set_byte_timeout(mb, sec, usec);
	return mb;
}

static void link_connect(struct ctl *c, double now)
{
	struct link *l = &c->link;
	const struct fd_device_conf *d = &c->dev->conf;

	if (l->connected || now < l->next_attempt_s)
		return;
	if (l->mb == NULL && (l->mb = link_new(d, l->timeout_s)) == NULL) {
		link_error(c, "cannot create the Modbus context");
		link_close(c, now);
		return;
	}
	if (modbus_connect(l->mb) == -1) {
		link_error(c, "connect");
		modbus_close(l->mb);
		link_close(c, now);
		return;
	}
	if (l->ever_connected)
		c->st.reconnects++;
	l->ever_connected = true;
	l->connected = true;
	l->fails = 0;
	l->fc23 = true;
	log_debug("device %s: connected", d->name);
}

static void count_rtt(struct fd_link_stats *st, double rtt_s)
{
	uint32_t us = (uint32_t)(rtt_s * 1e6);
	int b = 0;

	st->rtt_us = us;
	while (b < FD_RTT_BUCKETS - 1 && us >= (64u << b))
		b++;
	st->rtt_hist[b]++;
}

static int transfer(struct link *l, const uint16_t *w, uint16_t *r)
{
	int rc;

	if (l->fc23)
		return modbus_write_and_read_registers(
			l->mb, FASCIA_BLOCK_W_ADDR, FASCIA_BLOCK_W_LEN, w,
			FASCIA_BLOCK_R_ADDR, FASCIA_BLOCK_R_LEN, r);
	rc = modbus_write_registers(l->mb, FASCIA_BLOCK_W_ADDR,
				    FASCIA_BLOCK_W_LEN, w);
	if (rc != FASCIA_BLOCK_W_LEN)
		return -1;
	return modbus_read_registers(l->mb, FASCIA_BLOCK_R_ADDR,
				     FASCIA_BLOCK_R_LEN, r);
}

/* One exchange: the session's block W out, block R in.  0, or -1. */
static int exchange(struct ctl *c, struct fascia_block_r *r)
{
	struct link *l = &c->link;
	struct fascia_block_w w;
	uint16_t wr[FASCIA_BLOCK_W_LEN], rd[FASCIA_BLOCK_R_LEN];
	double t0, now;
	int rc;

	fd_session_block_w(&c->s, &w);
	if (!l->connected)
		return -1;
	if (fascia_block_w_pack(&w, wr) == -1) {
		/* The session never asks for this: vent rather than guess. */
		memset(wr, 0, sizeof(wr));
		wr[FASCIA_REG_HEARTBEAT] = w.heartbeat;
		wr[FASCIA_REG_COMMAND] = FASCIA_CMD_VENT;
		wr[FASCIA_REG_WATCHDOG_MS] = w.watchdog_ms;
		fascia_mmhg_to_reg(c->dev->conf.limit_mmhg,
				   &wr[FASCIA_REG_LIMIT]);
		wr[FASCIA_REG_PUMP] = 1;
	}
	t0 = mono_s();
	rc = transfer(l, wr, rd);
	if (rc == -1 && errno == EMBXILFUN && l->fc23) {
		log_info("device %s: no FC23; using FC16 + FC03",
			 c->dev->conf.name);
		l->fc23 = false;
		rc = transfer(l, wr, rd);
	}
	now = mono_s();
	c->st.fc23 = l->fc23;
	if (rc == FASCIA_BLOCK_R_LEN && fascia_block_r_unpack(rd, r) == 0 &&
	    r->chambers >= c->s.c.chambers) {
		count_rtt(&c->st, now - t0);
		c->st.t_read_us = (uint64_t)(now * 1e6);
		c->st.exchanges++;
		l->fails = 0;
		/* Only a good exchange resets the backoff: a device that
		 * accepts and drops every connection is not hammered. */
		l->backoff_s = BACKOFF_MIN_S;
		if (!c->st.up)
			log_info("device %s: link up", c->dev->conf.name);
		c->st.up = true;
		return 0;
	}
	if (rc == FASCIA_BLOCK_R_LEN) {
		c->st.errors++;
		snprintf(c->st.last_error, sizeof(c->st.last_error),
			 "block R refused: %s",
			 errno >= FASCIA_ENOBASE ? fascia_strerror(errno)
						 : "fewer chambers than "
						   "configured");
	} else {
		if (errno == ETIMEDOUT)
			c->st.timeouts++;
		else if (errno >= EMBXILFUN && errno <= EMBXGTAR)
			c->st.exceptions++;
		else
			c->st.errors++;
		link_error(c, "exchange");
		modbus_flush(l->mb);
	}
	if (++l->fails >= FAILS_TO_RECONNECT || errno == ECONNRESET ||
	    errno == EPIPE || errno == EBADF || errno == ENOTCONN)
		link_close(c, now);
	return -1;
}

/* ---- the hand-over ---- */

static void take_command(struct ctl *c)
{
	struct fd_device *dev = c->dev;

	if (c->out.active || pthread_mutex_trylock(&dev->lock) != 0)
		return;
	if (dev->cmd_pending) {
		c->out.cmd = dev->cmd;
		c->out.active = true;
		dev->cmd_pending = false;
		dev->cmd_active = true;
	}
	pthread_mutex_unlock(&dev->lock);
}

static void fill_snapshot(struct ctl *c, double now)
{
	struct fd_snapshot *sn = &c->snap;
	struct fd_session *s = &c->s;
	double target[FASCIA_MAX_CHAMBERS];

	sn->tick = c->tick;
	sn->mono_s = now;
	sn->unix_ms = unix_ms();
	sn->state = s->state;
	sn->have_session = s->have_profile &&
			   (s->state == FD_RUNNING || s->state == FD_PAUSED ||
			    s->state == FD_RELEASING);
	sn->session_seq = s->session_seq;
	if (s->have_profile) {
		memcpy(sn->profile, s->profile.name, sizeof(sn->profile));
		fascia_profile_targets(&s->profile, s->t, target, &sn->pos);
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
}

static void queue_events(struct ctl *c)
{
	for (int i = 0; i < c->s.nev; i++) {
		if (c->out.nev == FD_OUTBOX_EVENTS) {
			c->out.dropped++;
			continue;
		}
		c->out.ev[c->out.nev++] = c->s.ev[i];
	}
	c->out.dropped += (uint64_t)c->s.ev_dropped;
	c->s.nev = 0;
	c->s.ev_dropped = 0;
}

/* Hand the snapshot and the news over if the main thread is not holding
 * the lock; else keep them for the next tick.  The main thread is woken
 * only for news: events, a verdict, a change of state or alarms (it
 * peeks at the snapshot when it needs it).  Returns whether the stop was
 * asked. */
static bool hand_over(struct ctl *c)
{
	struct fd_device *dev = c->dev;
	uint64_t one = 1;
	bool stop, news;

	if (!c->told_any || fd_snap_changed(&c->told, &c->snap)) {
		c->told = c->snap;
		c->told_any = true;
		c->out.changed = true;
	}
	if (pthread_mutex_trylock(&dev->lock) != 0)
		return false;
	dev->snap = c->snap;
	dev->have_snap = true;
	dev->snap_changed |= c->out.changed;
	c->out.changed = false;
	for (int i = 0; i < c->out.nev; i++) {
		if (dev->nevents == FD_OUTBOX_EVENTS)
			dev->events_dropped++;
		else
			dev->events[dev->nevents++] = c->out.ev[i];
	}
	dev->events_dropped += c->out.dropped;
	c->out.nev = 0;
	c->out.dropped = 0;
	if (c->out.have_verdict) {
		dev->cmd = c->out.cmd;
		dev->verdict_ready = true;
		c->out.have_verdict = false;
		c->out.active = false;
	}
	stop = dev->stop;
	news = dev->snap_changed || dev->nevents > 0 ||
	       dev->events_dropped > 0 || dev->verdict_ready;
	pthread_mutex_unlock(&dev->lock);
	/* A failed write means the counter is already non-zero: the main
	 * loop will look anyway. */
	if (news)
		(void)!write(dev->wake_fd, &one, sizeof(one));
	return stop;
}

/* ---- the tick ---- */

static void tick(struct ctl *c, double now, bool late)
{
	struct fascia_block_r r;
	struct fd_tick_in in = {.now = now, .late = late, .r = &r};
	enum fd_verdict v;
	bool vent_now;

	if (c->out.active && !c->out.have_verdict) {
		in.cmd = c->out.cmd.cmd;
		in.profile = &c->out.cmd.profile;
	}
	link_connect(c, now);
	in.exchange_ok = exchange(c, &r) == 0;
	v = fd_session_tick(&c->s, &in, &vent_now);
	if (vent_now)
		exchange(c, &r);
	if (in.cmd != FD_CMD_NONE && v != FD_PENDING) {
		c->out.cmd.verdict = v;
		snprintf(c->out.cmd.why, sizeof(c->out.cmd.why), "%s",
			 v == FD_OK ? "" : c->s.why);
		c->out.have_verdict = true;
	}
	queue_events(c);
	fill_snapshot(c, now);
}

static void realtime(struct fd_device *dev)
{
	struct sched_param sp = {.sched_priority = 20};
	volatile char stack[64 * 1024];
	int err;

	/* Touch the stack a tick will use: no first-touch fault later. */
	for (size_t i = 0; i < sizeof(stack); i += 4096)
		stack[i] = 0;

	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (err)
		log_info("device %s: no real-time priority (%s); ticking at "
			 "normal priority",
			 dev->conf.name, strerror(err));
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
static void count_late(struct ctl *c, double late_s, int64_t first_ns,
		       const struct timespec *deadline, long period_ns)
{
	uint64_t us = late_s > 0 ? (uint64_t)(late_s * 1e6) : 0;
	uint64_t n = c->st.ticks - 1 + c->st.skipped;

	c->st.late_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	c->st.late_hist[fd_late_bucket(us)]++;
	c->st.drift_ns = ts_ns(deadline) - (first_ns + (int64_t)n * period_ns);
}

/* Safe shutdown: VENT every tick until vented or the time is up. */
static void shutdown_vent(struct ctl *c, double timeout_s)
{
	double end = mono_s() + timeout_s;
	struct fascia_block_r r;
	struct timespec next;
	bool vented = false;

	clock_gettime(CLOCK_MONOTONIC, &next);
	c->s.command = FASCIA_CMD_VENT;
	memset(c->s.setpoint, 0, sizeof(c->s.setpoint));
	while (!vented && mono_s() < end) {
		link_connect(c, mono_s());
		if (exchange(c, &r) == 0) {
			vented = true;
			for (int i = 0; i < c->s.c.chambers; i++)
				if (r.pressure_mmhg[i] >= FASCIA_VENTED_MMHG)
					vented = false;
		}
		timespec_add(&next, (long)(c->period_s * 1e9));
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	pthread_mutex_lock(&c->dev->lock);
	c->dev->vented_at_stop = vented;
	pthread_mutex_unlock(&c->dev->lock);
	log_info("device %s: %s", c->dev->conf.name,
		 vented ? "vented" : "NOT confirmed vented at shutdown");
}

static void *control_thread(void *arg)
{
	struct ctl *c = arg;
	struct timespec deadline;
	long period_ns = (long)(c->period_s * 1e9);
	double timeout_s;

	int64_t first_ns;

	realtime(c->dev);
	c->st.unthrottled = c->unthrottled;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	timespec_add(&deadline, period_ns);
	first_ns = ts_ns(&deadline);
	for (;;) {
		double now, late_s;

		if (c->unthrottled) {
			/* -B, benchmarks only: the next tick at once. */
			now = mono_s();
			late_s = 0;
			c->tick++;
			c->st.ticks++;
			take_command(c);
			tick(c, now, false);
			if (hand_over(c))
				break;
			continue;
		}
		if (c->tick > 0)
			timespec_add(&deadline, period_ns);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
				       &deadline, NULL) == EINTR)
			;
		now = mono_s();
		late_s = now - ts_s(&deadline);
		c->tick++;
		c->st.ticks++;
		if (late_s > c->period_s / 2)
			c->st.late_ticks++;
		c->st.max_late_ms = fmax(c->st.max_late_ms, late_s * 1000);
		count_late(c, late_s, first_ns, &deadline, period_ns);
		/* Far behind: skip whole periods, keeping the phase. */
		while (late_s > c->period_s) {
			timespec_add(&deadline, period_ns);
			c->st.skipped++;
			late_s -= c->period_s;
		}
		take_command(c);
		tick(c, now, late_s > c->period_s / 2);
		if (hand_over(c))
			break;
	}
	pthread_mutex_lock(&c->dev->lock);
	timeout_s = c->dev->stop_timeout_s;
	pthread_mutex_unlock(&c->dev->lock);
	shutdown_vent(c, timeout_s);
	if (c->link.mb) {
		modbus_close(c->link.mb);
		modbus_free(c->link.mb);
	}
	free(c);
	return NULL;
}

/* ---- the main thread's side ---- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	static struct fd_outbox out; /* large; the main thread is one */
	struct fd_device *dev = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) != sizeof(n) && errno != EAGAIN)
		log_warn("device %s: eventfd", dev->conf.name);
	fd_device_drain(dev, &out);
	fd_server_device_news(dev->daemon, dev, &out);
}

int fd_device_start(struct fd_device *dev)
{
	const struct fd_conf *conf = &dev->daemon->conf;
	struct fd_session_conf sc = {
		.chambers = dev->conf.chambers,
		.limit_mmhg = dev->conf.limit_mmhg,
		.watchdog_ms = dev->conf.watchdog_ms,
		.tick_s = 1.0 / conf->tick_hz,
		.max_session_s = conf->max_session_s,
		.ilk = conf->ilk,
	};
	struct ctl *c = xcalloc(1, sizeof(*c));
	pthread_attr_t attr;
	int err;

	c->dev = dev;
	c->unthrottled = conf->bench_unthrottled;
	c->period_s = 1.0 / conf->tick_hz;
	c->link.timeout_s = c->period_s * 0.75;
	c->link.backoff_s = BACKOFF_MIN_S;
	fd_session_init(&c->s, &sc, mono_s());
	pthread_mutex_init(&dev->lock, NULL);
	dev->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dev->wake_fd == -1)
		fatal("eventfd");
	dev->wake_ev = event_new(dev->daemon->base, dev->wake_fd,
				 EV_READ | EV_PERSIST, wake_cb, dev);
	if (dev->wake_ev == NULL || event_add(dev->wake_ev, NULL) == -1)
		fatalx("device %s: cannot watch its eventfd", dev->conf.name);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	err = pthread_create(&dev->thread, &attr, control_thread, c);
	pthread_attr_destroy(&attr);
	if (err) {
		errno = err;
		log_warn("device %s: cannot start its control thread",
			 dev->conf.name);
		free(c);
		return -1;
	}
	dev->started = true;
	return 0;
}

void fd_device_request_stop(struct fd_device *dev, double timeout_s)
{
	if (!dev->started)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->stop = true;
	dev->stop_timeout_s = timeout_s;
	pthread_mutex_unlock(&dev->lock);
}

void fd_device_stop(struct fd_device *dev, double timeout_s)
{
	struct timespec until;

	if (!dev->started)
		return;
	fd_device_request_stop(dev, timeout_s);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)timeout_s + 1;
	if (pthread_timedjoin_np(dev->thread, NULL, &until) != 0) {
		log_warnx("device %s: control thread did not stop; leaving it "
			  "to the device watchdog",
			  dev->conf.name);
		return;
	}
	dev->started = false;
	event_free(dev->wake_ev);
	dev->wake_ev = NULL;
	close(dev->wake_fd);
	pthread_mutex_destroy(&dev->lock);
}

int fd_device_submit(struct fd_device *dev, const struct fd_command *c)
{
	int rc = -1;

	pthread_mutex_lock(&dev->lock);
	if (!dev->cmd_pending && !dev->cmd_active && !dev->stop) {
		dev->cmd = *c;
		dev->cmd_pending = true;
		rc = 0;
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap)
{
	bool have;

	pthread_mutex_lock(&dev->lock);
	have = dev->have_snap;
	if (have)
		*snap = dev->snap;
	pthread_mutex_unlock(&dev->lock);
	return have;
}

void fd_device_drain(struct fd_device *dev, struct fd_outbox *out)
{
	pthread_mutex_lock(&dev->lock);
	out->changed = dev->snap_changed;
	dev->snap_changed = false;
	out->nevents = dev->nevents;
	memcpy(out->events, dev->events,
	       (size_t)dev->nevents * sizeof(dev->events[0]));
	dev->nevents = 0;
	out->events_dropped = dev->events_dropped;
	out->have_verdict = dev->verdict_ready;
	if (dev->verdict_ready) {
		out->cmd = dev->cmd;
		dev->verdict_ready = false;
		dev->cmd_active = false;
	}
	pthread_mutex_unlock(&dev->lock);
}

/*
 * A device's control thread without the thread: the real tick glue
 * (daemon/tick.c: the exchange, the session, the reaction's second
 * exchange, the hand-over) and the real mailbox (daemon/device.c), run one
 * turn at a time against the simulator's model through a fake link, with
 * a fake clock.  The main thread's side is the test: it submits commands
 * and takes the news, as the wake-up callback does.  Used by
 * tests/unit/session.c and tests/unit/tick.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemon/device.c"
#include "../../daemon/dose.c"
#include "../../daemon/interlock.c"
#include "../../daemon/session.c"
#include "../../daemon/state.c"
#include "../../daemon/tick.c"
#include "../../sim/model.c"

#define STUBS_KEEP_DEVICE /* device.c is the real one */
#include "../daemon_stubs.h"

#define TICK_US 20000ull

struct rig {
	struct sim_model m;
	struct fd_daemon *d;
	struct fd_device *dev;
	struct fd_ctl *c;
	struct fd_session *s;   /* the control thread's */
	struct fd_outbox *news; /* what the last turn handed over */
	bool link_down;         /* exchanges fail */
	int exchanges;          /* in the last turn */
	bool vent_now;          /* the last turn wrote a second time, at once */
	bool waiting;           /* a command awaits its verdict */
	bool woken;             /* the last turn woke the main thread */
	bool late;              /* the next turn begins late */
	/* What the device "reads" beyond the model: a change to block R
	 * after each exchange (NULL: none). */
	void (*tamper)(struct rig *, const struct fascia_block_w *,
		       struct fascia_block_r *);
	uint16_t written[4]; /* COMMAND of the last turn's exchanges */
	int events[FD_E_LINK + 1];
	char last_event[ILK_MESSAGE_MAX];
	double max_seen; /* highest true pressure in a session */
};

static struct rig *the_rig; /* the fake link's */
/* What rig_init_device() allocated, for the teardown (a test's rig is on
 * its stack, gone by then). */
static struct {
	struct fd_daemon *d;
	struct fd_ctl *c;
	struct fd_outbox *news;
} rig_mem;

/* ---- the fake link: an FC23 with the model ---- */

void fd_link_init(struct fd_link *l, const struct fd_device_conf *conf,
		  double timeout_s)
{
	memset(l, 0, sizeof(*l));
	l->conf = conf;
	l->timeout_s = timeout_s;
}

void fd_link_connect(struct fd_link *l, struct fd_link_stats *st, double now)
{
	(void)now;
	l->connected = !the_rig->link_down;
	st->up = l->connected && st->up;
}

int fd_link_exchange(struct fd_link *l, struct fd_link_stats *st,
		     const struct fascia_block_w *w, int chambers,
		     struct fascia_block_r *r)
{
	struct rig *g = the_rig;
	uint16_t regs[FASCIA_BLOCK_W_LEN], rd[FASCIA_BLOCK_R_LEN];

	(void)l;
	if (g->exchanges < 4)
		g->written[g->exchanges] = w->command;
	g->exchanges++;
	if (g->link_down) {
		st->timeouts++;
		st->up = false;
		snprintf(st->last_error, sizeof(st->last_error), "timed out");
		return -1;
	}
	assert_int_equal(fascia_block_w_pack(w, regs), 0);
	assert_int_equal(sim_model_write(&g->m, 0, FASCIA_BLOCK_W_LEN, regs),
			 0);
	assert_int_equal(sim_model_read(&g->m, FASCIA_BLOCK_R_ADDR,
					FASCIA_BLOCK_R_LEN, rd),
			 0);
	sim_model_note_exchange(&g->m, true);
	assert_int_equal(fascia_block_r_unpack(rd, r), 0);
	assert_true(r->chambers >= chambers);
	if (g->tamper != NULL)
		g->tamper(g, w, r);
	st->exchanges++;
	st->up = true;
	return 0;
}

void fd_link_free(struct fd_link *l)
{
	(void)l;
}

/* ---- the main thread's consumers: the test looks at the news ---- */

void fd_publish_news(struct fd_daemon *d, struct fd_device *dev,
		     const struct fd_outbox *news)
{
	(void)d;
	(void)dev;
	(void)news;
}

void fd_commands_news(struct fd_daemon *d, struct fd_device *dev,
		      const struct fd_outbox *news)
{
	(void)d;
	(void)dev;
	(void)news;
}

void fd_record_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news)
{
	(void)d;
	(void)dev;
	(void)news;
}

void fd_notify_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news)
{
	(void)d;
	(void)dev;
	(void)news;
}

void fd_record_daemon(struct fd_daemon *d, const char *event, const char *fmt,
		      ...)
{
	(void)d;
	(void)event;
	(void)fmt;
}

/* ---- the rig ---- */

static double rig_now_s(const struct rig *g)
{
	(void)g;
	return (double)stub_mono_us / 1e6;
}

/* A device of chambers chambers at limit mmHg, its control thread's
 * state made as fd_device_start() makes it, without the thread. */
static void rig_init_device(struct rig *g, int chambers, double limit)
{
	struct sim_params p;

	memset(g, 0, sizeof(*g));
	the_rig = g;
	sim_params_default(&p);
	p.chambers = chambers;
	stub_mono_us = 1000000000; /* 1000 s: room for timers set in the past */
	sim_model_init(&g->m, &p, stub_mono_us);
	g->d = xcalloc(1, sizeof(*g->d));
	g->news = xcalloc(1, sizeof(*g->news));
	g->d->conf.tick_hz = 50;
	g->d->conf.max_session_s = 3600;
	ilk_config_default(&g->d->conf.ilk);
	g->d->ndev = 1;
	g->dev = g->d->dev = xcalloc(1, sizeof(*g->dev));
	g->dev->daemon = g->d;
	snprintf(g->dev->conf.name, sizeof(g->dev->conf.name), "rig");
	g->dev->conf.chambers = chambers;
	g->dev->conf.limit_mmhg = limit;
	g->dev->conf.watchdog_ms = 500;
	pthread_mutex_init(&g->dev->lock, NULL);
	g->dev->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(g->dev->wake_fd >= 0);
	g->c = fd_tick_new(g->dev, &g->d->conf);
	g->s = &g->c->s;
	rig_mem.d = g->d;
	rig_mem.c = g->c;
	rig_mem.news = g->news;
}

/* cmocka's teardown of a test that made a rig. */
static int rig_teardown(void **state)
{
	(void)state;
	if (rig_mem.d == NULL)
		return 0;
	fd_tick_free(&rig_mem.c);
	close(rig_mem.d->dev->wake_fd);
	pthread_mutex_destroy(&rig_mem.d->dev->lock);
	free(rig_mem.d->dev);
	free(rig_mem.news);
	free(rig_mem.d);
	memset(&rig_mem, 0, sizeof(rig_mem));
	the_rig = NULL;
	return 0;
}

/* The profile the tests run: chamber 1 to 30 mmHg over 3 s, chamber 2 to
 * 20, then down; 27 s in all. */
static const char *profile_json =
	"{\"name\":\"t\",\"description\":\"test\",\"chambers\":2,"
	"\"max_pressure_mmhg\":40,\"max_ramp_mmhg_s\":10,"
	"\"repeat\":1,\"steps\":["
	"{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":2},"
	"{\"set\":{\"2\":20},\"ramp_s\":2,\"hold_s\":2},"
	"{\"set\":{\"all\":0},\"ramp_s\":3,\"hold_s\":1}]}";
static struct fascia_profile profile;

/* The usual rig: a 4-chamber device at 60 mmHg, and the profile. */
static void rig_init(struct rig *g)
{
	struct fascia_profile_limits lim = {4, 60, 3600};
	struct fascia_profile_error err;

	rig_init_device(g, 4, 60);
	if (fascia_profile_parse(profile_json, strlen(profile_json), &lim,
				 &profile, &err))
		fail_msg("profile: %s: %s", err.field, err.message);
}

/* The main thread's wake-up: was it woken, and what did it take. */
static void rig_take(struct rig *g)
{
	uint64_t n = 0;

	g->woken = read(g->dev->wake_fd, &n, sizeof(n)) == sizeof(n);
	fd_device_take(g->dev, g->news);
	for (int i = 0; i < g->news->nev; i++) {
		g->events[g->news->ev[i].kind]++;
		memcpy(g->last_event, g->news->ev[i].text,
		       sizeof(g->last_event));
	}
}

/* One turn of the control thread, TICK_US after the last; the main
 * thread then takes the news. */
static void rig_turn(struct rig *g)
{
	stub_mono_us += TICK_US;
	sim_model_advance(&g->m, stub_mono_us);
	g->exchanges = 0;
	turn(g->c, rig_now_s(g), g->late);
	g->vent_now = g->exchanges == 2;
	rig_take(g);
	if (g->s->state == FD_RUNNING || g->s->state == FD_RELEASING)
		for (int i = 0; i < g->m.p.chambers; i++)
			g->max_seen = fmax(g->max_seen, g->m.ch[i].pressure);
}

/* A turn with an operator's command: submitted as the main thread does
 * (unless the last one still waits for its verdict), then the turn.  The
 * verdict, or FD_PENDING while the command is fed again next turn. */
static enum fd_verdict rig_command(struct rig *g, enum fd_cmd cmd,
				   const struct fascia_profile *p)
{
	struct fd_command *c = xcalloc(1, sizeof(*c));

	if (!g->waiting && cmd != FD_CMD_NONE) {
		c->cmd = cmd;
		c->token = ++g->d->next_token;
		if (p != NULL)
			c->profile = *p;
		assert_int_equal(fd_device_submit(g->dev, c), 0);
	}
	free(c);
	rig_turn(g);
	g->waiting = cmd != FD_CMD_NONE && !g->news->have_verdict;
	if (!g->news->have_verdict)
		return cmd == FD_CMD_NONE ? FD_OK : FD_PENDING;
	assert_int_equal(g->news->verdict.token, g->d->next_token);
	return g->news->verdict.verdict;
}

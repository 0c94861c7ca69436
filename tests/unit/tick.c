/*
 * The control thread's glue (daemon/tick.c, daemon/device.c), one turn at
 * a time with a fake link (tick_rig.h): every alarm of one tick reaches
 * the main thread; events keep the context of their own tick when they
 * are handed over late; the main thread is woken for news only; a command
 * waiting for the lock is taken at the next turn and fed to every tick
 * until its verdict; what cannot be handed over is counted, not dropped
 * silently; what makes a snapshot news.
 */
#include "tick_rig.h"

/* Idle, then 3 s into a session: chamber 1 well up. */
static void running(struct rig *g)
{
	rig_init(g);
	for (int i = 0; i < 200 && g->s->state != FD_IDLE; i++)
		rig_turn(g);
	assert_int_equal(g->s->state, FD_IDLE);
	assert_int_equal(rig_command(g, FD_CMD_START, &profile), FD_OK);
	for (int i = 0; i < 150; i++)
		rig_turn(g);
	assert_int_equal(g->s->state, FD_RUNNING);
}

/* Every cause at once in one reading: all but comms, which a reading
 * rules out (it trips only when there is none). */
static void everything(struct rig *g, const struct fascia_block_w *w,
		       struct fascia_block_r *r)
{
	(void)g;
	r->pressure_mmhg[0] = 75; /* over, off, rising, held above 30 */
	r->status |=
		FASCIA_ST_ESTOP | FASCIA_ST_SENSOR_FAULT | FASCIA_ST_PUMP_FAULT;
	r->status &= (uint16_t)~FASCIA_ST_GARMENT_CONNECTED;
	r->sample = 77;                                   /* frozen */
	r->heartbeat_echo = (uint16_t)(w->heartbeat - 5); /* ignored */
}

static bool alarm_in(const struct fd_outbox *n, enum ilk_id id)
{
	for (int i = 0; i < n->nev; i++)
		if (n->ev[i].kind == FD_E_ALARM && n->ev[i].alarm == id)
			return true;
	return false;
}

/* The burst: every interlock that can trip together trips in one tick,
 * and every alarm reaches the main thread, with the change to fault; the
 * acknowledgement of all of them in one tick as well. */
static void test_every_alarm_of_one_tick(void **state)
{
	struct rig g;
	struct ilk_state *ilk;
	double now;
	int alarms = 0, acks = 0;
	enum fd_verdict v = FD_PENDING;

	(void)state;
	running(&g);
	ilk = &g.s->ilk;
	now = rig_now_s(&g) + TICK_US / 1e6; /* the next turn's */
	ilk->deviation_since[0] = now - 3;
	ilk->hold_since[0] = now - 200;
	ilk->last_sample = 77;
	ilk->sample_changed_s = now - 1;
	ilk->late_ticks = 2;
	g.s->t = 10000; /* past the profile's length + 10 % */
	g.late = true;
	g.tamper = everything;
	rig_turn(&g);
	g.tamper = NULL;
	g.late = false;

	for (int id = 0; id < ILK_COUNT; id++) {
		if (id == ILK_COMMS) {
			assert_false(alarm_in(g.news, id));
			continue;
		}
		if (!alarm_in(g.news, id))
			fail_msg("no alarm event for %s", ilk_rows[id].name);
		alarms++;
	}
	assert_int_equal(alarms, ILK_COUNT - 1);
	assert_int_equal(g.events[FD_E_ALARM], ILK_COUNT - 1);
	assert_int_equal(g.s->nalarm, ILK_COUNT - 1);
	assert_true(g.events[FD_E_STATE] >= 1);
	assert_int_equal(g.news->snap.state, FD_FAULT);
	assert_int_equal(g.news->snap.events_lost, 0);
	assert_true(g.news->nev <= FD_TICK_EVENTS);
	assert_true(g.vent_now);

	/* The causes gone and the chambers vented: one ack clears them all,
	 * every acknowledgement in one tick. */
	for (int i = 0; i < 100; i++)
		rig_turn(&g);
	memset(g.events, 0, sizeof(g.events));
	for (int i = 0; i < 5 && v == FD_PENDING; i++) {
		v = rig_command(&g, FD_CMD_ACK, NULL);
		for (int k = 0; k < g.news->nev; k++)
			acks += g.news->ev[k].kind == FD_E_ALARM_ACK;
	}
	assert_int_equal(v, FD_OK);
	assert_int_equal(acks, ILK_COUNT - 1);
	assert_int_equal(g.s->state, FD_IDLE);
	assert_int_equal(g.news->snap.events_lost, 0);
}

/* The main thread holds the lock through the tick an alarm is raised
 * in: the news stays with the control thread and goes over at the next
 * turn, with that turn's snapshot; each event still says the tick it
 * happened in (its context is its own, not the later snapshot's). */
static void test_events_keep_their_tick(void **state)
{
	struct rig g;
	struct sim_fault f = {
		.kind = SIM_FAULT_OVERPRESSURE, .chamber = 1, .mmhg = 50};
	uint64_t raised;
	int64_t raised_ms;

	(void)state;
	running(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	pthread_mutex_lock(&g.dev->lock); /* the main thread is busy */
	stub_mono_us += TICK_US;
	stub_unix_ms += TICK_US / 1000;
	sim_model_advance(&g.m, stub_mono_us);
	turn(g.c, rig_now_s(&g), false);
	pthread_mutex_unlock(&g.dev->lock);
	raised = g.c->tick;
	raised_ms = stub_unix_ms;
	assert_int_equal(g.s->state, FD_FAULT);
	assert_true(g.c->out.nev > 0);              /* kept, not lost */
	assert_true(g.dev->box.snap.tick < raised); /* not handed over */

	stub_unix_ms += TICK_US / 1000;
	rig_turn(&g);
	assert_true(g.woken);
	assert_int_equal(g.news->snap.tick, raised + 1);
	assert_true(alarm_in(g.news, ILK_OVERPRESSURE));
	for (int i = 0; i < g.news->nev; i++) {
		assert_int_equal(g.news->ev[i].ctx.tick, raised);
		assert_int_equal(g.news->ev[i].ctx.unix_ms, raised_ms);
	}
	assert_int_equal(g.c->out.nev, 0);
	assert_int_equal(g.news->snap.events_lost, 0);
}

/* The main thread is woken for news only: not by a quiet tick. */
static void test_woken_for_news_only(void **state)
{
	struct rig g;

	(void)state;
	running(&g);
	rig_turn(&g);
	assert_false(g.woken);
	assert_int_equal(g.news->nev, 0);
	assert_false(g.news->changed);
	/* but the snapshot went over all the same, for status and the
	 * publish timer to peek at */
	assert_true(g.dev->box.have_snap);
	assert_int_equal(g.dev->box.snap.tick, g.c->tick);
	assert_int_equal(rig_command(&g, FD_CMD_PAUSE, NULL), FD_OK);
	assert_true(g.woken);
	assert_true(g.news->changed);
}

/* A command submitted while the lock is busy is taken at the next free
 * turn; the ack's RESET handshake feeds it to two ticks, and the device
 * takes no second command meanwhile. */
static void test_command_fed_until_verdict(void **state)
{
	struct rig g;
	struct fd_command *c = xcalloc(1, sizeof(*c));
	struct sim_fault f = {.kind = SIM_FAULT_ESTOP, .chamber = -1};

	(void)state;
	running(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	rig_turn(&g);
	assert_int_equal(g.s->state, FD_FAULT);
	assert_int_equal(sim_model_clear(&g.m, SIM_FAULT_ESTOP, -1), 0);
	for (int i = 0; i < 50; i++)
		rig_turn(&g);
	assert_int_equal(g.m.fault, FASCIA_FAULT_ESTOP); /* latched */

	c->cmd = FD_CMD_ACK;
	c->token = ++g.d->next_token;
	assert_int_equal(fd_device_submit(g.dev, c), 0);
	/* a second command while one waits: refused by the mailbox */
	assert_int_equal(fd_device_submit(g.dev, c), -1);
	pthread_mutex_lock(&g.dev->lock);
	turn(g.c, rig_now_s(&g) + 0.02, false);
	pthread_mutex_unlock(&g.dev->lock);
	assert_false(g.c->cmd_active); /* not taken: the lock was busy */
	g.waiting = true;
	assert_int_equal(rig_command(&g, FD_CMD_ACK, NULL), FD_PENDING);
	assert_int_equal(g.s->state, FD_FAULT_RESETTING);
	assert_int_equal(g.written[0], FASCIA_CMD_VENT);
	assert_int_equal(fd_device_submit(g.dev, c), -1);
	/* the next tick writes the RESET and reads the device after it */
	assert_int_equal(rig_command(&g, FD_CMD_ACK, NULL), FD_OK);
	assert_int_equal(g.written[0], FASCIA_CMD_RESET);
	assert_int_equal(g.s->state, FD_IDLE);
	assert_int_equal(g.news->verdict.cmd, FD_CMD_ACK);
	assert_int_equal(g.news->snap.state, FD_IDLE);
	/* the verdict taken, the mailbox takes the next command */
	c->cmd = FD_CMD_VENT;
	c->token = ++g.d->next_token;
	assert_int_equal(fd_device_submit(g.dev, c), 0);
	free(c);
}

/* More news than the outbox holds while the main thread does not take
 * it: the excess is counted in the snapshot, which always goes over. */
static void test_lost_events_counted(void **state)
{
	struct rig g;

	(void)state;
	running(&g);
	pthread_mutex_lock(&g.dev->lock);
	for (int k = 0; k < FD_OUTBOX_EVENTS / 4 + 2; k++) {
		g.s->nev = 5;
		for (int i = 0; i < 5; i++)
			g.s->ev[i].kind = FD_E_SESSION;
		queue_events(g.c);
	}
	pthread_mutex_unlock(&g.dev->lock);
	assert_int_equal(g.c->out.nev, FD_OUTBOX_EVENTS);
	assert_int_equal(g.c->events_lost,
			 5 * (FD_OUTBOX_EVENTS / 4 + 2) - FD_OUTBOX_EVENTS);
	rig_turn(&g);
	assert_int_equal(g.news->snap.events_lost, g.c->events_lost);
	assert_int_equal(g.news->nev, FD_OUTBOX_EVENTS);
}

/* The control thread logs nothing (a log call can block: syslog, a full
 * pipe): a link lost and back, a trip, an ack, a session — no log call
 * from the turns. */
static void test_control_thread_never_logs(void **state)
{
	struct rig g;
	enum fd_verdict v = FD_PENDING;

	(void)state;
	running(&g);
	stub_logs = 0;
	g.link_down = true;
	for (int i = 0; i < 10; i++)
		rig_turn(&g);
	assert_int_equal(g.s->state, FD_FAULT);
	g.link_down = false;
	for (int i = 0; i < 60; i++)
		rig_turn(&g);
	for (int i = 0; i < 5 && v == FD_PENDING; i++)
		v = rig_command(&g, FD_CMD_ACK, NULL);
	assert_int_equal(v, FD_OK);
	assert_int_equal(rig_command(&g, FD_CMD_START, &profile), FD_OK);
	assert_true(g.events[FD_E_LINK] >= 2);
	assert_int_equal(stub_logs, 0);
}

/* What makes a state message news (the control thread asks, to decide
 * whether to wake the main thread): the state and the alarms, not the
 * readings that change every tick. */
static void test_changed(void **state)
{
	struct fd_snapshot *a = xcalloc(2, sizeof(*a)), *b = a + 1;

	(void)state;
	a->state = FD_RUNNING;
	a->nalarm = 1;
	a->alarm[0].id = ILK_DEVIATION;
	a->alarm[0].present = true;
	*b = *a;
	assert_false(fd_tick_changed(a, b));
	b->pressure[0] += 1;
	b->link.ticks++;
	assert_false(fd_tick_changed(a, b));
	b->state = FD_FAULT;
	assert_true(fd_tick_changed(a, b));
	*b = *a;
	b->alarm[0].present = !a->alarm[0].present;
	assert_true(fd_tick_changed(a, b));
	*b = *a;
	b->nalarm--;
	assert_true(fd_tick_changed(a, b));
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_every_alarm_of_one_tick,
					  rig_teardown),
		cmocka_unit_test_teardown(test_events_keep_their_tick,
					  rig_teardown),
		cmocka_unit_test_teardown(test_woken_for_news_only,
					  rig_teardown),
		cmocka_unit_test_teardown(test_command_fed_until_verdict,
					  rig_teardown),
		cmocka_unit_test_teardown(test_lost_events_counted,
					  rig_teardown),
		cmocka_unit_test_teardown(test_control_thread_never_logs,
					  rig_teardown),
		cmocka_unit_test(test_changed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

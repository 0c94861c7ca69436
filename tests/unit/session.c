/*
 * A device's session against the simulator's model, through the control
 * thread's own tick glue (tick_rig.h: a fake link, a fake clock, no
 * sockets, no thread).  Safe start, a profile run to its end,
 * pause/resume/stop, trips answered in the next exchange, acknowledgement
 * rules, link loss, and a tick that raises every alarm at once.
 */
#include "tick_rig.h"

/* One control-thread turn, with an operator's command. */
static enum fd_verdict tick_cmd(struct rig *g, enum fd_cmd cmd)
{
	return rig_command(g, cmd, cmd == FD_CMD_START ? &profile : NULL);
}

static void step(struct rig *g)
{
	assert_int_equal(tick_cmd(g, FD_CMD_NONE), FD_OK);
}

/* Ticks until the state is st; fails past limit_s. */
static double until_state(struct rig *g, enum fd_state st, double limit_s)
{
	double t = 0;

	while (g->s->state != st) {
		if (t > limit_s)
			fail_msg("still %s after %.1f s, waiting for %s",
				 fd_state_name(g->s->state), t,
				 fd_state_name(st));
		step(g);
		t += TICK_US / 1e6;
	}
	return t;
}

static void ready(struct rig *g)
{
	until_state(g, FD_IDLE, 2);
}

static void running(struct rig *g)
{
	ready(g);
	assert_int_equal(tick_cmd(g, FD_CMD_START), FD_OK);
	assert_int_equal(g->s->state, FD_RUNNING);
}

/* Safe start: a device found under pressure is vented before idle. */
static void test_safe_start(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	g.m.ch[0].pressure = g.m.ch[0].reading = 30;
	step(&g);
	assert_int_equal(g.s->state, FD_OFFLINE);
	assert_int_equal(g.m.command, FASCIA_CMD_VENT);
	until_state(&g, FD_IDLE, 2);
	assert_true(g.m.ch[0].pressure < FASCIA_VENTED_MMHG);
	assert_int_equal(g.events[FD_E_LINK], 1);
	step(&g);
	/* Idle, the device is held vented. */
	assert_int_equal(g.m.command, FASCIA_CMD_VENT);
}

/* A profile runs to its end: the chambers follow the setpoints, never
 * above the profile's maximum, then release and go idle. */
static void test_profile_runs(void **state)
{
	struct rig g;
	double worst = 0, t;

	(void)state;
	rig_init(&g);
	running(&g);
	for (t = 0; g.s->state == FD_RUNNING && t < 30; t += 0.02) {
		step(&g);
		/* after the device has caught up with a ramp */
		if (t > 1)
			for (int i = 0; i < 2; i++)
				worst = fmax(worst, fabs(g.m.ch[i].pressure -
							 g.s->setpoint[i]));
	}
	assert_int_equal(g.s->state, FD_RELEASING);
	assert_true(t > fascia_profile_duration_s(&profile) - 0.1);
	assert_true(worst < 3.0);
	assert_true(g.max_seen <= 40.5);
	assert_true(g.max_seen >= 29);
	until_state(&g, FD_IDLE, 5);
	assert_string_equal(fd_state_name(g.s->state), "idle");
	assert_int_equal(g.m.fault, 0);
	assert_int_equal(g.events[FD_E_ALARM], 0);
}

static void test_pause_resume_stop(void **state)
{
	struct rig g;
	double t_paused;
	uint64_t vents;

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 150; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_PAUSE), FD_OK);
	assert_int_equal(g.s->state, FD_PAUSED);
	t_paused = g.s->t;
	for (int i = 0; i < 300; i++)
		step(&g);
	/* Pressure released, the profile clock frozen. */
	assert_true(g.m.ch[0].pressure < 2);
	assert_true(g.s->t == t_paused);
	assert_int_equal(tick_cmd(&g, FD_CMD_PAUSE), FD_EFORBIDDEN);
	assert_int_equal(tick_cmd(&g, FD_CMD_RESUME), FD_OK);
	for (int i = 0; i < 150; i++)
		step(&g);
	assert_true(g.s->t > t_paused);
	assert_true(g.m.ch[0].pressure > 15);
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_EFORBIDDEN);
	assert_int_equal(tick_cmd(&g, FD_CMD_STOP), FD_OK);
	assert_int_equal(g.s->state, FD_RELEASING);
	/* Soft stop: no faster than the release rate. */
	step(&g);
	vents = g.m.vent_writes;
	until_state(&g, FD_IDLE, 10);
	assert_int_equal(g.m.vent_writes, vents);
	assert_int_equal(tick_cmd(&g, FD_CMD_RESUME), FD_EFORBIDDEN);
}

/* The dose: a pause's time is paused, not delivered; the release after a
 * stop still counts in the pressure's integral, and the dose closes once
 * the device is idle.  Each tick is TICK_US; the counts are exact. */
static void test_dose_excludes_pause(void **state)
{
	struct rig g;
	const struct fd_dose *ds;
	double integral_at_stop;

	(void)state;
	rig_init(&g);
	running(&g);
	ds = &g.s->dose[g.s->session_seq & 1];
	assert_true(ds->open);
	assert_int_equal(ds->session_seq, g.s->session_seq);
	for (int i = 0; i < 150; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_PAUSE), FD_OK);
	for (int i = 0; i < 300; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_RESUME), FD_OK);
	for (int i = 0; i < 100; i++)
		step(&g);
	/* running: the start's tick to the pause's, and the resume's on */
	assert_float_equal(ds->delivered_s, (150 + 1 + 100) * TICK_US / 1e6,
			   1e-9);
	assert_float_equal(ds->paused_s, 301 * TICK_US / 1e6, 1e-9);
	assert_true(ds->mmhg_s[0] > 0);
	assert_true(ds->max_mmhg[0] > 15);
	assert_true(fd_dose_mean(ds, 0) > 0);
	assert_int_equal(tick_cmd(&g, FD_CMD_STOP), FD_OK);
	integral_at_stop = ds->mmhg_s[0];
	until_state(&g, FD_IDLE, 10);
	assert_false(ds->open);
	assert_true(ds->mmhg_s[0] > integral_at_stop);
	/* closed: idle ticks add nothing */
	integral_at_stop = ds->mmhg_s[0];
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_float_equal(ds->mmhg_s[0], integral_at_stop, 0);
	/* and the interval before the stop's tick, spent running */
	assert_float_equal(ds->delivered_s, (150 + 1 + 100 + 1) * TICK_US / 1e6,
			   1e-9);
}

/* The e-stop: the VENT reaches the device in the exchange after the one
 * that read the cause; ack is refused while it is pressed, and accepted
 * (with a RESET of the device) once released and vented. */
static void test_estop_trip_and_ack(void **state)
{
	struct rig g;
	struct sim_fault f = {.kind = SIM_FAULT_ESTOP, .chamber = -1};
	const struct sim_record *rec;

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 100; i++)
		step(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	step(&g);
	assert_true(g.vent_now);
	assert_int_equal(g.s->state, FD_FAULT);
	assert_int_equal(g.s->nalarm, 1);
	assert_int_equal(g.s->alarm[0].id, ILK_ESTOP);
	rec = sim_model_record_at(&g.m, 0);
	assert_true(rec->done);
	assert_int_equal(rec->exchanges, 1);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_EINTERLOCK);
	assert_non_null(strstr(g.s->why, "estop"));
	/* in a fault only vent and ack: a start is an interlock refusal,
	 * saying what to do */
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_EINTERLOCK);
	assert_string_equal(g.s->why,
			    "cannot start: the device is in fault (estop); "
			    "acknowledge it (ack) once its cause is gone");
	assert_int_equal(tick_cmd(&g, FD_CMD_STOP), FD_EINTERLOCK);
	assert_int_equal(sim_model_clear(&g.m, SIM_FAULT_ESTOP, -1), 0);
	for (int i = 0; i < 50; i++)
		step(&g);
	/* The device keeps FAULT 3 latched: the ack resets it first. */
	assert_int_equal(g.m.fault, FASCIA_FAULT_ESTOP);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_PENDING);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_OK);
	assert_int_equal(g.s->state, FD_IDLE);
	assert_int_equal(g.m.fault, FASCIA_FAULT_NONE);
	assert_int_equal(g.s->nalarm, 0);
	assert_int_equal(g.events[FD_E_ALARM_ACK], 1);
	/* A fresh session then runs. */
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_OK);
}

/* An overpressure surge above the profile's maximum + 5 mmHg. */
static void test_overpressure_trip(void **state)
{
	struct rig g;
	struct sim_fault f = {
		.kind = SIM_FAULT_OVERPRESSURE, .chamber = 1, .mmhg = 50};

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	sim_model_advance(&g.m, stub_mono_us + 1000);
	step(&g);
	assert_int_equal(g.s->state, FD_FAULT);
	assert_int_equal(g.s->alarm[0].id, ILK_OVERPRESSURE);
	assert_int_equal(g.s->alarm[0].chamber, 2);
	assert_int_equal(sim_model_record_at(&g.m, 0)->exchanges, 1);
	assert_int_equal(g.m.command, FASCIA_CMD_VENT);
	/* The surge holds 50 mmHg: the cause stays present after the trip. */
	for (int i = 0; i < 10; i++)
		step(&g);
	assert_true(g.s->alarm[0].present);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_EINTERLOCK);
	assert_non_null(strstr(g.s->why, "overpressure is still present"));
	sim_model_clear(&g.m, SIM_FAULT_OVERPRESSURE, -1);
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_OK);
}

/* Link loss: three failed exchanges make a comms fault, and no command
 * is accepted while it lasts; the session does not resume by itself when
 * the link comes back. */
static void test_link_loss(void **state)
{
	static const enum fd_cmd cmds[] = {FD_CMD_VENT, FD_CMD_STOP,
					   FD_CMD_PAUSE, FD_CMD_ACK};
	struct rig g;
	char want[160];

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 50; i++)
		step(&g);
	g.link_down = true;
	step(&g);
	step(&g);
	assert_int_equal(g.s->state, FD_RUNNING);
	step(&g);
	assert_int_equal(g.s->state, FD_FAULT);
	assert_false(g.s->link_up);
	assert_int_equal(g.s->alarm[0].id, ILK_COMMS);
	/* No command reaches the device, so none is accepted — not even a
	 * vent, which would tell the operator a garment was vented that
	 * nobody could reach; the refusal says the device's watchdog vents
	 * it. */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(tick_cmd(&g, cmds[i]), FD_EINTERLOCK);
		snprintf(want, sizeof(want),
			 "cannot %s: the link to the device is down and "
			 "nothing reaches it; the device's own watchdog vents "
			 "it 500 ms after the last exchange",
			 fd_cmd_name(cmds[i]));
		assert_string_equal(g.s->why, want);
	}
	/* The firmware watchdog vents the device meanwhile. */
	for (int i = 0; i < 40; i++)
		step(&g);
	assert_int_equal(g.m.fault, FASCIA_FAULT_WATCHDOG);
	g.link_down = false;
	step(&g);
	assert_true(g.s->link_up);
	assert_int_equal(g.s->state, FD_FAULT);
	assert_int_equal(g.m.command, FASCIA_CMD_VENT);
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_PENDING);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_OK);
	assert_int_equal(g.s->state, FD_IDLE);
}

/* No session without a garment, or with a latched device fault. */
static void test_start_refused(void **state)
{
	struct rig g;
	struct sim_fault f = {.kind = SIM_FAULT_GARMENT_OFF, .chamber = -1};

	(void)state;
	rig_init(&g);
	/* offline: not vented yet, no session */
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_EINTERLOCK);
	assert_non_null(strstr(g.s->why, "not ready"));
	ready(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_PAUSE), FD_EFORBIDDEN);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_EFORBIDDEN);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	step(&g);
	assert_int_equal(g.s->state, FD_FAULT); /* the garment interlock */
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_EINTERLOCK);
	sim_model_clear(&g.m, SIM_FAULT_GARMENT_OFF, -1);
	step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_OK);
	/* A profile for more chambers than the device has. */
	profile.chambers = 8;
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_EINTERLOCK);
	assert_non_null(strstr(g.s->why, "8 chambers"));
	profile.chambers = 2;
	assert_int_equal(tick_cmd(&g, FD_CMD_START), FD_OK);
}

/* A hose blocked while inflated: the release cannot empty the chamber;
 * the deviation row faults it instead of releasing for ever. */
static void test_blocked_hose_at_release(void **state)
{
	struct rig g;
	struct sim_fault f = {.kind = SIM_FAULT_BLOCKED, .chamber = 0};
	double t;

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 200; i++) /* chamber 1 well up */
		step(&g);
	assert_true(g.m.ch[0].pressure > 20);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	assert_int_equal(tick_cmd(&g, FD_CMD_STOP), FD_OK);
	t = until_state(&g, FD_FAULT, 10);
	assert_int_equal(g.s->alarm[0].id, ILK_DEVIATION);
	assert_true(t > 2 && t < 8);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_EINTERLOCK);
	sim_model_clear(&g.m, SIM_FAULT_BLOCKED, -1);
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_OK);
}

/* A sensor stuck low: the firmware inflates on it for ever; the daemon
 * sees the reading frozen while the valve inflates, and vents. */
static void test_stuck_sensor_vented(void **state)
{
	struct rig g;
	struct sim_fault f = {.kind = SIM_FAULT_SENSOR,
			      .chamber = 0,
			      .sensor_mode = SIM_SENSOR_STUCK,
			      .value = 12};
	double peak = 0;

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 100; i++)
		step(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	for (int i = 0; i < 150 && g.s->state != FD_FAULT; i++) {
		step(&g);
		peak = fmax(peak, g.m.ch[0].pressure);
	}
	assert_int_equal(g.s->state, FD_FAULT);
	assert_int_equal(g.s->alarm[0].id, ILK_STALE);
	assert_int_equal(g.s->alarm[0].chamber, 1);
	/* within ~1 s of frozen readings at ~20 mmHg/s, under the ceiling */
	assert_true(peak < 60);
}

/* A sensor reading 20 mmHg low: the firmware keeps the chamber 20 mmHg
 * above what it shows, which no one can see mid-session (docs/safety.md).
 * Once the session ends and the device is held vented, the reading goes
 * below 0 and the sensor row trips. */
static void test_sensor_offset_found_after_release(void **state)
{
	struct rig g;
	struct sim_fault f = {.kind = SIM_FAULT_SENSOR,
			      .chamber = 0,
			      .sensor_mode = SIM_SENSOR_OFFSET,
			      .value = -20};

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 100; i++)
		step(&g);
	assert_int_equal(sim_model_inject(&g.m, &f), 0);
	assert_int_equal(tick_cmd(&g, FD_CMD_STOP), FD_OK);
	until_state(&g, FD_FAULT, 15);
	assert_int_equal(g.s->alarm[0].id, ILK_SENSOR);
	for (int i = 0; i < 50; i++)
		step(&g);
	assert_true(g.m.ch[0].pressure < FASCIA_VENTED_MMHG);
	assert_int_equal(tick_cmd(&g, FD_CMD_ACK), FD_EINTERLOCK);
}

/* The operator's vent, from a session. */
static void test_operator_vent(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running(&g);
	for (int i = 0; i < 100; i++)
		step(&g);
	assert_int_equal(tick_cmd(&g, FD_CMD_VENT), FD_OK);
	assert_int_equal(g.s->state, FD_VENTING);
	step(&g); /* written in the next exchange */
	assert_int_equal(g.m.command, FASCIA_CMD_VENT);
	until_state(&g, FD_IDLE, 2);
	assert_int_equal(g.events[FD_E_ALARM], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_safe_start, rig_teardown),
		cmocka_unit_test_teardown(test_profile_runs, rig_teardown),
		cmocka_unit_test_teardown(test_pause_resume_stop, rig_teardown),
		cmocka_unit_test_teardown(test_dose_excludes_pause,
					  rig_teardown),
		cmocka_unit_test_teardown(test_estop_trip_and_ack,
					  rig_teardown),
		cmocka_unit_test_teardown(test_overpressure_trip, rig_teardown),
		cmocka_unit_test_teardown(test_link_loss, rig_teardown),
		cmocka_unit_test_teardown(test_start_refused, rig_teardown),
		cmocka_unit_test_teardown(test_operator_vent, rig_teardown),
		cmocka_unit_test_teardown(test_blocked_hose_at_release,
					  rig_teardown),
		cmocka_unit_test_teardown(test_stuck_sensor_vented,
					  rig_teardown),
		cmocka_unit_test_teardown(
			test_sensor_offset_found_after_release, rig_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

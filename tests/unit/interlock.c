/*
 * Each interlock of the table with a fake clock: it trips on its cause,
 * does not trip just short of its threshold, says whether the cause is
 * still present (which refuses an acknowledgement), and says exactly what
 * it measured against what threshold, and for how long.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../daemon/interlock.c"

#define TICK 0.02

struct rig {
	struct ilk_config c;
	struct ilk_state s;
	struct fascia_block_r r;
	struct ilk_input in;
	double sp[FASCIA_MAX_CHAMBERS];
	struct ilk_trip trips[ILK_COUNT];
	int n;
	unsigned present;
	bool freeze_sample;
};

static void rig_init(struct rig *g)
{
	memset(g, 0, sizeof(*g));
	ilk_config_default(&g->c);
	ilk_reset(&g->s, 0);
	g->r.map_version = FASCIA_MAP_VERSION;
	g->r.chambers = 4;
	g->r.status = FASCIA_ST_READY | FASCIA_ST_GARMENT_CONNECTED;
	g->in.chambers = 4;
	g->in.r = &g->r;
	g->in.setpoint = g->sp;
	g->in.exchange_ok = true;
	g->in.max_pressure = 45;
	g->in.max_ramp = 10;
	g->in.device_limit = 80;
}

/* A session running, every chamber at p and set to p, the interlocks'
 * memory fresh (no rise from the previous reading). */
static void running_at(struct rig *g, double p)
{
	g->in.running = g->in.in_session = true;
	for (int i = 0; i < 4; i++)
		g->r.pressure_mmhg[i] = g->sp[i] = p;
	ilk_reset(&g->s, g->in.now_s);
}

/* One tick: the device answered (HEARTBEAT echoed, SAMPLE moved on). */
static int tick(struct rig *g)
{
	g->in.now_s += TICK;
	g->in.heartbeat++;
	g->r.heartbeat_echo = g->in.heartbeat;
	if (!g->freeze_sample)
		g->r.sample += 20;
	g->n = ilk_check(&g->c, &g->s, &g->in, g->trips, ILK_COUNT,
			 &g->present);
	return g->n;
}

/* Within one more tick (the clock is in floating point). */
static void tick_until_trip(struct rig *g)
{
	if (tick(g) == 0)
		tick(g);
}

static void ticks(struct rig *g, double seconds)
{
	for (double t = 0; t < seconds - 1e-9; t += TICK) {
		tick(g);
		if (g->n)
			fail_msg("unexpected trip %s: %s",
				 ilk_rows[g->trips[0].id].name,
				 g->trips[0].message);
	}
}

/* Every chamber to p at 20 mmHg/s, without a trip. */
static void ramp_to(struct rig *g, double p)
{
	while (fabs(g->sp[0] - p) > 1e-9) {
		double step = copysign(fmin(fabs(p - g->sp[0]), 20 * TICK),
				       p - g->sp[0]);

		for (int c = 0; c < 4; c++)
			g->r.pressure_mmhg[c] = g->sp[c] += step;
		ticks(g, TICK);
	}
}

static void assert_trip(struct rig *g, enum ilk_id id, int chamber)
{
	for (int i = 0; i < g->n; i++)
		if (g->trips[i].id == id) {
			assert_int_equal(g->trips[i].chamber, chamber);
			assert_true(strlen(g->trips[i].message) > 0);
			return;
		}
	fail_msg("%s did not trip (%d trips)", ilk_rows[id].name, g->n);
}

/* The trip of id says exactly want: the measured value, the threshold
 * and, for a row with a time, how long (docs/safety.md). */
static void assert_says(struct rig *g, enum ilk_id id, const char *want)
{
	for (int i = 0; i < g->n; i++)
		if (g->trips[i].id == id) {
			assert_string_equal(g->trips[i].message, want);
			return;
		}
	fail_msg("%s did not trip", ilk_rows[id].name);
}

static void test_quiet(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	ticks(&g, 5);
	running_at(&g, 40);
	ticks(&g, 5);
	assert_int_equal(g.present, 0);
}

static void test_overpressure(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 49.9); /* max 45 + 5 */
	ticks(&g, 0.1);
	g.r.pressure_mmhg[2] = 50.1;
	tick(&g);
	assert_trip(&g, ILK_OVERPRESSURE, 3);
	assert_says(&g, ILK_OVERPRESSURE,
		    "50.1 mmHg is above the 50.0 mmHg ceiling");
	assert_true(g.present & (1u << ILK_OVERPRESSURE));
	/* Idle, the device limit counts instead of the profile's. */
	rig_init(&g);
	g.r.pressure_mmhg[0] = 84.9;
	ilk_reset(&g.s, 0);
	ticks(&g, 0.1);
	g.r.pressure_mmhg[0] = 85.1;
	tick(&g);
	assert_trip(&g, ILK_OVERPRESSURE, 1);
	assert_says(&g, ILK_OVERPRESSURE,
		    "85.1 mmHg is above the 85.0 mmHg ceiling");
	g.r.pressure_mmhg[0] = 2;
	tick(&g);
	assert_false(g.present & (1u << ILK_OVERPRESSURE));
}

static void test_deviation(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 40);
	g.r.pressure_mmhg[1] = 25.5; /* 14.5 away: fine for ever */
	ticks(&g, 5);
	g.r.pressure_mmhg[1] = 24.5; /* 15.5 away: trips after 2 s */
	ticks(&g, 2.0);
	tick_until_trip(&g);
	assert_trip(&g, ILK_DEVIATION, 2);
	/* the deviation, not the pressure, against its threshold */
	assert_says(&g, ILK_DEVIATION,
		    "24.5 mmHg, 15.5 mmHg off its setpoint 40.0 for 2.0 s "
		    "(limits 15 mmHg, 2.0 s)");
	/* Paused, a deviation is expected. */
	rig_init(&g);
	running_at(&g, 40);
	g.in.running = false;
	g.r.pressure_mmhg[1] = 0;
	ticks(&g, 5);
}

/* Out of a running session, a chamber that does not come down (a blocked
 * hose while releasing) trips too, and stays present while it stays up. */
static void test_deviation_not_coming_down(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 14.5);
	g.in.running = false; /* releasing: the setpoint went to 0 */
	for (int c = 0; c < 4; c++)
		g.sp[c] = 0;
	ticks(&g, 4.5); /* within 15 mmHg: not before the 5 s to vent */
	rig_init(&g);
	running_at(&g, 25);
	g.in.running = false;
	for (int c = 0; c < 4; c++)
		g.sp[c] = 0;
	ticks(&g, 2.0);
	tick_until_trip(&g);
	assert_trip(&g, ILK_DEVIATION, 1);
	assert_says(&g, ILK_DEVIATION,
		    "25.0 mmHg, 25.0 mmHg off its setpoint 0.0 for 2.0 s "
		    "(limits 15 mmHg, 2.0 s)");
	assert_true(g.present & (1u << ILK_DEVIATION));
	g.r.pressure_mmhg[0] = 3; /* one chamber down, three still up */
	tick(&g);
	assert_true(g.present & (1u << ILK_DEVIATION));
	for (int c = 0; c < 4; c++)
		g.r.pressure_mmhg[c] = 3;
	tick(&g);
	assert_false(g.present & (1u << ILK_DEVIATION));
	/* Stuck at 12 mmHg, below the threshold, told to vent: 5 s. */
	rig_init(&g);
	running_at(&g, 12);
	g.in.running = false;
	for (int c = 0; c < 4; c++)
		g.sp[c] = 0;
	g.r.pressure_mmhg[1] = g.r.pressure_mmhg[2] = 0;
	g.r.pressure_mmhg[3] = 4.9; /* vented: never */
	ticks(&g, 5.0);
	tick_until_trip(&g);
	assert_trip(&g, ILK_DEVIATION, 1);
	assert_says(&g, ILK_DEVIATION,
		    "still 12.0 mmHg 5 s after it was told to vent (limits 5 "
		    "mmHg within 5 s)");
	assert_true(g.present & (1u << ILK_DEVIATION));
	/* Below its setpoint out of a session is not a hazard. */
	rig_init(&g);
	g.sp[0] = 20;
	ticks(&g, 5);
}

/* A reading frozen while its valve inflates: a stuck sensor. */
static void test_stuck_sensor(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 10);
	g.sp[2] = 10; /* within the deviation band */
	g.r.valve[2] = FASCIA_VALVE_INFLATING;
	ticks(&g, 1.0 - TICK); /* frozen for less than 1 s */
	for (int i = 0; i < 3 && g.n == 0; i++)
		tick(&g);
	assert_trip(&g, ILK_STALE, 3);
	assert_true(g.present & (1u << ILK_STALE));
	assert_says(&g, ILK_STALE,
		    "reading stuck at 10.0 mmHg for 1000 ms while its valve "
		    "inflates (limit 1000 ms)");
	/* A live reading (noise) while inflating never trips. */
	rig_init(&g);
	running_at(&g, 10);
	g.r.valve[2] = FASCIA_VALVE_INFLATING;
	for (int i = 0; i < 300; i++) {
		g.r.pressure_mmhg[2] = 10 + (i % 3) * 0.1;
		ticks(&g, TICK);
	}
	/* Vented, deflating at 0 with a noiseless sensor: not stuck. */
	rig_init(&g);
	for (int c = 0; c < 4; c++)
		g.r.valve[c] = FASCIA_VALVE_DEFLATING;
	ticks(&g, 5);
}

static void test_rate(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 20);
	ticks(&g, 0.1);
	/* 29 mmHg/s: under max_ramp 10 + 20. */
	for (int i = 0; i < 10; i++) {
		for (int c = 0; c < 4; c++)
			g.r.pressure_mmhg[c] = g.sp[c] += 29 * TICK;
		ticks(&g, TICK);
	}
	/* 31 mmHg/s, sustained over the 100 ms window. */
	for (int i = 0; i < 12 && g.n == 0; i++) {
		g.r.pressure_mmhg[3] += 31 * TICK;
		tick(&g);
	}
	assert_trip(&g, ILK_RATE, 4);
	assert_says(&g, ILK_RATE,
		    "rising at 30.2 mmHg/s over 100 ms, above 30.0 mmHg/s");
	/* Present while the rise shows over the window, not once it stops. */
	assert_true(g.present & (1u << ILK_RATE));
	for (int i = 0; i < 10; i++)
		tick(&g);
	assert_false(g.present & (1u << ILK_RATE));
	/* A surge trips in the tick that reads it, not a window later. */
	rig_init(&g);
	running_at(&g, 20);
	ticks(&g, 0.5);
	g.r.pressure_mmhg[1] += 5; /* 50 mmHg/s over the 100 ms window */
	tick(&g);
	assert_trip(&g, ILK_RATE, 2);
	assert_says(&g, ILK_RATE,
		    "rising at 50.0 mmHg/s over 100 ms, above 30.0 mmHg/s");
	/* Noise alone: +-0.3 mmHg between ticks is 15 mmHg/s, no trip. */
	rig_init(&g);
	running_at(&g, 20);
	for (int i = 0; i < 500; i++) {
		g.r.pressure_mmhg[0] = 20 + (i % 2 ? 0.3 : -0.3);
		ticks(&g, TICK);
	}
	assert_false(g.present & (1u << ILK_RATE));
}

static void test_hold_time(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 35);
	ticks(&g, 120);
	tick_until_trip(&g);
	assert_trip(&g, ILK_HOLD_TIME, 1);
	assert_says(&g, ILK_HOLD_TIME,
		    "35.0 mmHg, above 30 mmHg for 120 s without a break (limit "
		    "120 s)");
	/* A dip below 30 mmHg restarts the count. */
	rig_init(&g);
	running_at(&g, 35);
	ticks(&g, 100);
	ramp_to(&g, 29);
	ticks(&g, 1);
	ramp_to(&g, 35);
	ticks(&g, 100);
}

static void test_session_time(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	running_at(&g, 20);
	g.in.session_length_s = 100;
	g.in.session_elapsed_s = 109.9;
	ticks(&g, 0.1);
	g.in.session_elapsed_s = 110.1;
	tick(&g);
	assert_trip(&g, ILK_SESSION_TIME, 0);
	assert_says(&g, ILK_SESSION_TIME,
		    "session ran 110.1 s, past its 100 s + 10 % (110.0 s)");
	assert_int_equal(ilk_rows[ILK_SESSION_TIME].reaction,
			 ILK_REACT_RELEASE);
}

static void test_stale(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	ticks(&g, 1);
	g.freeze_sample = true;
	ticks(&g, 0.18); /* 180 ms unchanged */
	tick(&g);        /* 200 ms */
	assert_trip(&g, ILK_STALE, 0);
	assert_says(&g, ILK_STALE,
		    "SAMPLE unchanged for 200 ms (limit 200 ms)");
	assert_true(g.present & (1u << ILK_STALE));
	g.freeze_sample = false;
	tick(&g);
	assert_false(g.present & (1u << ILK_STALE));
}

static void test_heartbeat(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	ticks(&g, 1);
	/* The device stops echoing: a lag of 1 and 2 is tolerated. */
	g.in.now_s += TICK;
	g.in.heartbeat += 2;
	g.r.heartbeat_echo = g.in.heartbeat - 2;
	g.r.sample += 20;
	assert_int_equal(
		ilk_check(&g.c, &g.s, &g.in, g.trips, ILK_COUNT, &g.present),
		0);
	g.in.heartbeat++;
	g.in.now_s += TICK;
	g.r.sample += 20;
	g.n = ilk_check(&g.c, &g.s, &g.in, g.trips, ILK_COUNT, &g.present);
	assert_int_equal(g.trips[0].id, ILK_HEARTBEAT);
	assert_says(&g, ILK_HEARTBEAT,
		    "HEARTBEAT_ECHO lags by 3 writes (limit 3)");
	/* Across the wrap of the 16-bit counter. */
	rig_init(&g);
	g.in.heartbeat = 0xFFFE;
	ticks(&g, 1);
}

static void test_comms(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	ticks(&g, 1);
	g.in.exchange_ok = false;
	assert_int_equal(tick(&g), 0);
	assert_int_equal(tick(&g), 0);
	tick(&g);
	assert_trip(&g, ILK_COMMS, 0);
	assert_says(&g, ILK_COMMS, "no good exchange for 3 ticks (limit 3)");
	assert_true(g.present & (1u << ILK_COMMS));
	assert_int_equal(ilk_rows[ILK_COMMS].reaction, ILK_REACT_OFFLINE);
	/* Two bad exchanges, then a good one: the count starts again. */
	rig_init(&g);
	for (int i = 0; i < 5; i++) {
		g.in.exchange_ok = false;
		assert_int_equal(tick(&g), 0);
		assert_int_equal(tick(&g), 0);
		g.in.exchange_ok = true;
		assert_int_equal(tick(&g), 0);
	}
}

static void test_status_bits(void **state)
{
	static const struct {
		uint16_t set, clear, fault;
		enum ilk_id id;
		bool present;
		const char *says;
	} cases[] = {
		{FASCIA_ST_ESTOP, 0, FASCIA_FAULT_ESTOP, ILK_ESTOP, true,
		 "e-stop pressed"},
		{0, FASCIA_ST_GARMENT_CONNECTED, 0, ILK_GARMENT, true,
		 "garment disconnected"},
		{FASCIA_ST_SENSOR_FAULT, 0, FASCIA_FAULT_SENSOR, ILK_SENSOR,
		 true, "the device reports a sensor fault"},
		/* what a restart of the daemon leaves, in words */
		{FASCIA_ST_WATCHDOG_TRIPPED, 0, FASCIA_FAULT_WATCHDOG,
		 ILK_DEVICE_FAULT, false,
		 "the device's watchdog tripped: it stopped hearing from the "
		 "daemon (a restart, a lost link) and vented the garment; an "
		 "ack clears it (FAULT 1, STATUS 0x029)"},
		{FASCIA_ST_OVERLIMIT, 0, FASCIA_FAULT_OVERLIMIT,
		 ILK_DEVICE_FAULT, false,
		 "the device vented a chamber above its LIMIT; an ack clears "
		 "it (FAULT 2, STATUS 0x221)"},
		{FASCIA_ST_RELIEF_OPEN, 0, FASCIA_FAULT_RELIEF,
		 ILK_DEVICE_FAULT, true,
		 "the mechanical relief valve opened: a chamber went far "
		 "above its limit (FAULT 6, STATUS 0x061)"},
		{FASCIA_ST_PUMP_FAULT, 0, FASCIA_FAULT_PUMP, ILK_DEVICE_FAULT,
		 true, "the device's pump failed (FAULT 5, STATUS 0x121)"},
		/* FAULT alone: a cause that came and went between reads */
		{0, 0, FASCIA_FAULT_ESTOP, ILK_DEVICE_FAULT, false,
		 "the device latched an e-stop; an ack clears it once "
		 "released (FAULT 3, STATUS 0x021)"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rig g;

		rig_init(&g);
		running_at(&g, 30);
		ticks(&g, 0.2);
		g.r.status = (g.r.status | cases[i].set) & ~cases[i].clear;
		g.r.fault = cases[i].fault;
		tick(&g);
		assert_int_equal(g.n, 1); /* one alarm per cause */
		assert_trip(&g, cases[i].id, 0);
		assert_says(&g, cases[i].id, cases[i].says);
		assert_int_equal(!!(g.present & (1u << cases[i].id)),
				 cases[i].present);
	}
}

static void test_sensor_range(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	g.r.pressure_mmhg[2] = -4.9;
	ticks(&g, 0.1);
	g.r.pressure_mmhg[2] = -5.1;
	tick(&g);
	assert_trip(&g, ILK_SENSOR, 3);
	assert_says(&g, ILK_SENSOR,
		    "reading -5.1 mmHg is outside the sensor's range (limit -5 "
		    "mmHg)");
	rig_init(&g);
	g.in.device_limit = 300; /* so that only the sensor row answers */
	g.r.pressure_mmhg[0] = 300.5;
	tick(&g);
	assert_trip(&g, ILK_SENSOR, 1);
	assert_says(&g, ILK_SENSOR,
		    "reading 300.5 mmHg is outside the sensor's range (limit "
		    "300 mmHg)");
	assert_int_equal(g.n, 1);
}

static void test_deadline(void **state)
{
	struct rig g;

	(void)state;
	rig_init(&g);
	for (int i = 0; i < 10; i++) {
		g.in.late = true;
		assert_int_equal(tick(&g), 0);
		assert_int_equal(tick(&g), 0);
		g.in.late = false;
		assert_int_equal(tick(&g), 0);
	}
	g.in.late = true;
	tick(&g);
	tick(&g);
	tick(&g);
	assert_trip(&g, ILK_DEADLINE, 0);
	assert_says(&g, ILK_DEADLINE,
		    "3 ticks in a row began over half a period late (limit 3)");
}

/* Every row has a name, a hazard, and sane parameter bounds. */
static void test_table(void **state)
{
	(void)state;
	for (int i = 0; i < ILK_COUNT; i++) {
		assert_int_equal(ilk_rows[i].id, i);
		assert_non_null(ilk_rows[i].name);
		assert_non_null(ilk_rows[i].hazard);
		for (int j = 0; j < 2; j++) {
			const struct ilk_param *p = &ilk_rows[i].param[j];

			if (p->key == NULL)
				continue;
			assert_true(p->lo <= p->def && p->def <= p->hi);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quiet),
		cmocka_unit_test(test_overpressure),
		cmocka_unit_test(test_deviation),
		cmocka_unit_test(test_deviation_not_coming_down),
		cmocka_unit_test(test_stuck_sensor),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_hold_time),
		cmocka_unit_test(test_session_time),
		cmocka_unit_test(test_stale),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_comms),
		cmocka_unit_test(test_status_bits),
		cmocka_unit_test(test_sensor_range),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

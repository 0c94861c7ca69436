/*
 * The simulator's model with a stepped clock: pneumatics, firmware
 * protections, fault injection and reaction records.  A "controller" here
 * does what fasciad does every 20 ms: write block W, read block R.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../sim/model.c"

#define MS 1000ull
#define TICK_MS 20

struct rig {
	struct sim_model m;
	uint64_t now;
	uint16_t hb;
	uint16_t command;
	double setpoint[FASCIA_MAX_CHAMBERS];
	bool heartbeat; /* the controller keeps HEARTBEAT changing */
};

static void rig_init(struct rig *r, double noise)
{
	struct sim_params p;

	memset(r, 0, sizeof(*r));
	sim_params_default(&p);
	p.noise_mmhg = noise;
	r->now = 1000 * MS;
	r->heartbeat = true;
	sim_model_init(&r->m, &p, r->now);
}

static uint16_t reg(const struct rig *r, int addr)
{
	uint16_t v;

	assert_int_equal(sim_model_read(&r->m, addr, 1, &v), 0);
	return v;
}

static double pressure(const struct rig *r, int chamber)
{
	return fascia_reg_to_mmhg(reg(r, FASCIA_REG_PRESSURE + chamber));
}

static int write1(struct rig *r, int addr, uint16_t v)
{
	return sim_model_write(&r->m, addr, 1, &v);
}

/* One controller tick: the FC23 of block W and block R, then time. */
static void tick(struct rig *r)
{
	uint16_t w[FASCIA_BLOCK_W_LEN] = {0}, rd[FASCIA_BLOCK_R_LEN];

	if (r->heartbeat)
		r->hb++;
	w[FASCIA_REG_HEARTBEAT] = r->hb;
	w[FASCIA_REG_COMMAND] = r->command;
	w[FASCIA_REG_WATCHDOG_MS] = 500;
	w[FASCIA_REG_LIMIT] = 1000;
	w[FASCIA_REG_PUMP] = 1;
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		assert_int_equal(
			fascia_mmhg_to_reg(r->setpoint[i],
					   &w[FASCIA_REG_SETPOINT + i]),
			0);
	assert_int_equal(sim_model_write(&r->m, 0, FASCIA_BLOCK_W_LEN, w), 0);
	assert_int_equal(sim_model_read(&r->m, FASCIA_BLOCK_R_ADDR,
					FASCIA_BLOCK_R_LEN, rd),
			 0);
	sim_model_note_exchange(&r->m, true);
	r->now += TICK_MS * MS;
	sim_model_advance(&r->m, r->now);
}

static void run_for(struct rig *r, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += TICK_MS)
		tick(r);
}

/* Ticks until chamber 0 reads at least mmhg, in ms; fails past limit_ms. */
static unsigned time_to_reach(struct rig *r, double mmhg, unsigned limit_ms)
{
	unsigned t = 0;

	while (pressure(r, 0) < mmhg) {
		assert_true(t < limit_ms);
		tick(r);
		t += TICK_MS;
	}
	return t;
}

static unsigned time_to_fall(struct rig *r, double mmhg, unsigned limit_ms)
{
	unsigned t = 0;

	while (pressure(r, 0) >= mmhg) {
		assert_true(t < limit_ms);
		tick(r);
		t += TICK_MS;
	}
	return t;
}

static void inject(struct rig *r, enum sim_fault_kind kind, int chamber)
{
	struct sim_fault f = {.kind = kind, .chamber = chamber};

	assert_int_equal(sim_model_inject(&r->m, &f), 0);
}

static void test_power_on(void **state)
{
	struct rig r;
	uint16_t st;

	(void)state;
	rig_init(&r, 0.1);
	assert_int_equal(reg(&r, FASCIA_REG_MAP_VERSION), FASCIA_MAP_VERSION);
	assert_int_equal(reg(&r, FASCIA_REG_CHAMBERS), 8);
	assert_int_equal(reg(&r, FASCIA_REG_HW_RELIEF), 2000);
	assert_int_equal(reg(&r, FASCIA_REG_LIMIT), 1000);
	assert_int_equal(reg(&r, FASCIA_REG_WATCHDOG_MS), 500);
	st = reg(&r, FASCIA_REG_STATUS);
	assert_true(st & FASCIA_ST_READY);
	assert_true(st & FASCIA_ST_GARMENT_CONNECTED);
	assert_false(st & (FASCIA_ST_VENTING | FASCIA_ST_ESTOP));
	/* Samples are counted at 1 kHz, uptime in seconds. */
	sim_model_advance(&r.m, r.now + 2500 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_SAMPLE), 2500);
	assert_int_equal(reg(&r, FASCIA_REG_UPTIME_LO), 2);
}

/* An unramped chamber reaches 40 mmHg in 1-3 s, holds within 1 mmHg, and
 * vents from 40 to below 5 mmHg in under 1 s. */
static void test_rise_hold_vent(void **state)
{
	struct rig r;
	unsigned t;

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	r.setpoint[0] = 40;
	t = time_to_reach(&r, 39.5, 3000);
	assert_in_range(t, 1000, 3000);
	assert_int_equal(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_RUNNING,
			 FASCIA_ST_RUNNING);
	for (int i = 0; i < 250; i++) {
		tick(&r);
		assert_true(fabs(pressure(&r, 0) - 40) <= 1.0);
		assert_true(fabs(r.m.ch[0].pressure - 40) <= 1.0);
	}
	/* Chambers without a setpoint stay empty. */
	assert_true(fabs(r.m.ch[1].pressure) < 0.01);
	r.command = FASCIA_CMD_VENT;
	t = time_to_fall(&r, 5, 1000);
	assert_true(t < 1000);
	assert_int_equal(reg(&r, FASCIA_REG_VALVE), FASCIA_VALVE_DEFLATING);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
}

/* IDLE closes the valves: pressure holds; a leak then makes it decay at
 * the injected rate. */
static void test_leak_decays(void **state)
{
	struct rig r;
	struct sim_fault leak = {
		.kind = SIM_FAULT_LEAK, .chamber = 0, .mmhg_s = 10};
	double before;

	(void)state;
	rig_init(&r, 0);
	r.command = FASCIA_CMD_RUN;
	r.setpoint[0] = 40;
	time_to_reach(&r, 39.7, 3000);
	r.command = FASCIA_CMD_IDLE;
	tick(&r);
	before = r.m.ch[0].pressure;
	run_for(&r, 2000);
	assert_true(fabs(r.m.ch[0].pressure - before) < 0.01);
	assert_int_equal(sim_model_inject(&r.m, &leak), 0);
	before = r.m.ch[0].pressure;
	run_for(&r, 2000);
	assert_true(fabs(before - r.m.ch[0].pressure - 20) < 0.5);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_LEAK, -1), 0);
	before = r.m.ch[0].pressure;
	run_for(&r, 1000);
	assert_true(fabs(r.m.ch[0].pressure - before) < 0.01);
}

/* With the firmware frozen (no protections, no vent), a valve stuck open
 * drives the chamber toward the reservoir: the mechanical relief valve
 * opens at HW_RELIEF and bounds it. */
static void test_relief_valve_opens(void **state)
{
	struct rig r;
	struct sim_fault stuck = {.kind = SIM_FAULT_VALVE_STUCK,
				  .chamber = 2,
				  .stuck = SIM_STUCK_OPEN};
	double peak = 0;

	(void)state;
	rig_init(&r, 0);
	assert_int_equal(sim_model_inject(&r.m, &stuck), 0);
	inject(&r, SIM_FAULT_FREEZE, -1);
	for (int i = 0; i < 60000; i++) {
		sim_model_advance(&r.m, r.now += 1 * MS);
		peak = fmax(peak, r.m.ch[2].pressure);
	}
	assert_true(r.m.ch[2].relief_open || r.m.ch[2].pressure > 189);
	assert_true(peak >= 200 && peak < 202);
	/* The firmware, once running again, sees it and latches FAULT 6. */
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_FREEZE, -1), 0);
	sim_model_advance(&r.m, r.now += 1 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_RELIEF);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
}

/* Without the relief valve's help, a stuck-open valve in RUN trips LIMIT:
 * OVERLIMIT latches and the device vents. */
static void test_overlimit_latches(void **state)
{
	struct rig r;
	struct sim_fault stuck = {.kind = SIM_FAULT_VALVE_STUCK,
				  .chamber = 0,
				  .stuck = SIM_STUCK_OPEN};

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	assert_int_equal(sim_model_inject(&r.m, &stuck), 0);
	time_to_reach(&r, 100, 10000);
	tick(&r);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_OVERLIMIT);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_OVERLIMIT);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
	/* The firmware drives the valve to deflate, but it is stuck in the
	 * inflate position: the master vent beats it. */
	assert_int_equal(reg(&r, FASCIA_REG_VALVE), FASCIA_VALVE_DEFLATING);
	run_for(&r, 2000);
	assert_true(r.m.ch[0].pressure < 5);
}

static void test_watchdog_trips(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0.1);
	assert_int_equal(write1(&r, FASCIA_REG_WATCHDOG_MS, 200), 0);
	/* Not armed yet: a silent controller trips nothing. */
	sim_model_advance(&r.m, r.now += 1000 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_NONE);
	assert_int_equal(write1(&r, FASCIA_REG_HEARTBEAT, 7), 0);
	assert_int_equal(reg(&r, FASCIA_REG_HEARTBEAT_ECHO), 7);
	sim_model_advance(&r.m, r.now += 199 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_NONE);
	assert_false(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
	sim_model_advance(&r.m, r.now += 1 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_WATCHDOG);
	assert_int_equal(r.m.watchdog_tripped_us - r.m.heartbeat_changed_us,
			 200 * MS);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_WATCHDOG_TRIPPED);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
	assert_false(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_READY);
	assert_int_equal(reg(&r, FASCIA_REG_VALVE), FASCIA_VALVE_DEFLATING);
	/* Writing the same HEARTBEAT again is not a sign of life. */
	assert_int_equal(write1(&r, FASCIA_REG_COMMAND, FASCIA_CMD_RESET), 0);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_NONE);
	assert_int_equal(write1(&r, FASCIA_REG_HEARTBEAT, 7), 0);
	sim_model_advance(&r.m, r.now += 200 * MS);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_WATCHDOG);
}

/* RESET is refused while a chamber is above 5 mmHg or the e-stop is
 * pressed, and accepted once vented and released. */
static void test_reset_rules(void **state)
{
	struct rig r;
	struct sim_fault surge = {
		.kind = SIM_FAULT_OVERPRESSURE, .chamber = 1, .mmhg = 50};

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	run_for(&r, 200);
	inject(&r, SIM_FAULT_ESTOP, -1);
	tick(&r);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_ESTOP);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_ESTOP);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
	/* Pressed: refused. */
	r.command = FASCIA_CMD_RESET;
	run_for(&r, 200);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_ESTOP);
	/* Released, but a chamber held at 50 mmHg: refused. */
	assert_int_equal(sim_model_inject(&r.m, &surge), 0);
	sim_model_advance(&r.m, r.now += 1 * MS);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_ESTOP, -1), 0);
	run_for(&r, 200);
	assert_true(pressure(&r, 1) >= 49);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_ESTOP);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
	/* Vented and released: accepted. */
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_OVERPRESSURE, 1), 0);
	run_for(&r, 1000);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_NONE);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_READY);
	assert_false(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_VENTING);
}

/* Writes are checked whole; a refused write changes nothing. */
static void test_write_checks(void **state)
{
	struct rig r;
	uint16_t w[FASCIA_BLOCK_W_LEN] = {0};
	uint16_t v[2];

	(void)state;
	rig_init(&r, 0.1);
	assert_int_equal(write1(&r, FASCIA_REG_COMMAND, 4), 3);
	assert_int_equal(write1(&r, FASCIA_REG_WATCHDOG_MS, 49), 3);
	assert_int_equal(write1(&r, FASCIA_REG_WATCHDOG_MS, 5001), 3);
	assert_int_equal(write1(&r, FASCIA_REG_PUMP, 2), 3);
	assert_int_equal(write1(&r, FASCIA_REG_LIMIT, 2001), 3); /* > relief */
	assert_int_equal(write1(&r, FASCIA_REG_LIMIT, 0xFFFF), 3);
	assert_int_equal(write1(&r, FASCIA_REG_SETPOINT, 1001), 3);
	assert_int_equal(write1(&r, FASCIA_REG_SETPOINT, 0xFFF6), 3);
	assert_int_equal(write1(&r, FASCIA_REG_SETPOINT, 1000), 0);
	assert_int_equal(write1(&r, FASCIA_BLOCK_R_ADDR, 1), 2);
	assert_int_equal(write1(&r, FASCIA_BLOCK_W_LEN, 1), 2);
	assert_int_equal(sim_model_write(&r.m, 31, 2, v), 2);
	/* A LIMIT lowered in the same write counts for its setpoints. */
	w[FASCIA_REG_HEARTBEAT] = 9;
	w[FASCIA_REG_WATCHDOG_MS] = 500;
	w[FASCIA_REG_LIMIT] = 300;
	w[FASCIA_REG_PUMP] = 1;
	w[FASCIA_REG_SETPOINT + 3] = 400;
	assert_int_equal(sim_model_write(&r.m, 0, FASCIA_BLOCK_W_LEN, w), 3);
	assert_int_equal(reg(&r, FASCIA_REG_HEARTBEAT), 0);
	assert_int_equal(reg(&r, FASCIA_REG_LIMIT), 1000);
	w[FASCIA_REG_SETPOINT + 3] = 300;
	assert_int_equal(sim_model_write(&r.m, 0, FASCIA_BLOCK_W_LEN, w), 0);
	assert_int_equal(reg(&r, FASCIA_REG_SETPOINT + 3), 300);
	assert_int_equal(reg(&r, FASCIA_REG_LIMIT), 300);
	/* Reads: block W, block R, nothing between. */
	assert_int_equal(sim_model_read(&r.m, 0, 32, w), 0);
	assert_int_equal(sim_model_read(&r.m, 30, 3, w), 2);
	assert_int_equal(sim_model_read(&r.m, 99, 1, w), 2);
	assert_int_equal(sim_model_read(&r.m, 147, 2, w), 2);
}

/* The record of an injected cause counts the exchanges from the first
 * read that showed it to the VENT. */
static void test_reaction_record(void **state)
{
	struct rig r;
	const struct sim_record *rec;

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	r.setpoint[0] = 30;
	run_for(&r, 500);
	inject(&r, SIM_FAULT_ESTOP, -1);
	rec = sim_model_record_at(&r.m, 0);
	assert_non_null(rec);
	assert_int_equal(rec->kind, SIM_FAULT_ESTOP);
	assert_false(rec->done);
	tick(&r); /* this exchange shows the cause */
	tick(&r); /* a slow controller: one more RUN */
	r.command = FASCIA_CMD_VENT;
	tick(&r);
	assert_true(rec->done);
	assert_int_equal(rec->exchanges, 2);
	assert_int_equal(rec->vented_us - rec->shown_us, 2 * TICK_MS * MS);
	assert_int_equal(r.m.vent_writes, 1);

	/* A prompt controller: VENT in the very next exchange. */
	inject(&r, SIM_FAULT_GARMENT_OFF, -1);
	r.command = FASCIA_CMD_RUN;
	tick(&r);
	r.command = FASCIA_CMD_VENT;
	tick(&r);
	rec = sim_model_record_at(&r.m, 1);
	assert_true(rec->done);
	assert_int_equal(rec->exchanges, 1);

	/* A surge shows in the readings of the next firmware sample: a read
	 * served from the sample before it does not count as shown. */
	struct sim_fault surge = {
		.kind = SIM_FAULT_OVERPRESSURE, .chamber = 0, .mmhg = 60};
	assert_int_equal(sim_model_inject(&r.m, &surge), 0);
	r.command = FASCIA_CMD_RUN;
	tick(&r); /* the reading is the pre-injection sample's */
	rec = sim_model_record_at(&r.m, 2);
	assert_int_equal(rec->first_read, 0);
	tick(&r); /* the surge shows */
	assert_int_not_equal(rec->first_read, 0);
	assert_int_equal(rec->cause_us, rec->injected_us + SIM_SAMPLE_US);
	r.command = FASCIA_CMD_VENT;
	tick(&r);
	assert_true(rec->done);
	assert_int_equal(rec->exchanges, 1);
	assert_null(sim_model_record_at(&r.m, 3));
}

static void test_freeze(void **state)
{
	struct rig r;
	uint16_t sample, hb;

	(void)state;
	rig_init(&r, 0.1);
	run_for(&r, 100);
	inject(&r, SIM_FAULT_FREEZE, -1);
	sample = reg(&r, FASCIA_REG_SAMPLE);
	hb = reg(&r, FASCIA_REG_HEARTBEAT_ECHO);
	run_for(&r, 1000);
	assert_int_equal(reg(&r, FASCIA_REG_SAMPLE), sample);
	assert_int_equal(reg(&r, FASCIA_REG_HEARTBEAT_ECHO), hb);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_FREEZE, -1), 0);
	run_for(&r, 100);
	assert_int_not_equal(reg(&r, FASCIA_REG_SAMPLE), sample);
	assert_int_equal(reg(&r, FASCIA_REG_HEARTBEAT_ECHO), r.hb);
}

static void test_reboot(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	r.setpoint[0] = 30;
	run_for(&r, 3000);
	assert_int_equal(write1(&r, FASCIA_REG_LIMIT, 600), 0);
	inject(&r, SIM_FAULT_REBOOT, -1);
	assert_true(sim_model_booting(&r.m));
	assert_true(sim_model_venting(&r.m));
	sim_model_advance(&r.m, r.now += 999 * MS);
	assert_true(sim_model_booting(&r.m));
	assert_true(r.m.ch[0].pressure < 1);
	sim_model_advance(&r.m, r.now += 2 * MS);
	assert_false(sim_model_booting(&r.m));
	assert_int_equal(reg(&r, FASCIA_REG_LIMIT), 1000);
	assert_int_equal(reg(&r, FASCIA_REG_COMMAND), FASCIA_CMD_IDLE);
	assert_int_equal(reg(&r, FASCIA_REG_UPTIME_LO), 0);
	assert_true(reg(&r, FASCIA_REG_SAMPLE) < 5);
}

static void test_sensor_faults(void **state)
{
	struct rig r;
	struct sim_fault f = {.kind = SIM_FAULT_SENSOR,
			      .chamber = 2,
			      .sensor_mode = SIM_SENSOR_OFFSET,
			      .value = 7};

	(void)state;
	rig_init(&r, 0);
	assert_int_equal(sim_model_inject(&r.m, &f), 0);
	run_for(&r, 100);
	assert_true(fabs(pressure(&r, 2) - 7) < 0.05);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_NONE);
	f.sensor_mode = SIM_SENSOR_RANGE;
	f.value = 400;
	assert_int_equal(sim_model_inject(&r.m, &f), 0);
	run_for(&r, 100);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_SENSOR_FAULT);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_SENSOR);
	assert_false(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_OVERLIMIT);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_SENSOR, 2), 0);
	run_for(&r, 100);
	assert_false(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_SENSOR_FAULT);
	f.chamber = 8; /* the device has 8 chambers: 0..7 */
	assert_int_equal(sim_model_inject(&r.m, &f), -1);
}

static void test_garment_and_pump(void **state)
{
	struct rig r;
	double supply;

	(void)state;
	rig_init(&r, 0.1);
	r.command = FASCIA_CMD_RUN;
	r.setpoint[0] = 40;
	time_to_reach(&r, 39.5, 3000);
	inject(&r, SIM_FAULT_GARMENT_OFF, -1);
	run_for(&r, 500);
	assert_false(reg(&r, FASCIA_REG_STATUS) &
		     (FASCIA_ST_GARMENT_CONNECTED | FASCIA_ST_READY));
	assert_true(r.m.ch[0].pressure < 5);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_GARMENT_OFF, -1), 0);
	tick(&r);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_GARMENT_CONNECTED);

	inject(&r, SIM_FAULT_PUMP_FAIL, -1);
	tick(&r);
	assert_true(reg(&r, FASCIA_REG_STATUS) & FASCIA_ST_PUMP_FAULT);
	assert_int_equal(reg(&r, FASCIA_REG_FAULT), FASCIA_FAULT_PUMP);
	/* The reservoir no longer refills. */
	r.m.supply = 100;
	supply = r.m.supply;
	run_for(&r, 1000);
	assert_true(r.m.supply <= supply);
	assert_int_equal(sim_model_clear(&r.m, SIM_FAULT_PUMP_FAIL, -1), 0);
	run_for(&r, 1000);
	assert_true(r.m.supply > supply + 50);
}

static void test_fault_names(void **state)
{
	(void)state;
	for (int k = 0; k < SIM_FAULT_COUNT; k++)
		assert_int_equal(sim_fault_from_name(sim_fault_name(k)), k);
	assert_int_equal(sim_fault_from_name("nonsense"), -1);
	assert_int_equal(sim_fault_from_name(NULL), -1);
	assert_string_equal(sim_fault_name(SIM_FAULT_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_on),
		cmocka_unit_test(test_rise_hold_vent),
		cmocka_unit_test(test_leak_decays),
		cmocka_unit_test(test_relief_valve_opens),
		cmocka_unit_test(test_overlimit_latches),
		cmocka_unit_test(test_watchdog_trips),
		cmocka_unit_test(test_reset_rules),
		cmocka_unit_test(test_write_checks),
		cmocka_unit_test(test_reaction_record),
		cmocka_unit_test(test_freeze),
		cmocka_unit_test(test_reboot),
		cmocka_unit_test(test_sensor_faults),
		cmocka_unit_test(test_garment_and_pump),
		cmocka_unit_test(test_fault_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Register map v1: pack/unpack round trips, unit conversion and the edge
 * values a device can send (negative pressures, 16 chambers, counter wrap,
 * garbage in block R).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <fascia/regmap.h>

#define R(reg) ((reg)-FASCIA_BLOCK_R_ADDR)

static void pressure_converts_in_tenths_both_ways(void **state)
{
	uint16_t reg;

	(void)state;
	assert_int_equal(fascia_mmhg_to_reg(40.0, &reg), 0);
	assert_int_equal(reg, 400);
	assert_int_equal(fascia_mmhg_to_reg(31.84, &reg), 0);
	assert_int_equal(reg, 318);
	assert_int_equal(fascia_mmhg_to_reg(31.85, &reg), 0);
	assert_int_equal(reg, 319);
	assert_int_equal(fascia_mmhg_to_reg(-2.5, &reg), 0);
	assert_int_equal(reg, 0xffe7);
	assert_true(fabs(fascia_reg_to_mmhg(0xffe7) - -2.5) < 1e-9);
	assert_true(fabs(fascia_reg_to_mmhg(0x7fff) - 3276.7) < 1e-9);
	assert_true(fabs(fascia_reg_to_mmhg(0x8000) - -3276.8) < 1e-9);
}

static void pressure_outside_the_register_is_refused(void **state)
{
	uint16_t reg = 1234;

	(void)state;
	assert_int_equal(fascia_mmhg_to_reg(3276.7, &reg), 0);
	assert_int_equal(fascia_mmhg_to_reg(-3276.8, &reg), 0);
	errno = 0;
	assert_int_equal(fascia_mmhg_to_reg(3276.8, &reg), -1);
	assert_int_equal(errno, FASCIA_ERANGE);
	assert_int_equal(fascia_mmhg_to_reg(-3276.9, &reg), -1);
	assert_int_equal(fascia_mmhg_to_reg(NAN, &reg), -1);
	assert_int_equal(fascia_mmhg_to_reg(INFINITY, &reg), -1);
	assert_int_equal(errno, FASCIA_ERANGE);
}

static void block_w_round_trips_with_sixteen_chambers(void **state)
{
	struct fascia_block_w w = {0}, back;
	uint16_t regs[FASCIA_BLOCK_W_LEN];
	int i;

	(void)state;
	w.heartbeat = 65535;
	w.command = FASCIA_CMD_RUN;
	w.watchdog_ms = 500;
	w.limit_mmhg = 80.0;
	w.pump = true;
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		w.setpoint_mmhg[i] = 2.5 * i;
	assert_int_equal(fascia_block_w_pack(&w, regs), 0);
	assert_int_equal(regs[FASCIA_REG_HEARTBEAT], 65535);
	assert_int_equal(regs[FASCIA_REG_COMMAND], 1);
	assert_int_equal(regs[FASCIA_REG_LIMIT], 800);
	assert_int_equal(regs[FASCIA_REG_PUMP], 1);
	assert_int_equal(regs[FASCIA_REG_SETPOINT + 15], 375);
	for (i = 5; i < 16; i++)
		assert_int_equal(regs[i], 0);
	assert_int_equal(fascia_block_w_unpack(regs, &back), 0);
	assert_int_equal(back.heartbeat, w.heartbeat);
	assert_int_equal(back.command, w.command);
	assert_int_equal(back.watchdog_ms, w.watchdog_ms);
	assert_true(back.pump);
	assert_true(fabs(back.limit_mmhg - 80.0) < 1e-9);
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		assert_true(fabs(back.setpoint_mmhg[i] - w.setpoint_mmhg[i]) <
			    1e-9);
}

static void block_w_refuses_unknown_command_and_huge_setpoint(void **state)
{
	struct fascia_block_w w = {0};
	uint16_t regs[FASCIA_BLOCK_W_LEN];

	(void)state;
	w.command = 4;
	assert_int_equal(fascia_block_w_pack(&w, regs), -1);
	assert_int_equal(errno, FASCIA_ECOMMAND);
	w.command = FASCIA_CMD_VENT;
	w.setpoint_mmhg[3] = 5000.0;
	assert_int_equal(fascia_block_w_pack(&w, regs), -1);
	assert_int_equal(errno, FASCIA_ERANGE);
	memset(regs, 0, sizeof(regs));
	regs[FASCIA_REG_COMMAND] = 9;
	assert_int_equal(fascia_block_w_unpack(regs, &w), -1);
	assert_int_equal(errno, FASCIA_ECOMMAND);
}

static struct fascia_block_r sample_r(void)
{
	struct fascia_block_r r = {0};
	int i;

	r.map_version = FASCIA_MAP_VERSION;
	r.model = 0x5a01;
	r.firmware = 0x0102;
	r.chambers = 16;
	r.status = FASCIA_ST_READY | FASCIA_ST_GARMENT_CONNECTED |
		   FASCIA_ST_OVERLIMIT;
	r.fault = FASCIA_FAULT_OVERLIMIT;
	r.heartbeat_echo = 65535;
	r.sample = 65535;
	r.supply_mmhg = 212.4;
	r.hw_relief_mmhg = 200.0;
	r.uptime_s = 0x12345678;
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		r.pressure_mmhg[i] = -4.0 + 3.1 * i;
		r.valve[i] = (uint8_t)(i % 3);
	}
	return r;
}

static void block_r_round_trips_with_negative_pressures(void **state)
{
	struct fascia_block_r r = sample_r(), back;
	uint16_t regs[FASCIA_BLOCK_R_LEN];
	int i;

	(void)state;
	assert_int_equal(fascia_block_r_pack(&r, regs), 0);
	assert_int_equal(regs[R(FASCIA_REG_UPTIME_HI)], 0x1234);
	assert_int_equal(regs[R(FASCIA_REG_UPTIME_LO)], 0x5678);
	assert_int_equal(regs[R(FASCIA_REG_PRESSURE)], (uint16_t)-40);
	for (i = 112; i < 116; i++)
		assert_int_equal(regs[R(i)], 0);
	assert_int_equal(fascia_block_r_unpack(regs, &back), 0);
	assert_int_equal(back.chambers, 16);
	assert_int_equal(back.status, r.status);
	assert_int_equal(back.fault, FASCIA_FAULT_OVERLIMIT);
	assert_int_equal(back.uptime_s, 0x12345678);
	assert_int_equal(back.sample, 65535);
	assert_true(fabs(back.supply_mmhg - 212.4) < 1e-9);
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		assert_true(fabs(back.pressure_mmhg[i] - r.pressure_mmhg[i]) <
			    0.051);
		assert_int_equal(back.valve[i], r.valve[i]);
	}
	assert_true(back.pressure_mmhg[0] < 0);
}

static void block_r_from_a_bad_device_is_refused(void **state)
{
	struct fascia_block_r r = sample_r(), back;
	uint16_t regs[FASCIA_BLOCK_R_LEN], bad[FASCIA_BLOCK_R_LEN];

	(void)state;
	assert_int_equal(fascia_block_r_pack(&r, regs), 0);

	memcpy(bad, regs, sizeof(bad));
	bad[R(FASCIA_REG_MAP_VERSION)] = 0x0200;
	assert_int_equal(fascia_block_r_unpack(bad, &back), -1);
	assert_int_equal(errno, FASCIA_EMAPVER);

	memcpy(bad, regs, sizeof(bad));
	bad[R(FASCIA_REG_CHAMBERS)] = 0;
	assert_int_equal(fascia_block_r_unpack(bad, &back), -1);
	assert_int_equal(errno, FASCIA_ECHAMBERS);
	bad[R(FASCIA_REG_CHAMBERS)] = 17;
	assert_int_equal(fascia_block_r_unpack(bad, &back), -1);
	assert_int_equal(errno, FASCIA_ECHAMBERS);

	memcpy(bad, regs, sizeof(bad));
	bad[R(FASCIA_REG_VALVE) + 15] = 3;
	assert_int_equal(fascia_block_r_unpack(bad, &back), -1);
	assert_int_equal(errno, FASCIA_EVALVE);

	r.chambers = 17;
	assert_int_equal(fascia_block_r_pack(&r, regs), -1);
	assert_int_equal(errno, FASCIA_ECHAMBERS);
}

static void counters_wrap(void **state)
{
	(void)state;
	assert_int_equal(fascia_counter_delta(65535, 1), 2);
	assert_int_equal(fascia_counter_delta(10, 13), 3);
	assert_int_equal(fascia_counter_delta(7, 7), 0);
	assert_int_equal(fascia_counter_delta(1, 65535), 65534);
}

static void errors_have_messages(void **state)
{
	(void)state;
	assert_string_equal(fascia_strerror(FASCIA_EMAPVER),
			    "Device register map version is not 0x0100");
	assert_non_null(strstr(fascia_strerror(EINVAL), "nvalid"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pressure_converts_in_tenths_both_ways),
		cmocka_unit_test(pressure_outside_the_register_is_refused),
		cmocka_unit_test(block_w_round_trips_with_sixteen_chambers),
		cmocka_unit_test(
			block_w_refuses_unknown_command_and_huge_setpoint),
		cmocka_unit_test(block_r_round_trips_with_negative_pressures),
		cmocka_unit_test(block_r_from_a_bad_device_is_refused),
		cmocka_unit_test(counters_wrap),
		cmocka_unit_test(errors_have_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

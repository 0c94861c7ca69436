/*
 * Fuzz the register map codec (protocol/regmap.c): block R as read from a
 * device, block W as a firmware (or the simulator) receives it.  The input
 * is big-endian registers as on the wire: 48 of block R, then up to 32 of
 * block W, then up to 8 bytes of a double for fascia_mmhg_to_reg().
 * Invariants: unpack refuses exactly what the map forbids, and what it
 * accepts packs back to the same registers (the reserved ones zero).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fascia/regmap.h>

#include "check.h"

#define R(reg) ((reg)-FASCIA_BLOCK_R_ADDR)

static size_t take_regs(const uint8_t **data, size_t *size, uint16_t *regs,
			size_t n)
{
	size_t i;

	memset(regs, 0, n * sizeof(*regs));
	for (i = 0; i < n && *size >= 2; i++) {
		regs[i] = (uint16_t)((*data)[0] << 8 | (*data)[1]);
		*data += 2;
		*size -= 2;
	}
	return i;
}

static void fuzz_r(const uint16_t *regs)
{
	struct fascia_block_r r;
	uint16_t back[FASCIA_BLOCK_R_LEN];
	bool valid = regs[R(FASCIA_REG_MAP_VERSION)] == FASCIA_MAP_VERSION &&
		     regs[R(FASCIA_REG_CHAMBERS)] >= 1 &&
		     regs[R(FASCIA_REG_CHAMBERS)] <= FASCIA_MAX_CHAMBERS;
	int rc;

	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		if (regs[R(FASCIA_REG_VALVE) + i] > FASCIA_VALVE_DEFLATING)
			valid = false;
	errno = 0;
	rc = fascia_block_r_unpack(regs, &r);
	CHECK(rc == (valid ? 0 : -1));
	if (rc != 0) {
		CHECK(errno == FASCIA_EMAPVER || errno == FASCIA_ECHAMBERS ||
		      errno == FASCIA_EVALVE);
		CHECK(fascia_strerror(errno) != NULL);
		return;
	}
	CHECK(r.chambers >= 1 && r.chambers <= FASCIA_MAX_CHAMBERS);
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		CHECK(r.valve[i] <= FASCIA_VALVE_DEFLATING);
		CHECK(isfinite(r.pressure_mmhg[i]));
		CHECK(fabs(r.pressure_mmhg[i]) <= 3276.8);
	}
	CHECK(fascia_block_r_pack(&r, back) == 0);
	for (int i = 0; i < FASCIA_BLOCK_R_LEN; i++) {
		int reg = FASCIA_BLOCK_R_ADDR + i;

		if (reg >= FASCIA_REG_UPTIME_LO + 1 && reg < FASCIA_REG_PRESSURE)
			CHECK(back[i] == 0); /* reserved */
		else
			CHECK(back[i] == regs[i]);
	}
}

static void fuzz_w(const uint16_t *regs)
{
	struct fascia_block_w w;
	uint16_t back[FASCIA_BLOCK_W_LEN];
	int rc;

	errno = 0;
	rc = fascia_block_w_unpack(regs, &w);
	CHECK(rc == (regs[FASCIA_REG_COMMAND] <= FASCIA_CMD_RESET ? 0 : -1));
	if (rc != 0) {
		CHECK(errno == FASCIA_ECOMMAND);
		return;
	}
	CHECK(fascia_block_w_pack(&w, back) == 0);
	for (int i = 0; i < FASCIA_BLOCK_W_LEN; i++) {
		if (i == FASCIA_REG_PUMP)
			CHECK(back[i] == (regs[i] != 0));
		else if (i > FASCIA_REG_PUMP && i < FASCIA_REG_SETPOINT)
			CHECK(back[i] == 0); /* reserved */
		else
			CHECK(back[i] == regs[i]);
	}
}

static void fuzz_mmhg(const uint8_t *data, size_t size)
{
	double mmhg;
	uint16_t reg = 0xdead;
	uint64_t bits = 0;

	for (size_t i = 0; i < size && i < 8; i++)
		bits = bits << 8 | data[i];
	memcpy(&mmhg, &bits, sizeof(mmhg));
	errno = 0;
	if (fascia_mmhg_to_reg(mmhg, &reg) != 0) {
		CHECK(errno == FASCIA_ERANGE);
		CHECK(!isfinite(mmhg) || fabs(mmhg) > 3276.7);
		return;
	}
	CHECK(fabs(fascia_reg_to_mmhg(reg) - mmhg) <= 0.05 + 1e-9);
	CHECK(fascia_counter_delta(reg, (uint16_t)(reg + 7)) == 7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t r[FASCIA_BLOCK_R_LEN], w[FASCIA_BLOCK_W_LEN];

	if (take_regs(&data, &size, r, FASCIA_BLOCK_R_LEN) == 0)
		return 0;
	fuzz_r(r);
	if (take_regs(&data, &size, w, FASCIA_BLOCK_W_LEN) == 0)
		return 0;
	fuzz_w(w);
	fuzz_mmhg(data, size);
	return 0;
}

/*
 * Register map v1: pack and unpack blocks W and R, converting pressures
 * between mmHg and the signed 0.1 mmHg registers.  Every value read from a
 * device is checked here before anyone uses it.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <fascia/regmap.h>

int fascia_mmhg_to_reg(double mmhg, uint16_t *reg)
{
	double tenths;

	if (!isfinite(mmhg)) {
		errno = FASCIA_ERANGE;
		return -1;
	}
	tenths = round(mmhg * 10.0);
	if (tenths < INT16_MIN || tenths > INT16_MAX) {
		errno = FASCIA_ERANGE;
		return -1;
	}
	*reg = (uint16_t)(int16_t)tenths;
	return 0;
}

double fascia_reg_to_mmhg(uint16_t reg)
{
	return (int16_t)reg / 10.0;
}

int fascia_block_w_pack(const struct fascia_block_w *w, uint16_t *regs)
{
	int i;

	if (w->command > FASCIA_CMD_RESET) {
		errno = FASCIA_ECOMMAND;
		return -1;
	}
	memset(regs, 0, FASCIA_BLOCK_W_LEN * sizeof(*regs));
	regs[FASCIA_REG_HEARTBEAT] = w->heartbeat;
	regs[FASCIA_REG_COMMAND] = w->command;
	regs[FASCIA_REG_WATCHDOG_MS] = w->watchdog_ms;
	regs[FASCIA_REG_PUMP] = w->pump ? 1 : 0;
	if (fascia_mmhg_to_reg(w->limit_mmhg, &regs[FASCIA_REG_LIMIT]) == -1)
		return -1;
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		if (fascia_mmhg_to_reg(w->setpoint_mmhg[i],
				       &regs[FASCIA_REG_SETPOINT + i]) == -1)
			return -1;
	return 0;
}

int fascia_block_w_unpack(const uint16_t *regs, struct fascia_block_w *w)
{
	int i;

	if (regs[FASCIA_REG_COMMAND] > FASCIA_CMD_RESET) {
		errno = FASCIA_ECOMMAND;
		return -1;
	}
	w->heartbeat = regs[FASCIA_REG_HEARTBEAT];
	w->command = regs[FASCIA_REG_COMMAND];
	w->watchdog_ms = regs[FASCIA_REG_WATCHDOG_MS];
	w->limit_mmhg = fascia_reg_to_mmhg(regs[FASCIA_REG_LIMIT]);
	w->pump = regs[FASCIA_REG_PUMP] != 0;
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		w->setpoint_mmhg[i] =
			fascia_reg_to_mmhg(regs[FASCIA_REG_SETPOINT + i]);
	return 0;
}

/* Register index within block R. */
#define R(reg) ((reg)-FASCIA_BLOCK_R_ADDR)

int fascia_block_r_pack(const struct fascia_block_r *r, uint16_t *regs)
{
	int i;

	if (r->chambers < 1 || r->chambers > FASCIA_MAX_CHAMBERS) {
		errno = FASCIA_ECHAMBERS;
		return -1;
	}
	memset(regs, 0, FASCIA_BLOCK_R_LEN * sizeof(*regs));
	regs[R(FASCIA_REG_MAP_VERSION)] = r->map_version;
	regs[R(FASCIA_REG_MODEL)] = r->model;
	regs[R(FASCIA_REG_FIRMWARE)] = r->firmware;
	regs[R(FASCIA_REG_CHAMBERS)] = r->chambers;
	regs[R(FASCIA_REG_STATUS)] = r->status;
	regs[R(FASCIA_REG_FAULT)] = r->fault;
	regs[R(FASCIA_REG_HEARTBEAT_ECHO)] = r->heartbeat_echo;
	regs[R(FASCIA_REG_SAMPLE)] = r->sample;
	regs[R(FASCIA_REG_UPTIME_HI)] = (uint16_t)(r->uptime_s >> 16);
	regs[R(FASCIA_REG_UPTIME_LO)] = (uint16_t)(r->uptime_s & 0xffff);
	if (fascia_mmhg_to_reg(r->supply_mmhg, &regs[R(FASCIA_REG_SUPPLY)]) ==
		    -1 ||
	    fascia_mmhg_to_reg(r->hw_relief_mmhg,
			       &regs[R(FASCIA_REG_HW_RELIEF)]) == -1)
		return -1;
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		if (r->valve[i] > FASCIA_VALVE_DEFLATING) {
			errno = FASCIA_EVALVE;
			return -1;
		}
		regs[R(FASCIA_REG_VALVE) + i] = r->valve[i];
		if (fascia_mmhg_to_reg(r->pressure_mmhg[i],
				       &regs[R(FASCIA_REG_PRESSURE) + i]) == -1)
			return -1;
	}
	return 0;
}

int fascia_block_r_unpack(const uint16_t *regs, struct fascia_block_r *r)
{
	int i;

	if (regs[R(FASCIA_REG_MAP_VERSION)] != FASCIA_MAP_VERSION) {
		errno = FASCIA_EMAPVER;
		return -1;
	}
	if (regs[R(FASCIA_REG_CHAMBERS)] < 1 ||
	    regs[R(FASCIA_REG_CHAMBERS)] > FASCIA_MAX_CHAMBERS) {
		errno = FASCIA_ECHAMBERS;
		return -1;
	}
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		if (regs[R(FASCIA_REG_VALVE) + i] > FASCIA_VALVE_DEFLATING) {
			errno = FASCIA_EVALVE;
			return -1;
		}
	r->map_version = regs[R(FASCIA_REG_MAP_VERSION)];
	r->model = regs[R(FASCIA_REG_MODEL)];
	r->firmware = regs[R(FASCIA_REG_FIRMWARE)];
	r->chambers = regs[R(FASCIA_REG_CHAMBERS)];
	r->status = regs[R(FASCIA_REG_STATUS)];
	r->fault = regs[R(FASCIA_REG_FAULT)];
	r->heartbeat_echo = regs[R(FASCIA_REG_HEARTBEAT_ECHO)];
	r->sample = regs[R(FASCIA_REG_SAMPLE)];
	r->supply_mmhg = fascia_reg_to_mmhg(regs[R(FASCIA_REG_SUPPLY)]);
	r->hw_relief_mmhg = fascia_reg_to_mmhg(regs[R(FASCIA_REG_HW_RELIEF)]);
	r->uptime_s = (uint32_t)regs[R(FASCIA_REG_UPTIME_HI)] << 16 |
		      regs[R(FASCIA_REG_UPTIME_LO)];
	for (i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		r->pressure_mmhg[i] =
			fascia_reg_to_mmhg(regs[R(FASCIA_REG_PRESSURE) + i]);
		r->valve[i] = (uint8_t)regs[R(FASCIA_REG_VALVE) + i];
	}
	return 0;
}

const char *fascia_strerror(int errnum)
{
	switch (errnum) {
	case FASCIA_ERANGE:
		return "Value outside what the register can hold";
	case FASCIA_EMAPVER:
		return "Device register map version is not 0x0100";
	case FASCIA_ECHAMBERS:
		return "Device reports a chamber count outside 1..16";
	case FASCIA_EVALVE:
		return "Device reports a valve state outside 0..2";
	case FASCIA_ECOMMAND:
		return "Command outside 0..3";
	default:
		return strerror(errnum);
	}
}

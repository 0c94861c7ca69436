/*
 * fascia register map v1: the contract between a controller (fasciad, a test
 * rig) and an actuator controller (real firmware or fascia-sim).
 *
 * All registers are holding registers.  Block W (0..31) is written by the
 * controller; block R (100..147) is read-only and also readable as input
 * registers.  Pressures travel as signed 16-bit integers in 0.1 mmHg; the
 * structs below carry them in mmHg and the pack/unpack functions convert.
 */
#ifndef FASCIA_REGMAP_H
#define FASCIA_REGMAP_H

#include <stdbool.h>
#include <stdint.h>

#define FASCIA_MAP_VERSION 0x0100
#define FASCIA_MAX_CHAMBERS 16

/* Block W: written by the controller, one FC23 per tick writes all of it. */
#define FASCIA_BLOCK_W_ADDR 0
#define FASCIA_BLOCK_W_LEN 32
#define FASCIA_REG_HEARTBEAT 0
#define FASCIA_REG_COMMAND 1
#define FASCIA_REG_WATCHDOG_MS 2
#define FASCIA_REG_LIMIT 3
#define FASCIA_REG_PUMP 4
#define FASCIA_REG_SETPOINT 16 /* 16..31: SETPOINT[0..15] */

/* Block R: read-only; a write is answered with exception 02. */
#define FASCIA_BLOCK_R_ADDR 100
#define FASCIA_BLOCK_R_LEN 48
#define FASCIA_REG_MAP_VERSION 100
#define FASCIA_REG_MODEL 101
#define FASCIA_REG_FIRMWARE 102
#define FASCIA_REG_CHAMBERS 103
#define FASCIA_REG_STATUS 104
#define FASCIA_REG_FAULT 105
#define FASCIA_REG_HEARTBEAT_ECHO 106
#define FASCIA_REG_SAMPLE 107
#define FASCIA_REG_SUPPLY 108
#define FASCIA_REG_HW_RELIEF 109
#define FASCIA_REG_UPTIME_HI 110
#define FASCIA_REG_UPTIME_LO 111
#define FASCIA_REG_PRESSURE 116 /* 116..131: PRESSURE[0..15] */
#define FASCIA_REG_VALVE 132    /* 132..147: VALVE[0..15] */

/* COMMAND values. */
enum fascia_command {
	FASCIA_CMD_IDLE = 0,  /* valves closed: pressure held */
	FASCIA_CMD_RUN = 1,   /* regulate every chamber to its setpoint */
	FASCIA_CMD_VENT = 2,  /* master vent and every deflate valve open */
	FASCIA_CMD_RESET = 3, /* clear latched faults: refused unless vented
				 and the e-stop released */
};

/* STATUS bits. */
#define FASCIA_ST_READY (1u << 0)
#define FASCIA_ST_RUNNING (1u << 1)
#define FASCIA_ST_VENTING (1u << 2)
#define FASCIA_ST_WATCHDOG_TRIPPED (1u << 3)
#define FASCIA_ST_ESTOP (1u << 4)
#define FASCIA_ST_GARMENT_CONNECTED (1u << 5)
#define FASCIA_ST_RELIEF_OPEN (1u << 6)
#define FASCIA_ST_SENSOR_FAULT (1u << 7)
#define FASCIA_ST_PUMP_FAULT (1u << 8)
#define FASCIA_ST_OVERLIMIT (1u << 9)

/* Latched device fault codes (register FAULT); the first latched cause
 * stays until a RESET is accepted. */
enum fascia_fault_code {
	FASCIA_FAULT_NONE = 0,
	FASCIA_FAULT_WATCHDOG = 1,
	FASCIA_FAULT_OVERLIMIT = 2,
	FASCIA_FAULT_ESTOP = 3,
	FASCIA_FAULT_SENSOR = 4,
	FASCIA_FAULT_PUMP = 5,
	FASCIA_FAULT_RELIEF = 6,
};

/* VALVE values. */
enum fascia_valve {
	FASCIA_VALVE_CLOSED = 0,
	FASCIA_VALVE_INFLATING = 1,
	FASCIA_VALVE_DEFLATING = 2,
};

/* Limits the firmware enforces on block W (exception 03 outside them). */
#define FASCIA_WATCHDOG_MS_MIN 50
#define FASCIA_WATCHDOG_MS_MAX 5000
#define FASCIA_WATCHDOG_MS_DEFAULT 500
#define FASCIA_LIMIT_MMHG_MAX 300.0

/* Errors of libfascia: -1 is returned and errno set to one of these. */
#define FASCIA_ENOBASE 0x46410000
enum {
	FASCIA_ERANGE =
		FASCIA_ENOBASE + 1, /* a value the register cannot hold */
	FASCIA_EMAPVER,             /* MAP_VERSION is not 0x0100 */
	FASCIA_ECHAMBERS,           /* CHAMBERS outside 1..16 */
	FASCIA_EVALVE,              /* a VALVE value outside 0..2 */
	FASCIA_ECOMMAND,            /* a COMMAND value outside 0..3 */
};

struct fascia_block_w {
	uint16_t heartbeat;
	uint16_t command; /* enum fascia_command */
	uint16_t watchdog_ms;
	double limit_mmhg;
	bool pump;
	double setpoint_mmhg[FASCIA_MAX_CHAMBERS];
};

struct fascia_block_r {
	uint16_t map_version;
	uint16_t model;
	uint16_t firmware;
	uint16_t chambers;
	uint16_t status; /* FASCIA_ST_* */
	uint16_t fault;  /* enum fascia_fault_code */
	uint16_t heartbeat_echo;
	uint16_t sample;
	double supply_mmhg;
	double hw_relief_mmhg;
	uint32_t uptime_s;
	double pressure_mmhg[FASCIA_MAX_CHAMBERS];
	uint8_t valve[FASCIA_MAX_CHAMBERS]; /* enum fascia_valve */
};

/*
 * One pressure register from mmHg, rounded to the nearest 0.1 mmHg.
 * Returns 0, or -1 with errno FASCIA_ERANGE when mmhg is not finite or
 * outside -3276.8..3276.7.
 */
int fascia_mmhg_to_reg(double mmhg, uint16_t *reg);
/* One pressure register to mmHg (the register is signed 0.1 mmHg). */
double fascia_reg_to_mmhg(uint16_t reg);

/*
 * Pack block W into regs[FASCIA_BLOCK_W_LEN] (reserved 5..15 are zero).
 * Returns 0, or -1 with errno FASCIA_ERANGE (a pressure that does not fit)
 * or FASCIA_ECOMMAND; regs is then unspecified.
 */
int fascia_block_w_pack(const struct fascia_block_w *w, uint16_t *regs);
/* Unpack regs[FASCIA_BLOCK_W_LEN]. Returns 0, or -1 with FASCIA_ECOMMAND. */
int fascia_block_w_unpack(const uint16_t *regs, struct fascia_block_w *w);

/*
 * Pack block R into regs[FASCIA_BLOCK_R_LEN] (reserved 112..115 are zero).
 * Returns 0, or -1 with errno FASCIA_ERANGE, FASCIA_ECHAMBERS or
 * FASCIA_EVALVE.
 */
int fascia_block_r_pack(const struct fascia_block_r *r, uint16_t *regs);
/*
 * Unpack regs[FASCIA_BLOCK_R_LEN] as read from a device.  Everything is
 * checked before use: returns 0, or -1 with errno FASCIA_EMAPVER,
 * FASCIA_ECHAMBERS or FASCIA_EVALVE, and then r is unspecified.
 */
int fascia_block_r_unpack(const uint16_t *regs, struct fascia_block_r *r);

/*
 * How far a 16-bit counter (HEARTBEAT, SAMPLE) moved from `from` to `to`,
 * across a wrap: fascia_counter_delta(65535, 1) is 2.
 */
static inline uint16_t fascia_counter_delta(uint16_t from, uint16_t to)
{
	return (uint16_t)(to - from);
}

/* A message for any errno value, libfascia's own included. */
const char *fascia_strerror(int errnum);

#endif

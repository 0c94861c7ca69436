/*
 * The simulated actuator controller, stepped in 1 ms firmware samples.
 *
 * Pneumatics, per chamber and sample: a linear orifice from the reservoir
 * through the inflate position of the chamber's valve, a linear orifice to
 * the air through its deflate position and through the master vent, an
 * injected leak, and a mechanical relief valve with hysteresis.  The
 * reservoir loses what the chambers take and the pump refills it.
 *
 * The firmware, after the pneumatics in each sample: sensor readings,
 * protections (LIMIT, relief, sensor range, pump, e-stop, watchdog) that
 * latch a FAULT, then the valves: vent while anything forces it, else
 * bang-bang regulation to the setpoints in RUN, else hold.
 *
 * Constants were chosen for the timing of the issue: an unramped chamber
 * reaches 40 mmHg in about 2 s from a 250 mmHg reservoir, holds within
 * the 0.3 mmHg regulation band plus sensor noise, and vents from 40 to
 * below 5 mmHg in about 0.2 s.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "model.h"

#define DT (SIM_SAMPLE_US / 1e6)

#define K_INFLATE 0.087     /* 1/s: flow from the reservoir, (S - P) */
#define K_DEFLATE 5.0       /* 1/s: a valve's deflate position, P */
#define K_VENT 5.0          /* 1/s: the master vent, P */
#define K_RELIEF 40.0       /* 1/s: the relief valve, above its close point */
#define K_OPEN_HOSE 20.0    /* 1/s: a garment taken off: hoses open to air */
#define RELIEF_HYST 10.0    /* mmHg: the relief valve closes this far down */
#define RESERVOIR_RATIO 0.1 /* chamber volume / reservoir volume */
#define PUMP_MMHG_S 60.0    /* pump refill rate */
#define BAND 0.3            /* mmHg: regulation dead band */
#define SENSOR_MIN -5.0     /* readings outside these are a sensor fault */
#define SENSOR_MAX 300.0
#define RESET_MAX_MMHG 5.0 /* RESET needs every reading below this */
#define DEFAULT_LIMIT 100.0

static const char *const fault_names[SIM_FAULT_COUNT] = {
	[SIM_FAULT_OVERPRESSURE] = "overpressure",
	[SIM_FAULT_VALVE_STUCK] = "valve_stuck",
	[SIM_FAULT_LEAK] = "leak",
	[SIM_FAULT_BLOCKED] = "blocked",
	[SIM_FAULT_SENSOR] = "sensor",
	[SIM_FAULT_FREEZE] = "freeze",
	[SIM_FAULT_ESTOP] = "estop",
	[SIM_FAULT_GARMENT_OFF] = "garment_off",
	[SIM_FAULT_PUMP_FAIL] = "pump_fail",
	[SIM_FAULT_REBOOT] = "reboot",
	[SIM_FAULT_LINK] = "link",
};

const char *sim_fault_name(enum sim_fault_kind kind)
{
	if ((unsigned)kind >= SIM_FAULT_COUNT)
		return "unknown";
	return fault_names[kind];
}

int sim_fault_from_name(const char *name)
{
	for (int i = 0; i < SIM_FAULT_COUNT; i++)
		if (name && strcmp(name, fault_names[i]) == 0)
			return i;
	return -1;
}

void sim_params_default(struct sim_params *p)
{
	memset(p, 0, sizeof(*p));
	p->chambers = 8;
	p->hw_relief_mmhg = 200.0;
	p->supply_max_mmhg = 250.0;
	p->noise_mmhg = 0.1;
	p->model_id = 0x5346; /* "SF" */
	p->firmware = 0x0100;
	p->seed = 1;
	p->reboot_ms = 1000;
}

/* xorshift64*: small, seedable, good enough for sensor noise. */
static double uniform(struct sim_model *m)
{
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return ((m->rng * 0x2545F4914F6CDD1DULL) >> 11) *
	       (1.0 / 9007199254740992.0);
}

static double gaussian(struct sim_model *m)
{
	double u = uniform(m), v = uniform(m);

	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* The firmware part of power-on: what a reboot resets. */
static void power_on(struct sim_model *m, uint64_t now_us)
{
	m->boot_us = now_us;
	m->booting_until_us = 0;
	m->heartbeat = 0;
	m->command = FASCIA_CMD_IDLE;
	m->watchdog_ms = FASCIA_WATCHDOG_MS_DEFAULT;
	m->limit_mmhg = DEFAULT_LIMIT;
	m->pump_on = true;
	memset(m->reserved_w, 0, sizeof(m->reserved_w));
	m->watchdog_armed = false;
	m->heartbeat_changed_us = now_us;
	m->fault = FASCIA_FAULT_NONE;
	m->latched = 0;
	m->watchdog_tripped_us = 0;
	m->heartbeat_echo = 0;
	m->sample = 0;
	m->frozen = false;
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		m->ch[i].setpoint = 0;
		m->ch[i].valve = FASCIA_VALVE_CLOSED;
	}
}

void sim_model_init(struct sim_model *m, const struct sim_params *p,
		    uint64_t now_us)
{
	memset(m, 0, sizeof(*m));
	m->p = *p;
	if (m->p.chambers < 1)
		m->p.chambers = 1;
	if (m->p.chambers > FASCIA_MAX_CHAMBERS)
		m->p.chambers = FASCIA_MAX_CHAMBERS;
	m->rng = p->seed ? p->seed : 0x9E3779B97F4A7C15ULL;
	m->now_us = now_us;
	m->supply = p->supply_max_mmhg;
	power_on(m, now_us);
}

bool sim_model_booting(const struct sim_model *m)
{
	return m->booting_until_us != 0;
}

bool sim_model_venting(const struct sim_model *m)
{
	return m->command == FASCIA_CMD_VENT || m->fault != FASCIA_FAULT_NONE ||
	       m->estop || sim_model_booting(m);
}

static void latch(struct sim_model *m, uint16_t code, uint16_t status_bit)
{
	if (m->fault == FASCIA_FAULT_NONE)
		m->fault = code;
	m->latched |= status_bit;
}

/* The valve position a chamber really has: a stuck valve wins. */
static uint8_t valve_position(const struct sim_chamber *c)
{
	if (c->stuck == SIM_STUCK_OPEN)
		return FASCIA_VALVE_INFLATING;
	if (c->stuck == SIM_STUCK_CLOSED)
		return FASCIA_VALVE_CLOSED;
	return c->valve;
}

static void pneumatics(struct sim_model *m)
{
	bool vent = sim_model_venting(m);
	double used = 0;

	for (int i = 0; i < m->p.chambers; i++) {
		struct sim_chamber *c = &m->ch[i];
		double p = c->pressure, dp = 0;
		uint8_t pos = valve_position(c);

		if (!c->blocked) {
			if (pos == FASCIA_VALVE_INFLATING && m->supply > p) {
				double in = K_INFLATE * (m->supply - p) * DT;
				dp += in;
				used += in;
			}
			if (pos == FASCIA_VALVE_DEFLATING)
				dp -= K_DEFLATE * p * DT;
			if (vent)
				dp -= K_VENT * p * DT;
		}
		if (m->garment_off)
			dp -= K_OPEN_HOSE * p * DT;
		if (c->leak_mmhg_s > 0 && p > 0)
			dp -= fmin(c->leak_mmhg_s * DT, p);
		if (p >= m->p.hw_relief_mmhg)
			c->relief_open = true;
		else if (p < m->p.hw_relief_mmhg - RELIEF_HYST)
			c->relief_open = false;
		if (c->relief_open)
			dp -= K_RELIEF *
			      (p - (m->p.hw_relief_mmhg - RELIEF_HYST)) * DT;
		p += dp;
		if (c->surge_mmhg > 0 && p < c->surge_mmhg)
			p = c->surge_mmhg;
		c->pressure = p;
	}
	m->supply -= used * RESERVOIR_RATIO;
	if (m->supply < 0)
		m->supply = 0;
	if (m->pump_on && !m->pump_failed && m->supply < m->p.supply_max_mmhg)
		m->supply = fmin(m->p.supply_max_mmhg,
				 m->supply + PUMP_MMHG_S * DT);
}

static void sense(struct sim_model *m)
{
	for (int i = 0; i < m->p.chambers; i++) {
		struct sim_chamber *c = &m->ch[i];
		double noise = m->p.noise_mmhg;

		if (c->sensor_faulty) {
			switch (c->sensor_mode) {
			case SIM_SENSOR_STUCK:
				continue; /* reading stays */
			case SIM_SENSOR_RANGE:
				c->reading = c->sensor_value;
				continue;
			case SIM_SENSOR_NOISE:
				noise = c->sensor_value;
				break;
			case SIM_SENSOR_OFFSET:
				break;
			}
		}
		c->reading = c->pressure + noise * gaussian(m);
		if (c->sensor_faulty && c->sensor_mode == SIM_SENSOR_OFFSET)
			c->reading += c->sensor_value;
	}
}

static bool sensor_out_of_range(const struct sim_model *m)
{
	for (int i = 0; i < m->p.chambers; i++)
		if (m->ch[i].reading < SENSOR_MIN ||
		    m->ch[i].reading > SENSOR_MAX)
			return true;
	return false;
}

static bool relief_open(const struct sim_model *m)
{
	for (int i = 0; i < m->p.chambers; i++)
		if (m->ch[i].relief_open)
			return true;
	return false;
}

static void protections(struct sim_model *m)
{
	/* The first cause latched is the one FAULT keeps: the most specific
	 * first (an open relief valve also reads above LIMIT). */
	if (relief_open(m))
		latch(m, FASCIA_FAULT_RELIEF, 0);
	if (sensor_out_of_range(m))
		latch(m, FASCIA_FAULT_SENSOR, 0);
	else
		for (int i = 0; i < m->p.chambers; i++)
			if (m->ch[i].reading > m->limit_mmhg)
				latch(m, FASCIA_FAULT_OVERLIMIT,
				      FASCIA_ST_OVERLIMIT);
	if (m->estop)
		latch(m, FASCIA_FAULT_ESTOP, 0);
	if (m->pump_failed)
		latch(m, FASCIA_FAULT_PUMP, 0);
	if (m->watchdog_armed &&
	    m->now_us - m->heartbeat_changed_us >=
		    (uint64_t)m->watchdog_ms * 1000 &&
	    !(m->latched & FASCIA_ST_WATCHDOG_TRIPPED)) {
		latch(m, FASCIA_FAULT_WATCHDOG, FASCIA_ST_WATCHDOG_TRIPPED);
		m->watchdog_tripped_us = m->now_us;
	}
}

static void regulate(struct sim_model *m)
{
	bool vent = sim_model_venting(m);

	for (int i = 0; i < m->p.chambers; i++) {
		struct sim_chamber *c = &m->ch[i];

		if (vent)
			c->valve = FASCIA_VALVE_DEFLATING;
		else if (m->command != FASCIA_CMD_RUN)
			c->valve = FASCIA_VALVE_CLOSED;
		else if (c->setpoint > 0 && c->reading < c->setpoint - BAND)
			c->valve = FASCIA_VALVE_INFLATING;
		else if (c->reading > c->setpoint + BAND)
			c->valve = FASCIA_VALVE_DEFLATING;
		else
			c->valve = FASCIA_VALVE_CLOSED;
	}
}

/* Reaction records of link faults and reboots end when the device vents
 * by itself (its watchdog, the power loss of a reboot): the controller
 * cannot reach it to send a VENT. */
/* The time of what a request did: its arrival when the server said so. */
static uint64_t event_us(const struct sim_model *m)
{
	return m->io_us > m->now_us ? m->io_us : m->now_us;
}

static void complete(struct sim_model *m, struct sim_record *r,
		     uint64_t exchange)
{
	r->done = true;
	r->vented_us = event_us(m);
	r->exchanges = r->first_read ? exchange - r->first_read : 0;
}

static void complete_own_vents(struct sim_model *m)
{
	for (unsigned i = 0; i < m->nrec; i++) {
		struct sim_record *r =
			&m->rec[(m->rec_head + i) % SIM_MAX_RECORDS];
		if (!r->done &&
		    (r->kind == SIM_FAULT_LINK || r->kind == SIM_FAULT_REBOOT))
			complete(m, r, m->exchanges);
	}
}

static void sample(struct sim_model *m)
{
	pneumatics(m);
	if (m->booting_until_us && m->now_us >= m->booting_until_us)
		power_on(m, m->now_us);
	if (sim_model_booting(m)) {
		regulate(m); /* power loss: every valve vents */
		complete_own_vents(m);
		return;
	}
	if (m->frozen)
		return;
	m->sample++;
	sense(m);
	protections(m);
	regulate(m);
	if (sim_model_venting(m))
		complete_own_vents(m);
}

void sim_model_advance(struct sim_model *m, uint64_t now_us)
{
	while (m->now_us + SIM_SAMPLE_US <= now_us) {
		m->now_us += SIM_SAMPLE_US;
		sample(m);
	}
}

static uint16_t status_bits(const struct sim_model *m)
{
	uint16_t st = m->latched;
	bool vent = sim_model_venting(m);

	if (m->fault == FASCIA_FAULT_NONE && !m->estop && !m->garment_off &&
	    !sim_model_booting(m))
		st |= FASCIA_ST_READY;
	if (m->command == FASCIA_CMD_RUN && !vent)
		st |= FASCIA_ST_RUNNING;
	if (vent)
		st |= FASCIA_ST_VENTING;
	if (m->estop)
		st |= FASCIA_ST_ESTOP;
	if (!m->garment_off)
		st |= FASCIA_ST_GARMENT_CONNECTED;
	if (relief_open(m))
		st |= FASCIA_ST_RELIEF_OPEN;
	if (sensor_out_of_range(m))
		st |= FASCIA_ST_SENSOR_FAULT;
	if (m->pump_failed)
		st |= FASCIA_ST_PUMP_FAULT;
	return st;
}

/* A pressure register, saturated at what 16 bits can hold. */
static uint16_t reg_mmhg(double mmhg)
{
	uint16_t r;

	if (fascia_mmhg_to_reg(mmhg, &r) == 0)
		return r;
	return (uint16_t)(int16_t)(mmhg > 0 ? INT16_MAX : INT16_MIN);
}

static void block_r(const struct sim_model *m, uint16_t *r)
{
	uint32_t up = (uint32_t)((m->now_us - m->boot_us) / 1000000);

	memset(r, 0, FASCIA_BLOCK_R_LEN * sizeof(*r));
	r[0] = FASCIA_MAP_VERSION;
	r[1] = m->p.model_id;
	r[2] = m->p.firmware;
	r[3] = (uint16_t)m->p.chambers;
	r[4] = status_bits(m);
	r[5] = m->fault;
	r[6] = m->heartbeat_echo;
	r[7] = m->sample;
	r[8] = reg_mmhg(m->supply);
	r[9] = reg_mmhg(m->p.hw_relief_mmhg);
	r[10] = (uint16_t)(up >> 16);
	r[11] = (uint16_t)up;
	for (int i = 0; i < m->p.chambers; i++) {
		r[16 + i] = reg_mmhg(m->ch[i].reading);
		r[32 + i] = m->ch[i].valve;
	}
}

static void block_w(const struct sim_model *m, uint16_t *w)
{
	memset(w, 0, FASCIA_BLOCK_W_LEN * sizeof(*w));
	w[FASCIA_REG_HEARTBEAT] = m->heartbeat;
	w[FASCIA_REG_COMMAND] = m->command;
	w[FASCIA_REG_WATCHDOG_MS] = m->watchdog_ms;
	w[FASCIA_REG_LIMIT] = reg_mmhg(m->limit_mmhg);
	w[FASCIA_REG_PUMP] = m->pump_on;
	memcpy(&w[5], m->reserved_w, sizeof(m->reserved_w));
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++)
		w[FASCIA_REG_SETPOINT + i] = reg_mmhg(m->ch[i].setpoint);
}

int sim_model_read(const struct sim_model *m, int addr, int n, uint16_t *out)
{
	uint16_t img[SIM_IMAGE_LEN];
	bool in_w = addr >= 0 && addr + n <= FASCIA_BLOCK_W_LEN;
	bool in_r = addr >= FASCIA_BLOCK_R_ADDR &&
		    addr + n <= FASCIA_BLOCK_R_ADDR + FASCIA_BLOCK_R_LEN;

	if (n < 1 || !(in_w || in_r))
		return 2;
	if (in_w) {
		block_w(m, img);
	} else if (m->frozen) {
		memcpy(&img[FASCIA_BLOCK_R_ADDR], m->frozen_image,
		       FASCIA_BLOCK_R_LEN * sizeof(*img));
	} else {
		block_r(m, &img[FASCIA_BLOCK_R_ADDR]);
	}
	memcpy(out, &img[addr], (size_t)n * sizeof(*out));
	return 0;
}

static bool all_vented(const struct sim_model *m)
{
	for (int i = 0; i < m->p.chambers; i++)
		if (m->ch[i].reading >= RESET_MAX_MMHG)
			return false;
	return true;
}

/* RESET: accepted only vented and with the e-stop released; a refused
 * RESET changes nothing. */
static void reset(struct sim_model *m)
{
	if (!all_vented(m) || m->estop)
		return;
	m->fault = FASCIA_FAULT_NONE;
	m->latched = 0;
	m->watchdog_tripped_us = 0;
	m->heartbeat_changed_us = m->now_us;
}

/* Check a write whole: 0 or the Modbus exception code. */
static int check_write(const struct sim_model *m, int addr, int n,
		       const uint16_t *v)
{
	double limit = m->limit_mmhg;

	if (n < 1 || addr < 0 || addr + n > FASCIA_BLOCK_W_LEN)
		return 2;
	for (int i = 0; i < n; i++) {
		int reg = addr + i;
		double mmhg = fascia_reg_to_mmhg(v[i]);

		if (reg == FASCIA_REG_COMMAND && v[i] > FASCIA_CMD_RESET)
			return 3;
		if (reg == FASCIA_REG_WATCHDOG_MS &&
		    (v[i] < FASCIA_WATCHDOG_MS_MIN ||
		     v[i] > FASCIA_WATCHDOG_MS_MAX))
			return 3;
		if (reg == FASCIA_REG_PUMP && v[i] > 1)
			return 3;
		if (reg == FASCIA_REG_LIMIT) {
			if (mmhg < 0 || mmhg > FASCIA_LIMIT_MMHG_MAX ||
			    mmhg > m->p.hw_relief_mmhg)
				return 3;
			limit = mmhg;
		}
	}
	for (int i = 0; i < n; i++) {
		int reg = addr + i;
		double mmhg = fascia_reg_to_mmhg(v[i]);

		if (reg >= FASCIA_REG_SETPOINT && (mmhg < 0 || mmhg > limit))
			return 3;
	}
	return 0;
}

/* A reaction ends at a VENT, or at every setpoint written zero while the
 * device vents. */
static void note_vent_write(struct sim_model *m, int addr, int n,
			    const uint16_t *v)
{
	bool vent_cmd = false, zeroed = true;

	for (int i = 0; i < n; i++)
		if (addr + i == FASCIA_REG_COMMAND && v[i] == FASCIA_CMD_VENT)
			vent_cmd = true;
	for (int i = 0; i < m->p.chambers; i++)
		if (m->ch[i].setpoint != 0)
			zeroed = false;
	if (vent_cmd)
		m->vent_writes++;
	if (!vent_cmd && !(zeroed && sim_model_venting(m)))
		return;
	for (unsigned i = 0; i < m->nrec; i++) {
		struct sim_record *r =
			&m->rec[(m->rec_head + i) % SIM_MAX_RECORDS];
		if (!r->done)
			complete(m, r, m->exchanges + 1);
	}
}

int sim_model_write(struct sim_model *m, int addr, int n, const uint16_t *v)
{
	int ex = check_write(m, addr, n, v);
	bool armed_before = m->watchdog_armed;

	if (ex)
		return ex;
	for (int i = 0; i < n; i++) {
		int reg = addr + i;

		switch (reg) {
		case FASCIA_REG_HEARTBEAT:
			if (v[i] != m->heartbeat) {
				m->heartbeat_changed_us = m->now_us;
				m->watchdog_armed = true;
			}
			m->heartbeat = v[i];
			break;
		case FASCIA_REG_COMMAND:
			m->command = v[i];
			if (v[i] == FASCIA_CMD_RUN)
				m->watchdog_armed = true;
			break;
		case FASCIA_REG_WATCHDOG_MS:
			m->watchdog_ms = v[i];
			break;
		case FASCIA_REG_LIMIT:
			m->limit_mmhg = fascia_reg_to_mmhg(v[i]);
			break;
		case FASCIA_REG_PUMP:
			m->pump_on = v[i] != 0;
			break;
		default:
			if (reg >= FASCIA_REG_SETPOINT)
				m->ch[reg - FASCIA_REG_SETPOINT].setpoint =
					fascia_reg_to_mmhg(v[i]);
			else
				m->reserved_w[reg - 5] = v[i];
		}
	}
	/* Arming counts from now, not from power-on. */
	if (!armed_before && m->watchdog_armed)
		m->heartbeat_changed_us = m->now_us;
	if (!m->frozen && !sim_model_booting(m)) {
		m->heartbeat_echo = m->heartbeat;
		if (m->command == FASCIA_CMD_RESET &&
		    addr <= FASCIA_REG_COMMAND && addr + n > FASCIA_REG_COMMAND)
			reset(m);
	}
	note_vent_write(m, addr, n, v);
	return 0;
}

void sim_model_note_exchange(struct sim_model *m, bool read_r)
{
	m->exchanges++;
	if (!read_r)
		return;
	for (unsigned i = 0; i < m->nrec; i++) {
		struct sim_record *r =
			&m->rec[(m->rec_head + i) % SIM_MAX_RECORDS];
		/* Block R holds the last sample's readings: a sensed cause
		 * shows once a sample after the injection has been taken. */
		if (r->sensed && m->now_us <= r->injected_us)
			continue;
		if (!r->done && !r->first_read) {
			r->first_read = m->exchanges;
			r->shown_us = event_us(m);
		}
	}
}

void sim_model_record(struct sim_model *m, enum sim_fault_kind kind)
{
	struct sim_record *r;

	if (m->nrec < SIM_MAX_RECORDS) {
		r = &m->rec[(m->rec_head + m->nrec) % SIM_MAX_RECORDS];
		m->nrec++;
	} else {
		r = &m->rec[m->rec_head];
		m->rec_head = (m->rec_head + 1) % SIM_MAX_RECORDS;
	}
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->injected_us = m->now_us;
	/* STATUS (e-stop, garment), the heartbeat echo of a frozen
	 * firmware and a link fault show in the next reply; pressures,
	 * readings and the pump's fault only after a sample. */
	r->sensed = kind != SIM_FAULT_ESTOP && kind != SIM_FAULT_GARMENT_OFF &&
		    kind != SIM_FAULT_FREEZE && kind != SIM_FAULT_REBOOT &&
		    kind != SIM_FAULT_LINK;
	r->cause_us = r->sensed ? m->now_us + SIM_SAMPLE_US : event_us(m);
}

const struct sim_record *sim_model_record_at(const struct sim_model *m,
					     unsigned i)
{
	if (i >= m->nrec)
		return NULL;
	return &m->rec[(m->rec_head + i) % SIM_MAX_RECORDS];
}

static bool has_chamber(enum sim_fault_kind kind)
{
	return kind == SIM_FAULT_OVERPRESSURE ||
	       kind == SIM_FAULT_VALVE_STUCK || kind == SIM_FAULT_LEAK ||
	       kind == SIM_FAULT_BLOCKED || kind == SIM_FAULT_SENSOR;
}

int sim_model_inject(struct sim_model *m, const struct sim_fault *f)
{
	struct sim_chamber *c = NULL;

	if ((unsigned)f->kind >= SIM_FAULT_COUNT)
		goto invalid;
	if (has_chamber(f->kind)) {
		if (f->chamber < 0 || f->chamber >= m->p.chambers)
			goto invalid;
		c = &m->ch[f->chamber];
	}
	switch (f->kind) {
	case SIM_FAULT_OVERPRESSURE:
		if (!(f->mmhg > 0) || !isfinite(f->mmhg))
			goto invalid;
		c->surge_mmhg = f->mmhg;
		c->pressure = fmax(c->pressure, f->mmhg);
		break;
	case SIM_FAULT_VALVE_STUCK:
		if (f->stuck != SIM_STUCK_OPEN && f->stuck != SIM_STUCK_CLOSED)
			goto invalid;
		c->stuck = f->stuck;
		break;
	case SIM_FAULT_LEAK:
		if (!(f->mmhg_s >= 0) || !isfinite(f->mmhg_s))
			goto invalid;
		c->leak_mmhg_s = f->mmhg_s;
		break;
	case SIM_FAULT_BLOCKED:
		c->blocked = true;
		break;
	case SIM_FAULT_SENSOR:
		if ((unsigned)f->sensor_mode > SIM_SENSOR_RANGE ||
		    (f->sensor_mode != SIM_SENSOR_STUCK && !isfinite(f->value)))
			goto invalid;
		c->sensor_faulty = true;
		c->sensor_mode = f->sensor_mode;
		c->sensor_value = f->value;
		if (f->sensor_mode == SIM_SENSOR_STUCK && isfinite(f->value))
			c->reading = f->value;
		break;
	case SIM_FAULT_FREEZE:
		if (!m->frozen)
			block_r(m, m->frozen_image);
		m->frozen = true;
		break;
	case SIM_FAULT_ESTOP:
		m->estop = true;
		break;
	case SIM_FAULT_GARMENT_OFF:
		m->garment_off = true;
		break;
	case SIM_FAULT_PUMP_FAIL:
		m->pump_failed = true;
		break;
	case SIM_FAULT_REBOOT:
		m->booting_until_us =
			m->now_us + (uint64_t)m->p.reboot_ms * 1000 + 1;
		m->frozen = false;
		for (int i = 0; i < m->p.chambers; i++)
			m->ch[i].valve = FASCIA_VALVE_DEFLATING;
		break;
	case SIM_FAULT_LINK:
	case SIM_FAULT_COUNT:
		break;
	}
	sim_model_record(m, f->kind);
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}

static void clear_chamber(struct sim_model *m, enum sim_fault_kind kind, int i)
{
	struct sim_chamber *c = &m->ch[i];

	switch (kind) {
	case SIM_FAULT_OVERPRESSURE:
		c->surge_mmhg = 0;
		break;
	case SIM_FAULT_VALVE_STUCK:
		c->stuck = SIM_STUCK_NONE;
		break;
	case SIM_FAULT_LEAK:
		c->leak_mmhg_s = 0;
		break;
	case SIM_FAULT_BLOCKED:
		c->blocked = false;
		break;
	case SIM_FAULT_SENSOR:
		c->sensor_faulty = false;
		break;
	default:
		break;
	}
}

int sim_model_clear(struct sim_model *m, enum sim_fault_kind kind, int chamber)
{
	if ((unsigned)kind >= SIM_FAULT_COUNT)
		goto invalid;
	if (has_chamber(kind)) {
		if (chamber >= m->p.chambers || chamber < -1)
			goto invalid;
		for (int i = 0; i < m->p.chambers; i++)
			if (chamber == -1 || chamber == i)
				clear_chamber(m, kind, i);
		return 0;
	}
	switch (kind) {
	case SIM_FAULT_FREEZE:
		m->frozen = false;
		break;
	case SIM_FAULT_ESTOP:
		m->estop = false;
		break;
	case SIM_FAULT_GARMENT_OFF:
		m->garment_off = false;
		break;
	case SIM_FAULT_PUMP_FAIL:
		m->pump_failed = false;
		break;
	default: /* reboot ends by itself; link lives in the server */
		break;
	}
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}

void sim_model_clear_all(struct sim_model *m)
{
	for (int k = 0; k < SIM_FAULT_COUNT; k++)
		sim_model_clear(m, (enum sim_fault_kind)k, -1);
}

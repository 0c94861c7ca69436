/*
 * The simulated actuator controller: pneumatics (reservoir, pump, chambers,
 * valves, leak, mechanical relief valve, sensor noise) and the firmware
 * (regulation, VENT, RESET, heartbeat watchdog, LIMIT, STATUS bits) stepped
 * at 1 kHz, plus the faults that can be injected into it.
 *
 * Pure code: no sockets, no clock of its own.  The caller passes a
 * monotonic time in microseconds; sim_model_advance() steps the model in
 * 1 ms firmware samples up to that time, so a unit test drives it with a
 * fake clock and the server with CLOCK_MONOTONIC.
 */
#ifndef FASCIA_SIM_MODEL_H
#define FASCIA_SIM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include <fascia/regmap.h>

#define SIM_SAMPLE_US 1000  /* one firmware sample: 1 kHz */
#define SIM_IMAGE_LEN 148   /* registers 0..147 */
#define SIM_MAX_RECORDS 256 /* reaction records kept (oldest dropped) */

/* Faults the model knows.  Link faults live in the server, but they are
 * recorded here too (sim_model_record) so that `stats` has one list. */
enum sim_fault_kind {
	SIM_FAULT_OVERPRESSURE, /* chamber, mmhg: held at least at mmhg */
	SIM_FAULT_VALVE_STUCK,  /* chamber, stuck: open or closed */
	SIM_FAULT_LEAK,         /* chamber, mmhg_s */
	SIM_FAULT_BLOCKED,      /* chamber: valves have no effect */
	SIM_FAULT_SENSOR,       /* chamber, sensor mode, value */
	SIM_FAULT_FREEZE,       /* firmware frozen: SAMPLE and block R stop */
	SIM_FAULT_ESTOP,        /* e-stop pressed */
	SIM_FAULT_GARMENT_OFF,  /* garment disconnected */
	SIM_FAULT_PUMP_FAIL,    /* pump dead */
	SIM_FAULT_REBOOT,       /* one-shot: see sim_model_reboot */
	SIM_FAULT_LINK,         /* server-side; only recorded here */
	SIM_FAULT_COUNT
};

enum sim_sensor_mode {
	SIM_SENSOR_STUCK,  /* reading frozen (at value, or where it was if NaN)
			    */
	SIM_SENSOR_NOISE,  /* value: noise standard deviation, mmHg */
	SIM_SENSOR_OFFSET, /* value: added to the reading, mmHg */
	SIM_SENSOR_RANGE,  /* value: the reading, typically out of range */
};

enum sim_stuck { SIM_STUCK_NONE, SIM_STUCK_OPEN, SIM_STUCK_CLOSED };

struct sim_fault {
	enum sim_fault_kind kind;
	int chamber;          /* 0-based; -1 where the fault has none */
	double mmhg;          /* overpressure */
	double mmhg_s;        /* leak */
	enum sim_stuck stuck; /* valve_stuck */
	enum sim_sensor_mode sensor_mode;
	double value; /* sensor */
};

struct sim_params {
	int chambers;           /* 1..16, default 8 */
	double hw_relief_mmhg;  /* mechanical relief valve, default 200 */
	double supply_max_mmhg; /* reservoir pressure the pump holds, default
				   250 */
	double noise_mmhg;      /* sensor noise, standard deviation */
	uint16_t model_id;
	uint16_t firmware;
	uint64_t seed;      /* noise generator seed */
	uint32_t reboot_ms; /* how long a reboot keeps the device silent */
};

struct sim_chamber {
	double pressure;  /* true pressure, mmHg */
	double reading;   /* what the sensor reports, mmHg */
	double setpoint;  /* mmHg, as last written */
	uint8_t valve;    /* enum fascia_valve, as the firmware drives it */
	bool relief_open; /* the mechanical relief valve is venting */
	/* injected faults */
	double surge_mmhg; /* > 0: overpressure surge active */
	enum sim_stuck stuck;
	double leak_mmhg_s;
	bool blocked;
	bool sensor_faulty;
	enum sim_sensor_mode sensor_mode;
	double sensor_value;
};

/* One injected cause and the reaction to it (see `stats`). */
struct sim_record {
	enum sim_fault_kind kind;
	uint64_t injected_us;
	uint64_t first_read; /* exchange number of the first read of block R
				that can show the cause; 0: none yet */
	bool sensed;         /* the cause shows only in the readings of a
				firmware sample taken after the injection */
	uint64_t cause_us;   /* when block R could first show it: the next
				sample for a sensed cause, else the
				injection's arrival */
	uint64_t shown_us;   /* time of that read: the cause showed */
	uint64_t vented_us;  /* 0 until the first VENT or vented state */
	uint64_t exchanges;  /* exchanges from first_read to the VENT */
	bool done;
};

struct sim_model {
	struct sim_params p;
	uint64_t now_us;           /* time of the last sample taken */
	uint64_t io_us;            /* when the request being served arrived
				      (set by the server; 0: use now_us):
				      reaction records are timed with it,
				      finer than the 1 ms sample */
	uint64_t boot_us;          /* UPTIME_S counts from here */
	uint64_t booting_until_us; /* a reboot in progress: silent, venting */

	/* block W as last written */
	uint16_t heartbeat;
	uint16_t command; /* enum fascia_command; RESET reads back as written */
	uint16_t watchdog_ms;
	double limit_mmhg;
	bool pump_on;
	uint16_t reserved_w[11]; /* 5..15, stored and read back */

	/* firmware state */
	bool watchdog_armed;
	uint64_t heartbeat_changed_us;
	uint64_t watchdog_tripped_us; /* the sample that latched it; 0: not */
	uint16_t fault;               /* latched enum fascia_fault_code */
	uint16_t
		latched; /* latched STATUS bits (WATCHDOG_TRIPPED, OVERLIMIT) */
	uint16_t heartbeat_echo;
	uint16_t sample;
	double supply; /* reservoir, mmHg */
	struct sim_chamber ch[FASCIA_MAX_CHAMBERS];

	/* device-wide faults */
	bool estop;
	bool garment_off;
	bool pump_failed;
	bool frozen;
	uint16_t frozen_image[SIM_IMAGE_LEN]; /* block R as it froze */

	/* reaction records */
	uint64_t exchanges;   /* exchanges served so far */
	uint64_t vent_writes; /* writes of COMMAND VENT received */
	struct sim_record rec[SIM_MAX_RECORDS];
	unsigned nrec;     /* records held, at most SIM_MAX_RECORDS */
	unsigned rec_head; /* index of the oldest when the ring is full */

	uint64_t rng; /* noise generator state */
};

/* Defaults: 8 chambers, relief 200 mmHg, supply 250 mmHg, noise 0.1 mmHg,
 * reboot 1000 ms. */
void sim_params_default(struct sim_params *p);

/*
 * Power on at now_us: IDLE, pump on, LIMIT 100 mmHg, WATCHDOG_MS 500,
 * chambers at 0 mmHg, reservoir full, garment connected, e-stop released.
 * The watchdog is armed from the first change of HEARTBEAT or the first
 * RUN command, and stays armed until the next power on.
 */
void sim_model_init(struct sim_model *m, const struct sim_params *p,
		    uint64_t now_us);

/* Take every 1 ms sample up to now_us (a time in the past does nothing). */
void sim_model_advance(struct sim_model *m, uint64_t now_us);

/*
 * A Modbus write of n registers from addr (block W).  Everything is checked
 * before anything is applied.  Returns 0, or the Modbus exception code:
 * 2 (MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS) outside 0..31, 3 (ILLEGAL_DATA
 * _VALUE) for COMMAND > 3, WATCHDOG_MS outside 50..5000, LIMIT outside
 * 0..300 mmHg or above HW_RELIEF, PUMP > 1, a negative setpoint or one above
 * LIMIT (the LIMIT written in the same request counts).  A write of COMMAND
 * VENT completes pending reaction records at m->now_us.
 */
int sim_model_write(struct sim_model *m, int addr, int n, const uint16_t *v);

/*
 * A Modbus read of n registers from addr: block W (0..31) or block R
 * (100..147), reserved registers read 0.  Returns 0, or 2 for an address
 * outside those blocks.  While frozen, block R reads as it froze.
 */
int sim_model_read(const struct sim_model *m, int addr, int n, uint16_t *out);

/* Count one exchange served; read_r: it returned part of block R.  The
 * first such read after an injection marks when the cause showed. */
void sim_model_note_exchange(struct sim_model *m, bool read_r);

/* True while the device is venting: VENT commanded, a latched fault or the
 * e-stop forcing a vent, or a reboot in progress. */
bool sim_model_venting(const struct sim_model *m);

/* True while a reboot keeps the device silent (the server drops links). */
bool sim_model_booting(const struct sim_model *m);

/*
 * Inject a fault now (m->now_us) and open a reaction record for it.
 * Returns 0, or -1 with errno EINVAL (chamber outside 0..chambers-1 where
 * the fault takes one, a negative leak, an unknown kind).  Injecting a fault
 * already active replaces its arguments.  SIM_FAULT_REBOOT starts a reboot:
 * the device vents and is silent for reboot_ms, then powers on afresh;
 * faults of the hardware (valves, leak, garment, e-stop, pump) stay.
 */
int sim_model_inject(struct sim_model *m, const struct sim_fault *f);

/*
 * Clear a fault: chamber -1 clears it on every chamber.  Clearing removes
 * the cause only; latched device faults stay until a RESET is accepted.
 * Returns 0, or -1 with errno EINVAL.
 */
int sim_model_clear(struct sim_model *m, enum sim_fault_kind kind, int chamber);
/* Clear every fault. */
void sim_model_clear_all(struct sim_model *m);

/* Open a reaction record without touching the model (link faults). */
void sim_model_record(struct sim_model *m, enum sim_fault_kind kind);

/* Record i (0 = oldest) of the m->nrec held, or NULL. */
const struct sim_record *sim_model_record_at(const struct sim_model *m,
					     unsigned i);

/* Fault names as in the control protocol ("overpressure", "valve_stuck",
 * ...), and back: -1 for an unknown name. */
const char *sim_fault_name(enum sim_fault_kind kind);
int sim_fault_from_name(const char *name);

#endif

/*
 * fasciad's safety core: the interlock table and the session state
 * machine.  Pure code: inputs are what one exchange read, what we
 * commanded and a time; outputs are trips and transitions.  The control
 * thread calls it every tick; unit tests call it with a fake clock.
 */
#ifndef FASCIAD_SAFETY_H
#define FASCIAD_SAFETY_H

#include <stdbool.h>
#include <stdint.h>

#include <fascia/limits.h>
#include <fascia/regmap.h>

/* ---- interlocks ---- */

enum ilk_id {
	ILK_OVERPRESSURE,
	ILK_DEVIATION,
	ILK_RATE,
	ILK_HOLD_TIME,
	ILK_SESSION_TIME,
	ILK_STALE,
	ILK_HEARTBEAT,
	ILK_COMMS,
	ILK_ESTOP,
	ILK_GARMENT,
	ILK_SENSOR,
	ILK_DEVICE_FAULT,
	ILK_DEADLINE,
	ILK_COUNT
};

enum ilk_reaction {
	ILK_REACT_VENT,    /* write VENT in this tick, state fault */
	ILK_REACT_RELEASE, /* ramp every chamber down gently, state fault */
	ILK_REACT_OFFLINE, /* link lost: the firmware watchdog vents */
};

enum ilk_priority { ILK_PRIO_HIGH, ILK_PRIO_MEDIUM };

/*
 * When a row's cause counts as present, which refuses an acknowledgement:
 * while the row trips (the e-stop is still pressed); never once it has
 * tripped, because the reaction itself ends the cause (a vented chamber
 * holds no pressure for 120 s); or when the row's check says so, which
 * may be more or less than its trip condition (ilk_cause()).
 */
enum ilk_presence {
	ILK_PRESENT_WHILE_TRIPPING,
	ILK_PRESENT_UNTIL_REACTION,
	ILK_PRESENT_BY_CHECK,
};

/* The device's STATUS bits that the device_fault row answers: those that
 * stay latched until a RESET, and those that are a cause present now. */
#define ILK_DEVICE_LATCHED_BITS                                                \
	(FASCIA_ST_WATCHDOG_TRIPPED | FASCIA_ST_OVERLIMIT)
#define ILK_DEVICE_LIVE_BITS (FASCIA_ST_RELIEF_OPEN | FASCIA_ST_PUMP_FAULT)
#define ILK_DEVICE_BITS (ILK_DEVICE_LATCHED_BITS | ILK_DEVICE_LIVE_BITS)

/* Thresholds, each configurable in [daemon] within the bounds of its row
 * (ilk_rows[]), under the key named there. */
struct ilk_config {
	double v[ILK_COUNT][2]; /* up to two parameters per row */
};

/* One row of the table. */
struct ilk_param {
	const char *key; /* [daemon] key; NULL: no parameter */
	const char *unit;
	double def, lo, hi;
};

struct ilk_row {
	enum ilk_id id;
	const char *name; /* as published: "overpressure" ... */
	const char *hazard;
	enum ilk_reaction reaction;
	enum ilk_priority priority;
	enum ilk_presence presence;
	struct ilk_param param[2];
};

extern const struct ilk_row ilk_rows[ILK_COUNT];

/* A priority as published and recorded: "high", "medium". */
const char *ilk_priority_name(enum ilk_priority p);

/* What one tick saw and did. */
struct ilk_input {
	double now_s;     /* monotonic time of this tick's exchange */
	bool exchange_ok; /* the exchange succeeded; r is valid */
	bool late;        /* the tick began over half a period late */
	const struct fascia_block_r *r;
	uint16_t heartbeat;     /* HEARTBEAT written in this exchange */
	int chambers;           /* chambers in use */
	const double *setpoint; /* [chambers]: setpoints written, mmHg */
	bool running;           /* a session is running (not paused) */
	bool in_session;        /* running, paused or releasing */
	double max_pressure;    /* the profile's maximum in a session */
	double max_ramp;        /* the profile's max_ramp_mmhg_s */
	double device_limit;    /* the device's limit_mmhg */
	double session_elapsed_s;
	double session_length_s;
};

/* Readings kept for the rate: 100 ms at 200 Hz, with room. */
#define ILK_HISTORY 32

/* What the interlocks remember between ticks, per device. */
struct ilk_state {
	bool primed; /* one good exchange seen */
	/* The last ILK_HISTORY readings, for the rate over a window */
	double hist_t[ILK_HISTORY];
	double hist_p[ILK_HISTORY][FASCIA_MAX_CHAMBERS];
	unsigned hist_n; /* readings kept so far (ring: hist_n % size) */
	double deviation_since[FASCIA_MAX_CHAMBERS]; /* < 0: none */
	double hold_since[FASCIA_MAX_CHAMBERS];
	double last_reading[FASCIA_MAX_CHAMBERS];   /* the last tick's */
	double stuck_since[FASCIA_MAX_CHAMBERS];    /* < 0: moving */
	double unvented_since[FASCIA_MAX_CHAMBERS]; /* < 0: vented */
	uint16_t last_sample;
	double sample_changed_s;
	int bad_exchanges;
	int late_ticks;
};

/* An alarm's message: what was measured, against what threshold, for
 * how long; in words a technician can act on. */
#define ILK_MESSAGE_MAX 160

struct ilk_trip {
	enum ilk_id id;
	int chamber;             /* 1-based; 0 for the device as a whole */
	double value, threshold; /* measured, and its limit, in the row's
				    unit; NAN for a row that measures
				    nothing (the e-stop) */
	char message[ILK_MESSAGE_MAX];
};

/* Defaults for every threshold. */
void ilk_config_default(struct ilk_config *c);
/* Forget the past: after a (re)connect or a new session. */
void ilk_reset(struct ilk_state *s, double now_s);

/*
 * Evaluate every row for one tick.  Fills up to max trips (rows whose
 * trip condition holds now; a row trips at most once per call) and
 * returns how many; *present gets the bit mask (1 << id) of rows whose
 * cause is present now, which refuses an acknowledgement.
 */
int ilk_check(const struct ilk_config *c, struct ilk_state *s,
	      const struct ilk_input *in, struct ilk_trip *trips, int max,
	      unsigned *present);

/* ---- session states ---- */

/*
 * The states.  FAULT has two sub-states that behave differently and are
 * published as "fault" all the same: the gentle release that a release
 * reaction (session_time) ramps down before it vents, and the RESET
 * handshake of an acknowledgement, which waits for the reading after the
 * device's RESET before it gives its verdict.
 */
enum fd_state {
	FD_OFFLINE,
	FD_IDLE,
	FD_RUNNING,
	FD_PAUSED,
	FD_RELEASING,
	FD_VENTING,
	FD_FAULT,
	FD_FAULT_RELEASING, /* a release reaction: ramp down, then vent */
	FD_FAULT_RESETTING, /* an ack sent RESET: the verdict next tick */
	FD_STATE_COUNT
};

enum fd_event {
	FD_EV_READY, /* link up and device vented */
	FD_EV_START,
	FD_EV_PAUSE,
	FD_EV_RESUME,
	FD_EV_STOP,
	FD_EV_END,          /* the profile ended */
	FD_EV_RELEASED,     /* releasing or venting reached vented */
	FD_EV_VENT,         /* the operator's vent */
	FD_EV_TRIP,         /* an interlock whose reaction is to vent */
	FD_EV_TRIP_RELEASE, /* an interlock whose reaction is to release */
	FD_EV_RESET,        /* an ack found a latched device fault */
	FD_EV_ACK_REFUSED,  /* the RESET did not take, or the ack is void */
	FD_EV_ACK,          /* accepted acknowledgement */
	FD_EV_LINK_DOWN,
	FD_EV_COUNT
};

/* The state as published: a sub-state of FAULT is "fault". */
const char *fd_state_name(enum fd_state s);
/* The state as the table and the log know it ("fault_resetting"). */
const char *fd_state_table_name(enum fd_state s);
const char *fd_event_name(enum fd_event e);
/* FAULT or one of its sub-states. */
bool fd_state_is_fault(enum fd_state s);

/* The new state, or -1 when the table refuses e in state s. */
int fd_transition(enum fd_state s, enum fd_event e);

#endif

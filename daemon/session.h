/*
 * One device's session logic for one tick, pure: what the exchange read,
 * the operator's command and the time in; the next block W, the state and
 * what happened out.  The control thread runs it between exchanges; unit
 * tests run it with a fake clock and no sockets.
 */
#ifndef FASCIAD_SESSION_H
#define FASCIAD_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <fascia/profile.h>
#include <fascia/regmap.h>

#include "safety.h"

#define FD_MAX_ALARMS ILK_COUNT
/*
 * The most events one tick can raise, so that none is ever dropped: the
 * link's up or down (one: a tick either read the device or did not); an
 * alarm raised for every row, and the state changes they make (to
 * fault_releasing for a release reaction, then to fault for a vent);
 * a RESET handshake found void (one change); the operator's command (a
 * state change with a session event, or the change to idle with the
 * acknowledgement of every alarm); and what the state then does (a state
 * change and a session event).  tests/unit/tick.c raises them.
 */
#define FD_TICK_EVENTS (1 + FD_MAX_ALARMS + 2 + 1 + 1 + FD_MAX_ALARMS + 2)

/* A session's id: "<device>-<start, Unix ms>-<16 random bits, hex>",
 * made by the main thread when it hands the start over. */
#define FD_SESSION_ID_MAX 64

/*
 * A session's dose, from every tick's reading (dose.c): from the start
 * until the device is at rest again (idle, fault or offline), so a
 * release's and a fault's pressure counts too.  The pressure-time
 * integrals are trapezoids between two readings (exact for a pressure
 * that changes linearly between them); a tick without a reading holds the
 * last one.  The time above FD_DOSE_HAZARD_MMHG is interpolated the same
 * way.  An interval counts for the state the device was in during it.
 */
#define FD_DOSE_HAZARD_MMHG 30.0

struct fd_dose {
	int session_seq; /* the session it belongs to; 0: none */
	bool open;       /* still accumulating */
	int chambers;
	double delivered_s; /* running */
	double paused_s;
	double max_mmhg[FASCIA_MAX_CHAMBERS];
	double mmhg_s[FASCIA_MAX_CHAMBERS];     /* the pressure-time integral */
	double above_s[FASCIA_MAX_CHAMBERS];    /* above FD_DOSE_HAZARD_MMHG */
	double set_s[FASCIA_MAX_CHAMBERS];      /* time set above 0 */
	double set_mmhg_s[FASCIA_MAX_CHAMBERS]; /* the integral meanwhile */
	double last_t;
	double last_p[FASCIA_MAX_CHAMBERS];
};

/* Begin session_seq's dose at now, the reading then being p. */
void fd_dose_begin(struct fd_dose *d, int session_seq, int chambers, double now,
		   const double *p);
/* Add the interval from the last call to now, spent in state during with
 * the setpoints sp commanded, the reading at its end p. */
void fd_dose_add(struct fd_dose *d, enum fd_state during, double now,
		 const double *p, const double *sp);
/* Chamber i's mean pressure while set above 0 (0 when it never was). */
double fd_dose_mean(const struct fd_dose *d, int i);

/* What an operator asks of a device. */
enum fd_cmd {
	FD_CMD_NONE,
	FD_CMD_START, /* with a profile */
	FD_CMD_PAUSE,
	FD_CMD_RESUME,
	FD_CMD_STOP,
	FD_CMD_VENT,
	FD_CMD_ACK,
};

/* The answer to a command: 0 done, or an error code of the protocol. */
enum fd_verdict {
	FD_OK,
	FD_PENDING,    /* not decided yet (ack waits for the device's RESET) */
	FD_EBUSY,      /* another command is being applied */
	FD_EINTERLOCK, /* refused by an interlock or the device's state */
	FD_EFORBIDDEN, /* the state machine does not allow it now */
};

struct fd_alarm {
	enum ilk_id id;
	int chamber;             /* 1-based, 0: the device */
	double value, threshold; /* what tripped it (ilk_trip's) */
	bool present;            /* the cause is present now */
	double since_s;          /* monotonic, when it tripped */
	char message[ILK_MESSAGE_MAX];
};

enum fd_event_kind {
	FD_E_STATE,     /* state changed: from, to */
	FD_E_SESSION,   /* started, paused, resumed, completed, stopped */
	FD_E_ALARM,     /* raised */
	FD_E_ALARM_ACK, /* acknowledged and cleared */
	FD_E_LINK,      /* up or down */
};

/* Where and when an event happened: the tick's time and the session it
 * belongs to, as the snapshot of that tick has them (tick.c fills it in),
 * so that an event says what it says however late it is read. */
struct fd_event_ctx {
	uint64_t tick;
	int64_t unix_ms;
	bool have_session;
	int session_seq;
	char session_id[FD_SESSION_ID_MAX];
	char profile[FASCIA_PROFILE_NAME_MAX + 1];
	struct fascia_profile_pos pos;
};

struct fd_event_rec {
	enum fd_event_kind kind;
	enum fd_state from, to; /* FD_E_STATE */
	enum fd_event cause;    /* FD_E_STATE: what moved it */
	enum ilk_id alarm;
	int chamber;
	double value, threshold;    /* FD_E_ALARM: what tripped it */
	char text[ILK_MESSAGE_MAX]; /* "started", "down: ...", the alarm's */
	struct fd_event_ctx ctx;
};

/* Fixed for the life of a device. */
struct fd_session_conf {
	int chambers;
	double limit_mmhg; /* the device's LIMIT */
	int watchdog_ms;
	double max_session_s;
	struct ilk_config ilk;
};

struct fd_session {
	struct fd_session_conf c;
	enum fd_state state;
	struct ilk_state ilk;
	bool link_up;

	/* the session */
	bool have_profile;
	struct fascia_profile profile;
	double t; /* profile clock, s (frozen while paused) */
	struct fascia_profile_pos pos; /* the profile at t */
	double setpoint[FASCIA_MAX_CHAMBERS];
	double last_now;
	int session_seq; /* sessions started on this device */
	char session_id[FD_SESSION_ID_MAX];
	/* The dose of session k is dose[k & 1]: the one before stays while
	 * the next begins, until the main thread has had both (one command
	 * a hand-over: fasciad.h, struct fd_outbox). */
	struct fd_dose dose[2];

	/* what the next exchange writes */
	uint16_t heartbeat;
	uint16_t command; /* enum fascia_command */

	/* the last reading */
	struct fascia_block_r r;
	bool have_r;

	struct fd_alarm alarm[FD_MAX_ALARMS];
	int nalarm;

	char why[160]; /* why the last command was refused */

	/* This tick's events (the caller empties them: nev = 0).  Never
	 * more than FD_TICK_EVENTS; should a change of the code break that,
	 * the excess is counted in ev_lost, not written past the end. */
	struct fd_event_rec ev[FD_TICK_EVENTS];
	int nev;
	struct fd_event_rec ev_spare;
	uint64_t ev_lost;
};

/* What one tick brings in. */
struct fd_tick_in {
	double now;       /* monotonic, s */
	bool exchange_ok; /* r valid */
	const struct fascia_block_r *r;
	bool late;
	enum fd_cmd cmd;
	const struct fascia_profile *profile; /* FD_CMD_START */
	const char *session_id;               /* FD_CMD_START */
};

const char *fd_cmd_name(enum fd_cmd c);

void fd_session_init(struct fd_session *s, const struct fd_session_conf *c,
		     double now);

/*
 * Run one tick: interlocks, the state machine, the next setpoints.
 * Returns the verdict on in->cmd (FD_OK when there was none).  Sets
 * *vent_now when an interlock tripped in this tick: the caller writes the
 * block W again at once, so the VENT reaches the device in the next
 * exchange, not the next tick.  Events are appended to s->ev (the caller
 * empties it: s->nev = 0).
 */
enum fd_verdict fd_session_tick(struct fd_session *s,
				const struct fd_tick_in *in, bool *vent_now);

/* The block W the next exchange writes (HEARTBEAT advanced each call). */
void fd_session_block_w(struct fd_session *s, struct fascia_block_w *w);

/* At rest: idle, offline or in a fault (vented): no session's air on the
 * limb any more, so a session's dose is final. */
bool fd_session_at_rest(enum fd_state st);

/* True when every chamber in use reads below FASCIA_VENTED_MMHG. */
bool fd_session_vented(const struct fd_session *s);

#endif

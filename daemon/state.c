/*
 * The session state machine as one table: which event moves which state
 * where.  Everything not in the table is refused.  session.c's change()
 * is the one caller that moves a device along it.
 */
#include <stddef.h>

#include "safety.h"

static const char *const state_names[FD_STATE_COUNT] = {
	[FD_OFFLINE] = "offline",
	[FD_IDLE] = "idle",
	[FD_RUNNING] = "running",
	[FD_PAUSED] = "paused",
	[FD_RELEASING] = "releasing",
	[FD_VENTING] = "venting",
	[FD_FAULT] = "fault",
	[FD_FAULT_RELEASING] = "fault_releasing",
	[FD_FAULT_RESETTING] = "fault_resetting",
};

static const char *const event_names[FD_EV_COUNT] = {
	[FD_EV_READY] = "ready",       [FD_EV_START] = "start",
	[FD_EV_PAUSE] = "pause",       [FD_EV_RESUME] = "resume",
	[FD_EV_STOP] = "stop",         [FD_EV_END] = "end",
	[FD_EV_RELEASED] = "released", [FD_EV_VENT] = "vent",
	[FD_EV_TRIP] = "trip",         [FD_EV_TRIP_RELEASE] = "trip_release",
	[FD_EV_RESET] = "reset",       [FD_EV_ACK_REFUSED] = "ack_refused",
	[FD_EV_ACK] = "ack",           [FD_EV_LINK_DOWN] = "link_down",
};

/* 0: refused; otherwise the new state + 1. */
#define TO(s) ((s) + 1)
/* Every state but the faults: an interlock and a lost link. */
#define TRIPS                                                                  \
	[FD_EV_TRIP] = TO(FD_FAULT),                                           \
	[FD_EV_TRIP_RELEASE] = TO(FD_FAULT_RELEASING),                         \
	[FD_EV_LINK_DOWN] = TO(FD_FAULT)

/* Every fault state: what holds it vented, and the way out. */
#define IN_FAULT                                                               \
	[FD_EV_VENT] = TO(FD_FAULT), [FD_EV_TRIP] = TO(FD_FAULT),              \
	[FD_EV_LINK_DOWN] = TO(FD_FAULT), [FD_EV_ACK] = TO(FD_IDLE)

static const unsigned char table[FD_STATE_COUNT][FD_EV_COUNT] = {
	[FD_OFFLINE] = {[FD_EV_READY] = TO(FD_IDLE),
			[FD_EV_VENT] = TO(FD_OFFLINE), /* it vents already */
			[FD_EV_TRIP] = TO(FD_FAULT),
			[FD_EV_TRIP_RELEASE] = TO(FD_FAULT),
			[FD_EV_LINK_DOWN] = TO(FD_OFFLINE)},
	[FD_IDLE] = {[FD_EV_START] = TO(FD_RUNNING),
		     [FD_EV_VENT] = TO(FD_VENTING),
		     TRIPS},
	[FD_RUNNING] = {[FD_EV_PAUSE] = TO(FD_PAUSED),
			[FD_EV_STOP] = TO(FD_RELEASING),
			[FD_EV_END] = TO(FD_RELEASING),
			[FD_EV_VENT] = TO(FD_VENTING),
			TRIPS},
	[FD_PAUSED] = {[FD_EV_RESUME] = TO(FD_RUNNING),
		       [FD_EV_STOP] = TO(FD_RELEASING),
		       [FD_EV_VENT] = TO(FD_VENTING),
		       TRIPS},
	[FD_RELEASING] = {[FD_EV_RELEASED] = TO(FD_IDLE),
			  [FD_EV_VENT] = TO(FD_VENTING),
			  TRIPS},
	[FD_VENTING] = {[FD_EV_RELEASED] = TO(FD_IDLE),
			[FD_EV_VENT] = TO(FD_VENTING),
			TRIPS},
	/* In a fault every further alarm, the operator's vent and a lost
	 * link hold the device vented in FAULT itself; only an ack leaves,
	 * to idle. */
	[FD_FAULT] = {[FD_EV_RESET] = TO(FD_FAULT_RESETTING),
		      [FD_EV_ACK_REFUSED] = TO(FD_FAULT),
		      [FD_EV_TRIP_RELEASE] = TO(FD_FAULT),
		      IN_FAULT},
	/* the gentle release of a release reaction, then FAULT */
	[FD_FAULT_RELEASING] = {[FD_EV_RELEASED] = TO(FD_FAULT),
				[FD_EV_RESET] = TO(FD_FAULT_RESETTING),
				[FD_EV_ACK_REFUSED] = TO(FD_FAULT_RELEASING),
				[FD_EV_TRIP_RELEASE] = TO(FD_FAULT_RELEASING),
				IN_FAULT},
	/* the RESET of an ack: its verdict at the next reading */
	[FD_FAULT_RESETTING] = {[FD_EV_ACK_REFUSED] = TO(FD_FAULT),
				[FD_EV_TRIP_RELEASE] = TO(FD_FAULT),
				IN_FAULT},
};

bool fd_state_is_fault(enum fd_state s)
{
	return s == FD_FAULT || s == FD_FAULT_RELEASING ||
	       s == FD_FAULT_RESETTING;
}

const char *fd_state_table_name(enum fd_state s)
{
	return (unsigned)s < FD_STATE_COUNT ? state_names[s] : "unknown";
}

const char *fd_state_name(enum fd_state s)
{
	return fd_state_is_fault(s) ? "fault" : fd_state_table_name(s);
}

const char *fd_event_name(enum fd_event e)
{
	return (unsigned)e < FD_EV_COUNT ? event_names[e] : "unknown";
}

int fd_transition(enum fd_state s, enum fd_event e)
{
	if ((unsigned)s >= FD_STATE_COUNT || (unsigned)e >= FD_EV_COUNT ||
	    table[s][e] == 0)
		return -1;
	return table[s][e] - 1;
}

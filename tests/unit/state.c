/*
 * The session state machine: every allowed transition of docs/safety.md's
 * state table (FAULT's sub-states included), and every other pair refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../daemon/state.c"

struct move {
	enum fd_state from;
	enum fd_event ev;
	enum fd_state to;
};

/* Written from the design, independently of the table in state.c. */
static const struct move allowed[] = {
	{FD_OFFLINE, FD_EV_READY, FD_IDLE},
	{FD_OFFLINE, FD_EV_LINK_DOWN, FD_OFFLINE},
	{FD_OFFLINE, FD_EV_TRIP, FD_FAULT},
	{FD_OFFLINE, FD_EV_VENT, FD_OFFLINE},
	{FD_OFFLINE, FD_EV_TRIP_RELEASE, FD_FAULT},
	{FD_IDLE, FD_EV_START, FD_RUNNING},
	{FD_IDLE, FD_EV_VENT, FD_VENTING},
	{FD_IDLE, FD_EV_TRIP, FD_FAULT},
	{FD_IDLE, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_IDLE, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_RUNNING, FD_EV_PAUSE, FD_PAUSED},
	{FD_RUNNING, FD_EV_STOP, FD_RELEASING},
	{FD_RUNNING, FD_EV_END, FD_RELEASING},
	{FD_RUNNING, FD_EV_VENT, FD_VENTING},
	{FD_RUNNING, FD_EV_TRIP, FD_FAULT},
	{FD_RUNNING, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_RUNNING, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_PAUSED, FD_EV_RESUME, FD_RUNNING},
	{FD_PAUSED, FD_EV_STOP, FD_RELEASING},
	{FD_PAUSED, FD_EV_VENT, FD_VENTING},
	{FD_PAUSED, FD_EV_TRIP, FD_FAULT},
	{FD_PAUSED, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_PAUSED, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_RELEASING, FD_EV_RELEASED, FD_IDLE},
	{FD_RELEASING, FD_EV_VENT, FD_VENTING},
	{FD_RELEASING, FD_EV_TRIP, FD_FAULT},
	{FD_RELEASING, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_RELEASING, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_VENTING, FD_EV_RELEASED, FD_IDLE},
	{FD_VENTING, FD_EV_VENT, FD_VENTING},
	{FD_VENTING, FD_EV_TRIP, FD_FAULT},
	{FD_VENTING, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_VENTING, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_FAULT, FD_EV_ACK, FD_IDLE},
	{FD_FAULT, FD_EV_VENT, FD_FAULT},
	{FD_FAULT, FD_EV_TRIP, FD_FAULT},
	{FD_FAULT, FD_EV_LINK_DOWN, FD_FAULT},
	{FD_FAULT, FD_EV_TRIP_RELEASE, FD_FAULT},
	{FD_FAULT, FD_EV_RESET, FD_FAULT_RESETTING},
	{FD_FAULT, FD_EV_ACK_REFUSED, FD_FAULT},
	/* the gentle release of a release reaction */
	{FD_FAULT_RELEASING, FD_EV_RELEASED, FD_FAULT},
	{FD_FAULT_RELEASING, FD_EV_ACK, FD_IDLE},
	{FD_FAULT_RELEASING, FD_EV_RESET, FD_FAULT_RESETTING},
	{FD_FAULT_RELEASING, FD_EV_ACK_REFUSED, FD_FAULT_RELEASING},
	{FD_FAULT_RELEASING, FD_EV_VENT, FD_FAULT},
	{FD_FAULT_RELEASING, FD_EV_TRIP, FD_FAULT},
	{FD_FAULT_RELEASING, FD_EV_TRIP_RELEASE, FD_FAULT_RELEASING},
	{FD_FAULT_RELEASING, FD_EV_LINK_DOWN, FD_FAULT},
	/* the RESET handshake of an acknowledgement */
	{FD_FAULT_RESETTING, FD_EV_ACK, FD_IDLE},
	{FD_FAULT_RESETTING, FD_EV_ACK_REFUSED, FD_FAULT},
	{FD_FAULT_RESETTING, FD_EV_VENT, FD_FAULT},
	{FD_FAULT_RESETTING, FD_EV_TRIP, FD_FAULT},
	{FD_FAULT_RESETTING, FD_EV_TRIP_RELEASE, FD_FAULT},
	{FD_FAULT_RESETTING, FD_EV_LINK_DOWN, FD_FAULT},
};

static const struct move *find(enum fd_state s, enum fd_event e)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i].from == s && allowed[i].ev == e)
			return &allowed[i];
	return NULL;
}

static void test_allowed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int to = fd_transition(allowed[i].from, allowed[i].ev);

		if (to != (int)allowed[i].to)
			fail_msg("%s --%s--> %s, expected %s",
				 fd_state_table_name(allowed[i].from),
				 fd_event_name(allowed[i].ev),
				 to < 0 ? "refused" : fd_state_table_name(to),
				 fd_state_table_name(allowed[i].to));
	}
}

static void test_refused(void **state)
{
	int refused = 0;

	(void)state;
	for (int s = 0; s < FD_STATE_COUNT; s++)
		for (int e = 0; e < FD_EV_COUNT; e++) {
			if (find(s, e))
				continue;
			if (fd_transition(s, e) != -1)
				fail_msg("%s --%s--> %s should be refused",
					 fd_state_table_name(s),
					 fd_event_name(e),
					 fd_state_table_name(
						 fd_transition(s, e)));
			refused++;
		}
	/* The shape of the table: most pairs are refused. */
	assert_int_equal(refused,
			 FD_STATE_COUNT * FD_EV_COUNT -
				 (int)(sizeof(allowed) / sizeof(allowed[0])));
}

/* Safety properties that hold whatever the table grows into. */
static void test_properties(void **state)
{
	(void)state;
	for (int s = 0; s < FD_STATE_COUNT; s++) {
		/* A trip always ends in fault, a vent trip in FAULT itself
		 * (the device vented), and so does a lost link, but offline. */
		assert_int_equal(fd_transition(s, FD_EV_TRIP), FD_FAULT);
		assert_true(fd_state_is_fault(
			fd_transition(s, FD_EV_TRIP_RELEASE)));
		/* Only an ack leaves the faults, and only to idle. */
		for (int e = 0; e < FD_EV_COUNT && fd_state_is_fault(s); e++) {
			int to = fd_transition(s, e);

			if (to != -1 && !fd_state_is_fault(to))
				assert_int_equal(e, FD_EV_ACK);
			if (to != -1 && !fd_state_is_fault(to))
				assert_int_equal(to, FD_IDLE);
		}
		/* The sub-states are published as fault. */
		if (fd_state_is_fault(s))
			assert_string_equal(fd_state_name(s), "fault");
		/* A session starts only from idle. */
		if (s != FD_IDLE)
			assert_int_equal(fd_transition(s, FD_EV_START), -1);
	}
	assert_int_equal(fd_transition(FD_STATE_COUNT, FD_EV_START), -1);
	assert_int_equal(fd_transition(FD_IDLE, FD_EV_COUNT), -1);
	assert_string_equal(fd_state_name(FD_STATE_COUNT), "unknown");
	assert_string_equal(fd_state_name(FD_RELEASING), "releasing");
	assert_string_equal(fd_event_name(FD_EV_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_properties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

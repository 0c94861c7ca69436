/*
 * What fasciad tells systemd (daemon/notify.c): the STATUS= line of the
 * devices and their states, and the condition of WATCHDOG=1 — every
 * device's control thread has ticked within the last second, judged from
 * the latest snapshot each has handed over (a thread that never ticked,
 * or stopped, withholds it and is named).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../daemon/notify.c"
#include "../../daemon/state.c"

#include "../daemon_stubs.h"

static struct fd_daemon d;
static struct fd_device dev[2];

static int setup(void **state)
{
	(void)state;
	memset(&d, 0, sizeof(d));
	memset(dev, 0, sizeof(dev));
	d.dev = dev;
	d.ndev = 2;
	snprintf(dev[0].conf.name, sizeof(dev[0].conf.name), "left");
	snprintf(dev[1].conf.name, sizeof(dev[1].conf.name), "right");
	return 0;
}

static void ticked(struct fd_device *v, double at)
{
	v->box.have_snap = true;
	v->box.snap.mono_s = at;
}

static void test_alive_only_when_every_thread_ticked(void **state)
{
	char why[160];

	(void)state;
	assert_false(fd_notify_alive(&d, 100.0, why, sizeof(why)));
	assert_string_equal(why, "device left has not ticked yet");
	ticked(&dev[0], 99.98);
	ticked(&dev[1], 99.5);
	assert_true(fd_notify_alive(&d, 100.0, why, sizeof(why)));
	/* one thread a second and more behind withholds it, named */
	assert_true(fd_notify_alive(&d, 99.5 + FD_NOTIFY_TICKED_S, why,
				    sizeof(why)));
	assert_false(fd_notify_alive(&d, 100.7, why, sizeof(why)));
	assert_string_equal(why, "device right has not ticked for 1.2 s");
	ticked(&dev[1], 100.69);
	assert_true(fd_notify_alive(&d, 100.7, why, sizeof(why)));
}

static void test_status_line(void **state)
{
	enum fd_state st[2] = {FD_IDLE, FD_RUNNING};
	char line[128];

	(void)state;
	fd_notify_status_text(&d, st, line, sizeof(line));
	assert_string_equal(line, "2 devices: left idle, right running");
	st[1] = FD_FAULT_RELEASING;
	d.journal_alarm.present = true;
	fd_notify_status_text(&d, st, line, sizeof(line));
	assert_string_equal(line, "2 devices: left idle, right fault; the "
				  "record is not written");
	d.ndev = 1;
	d.journal_alarm.present = false;
	fd_notify_status_text(&d, st, line, sizeof(line));
	assert_string_equal(line, "1 device: left idle");
	/* cut, never overrun */
	fd_notify_status_text(&d, st, line, 12);
	assert_string_equal(line, "1 device: l");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_alive_only_when_every_thread_ticked,
				       setup),
		cmocka_unit_test_setup(test_status_line, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

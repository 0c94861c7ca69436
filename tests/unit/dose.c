/*
 * The dose of a known trajectory, interval by interval with a fake clock:
 * the pressure-time integral and the time above 30 mmHg are exact for a
 * pressure that changes linearly between readings; the mean counts only
 * the time a chamber was set above 0; time splits into delivered and
 * paused by the state it was spent in; a closed dose adds nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../daemon/dose.c"

#define DT 0.02 /* a 50 Hz tick */

/* Chamber 0 ramps 0 -> 40 mmHg over 10 s, holds 40 for 10 s, and ramps
 * back to 0 over 10 s (set above 0 for the first 20 s); chamber 1 stays
 * at 10 mmHg, never set.  Each tick is DT; the ramp's readings lie on the
 * line. */
static double p0_at(double t)
{
	if (t <= 10)
		return 4 * t;
	if (t <= 20)
		return 40;
	return t <= 30 ? 40 - 4 * (t - 20) : 0;
}

static void run(struct fd_dose *d, double from, double to, enum fd_state st)
{
	int n = (int)llround((to - from) / DT);

	for (int k = 1; k <= n; k++) {
		double t = from + k * DT;
		double p[2] = {p0_at(t), 10};
		double sp[2] = {t - DT < 20 - 1e-9 ? 40 : 0, 0};

		fd_dose_add(d, st, t, p, sp);
	}
}

static void test_known_trajectory(void **state)
{
	struct fd_dose d;
	double p[2] = {0, 10};

	(void)state;
	fd_dose_begin(&d, 7, 2, 0.0, p);
	run(&d, 0, 30, FD_RUNNING);
	/* 0.5 * 10 * 40 + 10 * 40 + 0.5 * 10 * 40 */
	assert_float_equal(d.mmhg_s[0], 800.0, 1e-6);
	/* above 30 from 7.5 s to 22.5 s */
	assert_float_equal(d.above_s[0], 15.0, 1e-6);
	assert_float_equal(d.max_mmhg[0], 40.0, 0);
	/* set above 0 for 20 s: (200 + 400) / 20 */
	assert_float_equal(fd_dose_mean(&d, 0), 30.0, 1e-6);
	assert_float_equal(d.mmhg_s[1], 300.0, 1e-6);
	assert_float_equal(d.above_s[1], 0.0, 0);
	assert_float_equal(fd_dose_mean(&d, 1), 0.0, 0);
	assert_float_equal(d.delivered_s, 30.0, 1e-6);
	assert_float_equal(d.paused_s, 0.0, 0);
	assert_int_equal(d.session_seq, 7);
}

/* A reading that crosses 30 mmHg between two ticks: the crossing is
 * interpolated, not rounded to a tick. */
static void test_crossing_interpolated(void **state)
{
	struct fd_dose d;
	double p[1] = {20}, sp[1] = {40};

	(void)state;
	fd_dose_begin(&d, 1, 1, 0.0, p);
	p[0] = 40; /* 20 -> 40 over 1 s: above 30 for the last half */
	fd_dose_add(&d, FD_RUNNING, 1.0, p, sp);
	assert_float_equal(d.above_s[0], 0.5, 1e-12);
	assert_float_equal(d.mmhg_s[0], 30.0, 1e-12);
	p[0] = 20; /* and back down */
	fd_dose_add(&d, FD_RUNNING, 2.0, p, sp);
	assert_float_equal(d.above_s[0], 1.0, 1e-12);
}

static void test_pause_and_release_time(void **state)
{
	struct fd_dose d;
	double p[1] = {0}, sp[1] = {0};

	(void)state;
	fd_dose_begin(&d, 1, 1, 100.0, p);
	fd_dose_add(&d, FD_RUNNING, 102.0, p, sp);
	fd_dose_add(&d, FD_PAUSED, 105.0, p, sp);
	fd_dose_add(&d, FD_RELEASING, 106.0, p, sp);
	fd_dose_add(&d, FD_RUNNING, 106.5, p, sp);
	assert_float_equal(d.delivered_s, 2.5, 1e-12);
	assert_float_equal(d.paused_s, 3.0, 1e-12);
	/* a clock that steps back adds nothing */
	fd_dose_add(&d, FD_RUNNING, 106.0, p, sp);
	assert_float_equal(d.delivered_s, 2.5, 1e-12);
}

static void test_closed_adds_nothing(void **state)
{
	struct fd_dose d;
	double p[1] = {50}, sp[1] = {50};

	(void)state;
	fd_dose_begin(&d, 1, 1, 0.0, p);
	fd_dose_add(&d, FD_RUNNING, 1.0, p, sp);
	d.open = false;
	fd_dose_add(&d, FD_RUNNING, 2.0, p, sp);
	assert_float_equal(d.mmhg_s[0], 50.0, 1e-12);
	assert_float_equal(d.delivered_s, 1.0, 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_trajectory),
		cmocka_unit_test(test_crossing_interpolated),
		cmocka_unit_test(test_pause_and_release_time),
		cmocka_unit_test(test_closed_adds_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

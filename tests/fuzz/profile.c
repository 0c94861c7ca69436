/*
 * Fuzz the profile model (protocol/profile.c, profile_check.c).  The first
 * four bytes choose the limits (byte 0 bit 7 clear: the defaults, else
 * chambers, device limit and session length from the bytes, invalid ones
 * included); the rest is the document.  For an accepted profile:
 * validation agrees, fascia_profile_to_json() reads back equal, and the
 * trajectory stays within 0..max_pressure, never moves faster than
 * max_ramp_mmhg_s, and is done (every target 0) at its duration.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fascia/profile.h>

#include "check.h"

#define EPS 1e-6
#define SAMPLES 97

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void check_targets(const struct fascia_profile *p, double t,
			  double out[FASCIA_MAX_CHAMBERS])
{
	struct fascia_profile_pos pos;
	double dur = fascia_profile_duration_s(p);

	fascia_profile_targets(p, t, out, &pos);
	for (int c = 0; c < FASCIA_MAX_CHAMBERS; c++) {
		CHECK(isfinite(out[c]));
		if (c >= p->chambers)
			CHECK(out[c] == 0);
		CHECK(out[c] >= 0 && out[c] <= p->max_pressure_mmhg + EPS);
		if (t >= dur)
			CHECK(out[c] == 0);
	}
	CHECK(pos.done == (t >= dur));
	CHECK(pos.step >= 1 && pos.step <= p->nsteps);
	CHECK(pos.cycle >= 1 && pos.cycle <= p->repeat);
	CHECK(pos.phase >= FASCIA_PHASE_RAMP && pos.phase <= FASCIA_PHASE_DONE);
	CHECK(pos.done == (pos.phase == FASCIA_PHASE_DONE));
	CHECK(pos.elapsed_s >= 0 && pos.elapsed_s <= dur + EPS);
	CHECK(pos.remaining_s >= -EPS && pos.remaining_s <= dur + EPS);
}

static void check_trajectory(const struct fascia_profile *p,
			     const struct fascia_profile_limits *lim)
{
	double dur = fascia_profile_duration_s(p);
	double cycle = fascia_profile_cycle_s(p);
	double a[FASCIA_MAX_CHAMBERS], b[FASCIA_MAX_CHAMBERS];
	double dt = 0.01;

	CHECK(isfinite(dur) && dur > 0);
	CHECK(cycle > 0 && dur >= p->repeat * cycle - EPS);
	CHECK(dur <= lim->max_session_s + 1e-3);
	CHECK(fascia_profile_release_rate(p) <= FASCIA_PROFILE_RELEASE_MMHG_S);
	/* before the start and NaN count as 0: the soft start from 0 */
	check_targets(p, -1, a);
	check_targets(p, NAN, b);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	for (int i = 0; i <= SAMPLES; i++) {
		double t = dur * i / SAMPLES;

		check_targets(p, t, a);
		check_targets(p, t + dt, b);
		for (int c = 0; c < p->chambers; c++)
			CHECK(fabs(b[c] - a[c]) <=
			      p->max_ramp_mmhg_s * dt * (1 + 1e-6) + EPS);
	}
	check_targets(p, dur, a);
	check_targets(p, dur + 1, a);
	check_targets(p, INFINITY, a);
}

static void check_accepted(const struct fascia_profile *p,
			   const struct fascia_profile_limits *lim)
{
	static struct fascia_profile back;
	struct fascia_profile_error err;
	char *json;

	CHECK(terminated(p->name, sizeof(p->name)) && p->name[0] != '\0');
	CHECK(terminated(p->description, sizeof(p->description)));
	CHECK(p->chambers >= 1 && p->chambers <= lim->device_chambers);
	CHECK(p->max_pressure_mmhg > 0 &&
	      p->max_pressure_mmhg <= FASCIA_CEILING_MMHG &&
	      p->max_pressure_mmhg <= lim->device_limit_mmhg);
	CHECK(p->max_ramp_mmhg_s > 0 &&
	      p->max_ramp_mmhg_s <= FASCIA_MAX_RAMP_MMHG_S);
	CHECK(p->repeat >= 1 && p->repeat <= FASCIA_PROFILE_MAX_REPEAT);
	CHECK(p->nsteps >= 1 && p->nsteps <= FASCIA_PROFILE_MAX_STEPS);
	CHECK(fascia_profile_validate(p, lim, &err) == 0);

	json = fascia_profile_to_json(p);
	CHECK(json != NULL);
	memset(&back, 0, sizeof(back));
	if (fascia_profile_parse(json, strlen(json), lim, &back, &err) != 0) {
		fprintf(stderr, "round trip refused: %s: %s\n%s\n", err.field,
			err.message, json);
		abort();
	}
	if (!fascia_profile_equal(p, &back)) {
		fprintf(stderr, "round trip differs:\n%s\n", json);
		abort();
	}
	free(json);
	check_trajectory(p, lim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fascia_profile p;
	struct fascia_profile_limits limits, *lim = NULL;
	struct fascia_profile_error err;
	int rc;

	if (size < 4 || size > 64 * 1024)
		return 0;
	if (data[0] & 0x80) {
		limits.device_chambers = data[0] & 0x1f; /* 0..31 */
		limits.device_limit_mmhg = data[1];      /* 0..255 */
		limits.max_session_s = data[2] * 30.0 + data[3];
		lim = &limits;
	}
	memset(&err, 0x5a, sizeof(err));
	rc = fascia_profile_parse((const char *)data + 4, size - 4, lim, &p,
				  &err);
	if (rc != 0) {
		CHECK(rc == -1);
		CHECK(errno == EINVAL || errno == ENOMEM);
		CHECK(terminated(err.field, sizeof(err.field)));
		CHECK(terminated(err.message, sizeof(err.message)));
		CHECK(err.message[0] != '\0');
		return 0;
	}
	if (lim == NULL) {
		fascia_profile_limits_default(&limits);
		lim = &limits;
	}
	check_accepted(&p, lim);
	return 0;
}

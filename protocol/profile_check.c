/*
 * Profiles: the rules a profile must keep (fascia_profile_validate) and its
 * trajectory (fascia_profile_targets and friends).  Nothing here allocates
 * or blocks: the daemon's control thread calls the trajectory every tick.
 *
 * The trajectory is piecewise linear: a step ramps its chambers linearly
 * from their current targets, then holds; after the last cycle every
 * chamber goes down at the release rate.  Because the pieces are straight
 * lines, checking the ends of every ramp is enough to bound the slope and
 * the gradient at every instant (see check_gradient()).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <fascia/profile.h>

/* Slack for comparing computed slopes and sums against their bounds, so
 * that 30 mmHg over 3 s is exactly 10 mmHg/s. */
#define EPS 1e-9

int fascia_profile_fail(struct fascia_profile_error *err, const char *field,
			const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		snprintf(err->field, sizeof(err->field), "%s", field);
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return -1;
}

/* The key that named chamber c (0-based) in step i, as a JSON path. */
static void chamber_path(char *buf, size_t len, const struct fascia_profile *p,
			 int i, int c)
{
	if (p->steps[i].via_all & (1u << c))
		snprintf(buf, len, "steps[%d].set.all", i);
	else
		snprintf(buf, len, "steps[%d].set.%d", i, c + 1);
}

static int check_name(const struct fascia_profile *p,
		      struct fascia_profile_error *err)
{
	size_t i, n = strnlen(p->name, sizeof(p->name));
	char ch;

	if (n == sizeof(p->name))
		return fascia_profile_fail(err, "name",
					   "longer than %d characters",
					   FASCIA_PROFILE_NAME_MAX);
	if (n == 0)
		return fascia_profile_fail(err, "name", "empty");
	for (i = 0; i < n; i++) {
		ch = p->name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '-' && i > 0)
			continue;
		if (ch == '-')
			return fascia_profile_fail(
				err, "name",
				"must start with a letter or a digit");
		return fascia_profile_fail(
			err, "name",
			"\"%s\" has a character other than a-z, 0-9 and -",
			p->name);
	}
	n = strnlen(p->description, sizeof(p->description));
	if (n == sizeof(p->description))
		return fascia_profile_fail(err, "description",
					   "longer than %d bytes",
					   FASCIA_PROFILE_DESC_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)p->description[i] < 0x20 ||
		    p->description[i] == 0x7f)
			return fascia_profile_fail(
				err, "description",
				"contains a control character");
	return 0;
}

/* The members that are single values, in document order. */
static int check_scalars(const struct fascia_profile *p,
			 const struct fascia_profile_limits *lim,
			 struct fascia_profile_error *err)
{
	double mp = p->max_pressure_mmhg, mr = p->max_ramp_mmhg_s;

	if (check_name(p, err) < 0)
		return -1;
	if (p->chambers < 1 || p->chambers > FASCIA_MAX_CHAMBERS)
		return fascia_profile_fail(err, "chambers",
					   "%d is outside 1..%d", p->chambers,
					   FASCIA_MAX_CHAMBERS);
	if (p->chambers > lim->device_chambers)
		return fascia_profile_fail(err, "chambers",
					   "%d chambers, but the device has %d",
					   p->chambers, lim->device_chambers);
	if (!isfinite(mp) || mp <= 0)
		return fascia_profile_fail(err, "max_pressure_mmhg",
					   "%g mmHg: must be above 0", mp);
	if (mp > FASCIA_CEILING_MMHG)
		return fascia_profile_fail(
			err, "max_pressure_mmhg",
			"%g mmHg is above the absolute ceiling %g mmHg", mp,
			FASCIA_CEILING_MMHG);
	if (mp > lim->device_limit_mmhg)
		return fascia_profile_fail(
			err, "max_pressure_mmhg",
			"%g mmHg is above the device limit %g mmHg", mp,
			lim->device_limit_mmhg);
	if (!isfinite(mr) || mr <= 0)
		return fascia_profile_fail(err, "max_ramp_mmhg_s",
					   "%g mmHg/s: must be above 0", mr);
	if (mr > FASCIA_MAX_RAMP_MMHG_S)
		return fascia_profile_fail(
			err, "max_ramp_mmhg_s",
			"%g mmHg/s is above the steepest allowed %g mmHg/s", mr,
			FASCIA_MAX_RAMP_MMHG_S);
	if (p->gradient != FASCIA_GRADIENT_NONE &&
	    p->gradient != FASCIA_GRADIENT_DISTAL_HIGH)
		return fascia_profile_fail(
			err, "gradient", "must be \"none\" or \"distal-high\"");
	if (p->repeat < 1 || p->repeat > FASCIA_PROFILE_MAX_REPEAT)
		return fascia_profile_fail(err, "repeat", "%d is outside 1..%d",
					   p->repeat,
					   FASCIA_PROFILE_MAX_REPEAT);
	if (p->nsteps < 1)
		return fascia_profile_fail(err, "steps", "no steps");
	if (p->nsteps > FASCIA_PROFILE_MAX_STEPS)
		return fascia_profile_fail(err, "steps",
					   "%d steps, more than %d", p->nsteps,
					   FASCIA_PROFILE_MAX_STEPS);
	return 0;
}

static int check_seconds(double v, const char *path,
			 const struct fascia_profile_limits *lim,
			 struct fascia_profile_error *err)
{
	if (!isfinite(v))
		return fascia_profile_fail(
			err, path, "must be a finite number of seconds");
	if (v < 0)
		return fascia_profile_fail(err, path, "%g s is negative", v);
	if (v > lim->max_session_s)
		return fascia_profile_fail(
			err, path,
			"%g s is longer than the session maximum "
			"%g s",
			v, lim->max_session_s);
	return 0;
}

/* One step on its own: which chambers, what pressures, how long. */
static int check_step(const struct fascia_profile *p, int i,
		      const struct fascia_profile_limits *lim,
		      struct fascia_profile_error *err)
{
	const struct fascia_profile_step *s = &p->steps[i];
	uint16_t all = (uint16_t)((1u << p->chambers) - 1);
	char path[64];
	double v;
	int c;

	snprintf(path, sizeof(path), "steps[%d].set", i);
	if (s->set_mask == 0)
		return fascia_profile_fail(err, path, "names no chamber");
	for (c = 0; c < FASCIA_MAX_CHAMBERS; c++) {
		if (!(s->set_mask & (1u << c)))
			continue;
		chamber_path(path, sizeof(path), p, i, c);
		if (c >= p->chambers)
			return fascia_profile_fail(
				err, path,
				"chamber %d, but the profile has %d chambers",
				c + 1, p->chambers);
		v = s->target_mmhg[c];
		if (!isfinite(v))
			return fascia_profile_fail(err, path,
						   "must be a finite number");
		if (v < 0)
			return fascia_profile_fail(err, path,
						   "%g mmHg is below 0", v);
		if (v > p->max_pressure_mmhg)
			return fascia_profile_fail(
				err, path,
				"%g mmHg is above max_pressure_mmhg %g", v,
				p->max_pressure_mmhg);
	}
	/* "all" covers every chamber not named by number, with one value. */
	snprintf(path, sizeof(path), "steps[%d].set.all", i);
	if (s->via_all != 0 &&
	    ((s->via_all & ~s->set_mask) != 0 || (s->set_mask & all) != all))
		return fascia_profile_fail(err, path,
					   "does not cover the other chambers");
	for (c = 0; c < p->chambers; c++)
		if ((s->via_all & (1u << c)) &&
		    s->target_mmhg[c] !=
			    s->target_mmhg[__builtin_ctz(s->via_all)])
			return fascia_profile_fail(err, path,
						   "chambers differ");
	snprintf(path, sizeof(path), "steps[%d].ramp_s", i);
	if (check_seconds(s->ramp_s, path, lim, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "steps[%d].hold_s", i);
	return check_seconds(s->hold_s, path, lim, err);
}

/*
 * distal-high over one ramp from a[] to b[].  A pair of chambers is
 * compared only while both are inflated (target above 0): a deflated
 * chamber presses on nothing.  Each target is a straight line in time, so
 * "distal >= proximal whenever both are above 0" holds over the whole ramp
 * exactly when it holds at both ends for every pair that is inflated at
 * either end: if one of the two starts (or ends) at 0 while the other is
 * up, the line just after (before) that end already breaks it.
 */
static int check_gradient(const struct fascia_profile *p, int i,
			  const double *a, const double *b, const char *when,
			  struct fascia_profile_error *err)
{
	char path[64];
	int d, x, c;

	for (x = 1; x < p->chambers; x++)
		for (d = 0; d < x; d++) {
			/* x is more proximal than d */
			c = (p->steps[i].set_mask & (1u << x)) ? x : d;
			chamber_path(path, sizeof(path), p, i, c);
			if (b[d] > 0 && b[x] > 0 && b[x] > b[d] + EPS)
				return fascia_profile_fail(
					err, path,
					"chamber %d at %g mmHg is above "
					"chamber %d at %g mmHg (more "
					"distal) at the end of the ramp, "
					"against gradient distal-high%s",
					x + 1, b[x], d + 1, b[d], when);
			if (!(a[d] > 0 || b[d] > 0) || !(a[x] > 0 || b[x] > 0))
				continue;
			if (a[x] > a[d] + EPS || b[x] > b[d] + EPS)
				return fascia_profile_fail(
					err, path,
					"chamber %d (%g -> %g mmHg) would be "
					"above chamber %d (%g -> %g mmHg, "
					"more distal) during the ramp, "
					"against gradient distal-high%s",
					x + 1, a[x], b[x], d + 1, a[d], b[d],
					when);
		}
	return 0;
}

/*
 * One pass through the steps from targets cur[], which end up as the
 * targets at the end of the pass.  Checks every ramp's slope and, where
 * asked for, the gradient.
 */
static int check_pass(const struct fascia_profile *p, double *cur,
		      const char *when, struct fascia_profile_error *err)
{
	const struct fascia_profile_step *s;
	double next[FASCIA_MAX_CHAMBERS], delta;
	char path[64];
	int i, c;

	for (i = 0; i < p->nsteps; i++) {
		s = &p->steps[i];
		for (c = 0; c < p->chambers; c++) {
			next[c] = (s->set_mask & (1u << c)) ? s->target_mmhg[c]
							    : cur[c];
			delta = fabs(next[c] - cur[c]);
			if (delta <= p->max_ramp_mmhg_s * s->ramp_s + EPS)
				continue;
			chamber_path(path, sizeof(path), p, i, c);
			if (s->ramp_s <= 0)
				return fascia_profile_fail(
					err, path,
					"%g -> %g mmHg with ramp_s 0 is an "
					"instant change; max_ramp_mmhg_s "
					"is %g%s",
					cur[c], next[c], p->max_ramp_mmhg_s,
					when);
			return fascia_profile_fail(
				err, path,
				"%g -> %g mmHg in %g s is %.3g mmHg/s, "
				"steeper than max_ramp_mmhg_s %g%s",
				cur[c], next[c], s->ramp_s, delta / s->ramp_s,
				p->max_ramp_mmhg_s, when);
		}
		if (p->gradient == FASCIA_GRADIENT_DISTAL_HIGH &&
		    check_gradient(p, i, cur, next, when, err) < 0)
			return -1;
		memcpy(cur, next, sizeof(next));
	}
	return 0;
}

static int check_limits(const struct fascia_profile_limits *lim,
			struct fascia_profile_error *err)
{
	if (lim->device_chambers < 1 ||
	    lim->device_chambers > FASCIA_MAX_CHAMBERS ||
	    !(lim->device_limit_mmhg > 0) ||
	    !(lim->max_session_s >= FASCIA_MIN_SESSION_S) ||
	    !(lim->max_session_s <= FASCIA_MAX_SESSION_S))
		return fascia_profile_fail(
			err, "",
			"invalid limits: %d chambers (1..%d), %g mmHg (above "
			"0), a session of %g s (%g..%g, fasciad's "
			"max_session_s)",
			lim->device_chambers, FASCIA_MAX_CHAMBERS,
			lim->device_limit_mmhg, lim->max_session_s,
			FASCIA_MIN_SESSION_S, FASCIA_MAX_SESSION_S);
	return 0;
}

int fascia_profile_validate(const struct fascia_profile *p,
			    const struct fascia_profile_limits *lim,
			    struct fascia_profile_error *err)
{
	struct fascia_profile_limits def;
	double cur[FASCIA_MAX_CHAMBERS] = {0}, cycle, total, rel;
	int i;

	if (lim == NULL) {
		fascia_profile_limits_default(&def);
		lim = &def;
	}
	if (check_limits(lim, err) < 0 || check_scalars(p, lim, err) < 0)
		return -1;
	for (i = 0; i < p->nsteps; i++)
		if (check_step(p, i, lim, err) < 0)
			return -1;
	/* The first cycle starts from 0 (the soft start); every later one
	 * from where a cycle ends, which is the same every time. */
	if (check_pass(p, cur, "", err) < 0)
		return -1;
	if (p->repeat > 1 &&
	    check_pass(p, cur, " (in cycle 2 on, from where a cycle ends)",
		       err) < 0)
		return -1;
	cycle = fascia_profile_cycle_s(p);
	if (!(cycle > 0))
		return fascia_profile_fail(err, "steps", "a cycle lasts 0 s");
	rel = fascia_profile_release_s(p);
	total = p->repeat * cycle + rel;
	if (total > lim->max_session_s + EPS)
		return fascia_profile_fail(
			err, p->repeat > 1 ? "repeat" : "steps",
			"the session lasts %g s (%d x %g s + %g s release), "
			"longer than the maximum %g s",
			total, p->repeat, cycle, rel, lim->max_session_s);
	return 0;
}

/* ---- the trajectory ---- */

/* Targets at the end of a cycle: the same for every cycle, because a
 * chamber a cycle names ends where the cycle last put it, and one it never
 * names stays at 0 from the start. */
static void cycle_end(const struct fascia_profile *p, double *end)
{
	int i, c;

	memset(end, 0, FASCIA_MAX_CHAMBERS * sizeof(*end));
	for (i = 0; i < p->nsteps; i++)
		for (c = 0; c < p->chambers; c++)
			if (p->steps[i].set_mask & (1u << c))
				end[c] = p->steps[i].target_mmhg[c];
}

double fascia_profile_cycle_s(const struct fascia_profile *p)
{
	double s = 0;
	int i;

	for (i = 0; i < p->nsteps; i++)
		s += p->steps[i].ramp_s + p->steps[i].hold_s;
	return s;
}

double fascia_profile_release_rate(const struct fascia_profile *p)
{
	return fmin(p->max_ramp_mmhg_s, FASCIA_PROFILE_RELEASE_MMHG_S);
}

double fascia_profile_release_s(const struct fascia_profile *p)
{
	double end[FASCIA_MAX_CHAMBERS], top = 0;
	int c;

	cycle_end(p, end);
	for (c = 0; c < p->chambers; c++)
		top = fmax(top, end[c]);
	return top > 0 ? top / fascia_profile_release_rate(p) : 0;
}

double fascia_profile_duration_s(const struct fascia_profile *p)
{
	return p->repeat * fascia_profile_cycle_s(p) +
	       fascia_profile_release_s(p);
}

/* Within one cycle that starts from out[], tc seconds in. */
static void in_cycle(const struct fascia_profile *p, double tc, double *out,
		     struct fascia_profile_pos *pos)
{
	const struct fascia_profile_step *s = &p->steps[0];
	double f;
	int i, c;

	for (i = 0; i < p->nsteps; i++) {
		s = &p->steps[i];
		if (tc < s->ramp_s + s->hold_s || i == p->nsteps - 1)
			break;
		tc -= s->ramp_s + s->hold_s;
		for (c = 0; c < p->chambers; c++)
			if (s->set_mask & (1u << c))
				out[c] = s->target_mmhg[c];
	}
	tc = fmax(tc, 0);
	pos->step = i + 1;
	pos->step_elapsed_s = tc;
	pos->phase = tc < s->ramp_s ? FASCIA_PHASE_RAMP : FASCIA_PHASE_HOLD;
	f = tc < s->ramp_s ? tc / s->ramp_s : 1.0;
	for (c = 0; c < p->chambers; c++)
		if (s->set_mask & (1u << c))
			out[c] += (s->target_mmhg[c] - out[c]) * f;
}

void fascia_profile_targets(const struct fascia_profile *p, double t,
			    double out[FASCIA_MAX_CHAMBERS],
			    struct fascia_profile_pos *pos)
{
	struct fascia_profile_pos dummy;
	double cycle = fascia_profile_cycle_s(p), run = p->repeat * cycle;
	double dur = fascia_profile_duration_s(p), k;
	int c;

	if (pos == NULL)
		pos = &dummy;
	if (!(t > 0))
		t = 0;
	pos->elapsed_s = fmin(t, dur);
	pos->remaining_s = dur - pos->elapsed_s;
	pos->done = t >= dur;
	memset(out, 0, FASCIA_MAX_CHAMBERS * sizeof(*out));
	if (t >= run) {
		cycle_end(p, out);
		for (c = 0; c < p->chambers; c++)
			out[c] =
				pos->done
					? 0
					: fmax(0,
					       out[c] -
						       (t - run) *
							       fascia_profile_release_rate(
								       p));
		pos->step = p->nsteps;
		pos->cycle = p->repeat;
		pos->step_elapsed_s = fmin(t, dur) - run;
		pos->phase =
			pos->done ? FASCIA_PHASE_DONE : FASCIA_PHASE_RELEASE;
		return;
	}
	k = cycle > 0 ? floor(t / cycle) : 0;
	if (k > p->repeat - 1)
		k = p->repeat - 1;
	if (k > 0)
		cycle_end(p, out);
	pos->cycle = (int)k + 1;
	in_cycle(p, t - k * cycle, out, pos);
}

double fascia_ramp_toward(double current, double target, double max_rate,
			  double dt)
{
	double step;

	if (!isfinite(current) || !isfinite(target))
		return 0;
	if (!isfinite(max_rate) || !isfinite(dt) || max_rate <= 0 || dt <= 0)
		return current;
	step = max_rate * dt;
	if (target > current)
		return target - current <= step ? target : current + step;
	return current - target <= step ? target : current - step;
}

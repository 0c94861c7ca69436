/*
 * A session's dose, one interval between two ticks at a time: pure
 * arithmetic on the control thread (no I/O), so that the dose is that of
 * every reading, not of the 1 Hz trace.  session.h says what counts.
 */
#include <math.h>
#include <string.h>

#include "session.h"

void fd_dose_begin(struct fd_dose *d, int session_seq, int chambers, double now,
		   const double *p)
{
	memset(d, 0, sizeof(*d));
	d->session_seq = session_seq;
	d->open = true;
	d->chambers = chambers;
	d->last_t = now;
	for (int i = 0; i < chambers; i++) {
		d->last_p[i] = p[i];
		d->max_mmhg[i] = p[i];
	}
}

/* How long of dt a straight line from p0 to p1 spends above h. */
static double above(double p0, double p1, double h, double dt)
{
	if (p0 > h && p1 > h)
		return dt;
	if (p0 <= h && p1 <= h)
		return 0;
	return dt * (fmax(p0, p1) - h) / fabs(p1 - p0);
}

void fd_dose_add(struct fd_dose *d, enum fd_state during, double now,
		 const double *p, const double *sp)
{
	double dt = now - d->last_t;

	if (!d->open)
		return;
	d->last_t = now;
	if (dt <= 0)
		return;
	if (during == FD_RUNNING)
		d->delivered_s += dt;
	else if (during == FD_PAUSED)
		d->paused_s += dt;
	for (int i = 0; i < d->chambers; i++) {
		double area = (d->last_p[i] + p[i]) / 2 * dt;

		d->mmhg_s[i] += area;
		d->above_s[i] +=
			above(d->last_p[i], p[i], FD_DOSE_HAZARD_MMHG, dt);
		if (sp[i] > 0) {
			d->set_s[i] += dt;
			d->set_mmhg_s[i] += area;
		}
		d->max_mmhg[i] = fmax(d->max_mmhg[i], p[i]);
		d->last_p[i] = p[i];
	}
}

double fd_dose_mean(const struct fd_dose *d, int i)
{
	return d->set_s[i] > 0 ? d->set_mmhg_s[i] / d->set_s[i] : 0;
}

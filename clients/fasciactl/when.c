/*
 * fasciactl's times.  The journal speaks Unix milliseconds; a person
 * gives --since and --until as those or as a local date and time
 * (YYYY-MM-DD, YYYY-MM-DDTHH:MM, YYYY-MM-DDTHH:MM:SS), reads local times
 * in the tables, and an export carries ISO 8601 with the offset from UTC,
 * so that it means the same instant wherever it is read.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fasciactl.h"

/* The largest time taken: 9999-12-31T23:59:59.999Z. */
#define MS_MAX 253402300799999LL

/* Exactly n digits at *p, advancing it. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* A local date and time; false unless it names one that exists (no
 * February 30th, no 24:00, no time skipped by a change to summer time). */
static bool parse_local(const char *s, int64_t *ms)
{
	struct tm tm, want;
	const char *p = s;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (!digits(&p, 4, &tm.tm_year) || !expect(&p, '-') ||
	    !digits(&p, 2, &tm.tm_mon) || !expect(&p, '-') ||
	    !digits(&p, 2, &tm.tm_mday))
		return false;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &tm.tm_hour) || !expect(&p, ':') ||
		    !digits(&p, 2, &tm.tm_min))
			return false;
		if (*p == ':' && (p++, !digits(&p, 2, &tm.tm_sec)))
			return false;
	}
	if (*p != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_isdst = -1;
	want = tm;
	errno = 0;
	t = mktime(&tm);
	if (t == (time_t)-1 && errno != 0)
		return false;
	if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon ||
	    tm.tm_mday != want.tm_mday || tm.tm_hour != want.tm_hour ||
	    tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
		return false;
	*ms = (int64_t)t * 1000;
	return true;
}

/*
 * --since / --until: Unix ms (digits only) or a local date and time.
 * Returns 0 with *ms, or -1.
 */
int ctl_parse_time(const char *s, int64_t *ms)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno != 0 || v > MS_MAX)
			return -1;
		*ms = v;
		return 0;
	}
	return parse_local(s, ms) && *ms >= 0 && *ms <= MS_MAX ? 0 : -1;
}

/* A JSON time in ms (an integer, or a real from a lenient writer). */
bool ctl_json_ms(const json_t *v, int64_t *ms)
{
	double d;

	if (json_is_integer(v)) {
		*ms = json_integer_value(v);
		return true;
	}
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (!isfinite(d) || fabs(d) > (double)MS_MAX)
		return false;
	*ms = (int64_t)llround(d);
	return true;
}

/* Split ms into whole seconds (floored) and the milliseconds past them. */
static time_t split(int64_t ms, int *millis)
{
	int64_t s = ms / 1000, r = ms % 1000;

	if (r < 0) {
		r += 1000;
		s--;
	}
	*millis = (int)r;
	return (time_t)s;
}

/* Local "YYYY-MM-DD HH:MM:SS[.mmm]" of a JSON time, "-" when it is none. */
void ctl_time_local(char *buf, size_t len, const json_t *v, bool millis)
{
	struct tm tm;
	int64_t ms;
	time_t t;
	int frac;
	size_t n;

	if (!ctl_json_ms(v, &ms)) {
		snprintf(buf, len, "-");
		return;
	}
	t = split(ms, &frac);
	if (localtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	if (millis && n > 0)
		snprintf(buf + n, len - n, ".%03d", frac);
}

/* ISO 8601 with the local offset: 2026-11-25T10:55:46.123+01:00. */
void ctl_time_iso(char *buf, size_t len, int64_t ms)
{
	struct tm tm;
	long off;
	int frac;
	time_t t = split(ms, &frac);
	size_t n;

	if (localtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "1970-01-01T00:00:00.000Z");
		return;
	}
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf + n, len - n, ".%03d%c%02ld:%02ld", frac,
		 off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/* "M:SS", or "H:MM:SS" from an hour on; "-" for a negative or odd one. */
void ctl_duration(char *buf, size_t len, double s)
{
	long v;

	if (!isfinite(s) || s < 0 || s > 1e9) {
		snprintf(buf, len, "-");
		return;
	}
	v = lround(s);
	if (v >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60,
			 v % 60);
	else
		snprintf(buf, len, "%ld:%02ld", v / 60, v % 60);
}

int64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

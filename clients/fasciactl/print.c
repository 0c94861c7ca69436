/*
 * fasciactl's human-readable output: the lists, one device's status, and
 * the one-line forms of published messages that `watch` prints.  Every
 * member is read defensively: a field missing from an older or newer
 * daemon prints as "-", never crashes.  Unknown is never printed as 0:
 * before a device's first reading its chambers list is empty and its
 * supply null (docs/protocol.md), which prints as "no reading yet".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fasciactl.h"

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static json_int_t integer(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

void print_devices(const json_t *result)
{
	const json_t *devs = json_object_get(result, "devices"), *d;
	char lim[32];
	size_t i;

	if (json_array_size(devs) == 0) {
		puts("no devices");
		return;
	}
	printf("%-16s %-9s %8s %7s %-9s %-24s %s\n", "DEVICE", "STATE",
	       "CHAMBERS", "LIMIT", "TRANSPORT", "ADDRESS", "LINK");
	json_array_foreach(devs, i, d)
	{
		printf("%-16s %-9s %8lld %7s %-9s %-24s %s\n", str(d, "name"),
		       str(d, "state"), (long long)integer(d, "chambers"),
		       table_num(d, "limit_mmhg", lim, sizeof(lim), "%.1f"),
		       str(d, "transport"), str(d, "address"),
		       json_is_true(json_object_get(json_object_get(d, "link"),
						    "up"))
			       ? "up"
			       : "down");
	}
}

static void print_session(const json_t *s)
{
	char el[32], rem[32];

	if (!json_is_object(s)) {
		puts("  session   none");
		return;
	}
	printf("  session   %s  profile %s  step %lld  cycle %lld\n",
	       str(s, "id"), str(s, "profile"), (long long)integer(s, "step"),
	       (long long)integer(s, "cycle"));
	printf("  progress  %s s elapsed, %s s left\n",
	       table_num(s, "elapsed_s", el, sizeof(el), "%.1f"),
	       table_num(s, "remaining_s", rem, sizeof(rem), "%.1f"));
}

#define NO_READING "no reading yet"

/* Whether the state holds a reading of the device: chambers, at least. */
static bool have_reading(const json_t *st)
{
	return json_array_size(json_object_get(st, "chambers")) > 0;
}

static void print_chambers(const json_t *chambers)
{
	const json_t *c;
	char p[32], sp[32];
	size_t i;

	if (json_array_size(chambers) == 0) {
		puts("  chambers  " NO_READING);
		return;
	}
	printf("  %-8s %9s %9s  %s\n", "CHAMBER", "PRESSURE", "SETPOINT",
	       "VALVE");
	json_array_foreach(chambers, i, c)
	{
		printf("  %-8zu %9s %9s  %s\n", i + 1,
		       table_num(c, "pressure", p, sizeof(p), "%.1f"),
		       table_num(c, "setpoint", sp, sizeof(sp), "%.1f"),
		       str(c, "valve"));
	}
}

static void print_alarms(const json_t *alarms)
{
	const json_t *a;
	size_t i;

	if (json_array_size(alarms) == 0) {
		puts("  alarms    none");
		return;
	}
	json_array_foreach(alarms, i, a)
	{
		printf("  ALARM     %s chamber %lld, %s, %s%s: %s\n",
		       str(a, "id"), (long long)integer(a, "chamber"),
		       str(a, "priority"),
		       json_is_true(json_object_get(a, "latched")) ? "latched"
								   : "",
		       json_is_true(json_object_get(a, "present"))
			       ? ", cause present"
			       : "",
		       str(a, "message"));
	}
}

void print_status(const json_t *st)
{
	const json_t *link = json_object_get(st, "link");
	char supply[32];

	printf("%s: %s\n", str(st, "device"), str(st, "state"));
	print_session(json_object_get(st, "session"));
	if (json_is_number(json_object_get(st, "supply")))
		printf("  supply    %s mmHg\n",
		       table_num(st, "supply", supply, sizeof(supply), "%.1f"));
	else
		printf("  supply    %s\n",
		       have_reading(st) ? "unknown" : NO_READING);
	print_chambers(json_object_get(st, "chambers"));
	print_alarms(json_object_get(st, "alarms"));
	printf("  link      %s, rtt %lld us, %lld timeouts, %lld errors, "
	       "%lld reconnects\n",
	       json_is_true(json_object_get(link, "up")) ? "up" : "down",
	       (long long)integer(link, "rtt_us"),
	       (long long)integer(link, "timeouts"),
	       (long long)integer(link, "errors"),
	       (long long)integer(link, "reconnects"));
	if (json_string_length(json_object_get(link, "last_error")) > 0)
		printf("  last error %s\n", str(link, "last_error"));
}

void print_profiles(const json_t *result)
{
	const json_t *profs = json_object_get(result, "profiles"), *p;
	char max[32], dur[32];
	size_t i;

	if (json_array_size(profs) == 0) {
		puts("no profiles");
		return;
	}
	printf("%-24s %8s %7s %9s  %s\n", "PROFILE", "CHAMBERS", "MAX",
	       "DURATION", "DESCRIPTION");
	json_array_foreach(profs, i, p)
	{
		printf("%-24s %8lld %7s %9s  %s\n", str(p, "name"),
		       (long long)integer(p, "chambers"),
		       table_num(p, "max_pressure_mmhg", max, sizeof(max),
				 "%.1f"),
		       table_num(p, "duration_s", dur, sizeof(dur), "%.0fs"),
		       str(p, "description"));
	}
}

/* Local wall-clock time of a message, HH:MM:SS.mmm. */
void print_clock(FILE *f, json_int_t time_ms)
{
	time_t t = (time_t)(time_ms / 1000);
	struct tm tm;

	if (time_ms <= 0 || localtime_r(&t, &tm) == NULL) {
		fputs("--:--:--.---", f);
		return;
	}
	fprintf(f, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
		(int)(time_ms % 1000));
}

void print_state_line(FILE *f, const json_t *st)
{
	const json_t *s = json_object_get(st, "session"), *c, *a, *link;
	char b1[32], b2[32];
	size_t i;

	print_clock(f, integer(st, "time"));
	fprintf(f, " %s state %s", str(st, "device"), str(st, "state"));
	if (json_is_object(s))
		fprintf(f, " session %s step %lld cycle %lld left %ss",
			str(s, "profile"), (long long)integer(s, "step"),
			(long long)integer(s, "cycle"),
			table_num(s, "remaining_s", b1, sizeof(b1), "%.1f"));
	if (have_reading(st))
		fputs(" mmHg", f);
	else
		fputs(" " NO_READING, f);
	json_array_foreach(json_object_get(st, "chambers"), i, c)
	{
		fprintf(f, " %s/%s",
			table_num(c, "pressure", b1, sizeof(b1), "%.1f"),
			table_num(c, "setpoint", b2, sizeof(b2), "%.1f"));
	}
	json_array_foreach(json_object_get(st, "alarms"), i, a)
	{
		fprintf(f, "%s%s", i ? "," : " alarms ", str(a, "id"));
	}
	link = json_object_get(st, "link");
	if (!json_is_true(json_object_get(link, "up"))) {
		fputs(" link down", f);
		if (json_string_length(json_object_get(link, "last_error")))
			fprintf(f, " (%s)", str(link, "last_error"));
	}
	fputc('\n', f);
}

void print_event_line(FILE *f, const json_t *ev)
{
	print_clock(f, integer(ev, "time"));
	fprintf(f, " %s event %s: %s\n", str(ev, "device"), str(ev, "kind"),
		str(ev, "text"));
}

void print_alarm_line(FILE *f, const json_t *al)
{
	print_clock(f, integer(al, "time"));
	fprintf(f, " %s ALARM %s %s chamber %lld %s: %s\n", str(al, "device"),
		str(al, "kind"), str(al, "alarm"),
		(long long)integer(al, "chamber"), str(al, "priority"),
		str(al, "message"));
}

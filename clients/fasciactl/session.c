/*
 * fasciactl session ID: one recorded session (session.get,
 * docs/records.md): its summary, its dose per chamber, its log entries and,
 * with --trace, its samples; --csv prints one of those tables (the dose,
 * or with --trace the trace), --json the result object as it came.  The
 * export (fhir.c) fetches its session here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

/* A cell's text. */
#define CELL 128

static void field(const char *key, const char *value)
{
	char buf[2048];

	printf("%-9s %s\n", key, ctl_printable(value, buf, sizeof(buf)));
}

static void print_summary(const json_t *s)
{
	char a[CELL], b[CELL], c[CELL], line[512];
	double d;

	field("session", table_str(s, "id"));
	field("device", table_str(s, "device"));
	snprintf(line, sizeof(line), "%s  sha256 %s", table_str(s, "profile"),
		 table_str(s, "profile_sha256"));
	field("profile", line);
	field("patient", table_str(s, "patient"));
	field("operator", table_str(s, "operator"));
	field("note", table_str(s, "note"));
	ctl_time_local(a, sizeof(a), json_object_get(s, "started"), false);
	field("started", a);
	ctl_time_local(a, sizeof(a), json_object_get(s, "ended"), false);
	if (ctl_wall_s(s, &d)) {
		ctl_duration(b, sizeof(b), d);
		snprintf(line, sizeof(line), "%s (%s)", a, b);
	} else {
		snprintf(line, sizeof(line), "- (still running)");
	}
	field("ended", line);
	snprintf(line, sizeof(line), "%s%s%s", table_str(s, "end_reason"),
		 json_is_string(json_object_get(s, "alarm")) ? ", alarm " : "",
		 json_is_string(json_object_get(s, "alarm"))
			 ? table_str(s, "alarm")
			 : "");
	field("end", line);
	snprintf(line, sizeof(line),
		 "planned %s s, delivered %s s, paused %s s",
		 table_num(s, "planned_s", a, CELL, "%.1f"),
		 table_num(s, "delivered_s", b, CELL, "%.1f"),
		 table_num(s, "paused_s", c, CELL, "%.1f"));
	field("time", line);
	if (json_number_value(json_object_get(s, "trace_hz")) > 0)
		snprintf(line, sizeof(line), "%s Hz",
			 table_num(s, "trace_hz", a, CELL, "%g"));
	else
		snprintf(line, sizeof(line), "not recorded");
	field("trace", line);
}

static struct table *dose_table(struct ctl *ctl, const json_t *chambers)
{
	static const char *const head[] = {"CHAMBER", "MAX mmHg",   "MEAN mmHg",
					   "mmHg.s",  "s >30 mmHg", NULL};
	static const char *const csv_head[] = {"chamber",    "max_mmhg",
					       "mean_mmhg",  "mmhg_s",
					       "above_30_s", NULL};
	static const char *const keys[] = {"chamber", "max_mmhg", "mean_mmhg",
					   "mmhg_s", "above_30_s"};
	char b[5][CELL];
	const char *cells[5];
	const json_t *c;
	struct table *t;
	size_t i;

	t = ctl->csv ? table_new("", csv_head) : table_new("rrrrr", head);
	json_array_foreach(chambers, i, c)
	{
		for (int k = 0; k < 5; k++)
			cells[k] = ctl->csv || k == 0
					   ? table_raw(c, keys[k], b[k], CELL)
					   : table_num(c, keys[k], b[k], CELL,
						       "%.1f");
		table_add(t, cells);
	}
	return t;
}

/* The decimals that tell samples apart at hz. */
static int offset_decimals(double hz)
{
	return hz <= 1 ? 0 : hz <= 10 ? 1 : hz <= 100 ? 2 : 3;
}

/* The chambers of the widest sample. */
static size_t trace_chambers(const json_t *pressure, const json_t *setpoint)
{
	size_t n = 0, i;
	json_t *v;

	json_array_foreach(pressure, i, v)
	{
		if (json_array_size(v) > n)
			n = json_array_size(v);
	}
	json_array_foreach(setpoint, i, v)
	{
		if (json_array_size(v) > n)
			n = json_array_size(v);
	}
	return n > FASCIA_MAX_CHAMBERS ? FASCIA_MAX_CHAMBERS : n;
}

/* A reading of the trace: CSV as written ("" for null), else %.1f or "-". */
static const char *reading(const json_t *v, bool csv, char *buf, size_t len)
{
	if (csv) {
		ctl_json_text(v, buf, len);
		return buf;
	}
	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, "%.1f", json_number_value(v));
	return buf;
}

/* The samples: the offset in s, then pressure and setpoint by chamber. */
static struct table *trace_table(struct ctl *ctl, const json_t *trace)
{
	const json_t *p = json_object_get(trace, "pressure");
	const json_t *sp = json_object_get(trace, "setpoint");
	double hz = json_number_value(json_object_get(trace, "hz"));
	size_t n = trace_chambers(p, sp), rows, k, c;
	char head[1 + 2 * FASCIA_MAX_CHAMBERS][16], align[40];
	char cell[1 + 2 * FASCIA_MAX_CHAMBERS][32];
	const char *hp[2 + 2 * FASCIA_MAX_CHAMBERS],
		*row[1 + 2 * FASCIA_MAX_CHAMBERS];
	struct table *t;

	snprintf(head[0], 16, "%s", ctl->csv ? "t_s" : "T_S");
	hp[0] = head[0];
	for (c = 0; c < n; c++) {
		snprintf(head[1 + 2 * c], 16, ctl->csv ? "p%zu" : "P%zu",
			 c + 1);
		snprintf(head[2 + 2 * c], 16, ctl->csv ? "sp%zu" : "SP%zu",
			 c + 1);
		hp[1 + 2 * c] = head[1 + 2 * c];
		hp[2 + 2 * c] = head[2 + 2 * c];
	}
	hp[1 + 2 * n] = NULL;
	memset(align, 'r', sizeof(align) - 1);
	align[sizeof(align) - 1] = '\0';
	t = table_new(ctl->csv ? "" : align, hp);
	rows = json_array_size(p) > json_array_size(sp) ? json_array_size(p)
							: json_array_size(sp);
	for (k = 0; hz > 0 && k < rows; k++) {
		snprintf(cell[0], 32, "%.*f",
			 ctl->csv ? 3 : offset_decimals(hz), (double)k / hz);
		row[0] = cell[0];
		for (c = 0; c < n; c++) {
			row[1 + 2 * c] =
				reading(json_array_get(json_array_get(p, k), c),
					ctl->csv, cell[1 + 2 * c], 32);
			row[2 + 2 * c] = reading(
				json_array_get(json_array_get(sp, k), c),
				ctl->csv, cell[2 + 2 * c], 32);
		}
		table_add(t, row);
	}
	return t;
}

static void print_trace(struct ctl *ctl, const json_t *trace)
{
	double hz = json_number_value(json_object_get(trace, "hz"));
	struct table *t;
	char t0[CELL];

	if (!json_is_object(trace) || hz <= 0) {
		puts("trace: none recorded (the session's trace_hz is 0)");
		return;
	}
	t = trace_table(ctl, trace);
	ctl_time_local(t0, sizeof(t0), json_object_get(trace, "t0"), true);
	printf("trace: %g Hz from %s, %zu samples\n", hz, t0, table_rows(t));
	table_print(t, stdout);
	table_destroy(&t);
}

static void print_session(struct ctl *ctl, const json_t *s)
{
	struct table *t;

	print_summary(s);
	t = dose_table(ctl, json_object_get(s, "chambers"));
	puts("");
	if (table_rows(t) == 0) {
		puts("dose: none recorded");
	} else {
		puts("dose:");
		table_print(t, stdout);
	}
	table_destroy(&t);
	t = ctl_log_table(ctl, json_object_get(s, "log"), false);
	puts("");
	if (table_rows(t) == 0) {
		puts("log: no entries");
	} else {
		puts("log:");
		table_print(t, stdout);
	}
	table_destroy(&t);
	if (ctl->trace) {
		puts("");
		print_trace(ctl, json_object_get(s, "trace"));
	}
}

/* The session.get request, or NULL after a usage message. */
static json_t *session_request(const char *id, bool trace)
{
	json_t *req = json_pack("{s:s}", "cmd", "session.get");

	if (!ctl_set_text(req, "session", "ID", id)) {
		json_decref(req);
		return NULL;
	}
	if (trace) /* only when asked for: it is most of the reply */
		json_object_set_new(req, "trace", json_true());
	return req;
}

/* session.get of id (with the trace when asked for): the session object
 * (a new reference), or NULL with *rc, the failure explained. */
json_t *ctl_session_get(struct ctl *ctl, const char *id, bool trace, int *rc)
{
	json_t *req, *res, *s;

	if ((req = session_request(id, trace)) == NULL) {
		*rc = CTL_USAGE;
		return NULL;
	}
	if ((*rc = ctl_query(ctl, req, &res)) != CTL_OK)
		return NULL;
	s = json_incref(json_object_get(res, "session"));
	json_decref(res);
	if (!json_is_object(s)) {
		fprintf(stderr, "fasciactl: the reply to session.get holds no "
				"session\n");
		json_decref(s);
		*rc = CTL_UNREACHABLE;
		return NULL;
	}
	return s;
}

int cmd_session(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *res, *s;
	struct table *t;
	int rc;

	if (!ctl_nargs(argc, 1, 1, "session ID [--trace] [--json|--csv]"))
		return CTL_USAGE;
	if (ctl->json) { /* the result as it came */
		if ((req = session_request(argv[0], ctl->trace)) == NULL)
			return CTL_USAGE;
		if ((rc = ctl_query(ctl, req, &res)) == CTL_OK)
			ctl_print_json(res);
		json_decref(res);
		return rc;
	}
	if ((s = ctl_session_get(ctl, argv[0], ctl->trace, &rc)) == NULL)
		return rc;
	if (!ctl->csv) {
		print_session(ctl, s);
	} else {
		/* one table per CSV: the trace rows when asked for, else
		 * the dose */
		if (ctl->trace)
			t = trace_table(ctl, json_object_get(s, "trace"));
		else
			t = dose_table(ctl, json_object_get(s, "chambers"));
		table_csv(t, stdout);
		table_destroy(&t);
	}
	json_decref(s);
	return CTL_OK;
}

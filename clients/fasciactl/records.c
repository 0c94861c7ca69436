/*
 * fasciactl's queries of the treatment record (docs/records.md, "The
 * commands"): history and log here, session in session.c.  Each request carries
 * the options given and only those; what can be checked here (a patient
 * reference, a time, a page size) is, so that a typo gets a usage error
 * that names the option, and the daemon checks again.  The answer is
 * printed as tables, as CSV (--csv) or, with --json, as the daemon's
 * result object itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

#define PATIENT_CHARS                                                          \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* 1-64 of [A-Za-z0-9._-] (docs/records.md, "start"). */
bool ctl_patient_ok(const char *ref)
{
	size_t n = strlen(ref);

	return n >= 1 && n <= CTL_PATIENT_MAX &&
	       strspn(ref, PATIENT_CHARS) == n;
}

/* Set req.key to s; false (with a usage message) when s is not UTF-8. */
bool ctl_set_text(json_t *req, const char *key, const char *opt, const char *s)
{
	json_t *v = json_string(s);

	if (v == NULL) {
		ctl_usage_hint("%s: not valid UTF-8 text", opt);
		return false;
	}
	json_object_set_new(req, key, v);
	return true;
}

/* --patient into req.patient; false after a usage message. */
bool ctl_add_patient(struct ctl *ctl, json_t *req)
{
	if (ctl->patient == NULL)
		return true;
	if (!ctl_patient_ok(ctl->patient)) {
		ctl_usage_hint("--patient: \"%s\" is not a patient reference "
			       "(1-%d characters of A-Z a-z 0-9 . _ -)",
			       ctl->patient, CTL_PATIENT_MAX);
		return false;
	}
	return ctl_set_text(req, "patient", "--patient", ctl->patient);
}

static bool add_time(json_t *req, const char *key, const char *opt,
		     const char *arg)
{
	int64_t ms;

	if (arg == NULL)
		return true;
	if (ctl_parse_time(arg, &ms) < 0) {
		ctl_usage_hint("%s: \"%s\" is not a time: give Unix ms or a "
			       "local YYYY-MM-DD, YYYY-MM-DDTHH:MM or "
			       "YYYY-MM-DDTHH:MM:SS",
			       opt, arg);
		return false;
	}
	json_object_set_new(req, key, json_integer(ms));
	return true;
}

/* --since, --until and --limit, as history and log take them. */
static bool add_range(struct ctl *ctl, json_t *req, const char *what)
{
	char *end;
	long v;

	if (!add_time(req, "since", "--since", ctl->since) ||
	    !add_time(req, "until", "--until", ctl->until))
		return false;
	if (ctl->limit == NULL)
		return true;
	errno = 0;
	v = strtol(ctl->limit, &end, 10);
	if (errno != 0 || end == ctl->limit || *end != '\0' || v < 1 ||
	    v > CTL_PAGE_MAX) {
		ctl_usage_hint("--limit: \"%s\" is not 1..%d (%s a page)",
			       ctl->limit, CTL_PAGE_MAX, what);
		return false;
	}
	json_object_set_new(req, "limit", json_integer(v));
	return true;
}

/*
 * An empty answer for a device the daemon does not drive: a typo, unless
 * the device was configured once (the journal outlives the configuration,
 * so a name it has sessions of is always taken).  Returns CTL_OK when the
 * device is configured, else an exit code after the message.
 */
static int device_known(struct ctl *ctl, const char *device)
{
	json_t *names, *n;
	size_t i;
	int rc;

	if ((rc = ctl_device_names(ctl, &names)) != CTL_OK)
		return rc;
	rc = CTL_REFUSED;
	json_array_foreach(names, i, n)
	{
		if (strcmp(json_string_value(n), device) == 0)
			rc = CTL_OK;
	}
	if (rc != CTL_OK) {
		fprintf(stderr,
			"fasciactl: unknown_device: no device \"%s\", and the "
			"journal holds nothing of it\n",
			device);
		ctl_list_devices(stderr, names);
	}
	json_decref(names);
	return rc;
}

/* The page's "more" as a hint line: on stdout under a table, on stderr
 * beside CSV (which must stay one table). */
static void more_hint(struct ctl *ctl, const json_t *res, const char *what,
		      const char *before)
{
	if (!json_is_true(json_object_get(res, "more")) || before == NULL)
		return;
	if (ctl->csv)
		fprintf(stderr, "fasciactl: more %s: repeat with --before %s\n",
			what, before);
	else
		printf("more %s: repeat with --before %s\n", what, before);
}

/* ---- history ---- */

/* A cell's text (the note, up to 500 characters, is not copied). */
#define CELL 128

static const char *const history_head[] = {
	"ID",       "DEVICE",     "PROFILE", "PATIENT",     "STARTED",
	"DURATION", "END_REASON", "ALARM",   "DELIVERED_S", NULL};

static const char *const history_csv_head[] = {
	"id",         "device", "profile",   "profile_sha256", "patient",
	"operator",   "note",   "started",   "ended",          "duration_s",
	"end_reason", "alarm",  "planned_s", "delivered_s",    "paused_s",
	"trace_hz",   NULL};

/* ended - started in seconds, when the session has ended. */
bool ctl_wall_s(const json_t *s, double *out)
{
	int64_t a, z;

	if (!ctl_json_ms(json_object_get(s, "started"), &a) ||
	    !ctl_json_ms(json_object_get(s, "ended"), &z))
		return false;
	*out = (double)(z - a) / 1e3;
	return true;
}

/* The CSV columns are the summary's members (duration_s aside). */
static void history_csv_row(struct table *t, const json_t *s)
{
	enum { N = sizeof(history_csv_head) / sizeof(history_csv_head[0]) - 1 };
	char b[N][CELL];
	const char *cells[N];
	double d;

	for (int i = 0; i < N; i++)
		cells[i] = table_raw(s, history_csv_head[i], b[i], CELL);
	cells[6] = json_is_string(json_object_get(s, "note"))
			   ? json_string_value(json_object_get(s, "note"))
			   : "";
	cells[7] = table_iso(s, "started", b[7], CELL);
	cells[8] = table_iso(s, "ended", b[8], CELL);
	b[9][0] = '\0';
	if (ctl_wall_s(s, &d))
		snprintf(b[9], CELL, "%.3f", d);
	cells[9] = b[9];
	table_add(t, cells);
}

static void history_row(struct table *t, const json_t *s)
{
	char started[CELL], dur[CELL], deliv[CELL];
	double d;

	ctl_time_local(started, sizeof(started), json_object_get(s, "started"),
		       false);
	if (ctl_wall_s(s, &d))
		ctl_duration(dur, sizeof(dur), d);
	else
		snprintf(dur, sizeof(dur), "-");
	table_add(t, (const char *const[]){
			     table_str(s, "id"), table_str(s, "device"),
			     table_str(s, "profile"), table_str(s, "patient"),
			     started, dur, table_str(s, "end_reason"),
			     table_str(s, "alarm"),
			     table_num(s, "delivered_s", deliv, CELL, "%.1f")});
}

static void print_sessions(struct ctl *ctl, const json_t *res)
{
	const json_t *list = json_object_get(res, "sessions"), *s;
	struct table *t;
	size_t i;

	t = ctl->csv ? table_new("", history_csv_head)
		     : table_new("lllllrllr", history_head);
	json_array_foreach(list, i, s)
	{
		if (ctl->csv)
			history_csv_row(t, s);
		else
			history_row(t, s);
	}
	if (ctl->csv)
		table_csv(t, stdout);
	else if (table_rows(t) == 0)
		puts("no sessions recorded");
	else
		table_print(t, stdout);
	table_destroy(&t);
	s = json_array_get(list, json_array_size(list) - 1);
	more_hint(ctl, res, "sessions",
		  json_string_value(json_object_get(s, "id")));
}

/*
 * The answer of a daemon from before the journal ({"entries":[]}, which
 * says nothing of the sessions that ran), said as such.
 */
static bool journal_less(struct ctl *ctl, const json_t *res)
{
	struct table *t;

	if (json_is_array(json_object_get(res, "sessions")))
		return false;
	if (ctl->csv) {
		t = table_new("", history_csv_head);
		table_csv(t, stdout);
		table_destroy(&t);
	}
	fprintf(ctl->csv ? stderr : stdout,
		"%ssessions are not recorded: this fasciad keeps no session "
		"journal\n",
		ctl->csv ? "fasciactl: " : "");
	return true;
}

int cmd_history(struct ctl *ctl, int argc, char **argv)
{
	const char *device = argc == 1 ? argv[0] : NULL;
	json_t *req, *res;
	int rc;

	if (!ctl_nargs(argc, 0, 1,
		       "history [DEVICE] [--patient REF] [--since T] "
		       "[--until T] [--limit N] [--before ID] [--json|--csv]"))
		return CTL_USAGE;
	req = json_pack("{s:s}", "cmd", "history");
	if ((device != NULL &&
	     !ctl_set_text(req, "device", "DEVICE", device)) ||
	    !ctl_add_patient(ctl, req) || !add_range(ctl, req, "sessions") ||
	    (ctl->before != NULL &&
	     !ctl_set_text(req, "before", "--before", ctl->before))) {
		json_decref(req);
		return CTL_USAGE;
	}
	if ((rc = ctl_query(ctl, req, &res)) != CTL_OK)
		return rc;
	if (device != NULL &&
	    json_array_size(json_object_get(res, "sessions")) == 0 &&
	    (rc = device_known(ctl, device)) != CTL_OK) {
		json_decref(res);
		return rc;
	}
	if (ctl->json)
		ctl_print_json(res);
	else if (!journal_less(ctl, res))
		print_sessions(ctl, res);
	json_decref(res);
	return CTL_OK;
}

/* ---- log ---- */

/* Append to buf (of len) at *at, keeping it terminated when it fills. */
static void add(char *buf, size_t len, size_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at = *at + (size_t)n < len ? *at + (size_t)n : len;
}

/* The members every entry has, left out of the generic summary. */
static bool common_member(const char *k)
{
	static const char *const common[] = {"seq",    "time",    "kind",
					     "device", "session", "event"};

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (strcmp(k, common[i]) == 0)
			return true;
	return false;
}

/* An entry of a kind this fasciactl does not know: key=value pairs. */
static void summary_generic(const json_t *e, char *buf, size_t len, size_t at)
{
	char v[CELL];
	const char *k;
	json_t *m;

	json_object_foreach((json_t *)e, k, m)
	{
		if (common_member(k))
			continue;
		ctl_json_text(m, v, sizeof(v));
		add(buf, len, &at, "%s%s=%s", at ? " " : "", k, v);
	}
}

/*
 * One line of what a log entry says beyond its seq, time, kind, device
 * and event (docs/records.md, "What reaches the writer").
 */
void ctl_log_summary(const json_t *e, char *buf, size_t len)
{
	const char *kind = table_str(e, "kind"), *msg = table_str(e, "message");
	char v[32], th[32];
	size_t at = 0;

	buf[0] = '\0';
	if (strcmp(kind, "alarm") == 0) {
		add(buf, len, &at, "%s chamber %lld %s: %s",
		    table_str(e, "alarm"),
		    (long long)json_integer_value(
			    json_object_get(e, "chamber")),
		    table_str(e, "priority"), msg);
		if (json_is_number(json_object_get(e, "value")))
			add(buf, len, &at, " (value %s, threshold %s)",
			    table_num(e, "value", v, sizeof(v), "%.1f"),
			    table_num(e, "threshold", th, sizeof(th), "%.1f"));
	} else if (strcmp(kind, "command") == 0) {
		add(buf, len, &at, "by %s: %s", table_str(e, "by"),
		    table_str(e, "outcome"));
		if (json_is_string(json_object_get(e, "profile")))
			add(buf, len, &at, ", profile %s",
			    table_str(e, "profile"));
		if (json_string_length(json_object_get(e, "message")) > 0)
			add(buf, len, &at, ": %s", msg);
	} else if (strcmp(kind, "state") == 0 &&
		   json_is_string(json_object_get(e, "message"))) {
		add(buf, len, &at, "%s", msg); /* a session's step */
	} else if (strcmp(kind, "state") == 0) {
		add(buf, len, &at, "%s -> %s (%s)", table_str(e, "from"),
		    table_str(e, "to"), table_str(e, "cause"));
	} else if (strcmp(kind, "link") == 0 || strcmp(kind, "daemon") == 0) {
		add(buf, len, &at, "%s", msg);
	} else if (strcmp(kind, "journal") == 0) {
		add(buf, len, &at, "%s", msg);
		if (json_integer_value(json_object_get(e, "count")) > 0)
			add(buf, len, &at, " (%lld records lost)",
			    (long long)json_integer_value(
				    json_object_get(e, "count")));
	} else {
		summary_generic(e, buf, len, at);
	}
}

static const char *const log_head[] = {"SEQ",   "TIME",    "KIND", "DEVICE",
				       "EVENT", "SUMMARY", NULL};
static const char *const log_csv_head[] = {
	"seq", "time", "kind", "device", "session", "event", "summary", NULL};

/* The entries as a table or CSV; with_device false leaves DEVICE out of
 * the table (a session's own log). */
struct table *ctl_log_table(struct ctl *ctl, const json_t *list,
			    bool with_device)
{
	static const char *const session_head[] = {"SEQ",   "TIME",    "KIND",
						   "EVENT", "SUMMARY", NULL};
	char seq[CELL], when[CELL], b[4][CELL], sum[1024];
	const json_t *e;
	struct table *t;
	size_t i;

	if (ctl->csv)
		t = table_new("", log_csv_head);
	else
		t = table_new("r", with_device ? log_head : session_head);
	json_array_foreach(list, i, e)
	{
		ctl_log_summary(e, sum, sizeof(sum));
		table_raw(e, "seq", seq, sizeof(seq));
		if (ctl->csv) {
			table_add(t,
				  (const char *const[]){
					  seq, table_iso(e, "time", when, CELL),
					  table_raw(e, "kind", b[0], CELL),
					  table_raw(e, "device", b[1], CELL),
					  table_raw(e, "session", b[2], CELL),
					  table_raw(e, "event", b[3], CELL),
					  sum});
			continue;
		}
		ctl_time_local(when, sizeof(when), json_object_get(e, "time"),
			       true);
		if (with_device)
			table_add(t, (const char *const[]){
					     seq, when, table_str(e, "kind"),
					     table_str(e, "device"),
					     table_str(e, "event"), sum});
		else
			table_add(t, (const char *const[]){
					     seq, when, table_str(e, "kind"),
					     table_str(e, "event"), sum});
	}
	return t;
}

int cmd_log(struct ctl *ctl, int argc, char **argv)
{
	const char *device = argc == 1 ? argv[0] : NULL;
	json_t *req, *res, *list, *last;
	struct table *t;
	char before[32];
	long long seq;
	char *end;
	int rc;

	if (!ctl_nargs(argc, 0, 1,
		       "log [DEVICE] [--kind K]... [--since T] [--until T] "
		       "[--limit N] [--before SEQ] [--json|--csv]"))
		return CTL_USAGE;
	req = json_pack("{s:s}", "cmd", "log");
	if ((device != NULL &&
	     !ctl_set_text(req, "device", "DEVICE", device)) ||
	    !add_range(ctl, req, "entries")) {
		json_decref(req);
		return CTL_USAGE;
	}
	if (ctl->kinds != NULL)
		json_object_set(req, "kinds", ctl->kinds);
	if (ctl->before != NULL) {
		errno = 0;
		seq = strtoll(ctl->before, &end, 10);
		if (errno != 0 || end == ctl->before || *end != '\0' ||
		    seq < 1) {
			ctl_usage_hint("--before: \"%s\" is not a log seq (1 "
				       "or more)",
				       ctl->before);
			json_decref(req);
			return CTL_USAGE;
		}
		json_object_set_new(req, "before", json_integer(seq));
	}
	if ((rc = ctl_query(ctl, req, &res)) != CTL_OK)
		return rc;
	list = json_object_get(res, "entries");
	if (device != NULL && json_array_size(list) == 0 &&
	    (rc = device_known(ctl, device)) != CTL_OK) {
		json_decref(res);
		return rc;
	}
	if (ctl->json) {
		ctl_print_json(res);
		json_decref(res);
		return CTL_OK;
	}
	t = ctl_log_table(ctl, list, true);
	if (ctl->csv)
		table_csv(t, stdout);
	else if (table_rows(t) == 0)
		puts("no log entries");
	else
		table_print(t, stdout);
	table_destroy(&t);
	last = json_array_get(list, json_array_size(list) - 1);
	ctl_json_text(json_object_get(last, "seq"), before, sizeof(before));
	more_hint(ctl, res, "entries", before[0] ? before : NULL);
	json_decref(res);
	return CTL_OK;
}

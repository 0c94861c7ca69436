/*
 * The journal's figures (docs/records.md): how long history and log take
 * on a big journal, how fast the writer commits, how big a session is.
 *
 *   build/bench/journal_query [--sessions N] [--trace] [--json] [--keep PATH]
 *
 * It makes a journal in a temporary directory with the writer's schema
 * and N sessions (default 100000) over a few devices and patients, each
 * with its summary and about ten log entries (with --trace, a short trace
 * too), written directly in one transaction for speed.  Then it times the
 * queries through qread.c's own code (qread_run() on a reader connection:
 * the reader thread's work without the hand-over) and prints p50 and p99
 * of each.  Then it puts 100 000 log entries through fd_journal_put() to
 * a real writer thread and times their commit, and measures one 30-minute
 * session with a 1 Hz trace of 8 chambers by the file's size before and
 * after (VACUUMed), projected to a year at 20 sessions a day.  --json
 * prints one JSON object of the figures on stdout instead of the table.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../daemon/clock.c"
#include "../../daemon/journal.c"
#include "../../daemon/jwrite.c"
#include "../../daemon/jfile.c"
#include "../../daemon/query.c"
#include "../../daemon/qargs.c"
#include "../../daemon/qread.c"

#define T0 1735689600000LL /* 2025-01-01 */
#define NDEV 4
#define NPATIENT 200
#define REPEAT 200
#define PUT_N 100000

/* ---- what the daemon's other files would give ---- */

static void vlog(const char *what, const char *fmt, va_list ap)
{
	fprintf(stderr, "journal_query: %s", what);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	(void)fmt;
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		abort();
	return p;
}

json_t *fd_server_error(json_t *id, const char *code, const char *field,
			const char *fmt, ...)
{
	(void)id;
	(void)field;
	(void)fmt;
	return json_pack("{s:s}", "code", code);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die_sql(sqlite3 *db, const char *what)
{
	fprintf(stderr, "journal_query: %s: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

/* ---- the journal ---- */

static void session_id(char *buf, size_t len, int i)
{
	snprintf(buf, len, "dev%d-%lld-%04x", i % NDEV,
		 (long long)(T0 + (int64_t)i * 60000), i & 0xffff);
}

/* The schema, by the writer's own open; then closed again. */
static void make_schema(const char *path)
{
	struct event_base *base = event_base_new();
	struct fd_journal *j = fd_journal_open(base, path, 36500, NULL, NULL);
	struct fd_journal_health h;

	fd_journal_health(j, &h);
	if (!h.ok)
		fatalx("%s", h.error);
	fd_journal_close(&j, 5);
	event_base_free(base);
}

static const char *const log_shape[10][3] = {
	{"command", "start",
	 "{\"by\":null,\"outcome\":\"ok\",\"message\":\"\","
	 "\"profile\":\"gentle-wave\",\"sha256\":\"9f2c\"}"},
	{"state", "changed",
	 "{\"from\":\"idle\",\"to\":\"inflating\",\"cause\":\"start\"}"},
	{"state", "changed",
	 "{\"from\":\"inflating\",\"to\":\"running\",\"cause\":\"ready\"}"},
	{"alarm", "raised",
	 "{\"alarm\":\"overpressure\",\"priority\":\"high\",\"chamber\":3,"
	 "\"value\":61.2,\"threshold\":60.0,\"message\":\"chamber 3 over\"}"},
	{"alarm", "acknowledged",
	 "{\"alarm\":\"overpressure\",\"priority\":\"high\",\"chamber\":3,"
	 "\"value\":null,\"threshold\":null,\"message\":\"\"}"},
	{"alarm", "cleared",
	 "{\"alarm\":\"overpressure\",\"priority\":\"high\",\"chamber\":3,"
	 "\"value\":null,\"threshold\":null,\"message\":\"\"}"},
	{"command", "pause",
	 "{\"by\":null,\"outcome\":\"ok\",\"message\":\"\"}"},
	{"command", "resume",
	 "{\"by\":null,\"outcome\":\"ok\",\"message\":\"\"}"},
	{"state", "changed",
	 "{\"from\":\"running\",\"to\":\"venting\",\"cause\":\"completed\"}"},
	{"state", "changed",
	 "{\"from\":\"venting\",\"to\":\"idle\",\"cause\":\"vented\"}"},
};

/* Session i's ten log entries (now and then a link or daemon entry
 * instead of one), from seq *seq on. */
static void put_session_log(sqlite3 *db, sqlite3_stmt *ls, int64_t *seq, int i,
			    int64_t started, const char *dev, const char *id)
{
	for (int k = 0; k < 10; k++, (*seq)++) {
		bool other = k == 6 && i % 50 == 0;

		sqlite3_bind_int64(ls, 1, *seq);
		/* within the minute: in time's order, as a daemon puts
		 * them (log_late stays 0) */
		sqlite3_bind_int64(ls, 2, started + k * 5000);
		sqlite3_bind_text(ls, 3,
				  other ? (i % 100 ? "link" : "daemon")
					: log_shape[k][0],
				  -1, SQLITE_STATIC);
		sqlite3_bind_text(ls, 4, dev, -1, SQLITE_STATIC);
		if (!other)
			sqlite3_bind_text(ls, 5, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ls, 6, other ? "down" : log_shape[k][1], -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(ls, 7,
				  other ? "{\"message\":\"timeout\"}"
					: log_shape[k][2],
				  -1, SQLITE_STATIC);
		if (sqlite3_step(ls) != SQLITE_DONE)
			die_sql(db, "log");
		sqlite3_reset(ls);
		sqlite3_clear_bindings(ls);
	}
}

/* n sessions, ten log entries each (a link or daemon entry now and
 * then instead), in one transaction. */
static double generate(const char *path, int n, bool trace)
{
	static const char dose[] =
		"[{\"chamber\":1,\"max_mmhg\":40.1,\"mean_mmhg\":31.2,"
		"\"mmhg_s\":9012.4,\"above_30_s\":121.3},{\"chamber\":2,"
		"\"max_mmhg\":40.1,\"mean_mmhg\":31.2,\"mmhg_s\":9012.4,"
		"\"above_30_s\":121.3}]";
	sqlite3 *db;
	sqlite3_stmt *ss, *ls, *ts;
	unsigned char blob[16] = {0};
	char id[64], dev[8], patient[16];
	int64_t seq = 1;
	double t = now_s();

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA cache_size = -400000; BEGIN IMMEDIATE",
			 NULL, NULL, NULL) != SQLITE_OK)
		die_sql(db, "open");
	if (sqlite3_prepare_v2(
		    db,
		    "INSERT INTO sessions(n, id, device, profile,"
		    " profile_sha256, patient, note, started, ended,"
		    " end_reason, planned_s, delivered_s, paused_s, chambers,"
		    " trace_hz, dose, checkpoint, trace_kept) VALUES (?1, ?2,"
		    " ?3, 'gentle-wave', '9f2c', ?4, 'left leg', ?5, ?6,"
		    " 'completed', 1800.0, 1799.9, 0.0, 2, 1, ?7, ?6, ?8)",
		    -1, &ss, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO log(seq, time, kind, device,"
			       " session, event, data) VALUES (?1, ?2, ?3, ?4,"
			       " ?5, ?6, ?7)",
			       -1, &ls, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO trace(session, k, pressure,"
			       " setpoint) VALUES (?1, ?2, ?3, ?3)",
			       -1, &ts, NULL) != SQLITE_OK)
		die_sql(db, "prepare");
	for (int i = 0; i < n; i++) {
		int64_t started = T0 + (int64_t)i * 60000;

		session_id(id, sizeof(id), i);
		snprintf(dev, sizeof(dev), "dev%d", i % NDEV);
		snprintf(patient, sizeof(patient), "MRN-%04d",
			 (i * 7919) % NPATIENT);
		sqlite3_bind_int(ss, 1, i + 1);
		sqlite3_bind_text(ss, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ss, 3, dev, -1, SQLITE_STATIC);
		sqlite3_bind_text(ss, 4, patient, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ss, 5, started);
		sqlite3_bind_int64(ss, 6, started + 1800000);
		sqlite3_bind_text(ss, 7, dose, -1, SQLITE_STATIC);
		sqlite3_bind_int(ss, 8, trace);
		if (sqlite3_step(ss) != SQLITE_DONE)
			die_sql(db, "session");
		sqlite3_reset(ss);
		put_session_log(db, ls, &seq, i, started, dev, id);
		for (int k = 0; trace && k < 30; k++) {
			sqlite3_bind_int(ts, 1, i + 1);
			sqlite3_bind_int(ts, 2, k);
			sqlite3_bind_blob(ts, 3, blob, 4, SQLITE_STATIC);
			if (sqlite3_step(ts) != SQLITE_DONE)
				die_sql(db, "trace");
			sqlite3_reset(ts);
		}
	}
	sqlite3_finalize(ss);
	sqlite3_finalize(ls);
	sqlite3_finalize(ts);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die_sql(db, "commit");
	sqlite3_close(db);
	return now_s() - t;
}

/* ---- timing the queries ---- */

struct figure {
	const char *name;
	double p50_ms, p99_ms;
	int rows;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* REPEAT runs of the request text_of(i) gives, through qread_run(). */
static struct figure timed(struct reader *r, const char *name,
			   void (*text_of)(int i, int n, char *buf, size_t len),
			   int n)
{
	static double ms[REPEAT];
	struct figure f = {name, 0, 0, 0};
	char text[300];

	for (int i = 0; i < REPEAT; i++) {
		struct qjob job;
		json_t *req, *reply = NULL;
		double t;

		text_of(i, n, text, sizeof(text));
		req = json_loads(text, 0, NULL);
		memset(&job, 0, sizeof(job));
		if (req == NULL ||
		    qargs_parse(json_string_value(json_object_get(req, "cmd")),
				req, &job.a, &reply) < 0)
			fatalx("bad request %s", text);
		t = now_s();
		qread_run(r, &job);
		ms[i] = (now_s() - t) * 1000;
		if (job.result == NULL)
			fatalx("%s: %s", text, job.msg);
		if (job.a.cmd == Q_SESSION) /* its trace's samples */
			f.rows = (int)json_array_size(json_object_get(
				json_object_get(
					json_object_get(job.result, "session"),
					"trace"),
				"pressure"));
		else
			f.rows = (int)json_array_size(json_object_get(
				job.result,
				job.a.cmd == Q_LOG ? "entries" : "sessions"));
		json_decref(job.result);
		json_decref(req);
	}
	qsort(ms, REPEAT, sizeof(ms[0]), cmp_double);
	f.p50_ms = ms[REPEAT / 2];
	f.p99_ms = ms[REPEAT * 99 / 100];
	return f;
}

static void q_history(int i, int n, char *b, size_t len)
{
	(void)i;
	(void)n;
	snprintf(b, len, "{\"cmd\":\"history\"}");
}

static void q_history_device(int i, int n, char *b, size_t len)
{
	(void)n;
	snprintf(b, len, "{\"cmd\":\"history\",\"device\":\"dev%d\"}",
		 i % NDEV);
}

static void q_history_patient(int i, int n, char *b, size_t len)
{
	(void)n;
	snprintf(b, len, "{\"cmd\":\"history\",\"patient\":\"MRN-%04d\"}",
		 (i * 37) % NPATIENT);
}

/* a page deep in the list: below one of the oldest tenth */
static void q_history_before(int i, int n, char *b, size_t len)
{
	char id[64];

	session_id(id, sizeof(id), (i * 7) % (n / 10 + 1));
	snprintf(b, len, "{\"cmd\":\"history\",\"before\":\"%s\"}", id);
}

static void q_history_since(int i, int n, char *b, size_t len)
{
	snprintf(b, len,
		 "{\"cmd\":\"history\",\"device\":\"dev%d\",\"since\":%lld,"
		 "\"until\":%lld}",
		 i % NDEV, (long long)(T0 + (int64_t)(n / 2) * 60000),
		 (long long)(T0 + (int64_t)(n / 2 + 1440) * 60000));
}

static void q_log(int i, int n, char *b, size_t len)
{
	(void)i;
	(void)n;
	snprintf(b, len, "{\"cmd\":\"log\"}");
}

static void q_log_kinds(int i, int n, char *b, size_t len)
{
	(void)n;
	snprintf(b, len, "{\"cmd\":\"log\",\"kinds\":[%s]}",
		 i % 2 ? "\"alarm\"" : "\"alarm\",\"command\"");
}

static void q_log_rare(int i, int n, char *b, size_t len)
{
	(void)i;
	(void)n;
	snprintf(b, len, "{\"cmd\":\"log\",\"kinds\":[\"daemon\"]}");
}

static void q_log_device(int i, int n, char *b, size_t len)
{
	(void)n;
	snprintf(b, len,
		 "{\"cmd\":\"log\",\"device\":\"dev%d\",\"kinds\":"
		 "[\"alarm\"]}",
		 i % NDEV);
}

static void q_log_before(int i, int n, char *b, size_t len)
{
	/* in the oldest tenth of the n * 10 entries */
	snprintf(b, len, "{\"cmd\":\"log\",\"before\":%d}",
		 100 + (i * 7919) % n);
}

static void q_log_since(int i, int n, char *b, size_t len)
{
	(void)i;
	snprintf(b, len, "{\"cmd\":\"log\",\"since\":%lld}",
		 (long long)(T0 + (int64_t)(n - 60) * 60000));
}

static void q_log_window(int i, int n, char *b, size_t len)
{
	(void)i;
	snprintf(b, len, "{\"cmd\":\"log\",\"since\":%lld,\"until\":%lld}",
		 (long long)(T0 + (int64_t)(n / 10) * 60000),
		 (long long)(T0 + (int64_t)(n / 2) * 60000));
}

/* a day, far back, on one device */
static void q_log_day(int i, int n, char *b, size_t len)
{
	int64_t from = T0 + (int64_t)((i * 7919) % (n / 2)) * 60000;

	snprintf(b, len,
		 "{\"cmd\":\"log\",\"device\":\"dev%d\",\"since\":%lld,"
		 "\"until\":%lld}",
		 i % NDEV, (long long)from, (long long)(from + 86400000));
}

static void q_session(int i, int n, char *b, size_t len)
{
	char id[64];

	session_id(id, sizeof(id), (i * 7919) % n);
	snprintf(b, len,
		 "{\"cmd\":\"session.get\",\"session\":\"%s\","
		 "\"trace\":true}",
		 id);
}

/* ---- the writer ---- */

/* Put no faster than the writer takes: nothing is refused. */
static void wait_room(struct fd_journal *j, unsigned most)
{
	struct fd_journal_health h;

	for (;;) {
		fd_journal_health(j, &h);
		if (h.waiting < most)
			return;
		nanosleep(&(struct timespec){0, 200000}, NULL);
	}
}

static double writer_rate(const char *path)
{
	struct event_base *base = event_base_new();
	struct fd_journal *j = fd_journal_open(base, path, 365, NULL, NULL);
	struct fd_journal_health h;
	double t = now_s();
	int put = 0;

	while (put < PUT_N) {
		wait_room(j, FD_JOURNAL_QUEUE);
		if (fd_journal_put(j, FD_J_LOG,
				   json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}",
					     "time", (json_int_t)T0 + put,
					     "kind", "state", "device", "dev0",
					     "session", "dev0-1-0000", "event",
					     "changed", "cause", "bench")) == 0)
			fatalx("a record was refused");
		put++;
	}
	do {
		nanosleep(&(struct timespec){0, 200000}, NULL);
		fd_journal_health(j, &h);
	} while (h.committed < PUT_N);
	t = now_s() - t;
	if (!h.ok || h.lost > 0)
		fatalx("journal: %s, %llu lost", h.error,
		       (unsigned long long)h.lost);
	fd_journal_close(&j, 5);
	event_base_free(base);
	return PUT_N / t;
}

static int64_t vacuumed_size(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t pages = 0, size = 0;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
		die_sql(db, "vacuum");
	sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		pages = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		size = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return pages * size;
}

/* The bytes of table and its indexes (dbstat), or -1. */
static int64_t table_bytes(const char *path, const char *table)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db,
			       "SELECT SUM(pgsize) FROM dbstat WHERE name IN"
			       " (SELECT name FROM sqlite_master WHERE"
			       " tbl_name = ?1)",
			       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return n;
}

/* Ten 30-minute sessions at 1 Hz, 8 chambers, through the writer: the
 * bytes of one. */
static int64_t session_bytes(const char *path)
{
	struct event_base *base = event_base_new();
	struct fd_journal *j;
	struct fd_journal_health h;
	int64_t before, after;
	uint64_t last = 0;
	char id[64];

	make_schema(path);
	before = vacuumed_size(path);
	j = fd_journal_open(base, path, 365, NULL, NULL);
	for (int s = 0; s < 10; s++) {
		int64_t t0 = T0 + (int64_t)s * 3600000;
		json_t *dose = json_array();

		session_id(id, sizeof(id), s);
		for (int c = 1; c <= 8; c++)
			json_array_append_new(
				dose, json_pack("{s:i, s:f, s:f, s:f, s:f}",
						"chamber", c, "max_mmhg", 40.1,
						"mean_mmhg", 31.2, "mmhg_s",
						9012.4, "above_30_s", 121.3));
		fd_journal_put(
			j, FD_J_SESSION_OPEN,
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:I, "
				  "s:f, s:i, s:i}",
				  "id", id, "device", "dev0", "profile",
				  "gentle-wave", "profile_sha256", "9f2c",
				  "patient", "MRN-0042", "operator", "note",
				  "left leg", "started", (json_int_t)t0,
				  "planned_s", 1800.0, "chambers", 8,
				  "trace_hz", 1));
		for (int k = 0; k < 10; k++)
			fd_journal_put(
				j, FD_J_LOG,
				json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, "
					  "s:s, s:s}",
					  "time", (json_int_t)(t0 + k), "kind",
					  "state", "device", "dev0", "session",
					  id, "event", "changed", "from",
					  "running", "to", "paused", "cause",
					  "pause"));
		for (int k = 0; k < 1800; k++) {
			json_t *p = json_array(), *sp = json_array();

			for (int c = 0; c < 8; c++) {
				json_array_append_new(
					p,
					json_real(20 + (k + c) % 200 / 10.0));
				json_array_append_new(sp, json_real(30.0));
			}
			wait_room(j, FD_JOURNAL_QUEUE / 2 - 1);
			if (fd_journal_put(
				    j, FD_J_SAMPLE,
				    json_pack("{s:s, s:I, s:o, s:o, s:f, s:f, "
					      "s:o}",
					      "session", id, "t",
					      (json_int_t)(t0 + k * 1000),
					      "pressure", p, "setpoint", sp,
					      "delivered_s", (double)k,
					      "paused_s", 0.0, "dose",
					      json_deep_copy(dose))) == 0)
				fatalx("a sample was refused");
		}
		wait_room(j, FD_JOURNAL_QUEUE);
		last = fd_journal_put(
			j, FD_J_SESSION_CLOSE,
			json_pack("{s:s, s:I, s:s, s:n, s:f, s:f, s:o}", "id",
				  id, "ended", (json_int_t)(t0 + 1800000),
				  "end_reason", "completed", "alarm",
				  "delivered_s", 1800.0, "paused_s", 0.0,
				  "dose", dose));
	}
	do {
		nanosleep(&(struct timespec){0, 1000000}, NULL);
		fd_journal_health(j, &h);
	} while (h.committed < last);
	fd_journal_close(&j, 5);
	event_base_free(base);
	after = vacuumed_size(path);
	return (after - before) / 10;
}

/* ---- the figures ---- */

struct results {
	int n;
	double gen_s, rate;
	int64_t one, log_bytes, session_row_bytes;
	const struct figure *f;
	int nf;
};

static void print_json(const struct results *r)
{
	json_t *o = json_pack(
		"{s:i, s:f, s:f, s:I, s:I, s:f, s:f}", "sessions", r->n,
		"generate_s", r->gen_s, "writer_entries_per_s", r->rate,
		"session_30min_8ch_bytes", (json_int_t)r->one,
		"year_20_a_day_bytes", (json_int_t)(r->one * 20 * 365),
		"log_entry_bytes", (double)r->log_bytes / (r->n * 10.0),
		"session_row_bytes", (double)r->session_row_bytes / r->n);
	json_t *q = json_object();

	for (int i = 0; i < r->nf; i++)
		json_object_set_new(q, r->f[i].name,
				    json_pack("{s:f, s:f, s:i}", "p50_ms",
					      r->f[i].p50_ms, "p99_ms",
					      r->f[i].p99_ms, "rows",
					      r->f[i].rows));
	json_object_set_new(o, "queries", q);
	json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
	putchar('\n');
	json_decref(o);
}

static void print_table(const struct results *r)
{
	printf("%d sessions, %d log entries, generated in %.1f s\n\n", r->n,
	       r->n * 10, r->gen_s);
	printf("%-28s %9s %9s %5s\n", "query", "p50 ms", "p99 ms", "rows");
	for (int i = 0; i < r->nf; i++)
		printf("%-28s %9.2f %9.2f %5d\n", r->f[i].name, r->f[i].p50_ms,
		       r->f[i].p99_ms, r->f[i].rows);
	printf("\nwriter: %.0f log entries committed a second\n", r->rate);
	printf("a log entry: %.0f bytes, a session's row: %.0f bytes (with "
	       "their indexes)\n",
	       (double)r->log_bytes / (r->n * 10.0),
	       (double)r->session_row_bytes / r->n);
	printf("one 30-minute session, 1 Hz, 8 chambers: %lld bytes; a year "
	       "at 20 a day: %.2f GB\n",
	       (long long)r->one, r->one * 20.0 * 365 / 1e9);
}

int main(int argc, char **argv)
{
	int n = 100000;
	bool json = false, trace = false;
	const char *keep = NULL; /* --keep: the generated journal, for
				    tests/bench/run.py's round trips */
	char dir[] = "/tmp/fascia-bench-XXXXXX", path[128], cmd[160];
	struct reader r = {0};
	struct figure f[16];
	int nf = 0;
	struct results res = {0};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--trace") == 0)
			trace = true;
		else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
			keep = argv[++i];
		else {
			fprintf(stderr, "usage: journal_query [--sessions N] "
					"[--trace] [--json] [--keep PATH]\n");
			return 2;
		}
	}
	if (n < 10 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "journal_query: need --sessions >= 10 and "
				"a temporary directory\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	make_schema(path);
	res.n = n;
	res.gen_s = generate(path, n, trace);
	res.log_bytes = table_bytes(path, "log");
	res.session_row_bytes = table_bytes(path, "sessions");
	r.path = path;
	f[nf++] = timed(&r, "history", q_history, n);
	f[nf++] = timed(&r, "history device", q_history_device, n);
	f[nf++] = timed(&r, "history patient", q_history_patient, n);
	f[nf++] = timed(&r, "history before (deep)", q_history_before, n);
	f[nf++] = timed(&r, "history device+day", q_history_since, n);
	f[nf++] = timed(&r, "log", q_log, n);
	f[nf++] = timed(&r, "log kinds", q_log_kinds, n);
	f[nf++] = timed(&r, "log kinds (rare)", q_log_rare, n);
	f[nf++] = timed(&r, "log device+alarm", q_log_device, n);
	f[nf++] = timed(&r, "log before (deep)", q_log_before, n);
	f[nf++] = timed(&r, "log since (last hour)", q_log_since, n);
	f[nf++] = timed(&r, "log since..until (wide)", q_log_window, n);
	f[nf++] = timed(&r, "log device+day (far back)", q_log_day, n);
	f[nf++] = timed(&r, "session.get trace", q_session, n);
	qread_close(&r);
	/* closed: the WAL is checkpointed into the file, which moves alone */
	if (keep != NULL && rename(path, keep) != 0) {
		fprintf(stderr, "journal_query: cannot move %s to %s: %s\n",
			path, keep, strerror(errno));
		return 1;
	}

	snprintf(path, sizeof(path), "%s/writer.db", dir);
	res.rate = writer_rate(path);
	snprintf(path, sizeof(path), "%s/size.db", dir);
	res.one = session_bytes(path);

	res.nf = nf;
	res.f = f;
	if (json)
		print_json(&res);
	else
		print_table(&res);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}

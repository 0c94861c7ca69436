/*
 * A query on the reader's connection (docs/records.md, "The commands"):
 * history, session.get and log, each in one read transaction, and their
 * answers made of the rows.  Runs on the reader thread (query.c), on a
 * read-only connection of its own: the journal is in WAL mode, so it
 * reads a consistent snapshot while the writer (journal.c) goes on
 * writing.
 *
 * Every statement is made of constant fragments with the values bound;
 * those of history and log depend on which filters a request has, so each
 * shape is prepared the first time it is asked for and kept with the
 * connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>

#include "query.h"

#define QUERY_VERSION 1 /* the schema jfile.c writes */
#define QUERY_BUSY_MS 2000

#define SUMMARY_COLS                                                           \
	"id, device, profile, profile_sha256, patient, operator, note,"        \
	" started, ended, end_reason, alarm, planned_s, delivered_s,"          \
	" paused_s, trace_hz, dose"
#define NSUMMARY 16
#define LOG_COLS "seq, time, kind, device, session, event, data"

static const char *const summary_keys[NSUMMARY] = {
	"id",          "device",     "profile",  "profile_sha256",
	"patient",     "operator",   "note",     "started",
	"ended",       "end_reason", "alarm",    "planned_s",
	"delivered_s", "paused_s",   "trace_hz", "chambers"};
static const char *const log_keys[] = {"seq",    "time",    "kind",
				       "device", "session", "event"};

static const char *const qs_sql[NQS] = {
	[QS_BEGIN] = "BEGIN",
	[QS_END] = "COMMIT",
	[QS_BEFORE] = "SELECT started FROM sessions WHERE id = ?1",
	[QS_SESSION] = "SELECT " SUMMARY_COLS ", n, trace_t0"
		       " FROM sessions WHERE id = ?1",
	[QS_PROFILE] = "SELECT document FROM profiles WHERE sha256 = ?1",
	[QS_SLOG] = "SELECT " LOG_COLS " FROM log WHERE session = ?1"
		    " ORDER BY seq",
	[QS_TRACE] = "SELECT k, pressure, setpoint FROM trace"
		     " WHERE session = ?1 ORDER BY k",
	[QS_LATE] = "SELECT ms FROM log_late",
	[QS_SEQ_BELOW] = "SELECT seq FROM log WHERE time >= ?1"
			 " ORDER BY time LIMIT 1",
	[QS_SEQ_ABOVE] = "SELECT seq FROM log WHERE time < ?1"
			 " ORDER BY time DESC LIMIT 1",
};

/* ---- the connection ---- */

/* The job's answer: internal, "the journal cannot be read: ...". */
static void qfail(struct qjob *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void qfail(struct qjob *job, const char *fmt, ...)
{
	char why[240];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	json_decref(job->result);
	job->result = NULL;
	job->code = "internal";
	job->field[0] = '\0';
	snprintf(job->msg, sizeof(job->msg), "the journal cannot be read: %s",
		 why);
}

/* The job's answer: bad_request naming field. */
static void qrefuse(struct qjob *job, const char *field, const char *what,
		    const char *value)
{
	job->code = "bad_request";
	snprintf(job->field, sizeof(job->field), "%s", field);
	snprintf(job->msg, sizeof(job->msg), "no %s \"%.*s\" in the journal",
		 what, QUERY_STR, value);
}

void qread_close(struct reader *r)
{
	for (int i = 0; i < NQS; i++)
		sqlite3_finalize(r->st[i]);
	for (int i = 0; i < F_SHAPES; i++) {
		sqlite3_finalize(r->history[i]);
		sqlite3_finalize(r->log[i]);
	}
	memset(r->st, 0, sizeof(r->st));
	memset(r->history, 0, sizeof(r->history));
	memset(r->log, 0, sizeof(r->log));
	sqlite3_close(r->db);
	r->db = NULL;
}

/* Step s for one integer: SQLITE_ROW with *v, SQLITE_DONE, or the
 * error; s is reset. */
static int qint(sqlite3_stmt *s, int64_t *v)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			rc = SQLITE_DONE;
		*v = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* One integer PRAGMA: SQLITE_ROW with *v, or the error. */
static int pragma(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc == SQLITE_OK)
		rc = qint(s, v);
	sqlite3_finalize(s);
	return rc;
}

/* Open the journal read-only, check it is one of our version, prepare
 * the statements.  0, or -1 with the job's answer and no connection. */
static int ropen(struct reader *r, struct qjob *job)
{
	int64_t app = 0, ver = 0;
	struct stat st;
	int rc;

	if (stat(r->path, &st) < 0) {
		qfail(job, "%s: %s", r->path,
		      errno == ENOENT ? "no such file (nothing recorded yet?)"
				      : strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		qfail(job, "%s: it is a directory", r->path);
		return -1;
	}
	rc = sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(r->db, 1);
		sqlite3_busy_timeout(r->db, QUERY_BUSY_MS);
		rc = pragma(r->db, "PRAGMA application_id", &app);
	}
	if (rc == SQLITE_ROW)
		rc = pragma(r->db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_ROW)
		qfail(job, "%s: %s", r->path,
		      (rc & 0xff) == SQLITE_NOTADB
			      ? "not a fascia journal (not an SQLite database)"
			      : sqlite3_errstr(rc));
	else if (app != FD_JOURNAL_APP_ID)
		qfail(job, "%s is not a fascia journal", r->path);
	else if (ver > QUERY_VERSION)
		qfail(job,
		      "%s was written by a newer fasciad (version %d); this "
		      "one reads up to %d",
		      r->path, (int)ver, QUERY_VERSION);
	else if (ver < QUERY_VERSION)
		qfail(job, "%s is of version %d, not yet set up", r->path,
		      (int)ver);
	else {
		rc = SQLITE_OK;
		for (int i = 0; i < NQS && rc == SQLITE_OK; i++)
			rc = sqlite3_prepare_v3(r->db, qs_sql[i], -1,
						SQLITE_PREPARE_PERSISTENT,
						&r->st[i], NULL);
		if (rc == SQLITE_OK)
			return 0;
		qfail(job, "%s: %s", r->path, sqlite3_errmsg(r->db));
	}
	qread_close(r);
	return -1;
}

/* ---- rows as JSON ---- */

static json_t *col_json(sqlite3_stmt *s, int i)
{
	json_t *v;

	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_FLOAT:
		return json_real(sqlite3_column_double(s, i));
	case SQLITE_TEXT:
		v = json_stringn((const char *)sqlite3_column_text(s, i),
				 (size_t)sqlite3_column_bytes(s, i));
		return v != NULL ? v : json_null();
	default:
		return json_null();
	}
}

/* Column i's JSON text parsed, or NULL. */
static json_t *col_doc(sqlite3_stmt *s, int i)
{
	const char *text = (const char *)sqlite3_column_text(s, i);

	return text != NULL ? json_loads(text, 0, NULL) : NULL;
}

/* A session summary from the SUMMARY_COLS of s's row. */
static json_t *row_summary(sqlite3_stmt *s)
{
	json_t *o = fd_must(json_object()), *dose;

	for (int i = 0; i < NSUMMARY - 1; i++)
		json_object_set_new(o, summary_keys[i], col_json(s, i));
	dose = col_doc(s, NSUMMARY - 1);
	if (!json_is_array(dose)) { /* no sample yet: no dose */
		json_decref(dose);
		dose = json_array();
	}
	json_object_set_new(o, "chambers", fd_must(dose));
	return o;
}

/* A log entry from the LOG_COLS of s's row: as it was put, with seq. */
static json_t *row_entry(sqlite3_stmt *s)
{
	json_t *o = fd_must(json_object()), *data;

	for (int i = 0; i < 6; i++)
		json_object_set_new(o, log_keys[i], col_json(s, i));
	if ((data = col_doc(s, 6)) != NULL && json_is_object(data))
		json_object_update_missing(o, data);
	json_decref(data);
	return o;
}

/* A trace row's list: int16 tenths of mmHg, little-endian, to mmHg. */
static json_t *blob_list(sqlite3_stmt *s, int i)
{
	const unsigned char *b = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i) / 2;
	json_t *list;

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	list = fd_must(json_array());
	for (int c = 0; c < n; c++) {
		int16_t q = (int16_t)(uint16_t)(b[2 * c] | b[2 * c + 1] << 8);

		json_array_append_new(list, q == FD_JOURNAL_TRACE_NULL
						    ? json_null()
						    : json_real(q / 10.0));
	}
	return list;
}

/* ---- the statements ---- */

static void qbind_text(sqlite3_stmt *s, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(s, name);

	if (i > 0)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

static void qbind_int(sqlite3_stmt *s, const char *name, int64_t v)
{
	int i = sqlite3_bind_parameter_index(s, name);

	if (i > 0)
		sqlite3_bind_int64(s, i, v);
}

/* The statement of history (log false) or log of shape f: made of
 * constant fragments, prepared once per connection. */
static int shape(struct reader *r, bool log, unsigned f, sqlite3_stmt **out)
{
	sqlite3_stmt **slot = log ? &r->log[f] : &r->history[f];
	char sql[800];

	if (*slot != NULL) {
		*out = *slot;
		return SQLITE_OK;
	}
	/* The log by time: "+time" keeps the planner off the time index
	 * (it finds the rows, but not in seq's order); the window is a
	 * range of seq instead (log_seq_range()). */
	snprintf(sql, sizeof(sql), "%s WHERE 1%s%s%s%s%s%s ORDER BY %s",
		 log ? "SELECT " LOG_COLS " FROM log"
		     : "SELECT " SUMMARY_COLS " FROM sessions",
		 f & F_DEVICE ? " AND device = :device" : "",
		 !(f & F_WHO) ? ""
		 : log        ? " AND session = :who"
			      : " AND patient = :who",
		 f & F_KIND ? " AND kind = :kind" : "",
		 !(f & F_SINCE) ? ""
		 : log          ? " AND +time >= :since AND seq > :seq_above"
				: " AND started >= :since",
		 !(f & F_UNTIL) ? ""
		 : log          ? " AND +time < :until AND seq < :seq_below"
				: " AND started < :until",
		 !(f & F_BEFORE) ? ""
		 : log           ? " AND seq < :before"
		       : " AND started <= :bstarted AND (started < :bstarted"
			 " OR id < :bid)",
		 log ? "seq DESC LIMIT :limit"
		     : "started DESC, id DESC LIMIT :limit");
	*out = NULL;
	if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
			       NULL) != SQLITE_OK)
		return sqlite3_errcode(r->db);
	*out = *slot;
	return SQLITE_OK;
}

/* The arguments every shape may name. */
static void bind_args(sqlite3_stmt *s, const struct qargs *a)
{
	qbind_text(s, ":device", a->device);
	qbind_text(s, ":who", a->who);
	qbind_int(s, ":since", a->since);
	qbind_int(s, ":until", a->until);
	qbind_int(s, ":before", a->before_seq);
	qbind_int(s, ":seq_above", a->seq_above);
	qbind_int(s, ":seq_below", a->seq_below);
	qbind_text(s, ":bid", a->id);
	/* one more than asked for: whether there is more */
	qbind_int(s, ":limit", a->limit + 1);
}

/* ---- the queries ---- */

static int run_history(struct reader *r, struct qjob *job)
{
	struct qargs *a = &job->a;
	int64_t bstarted = 0;
	sqlite3_stmt *s;
	json_t *list;
	int rc, n = 0;

	if (a->filters & F_BEFORE) {
		sqlite3_bind_text(r->st[QS_BEFORE], 1, a->id, -1,
				  SQLITE_TRANSIENT);
		if ((rc = qint(r->st[QS_BEFORE], &bstarted)) == SQLITE_DONE) {
			qrefuse(job, "before", "session", a->id);
			return SQLITE_OK;
		}
		if (rc != SQLITE_ROW)
			return rc;
	}
	if ((rc = shape(r, false, a->filters, &s)) != SQLITE_OK)
		return rc;
	bind_args(s, a);
	qbind_int(s, ":bstarted", bstarted);
	list = fd_must(json_array());
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (n++ < a->limit)
			json_array_append_new(list, row_summary(s));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return rc;
	}
	job->result = fd_must(json_pack("{s:o, s:b}", "sessions", list, "more",
					n > a->limit));
	return SQLITE_OK;
}

/*
 * since..until as a range of seq, exact: the log is in seq's order, and
 * its times nearly so.  log_late (jwrite.c) is the most an entry's time
 * lies before the latest one of the entries before it.  Then an entry
 * with time >= until + late bounds the window from above (every later
 * entry has a time >= until), and one with time < since - late from below
 * (every earlier entry has a time < since).  The time index finds one of
 * each at once; a scan by seq between them finds the newest matches
 * first, however far back the window lies.
 */
static int log_seq_range(struct reader *r, struct qargs *a)
{
	int64_t late = 0, t;
	int rc;

	a->seq_above = 0;
	a->seq_below = INT64_MAX;
	if ((rc = qint(r->st[QS_LATE], &late)) != SQLITE_ROW)
		return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
	if ((a->filters & F_UNTIL) &&
	    !__builtin_add_overflow(a->until, late, &t)) {
		sqlite3_bind_int64(r->st[QS_SEQ_BELOW], 1, t);
		rc = qint(r->st[QS_SEQ_BELOW], &a->seq_below);
		if (rc == SQLITE_DONE)
			a->seq_below = INT64_MAX;
		else if (rc != SQLITE_ROW)
			return rc;
	}
	if ((a->filters & F_SINCE) &&
	    !__builtin_sub_overflow(a->since, late, &t)) {
		sqlite3_bind_int64(r->st[QS_SEQ_ABOVE], 1, t);
		rc = qint(r->st[QS_SEQ_ABOVE], &a->seq_above);
		if (rc == SQLITE_DONE)
			a->seq_above = 0;
		else if (rc != SQLITE_ROW)
			return rc;
	}
	return SQLITE_OK;
}

struct qrow {
	int64_t seq;
	json_t *e;
};

static int newest_first(const void *a, const void *b)
{
	int64_t x = ((const struct qrow *)a)->seq;
	int64_t y = ((const struct qrow *)b)->seq;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* The log, newest first: one query per kind asked for (each in seq's
 * order through its index), merged. */
static int run_log(struct reader *r, struct qjob *job)
{
	struct qargs *a = &job->a;
	unsigned f = a->filters | (a->kinds ? F_KIND : 0);
	size_t n = 0, cap = (size_t)NKINDS * (size_t)(a->limit + 1);
	struct qrow *rows;
	sqlite3_stmt *s;
	json_t *list;
	int rc = SQLITE_OK;

	if ((f & (F_SINCE | F_UNTIL)) &&
	    (rc = log_seq_range(r, a)) != SQLITE_OK)
		return rc;
	if ((rc = shape(r, true, f, &s)) != SQLITE_OK)
		return rc;
	rows = xcalloc(cap, sizeof(*rows));
	for (int k = 0; k < NKINDS && rc == SQLITE_OK; k++) {
		if (a->kinds && !(a->kinds & (1u << k)))
			continue;
		bind_args(s, a);
		qbind_text(s, ":kind", qargs_kinds[k]);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < cap)
			rows[n++] = (struct qrow){sqlite3_column_int64(s, 0),
						  row_entry(s)};
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		if (!a->kinds)
			break; /* one query did it all */
	}
	qsort(rows, n, sizeof(*rows), newest_first);
	list = fd_must(json_array());
	for (size_t i = 0; i < n; i++)
		if (i < (size_t)a->limit)
			json_array_append_new(list, rows[i].e);
		else
			json_decref(rows[i].e);
	free(rows);
	if (rc != SQLITE_OK) {
		json_decref(list);
		return rc;
	}
	job->result = fd_must(json_pack("{s:o, s:b}", "entries", list, "more",
					n > (size_t)a->limit));
	return SQLITE_OK;
}

/* The trace of session number sn: sample k at t0 + k / hz; a sample
 * the journal did not get (its queue was half full) is null. */
static int run_trace(struct reader *r, sqlite3_int64 sn, json_t *hz, int64_t t0,
		     json_t **out)
{
	sqlite3_stmt *s = r->st[QS_TRACE];
	json_t *p = fd_must(json_array()), *sp = fd_must(json_array());
	int64_t next = 0;
	int rc;

	sqlite3_bind_int64(s, 1, sn);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t k = sqlite3_column_int64(s, 0);

		for (; next < k; next++) {
			json_array_append_new(p, json_null());
			json_array_append_new(sp, json_null());
		}
		json_array_append_new(p, blob_list(s, 1));
		json_array_append_new(sp, blob_list(s, 2));
		next = k + 1;
	}
	sqlite3_reset(s);
	*out = fd_must(json_pack("{s:O, s:I, s:o, s:o}", "hz", hz, "t0",
				 (json_int_t)t0, "pressure", p, "setpoint",
				 sp));
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int run_session(struct reader *r, struct qjob *job)
{
	sqlite3_stmt *s = r->st[QS_SESSION];
	json_t *sum, *doc = NULL, *log, *trace = NULL;
	char sha[QUERY_STR] = "";
	sqlite3_int64 sn;
	int64_t t0;
	int rc;

	sqlite3_bind_text(s, 1, job->a.id, -1, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			qrefuse(job, "session", "session", job->a.id);
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sum = row_summary(s);
	sn = sqlite3_column_int64(s, NSUMMARY);
	t0 = sqlite3_column_type(s, NSUMMARY + 1) == SQLITE_NULL
		     ? sqlite3_column_int64(s, 7) /* started */
		     : sqlite3_column_int64(s, NSUMMARY + 1);
	if (sqlite3_column_type(s, 3) == SQLITE_TEXT)
		snprintf(sha, sizeof(sha), "%s", sqlite3_column_text(s, 3));
	sqlite3_reset(s);

	s = r->st[QS_PROFILE];
	sqlite3_bind_text(s, 1, sha, -1, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		doc = col_doc(s, 0);
	sqlite3_reset(s);
	json_object_set_new(sum, "profile_document", doc ? doc : json_null());
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;

	s = r->st[QS_SLOG];
	log = fd_must(json_array());
	sqlite3_bind_text(s, 1, job->a.id, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(log, row_entry(s));
	sqlite3_reset(s);
	json_object_set_new(sum, "log", log);
	if (rc != SQLITE_DONE)
		goto fail;

	if (job->a.trace) {
		rc = run_trace(r, sn, json_object_get(sum, "trace_hz"), t0,
			       &trace);
		json_object_set_new(sum, "trace", trace);
		if (rc != SQLITE_OK)
			goto fail;
	}
	job->result = fd_must(json_pack("{s:o}", "session", sum));
	return SQLITE_OK;
fail:
	json_decref(sum);
	return rc;
}

/* Answer job on connection r (opened when it is not). */
void qread_run(struct reader *r, struct qjob *job)
{
	int rc;

	if (r->db == NULL && ropen(r, job) < 0)
		return;
	/* one read transaction: every statement sees the same journal */
	if ((rc = sqlite3_step(r->st[QS_BEGIN])) == SQLITE_DONE) {
		if (job->a.cmd == Q_HISTORY)
			rc = run_history(r, job);
		else if (job->a.cmd == Q_SESSION)
			rc = run_session(r, job);
		else
			rc = run_log(r, job);
		sqlite3_step(r->st[QS_END]);
		sqlite3_reset(r->st[QS_END]);
	}
	sqlite3_reset(r->st[QS_BEGIN]);
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		/* a connection that failed is opened afresh next time */
		qfail(job, "%s: %s", r->path, sqlite3_errmsg(r->db));
		qread_close(r);
	}
}

/*
 * The journal's writer: the treatment record (docs/records.md) in one
 * SQLite file, written by a thread of its own.
 *
 * The main thread hands each record over with fd_journal_put(), which only
 * takes the lock to put a pointer in a ring: it never waits for the disk.
 * The writer takes everything queued, writes it in one transaction, and
 * only then lets the ring forget it: a record leaves the ring committed or
 * not at all, so a failed write (disk full, I/O error) loses nothing that
 * was queued.  The writer keeps it and tries again every second; the loop
 * hears of every commit and every change of health through an eventfd
 * (store.c's pattern).  What the file holds, and why, is docs/records.md's
 * "The file".
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "fasciad.h"

#define JOURNAL_APP_ID 0x46415343 /* "FASC": PRAGMA application_id */
#ifndef JOURNAL_RETRY_MS
#define JOURNAL_RETRY_MS 1000 /* after a failed open or write */
#endif
#define JOURNAL_LINGER_MS 20 /* gather a burst (an alarm's entries) */
/* Trace samples alone wait longer: each commit is an fsync, and the
 * kernel's fsync path delays the control threads' wake-ups on a small
 * box (docs/performance.md); a sample is the least a crash may lose. */
#define JOURNAL_SAMPLE_LINGER_MS 500
#define JOURNAL_IDLE_MS 1000 /* an idle writer looks at retention */
#define JOURNAL_BUSY_MS 5000 /* another program holding the file */
#define RETENTION_BATCH 500  /* trace rows per transaction */
#define RETENTION_EVERY_MS 60000
#define LOST_EPISODES 8
#define TRACE_NULL INT16_MIN /* a chamber without a reading */
#define REC_BAD (-1)         /* write_*(): the record was refused */

/* The steps from version i to i + 1; the version this daemon writes is
 * their number.  A step only adds: a journal is never rewritten. */
static const char step_v1[] =
	"CREATE TABLE profiles ("
	" sha256 TEXT PRIMARY KEY NOT NULL,"
	" name TEXT NOT NULL,"
	" document TEXT NOT NULL);"
	"CREATE TABLE sessions ("
	" n INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" device TEXT NOT NULL,"
	" profile TEXT NOT NULL,"
	" profile_sha256 TEXT,"
	" patient TEXT,"
	" operator TEXT,"
	" note TEXT,"
	" started INTEGER NOT NULL,"
	" ended INTEGER,"
	" end_reason TEXT NOT NULL DEFAULT 'running',"
	" alarm TEXT,"
	" planned_s REAL,"
	" delivered_s REAL NOT NULL DEFAULT 0,"
	" paused_s REAL NOT NULL DEFAULT 0,"
	" chambers INTEGER NOT NULL,"
	" trace_hz NUMERIC NOT NULL DEFAULT 0,"
	" dose TEXT,"
	" checkpoint INTEGER,"
	" trace_t0 INTEGER,"
	" trace_last_k INTEGER,"
	" trace_kept INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX sessions_started ON sessions(started, id);"
	"CREATE INDEX sessions_device ON sessions(device, started, id);"
	"CREATE INDEX sessions_patient ON sessions(patient, started, id)"
	" WHERE patient IS NOT NULL;"
	"CREATE INDEX sessions_running ON sessions(end_reason)"
	" WHERE end_reason = 'running';"
	"CREATE INDEX sessions_trace ON sessions(ended) WHERE trace_kept = 1;"
	"CREATE TABLE trace ("
	" session INTEGER NOT NULL REFERENCES sessions(n),"
	" k INTEGER NOT NULL,"
	" pressure BLOB NOT NULL,"
	" setpoint BLOB,"
	" PRIMARY KEY (session, k)) WITHOUT ROWID;"
	"CREATE TABLE log ("
	" seq INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" kind TEXT NOT NULL,"
	" device TEXT,"
	" session TEXT,"
	" event TEXT NOT NULL,"
	" data TEXT);"
	"CREATE INDEX log_device ON log(device, seq);"
	"CREATE INDEX log_kind ON log(kind, seq);"
	"CREATE INDEX log_session ON log(session, seq)"
	" WHERE session IS NOT NULL;"
	"CREATE INDEX log_time ON log(time);"
	"CREATE TABLE log_late (ms INTEGER NOT NULL);"
	"INSERT INTO log_late VALUES (0);";

static const char *const journal_steps[] = {step_v1};
#define JOURNAL_NSTEPS (int)(sizeof(journal_steps) / sizeof(journal_steps[0]))
#ifdef FD_JOURNAL_TEST
/* Tests only: a longer list plays a later daemon, a shorter an older. */
static const char *const *steps = journal_steps;
static int nsteps = JOURNAL_NSTEPS;
#else
#define steps journal_steps
#define nsteps JOURNAL_NSTEPS
#endif

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_LOG,
	ST_PROFILE,
	ST_OPEN,
	ST_FIND,
	ST_TRACE,
	ST_SAMPLE,
	ST_CLOSE,
	ST_RUNNING,
	ST_INTERRUPT,
	ST_MAXSEQ,
	ST_OLD,
	ST_PURGE,
	ST_PURGED,
	ST_LATE,
	ST_LATE_SET,
	NST
};

static const char *const stmt_sql[NST] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_LOG] = "INSERT INTO log(seq, time, kind, device, session, event,"
		   " data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_PROFILE] = "INSERT OR IGNORE INTO profiles(sha256, name, document)"
		       " VALUES (?1, ?2, ?3)",
	[ST_OPEN] = "INSERT INTO sessions(id, device, profile, profile_sha256,"
		    " patient, operator, note, started, planned_s, chambers,"
		    " trace_hz) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
		    " ?10, ?11)",
	[ST_FIND] = "SELECT n, trace_hz, trace_t0, trace_last_k FROM sessions"
		    " WHERE id = ?1 AND end_reason = 'running'",
	[ST_TRACE] = "INSERT OR REPLACE INTO trace(session, k, pressure,"
		     " setpoint) VALUES (?1, ?2, ?3, ?4)",
	[ST_SAMPLE] = "UPDATE sessions SET"
		      " delivered_s = COALESCE(?2, delivered_s),"
		      " paused_s = COALESCE(?3, paused_s),"
		      " dose = COALESCE(?4, dose), checkpoint = ?5,"
		      " trace_t0 = COALESCE(?6, trace_t0),"
		      " trace_last_k = COALESCE(?7, trace_last_k),"
		      " trace_kept = (trace_kept OR ?8) WHERE n = ?1",
	[ST_CLOSE] = "UPDATE sessions SET ended = ?2, end_reason = ?3,"
		     " alarm = ?4, delivered_s = COALESCE(?5, delivered_s),"
		     " paused_s = COALESCE(?6, paused_s),"
		     " dose = COALESCE(?7, dose) WHERE id = ?1",
	[ST_RUNNING] = "SELECT n, id, device, COALESCE(checkpoint, started)"
		       " FROM sessions WHERE end_reason = 'running'",
	[ST_INTERRUPT] = "UPDATE sessions SET end_reason = 'interrupted',"
			 " ended = ?2 WHERE n = ?1",
	[ST_MAXSEQ] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM log",
	[ST_OLD] = "SELECT n FROM sessions WHERE trace_kept = 1 AND ended < ?1"
		   " ORDER BY ended LIMIT 1",
	[ST_PURGE] = "DELETE FROM trace WHERE session = ?1 AND k <"
		     " (SELECT MIN(k) FROM trace WHERE session = ?1) + ?2",
	[ST_PURGED] = "UPDATE sessions SET trace_kept = 0 WHERE n = ?1",
	[ST_LATE] = "SELECT (SELECT ms FROM log_late), (SELECT MAX(time) FROM"
		    " log)",
	[ST_LATE_SET] = "UPDATE log_late SET ms = ?1",
};

struct jslot {
	enum fd_jkind kind;
	json_t *rec;
};

/* Records the full ring refused while record number `after` was the
 * last one it took: their gap goes right after that record. */
struct lost_episode {
	uint64_t after;
	uint64_t records;
	uint64_t logs; /* of them FD_J_LOG: seqs skipped */
};

/* What one write takes from the ring. */
struct batch {
	unsigned n;
	uint64_t first; /* the number of the first record */
	struct lost_episode lost[LOST_EPISODES];
	int nlost;
	bool fail; /* tests: this commit fails with SQLITE_FULL */
};

/* The writer thread's own (the opener's before it starts). */
struct writer {
	sqlite3 *db;
	sqlite3_stmt *st[NST];
	bool closed_running; /* the sessions an earlier run left are closed */
	uint64_t next_seq;
	/* The log's disorder (log_late): the most an entry's time lies
	 * before the latest time of the entries before it.  query.c turns
	 * a time window into a range of seq with it. */
	int64_t late_ms;
	int64_t max_time; /* of every entry so far */
	bool trouble;     /* not written since trouble_since */
	int64_t trouble_since;
	char trouble_why[200];  /* what began it */
	char told[200];         /* the reason last logged */
	int64_t retry_at;       /* monotonic ms */
	int64_t retention_next; /* unix ms */
	bool retention_more;    /* a pass was cut short by records */
	int skipped;            /* records refused in this batch */
	char skip_why[160];     /* the first one's reason */
};

struct fd_journal {
	char *path;
	int keep_days;
	fd_journal_changed changed;
	void *arg;
	int wake_fd;
	struct event *wake_ev;
	pthread_t thread;

	/* Under lock.  ring[head] is record number h.committed + 1; the n
	 * records from there wait for the disk (or are being written). */
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct jslot *ring;
	unsigned head, n;
	int64_t first_put_ms; /* monotonic: when n went from 0; 0: no linger */
	bool urgent;          /* a record other than a sample waits */
	struct lost_episode lost[LOST_EPISODES];
	int nlost;
	struct fd_journal_health h;
	bool stopping;
	int64_t deadline_ms; /* monotonic: stop writing then */
#ifdef FD_JOURNAL_TEST
	int test_fail_commits;       /* the next ones fail, SQLITE_FULL */
	uint64_t test_trace_deleted; /* trace rows retention removed */
#endif

	struct writer w;
};

/* Real time, not fd_clock's: the writer's waits are on a real condvar,
 * whereas the records' and retention's times are fd_clock_unix_ms(). */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify(struct fd_journal *j)
{
	uint64_t one = 1;

	/* Only a counter at its maximum refuses this, and then the loop
	 * has a wake-up pending anyway. */
	(void)!write(j->wake_fd, &one, sizeof(one));
}

static void journal_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_journal *j = arg;
	uint64_t n;

	(void)what;
	(void)!read(fd, &n, sizeof(n));
	if (j->changed != NULL)
		j->changed(j->arg);
}

/* ---- words for an operator ---- */

static const char *rc_words(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return "disk full";
	case SQLITE_IOERR:
		return "I/O error";
	case SQLITE_READONLY:
		return "read-only (the file, its directory or the file system)";
	case SQLITE_CANTOPEN:
		return "cannot open the file";
	case SQLITE_CORRUPT:
		return "the file is corrupt";
	case SQLITE_NOTADB:
		return "not an SQLite database (not a fascia journal)";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "locked by another program";
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return "permission denied";
	case SQLITE_NOMEM:
		return "out of memory";
	default:
		return sqlite3_errstr(rc);
	}
}

/* "WORDS: DOING PATH (errno's words)", the errno when SQLite has one. */
static void rc_why(sqlite3 *db, int rc, const char *doing, const char *path,
		   char *why, size_t len)
{
	int e = db != NULL ? sqlite3_system_errno(db) : 0;

	if (e != 0 && (rc & 0xff) != SQLITE_FULL)
		snprintf(why, len, "%s: %s %s (%s)", rc_words(rc), doing, path,
			 strerror(e));
	else
		snprintf(why, len, "%s: %s %s", rc_words(rc), doing, path);
}

/* What is wrong with path before SQLite tries it, in words: a missing
 * directory, a directory.  0 when nothing is. */
static int path_why(const char *path, bool create, char *why, size_t len)
{
	char dir[512];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(why, len, "cannot open %s: it is a directory",
				 path);
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT || !create) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s",
			 slash == path ? 1 : (int)(slash - path), path);
	if (stat(dir, &st) < 0) {
		snprintf(why, len, "cannot open %s: the directory %s %s", path,
			 dir,
			 errno == ENOENT ? "does not exist" : strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, len, "cannot open %s: %s is not a directory",
			 path, dir);
		return -1;
	}
	if (access(dir, W_OK) < 0) {
		snprintf(why, len,
			 "cannot create %s: the directory %s is not writable "
			 "(%s)",
			 path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* "YYYY-MM-DD HH:MM:SS UTC" of a Unix time in ms. */
static void fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "%lld ms", (long long)ms);
}

/* ---- the schema ---- */

static int pragma_int(sqlite3 *db, const char *sql, int *v)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

/*
 * Whether db is a journal this daemon reads: a new empty file (version
 * 0), or one with fascia's application_id of a version up to nsteps.
 * Reads only.  0 with *version, or -1 with why.
 */
static int schema_check(sqlite3 *db, const char *path, int *version, char *why,
			size_t len)
{
	int app = 0, ver = 0, nobj = 0, rc;

	if ((rc = pragma_int(db, "PRAGMA application_id", &app)) != SQLITE_OK ||
	    (rc = pragma_int(db, "PRAGMA user_version", &ver)) != SQLITE_OK ||
	    (rc = pragma_int(db, "SELECT count(*) FROM sqlite_master",
			     &nobj)) != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_NOTADB)
			snprintf(why, len,
				 "%s is not a fascia journal (not an SQLite "
				 "database): move it away or set journal = "
				 "to another path",
				 path);
		else
			rc_why(db, rc, "cannot read", path, why, len);
		return -1;
	}
	if (app == 0 && ver == 0 && nobj == 0) {
		*version = 0;
		return 0;
	}
	if (app != JOURNAL_APP_ID) {
		snprintf(why, len,
			 "%s is not a fascia journal (another program's SQLite "
			 "database, application_id %d): move it away or set "
			 "journal = to another path",
			 path, app);
		return -1;
	}
	if (ver > nsteps) {
		snprintf(why, len,
			 "%s was written by a newer fasciad (version %d); this "
			 "one reads up to %d",
			 path, ver, nsteps);
		return -1;
	}
	*version = ver;
	return 0;
}

/* Every step from version `from`, in one transaction with the version it
 * leads to: a crash leaves the old version or the new, never between. */
static int migrate(sqlite3 *db, const char *path, char *why, size_t len)
{
	char sql[128];
	int from = 0, rc;

	if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) !=
	    SQLITE_OK)
		goto fail;
	/* again, under the lock: another process may have just done it */
	if (schema_check(db, path, &from, why, len) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (int v = from; v < nsteps; v++)
		if ((rc = sqlite3_exec(db, steps[v], NULL, NULL, NULL)) !=
		    SQLITE_OK)
			goto fail;
	/* PRAGMAs take no parameters; these are our own two integers */
	snprintf(sql, sizeof(sql),
		 "PRAGMA user_version = %d; PRAGMA application_id = %d", nsteps,
		 JOURNAL_APP_ID);
	if (from < nsteps &&
	    (rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	if (from > 0 && from < nsteps)
		log_info("journal: %s migrated from version %d to %d", path,
			 from, nsteps);
	return 0;
fail:
	rc_why(db, rc, "cannot set up", path, why, len);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* ---- statements ---- */

/* Step s once and reset it: SQLITE_OK (done, or a row), or the error. */
static int run(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_str(sqlite3_stmt *s, int i, json_t *v)
{
	if (json_is_string(v))
		sqlite3_bind_text(s, i, json_string_value(v),
				  (int)json_string_length(v), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_num(sqlite3_stmt *s, int i, json_t *v)
{
	if (json_is_integer(v))
		sqlite3_bind_int64(s, i, json_integer_value(v));
	else if (json_is_real(v))
		sqlite3_bind_double(s, i, json_real_value(v));
	else
		sqlite3_bind_null(s, i);
}

/* v as JSON text, or NULL; SQLite frees it (jansson's malloc). */
static void bind_json(sqlite3_stmt *s, int i, json_t *v)
{
	char *text = v != NULL ? json_dumps(v, FD_JSON_FLAGS) : NULL;

	if (text != NULL)
		sqlite3_bind_text(s, i, text, -1, free);
	else
		sqlite3_bind_null(s, i);
}

static const char *get_str(json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

/* A record refused for its content: the batch goes on without it. */
static int skip_record(struct writer *w, const char *fmt, const char *what)
{
	if (w->skipped++ == 0)
		snprintf(w->skip_why, sizeof(w->skip_why), fmt, what);
	return REC_BAD;
}

/* ---- the records ---- */

static const char *const log_columns[] = {"time",    "kind",  "device",
					  "session", "event", "seq"};

/* The log's disorder grows with an entry earlier than one before it. */
static int keep_order(struct writer *w, int64_t t)
{
	sqlite3_stmt *s = w->st[ST_LATE_SET];
	int64_t late;

	if (t >= w->max_time) {
		w->max_time = t;
		return SQLITE_OK;
	}
	if (__builtin_sub_overflow(w->max_time, t, &late))
		late = INT64_MAX;
	if (late <= w->late_ms)
		return SQLITE_OK;
	w->late_ms = late;
	sqlite3_bind_int64(s, 1, w->late_ms);
	return run(s);
}

static int write_log(struct writer *w, json_t *rec)
{
	sqlite3_stmt *s = w->st[ST_LOG];
	json_t *time = json_object_get(rec, "time"), *data;
	int64_t t = json_is_integer(time) ? json_integer_value(time)
					  : fd_clock_unix_ms();
	int rc;

	/* a refused entry still takes its seq: the gap shows */
	w->next_seq++;
	if (get_str(rec, "kind") == NULL || get_str(rec, "event") == NULL)
		return skip_record(w, "a log entry without %s",
				   "kind or event");
	/* a shallow copy: rec stays whole for a retry */
	data = fd_must(json_copy(rec));
	for (size_t i = 0; i < sizeof(log_columns) / sizeof(*log_columns); i++)
		json_object_del(data, log_columns[i]);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)(w->next_seq - 1));
	sqlite3_bind_int64(s, 2, t);
	bind_str(s, 3, json_object_get(rec, "kind"));
	bind_str(s, 4, json_object_get(rec, "device"));
	bind_str(s, 5, json_object_get(rec, "session"));
	bind_str(s, 6, json_object_get(rec, "event"));
	bind_json(s, 7, json_object_size(data) > 0 ? data : NULL);
	json_decref(data);
	if ((rc = run(s)) != SQLITE_OK)
		return rc;
	return keep_order(w, t);
}

/* The writer's own log entry: kind, event, a message and, for lost
 * records, their count. */
static int own_log(struct writer *w, int64_t time, const char *kind,
		   const char *device, const char *session, const char *event,
		   const char *message, int64_t count)
{
	json_t *e = fd_must(json_pack("{s:I, s:s, s:s?, s:s?, s:s, s:s}",
				      "time", (json_int_t)time, "kind", kind,
				      "device", device, "session", session,
				      "event", event, "message", message));
	int rc;

	if (count >= 0)
		json_object_set_new(e, "count", json_integer(count));
	rc = write_log(w, e);
	json_decref(e);
	return rc;
}

static int write_profile(struct writer *w, json_t *rec)
{
	sqlite3_stmt *s = w->st[ST_PROFILE];

	if (get_str(rec, "sha256") == NULL || get_str(rec, "name") == NULL ||
	    get_str(rec, "document") == NULL)
		return skip_record(w, "a profile without %s",
				   "sha256, name or document");
	bind_str(s, 1, json_object_get(rec, "sha256"));
	bind_str(s, 2, json_object_get(rec, "name"));
	bind_str(s, 3, json_object_get(rec, "document"));
	return run(s);
}

static int write_open(struct writer *w, json_t *rec)
{
	static const char *const keys[] = {
		"id",        "device",   "profile", "profile_sha256",
		"patient",   "operator", "note",    "started",
		"planned_s", "chambers", "trace_hz"};
	sqlite3_stmt *s = w->st[ST_OPEN];
	json_t *n = json_object_get(rec, "chambers");

	if (get_str(rec, "id") == NULL || get_str(rec, "device") == NULL ||
	    get_str(rec, "profile") == NULL ||
	    !json_is_integer(json_object_get(rec, "started")) ||
	    !json_is_integer(n) || json_integer_value(n) < 0 ||
	    json_integer_value(n) > FASCIA_MAX_CHAMBERS)
		return skip_record(w, "a session open without %s",
				   "id, device, profile, started or chambers");
	for (int i = 0; i < 7; i++)
		bind_str(s, i + 1, json_object_get(rec, keys[i]));
	for (int i = 7; i < 11; i++)
		bind_num(s, i + 1, json_object_get(rec, keys[i]));
	if (!json_is_number(json_object_get(rec, "trace_hz")))
		sqlite3_bind_int(s, 11, 0);
	return run(s);
}

/* A list of pressures as little-endian int16 tenths of mmHg. */
static void bind_trace(sqlite3_stmt *s, int i, json_t *list)
{
	size_t n = json_array_size(list);
	unsigned char *b;

	if (!json_is_array(list)) {
		sqlite3_bind_null(s, i);
		return;
	}
	b = xcalloc(1, 2 * n + 1);
	for (size_t c = 0; c < n; c++) {
		json_t *v = json_array_get(list, c);
		double t = json_number_value(v) * 10;
		int16_t q = TRACE_NULL;

		if (json_is_number(v) && isfinite(t))
			q = (int16_t)lround(fmax(-32767, fmin(32767, t)));
		b[2 * c] = (unsigned char)((uint16_t)q & 0xff);
		b[2 * c + 1] = (unsigned char)((uint16_t)q >> 8);
	}
	sqlite3_bind_blob(s, i, b, (int)(2 * n), free);
}

/* Where sample t goes in the trace: k = (t - t0) * hz, after the last
 * one (a clock stepped back) and at most 10 minutes on (a clock stepped
 * forward would otherwise leave a huge gap of nulls). */
static int64_t trace_k(sqlite3_stmt *f, int64_t t, int64_t *t0)
{
	double hz = sqlite3_column_double(f, 1);
	bool first = sqlite3_column_type(f, 2) == SQLITE_NULL;
	int64_t last = sqlite3_column_int64(f, 3), k;

	if (first) {
		*t0 = t;
		return 0;
	}
	*t0 = sqlite3_column_int64(f, 2);
	if (hz <= 0)
		return last + 1;
	k = llround((double)(t - *t0) * hz / 1000.0);
	if (k <= last || k > last + (int64_t)(600 * hz))
		k = last + 1;
	return k;
}

static int write_sample(struct writer *w, json_t *rec)
{
	sqlite3_stmt *f = w->st[ST_FIND], *s = w->st[ST_SAMPLE];
	json_t *t = json_object_get(rec, "t");
	json_t *pressure = json_object_get(rec, "pressure");
	sqlite3_int64 sn;
	int64_t t0 = 0, k = 0;
	bool traced = json_is_array(pressure), known;
	int rc;

	if (get_str(rec, "session") == NULL || !json_is_integer(t))
		return skip_record(w, "a sample without %s", "session or t");
	bind_str(f, 1, json_object_get(rec, "session"));
	if ((rc = sqlite3_step(f)) == SQLITE_ROW) {
		sn = sqlite3_column_int64(f, 0);
		if (traced)
			k = trace_k(f, json_integer_value(t), &t0);
	}
	known = rc == SQLITE_ROW;
	sqlite3_reset(f);
	sqlite3_clear_bindings(f);
	if (!known)
		return rc == SQLITE_DONE
			       ? skip_record(
					 w,
					 "a sample of session %.64s, unknown "
					 "or ended",
					 get_str(rec, "session"))
			       : rc;
	if (traced) {
		s = w->st[ST_TRACE];
		sqlite3_bind_int64(s, 1, sn);
		sqlite3_bind_int64(s, 2, k);
		bind_trace(s, 3, pressure);
		bind_trace(s, 4, json_object_get(rec, "setpoint"));
		if ((rc = run(s)) != SQLITE_OK)
			return rc;
		s = w->st[ST_SAMPLE];
	}
	sqlite3_bind_int64(s, 1, sn);
	bind_num(s, 2, json_object_get(rec, "delivered_s"));
	bind_num(s, 3, json_object_get(rec, "paused_s"));
	bind_json(s, 4, json_object_get(rec, "dose"));
	sqlite3_bind_int64(s, 5, json_integer_value(t));
	if (traced) { /* else NULL: the trace so far stays as it is */
		sqlite3_bind_int64(s, 6, t0);
		sqlite3_bind_int64(s, 7, k);
	}
	sqlite3_bind_int(s, 8, traced);
	return run(s);
}

static int write_close(struct writer *w, json_t *rec)
{
	sqlite3_stmt *s = w->st[ST_CLOSE];
	int rc;

	if (get_str(rec, "id") == NULL || get_str(rec, "end_reason") == NULL ||
	    !json_is_integer(json_object_get(rec, "ended")))
		return skip_record(w, "a session close without %s",
				   "id, ended or end_reason");
	bind_str(s, 1, json_object_get(rec, "id"));
	bind_num(s, 2, json_object_get(rec, "ended"));
	bind_str(s, 3, json_object_get(rec, "end_reason"));
	bind_str(s, 4, json_object_get(rec, "alarm"));
	bind_num(s, 5, json_object_get(rec, "delivered_s"));
	bind_num(s, 6, json_object_get(rec, "paused_s"));
	bind_json(s, 7, json_object_get(rec, "dose"));
	if ((rc = run(s)) == SQLITE_OK && sqlite3_changes(w->db) == 0)
		return skip_record(w, "the close of unknown session %.64s",
				   get_str(rec, "id"));
	return rc;
}

/* One record: SQLITE_OK, or SQLITE_OK after refusing it for its content
 * (counted in w->skipped), or the error that fails the batch. */
static int write_record(struct writer *w, const struct jslot *r)
{
	int rc;

	if (!json_is_object(r->rec))
		rc = skip_record(w, "a record that is %s", "not a JSON object");
	else if (r->kind == FD_J_LOG)
		rc = write_log(w, r->rec);
	else if (r->kind == FD_J_PROFILE)
		rc = write_profile(w, r->rec);
	else if (r->kind == FD_J_SESSION_OPEN)
		rc = write_open(w, r->rec);
	else if (r->kind == FD_J_SAMPLE)
		rc = write_sample(w, r->rec);
	else if (r->kind == FD_J_SESSION_CLOSE)
		rc = write_close(w, r->rec);
	else
		rc = skip_record(w, "a record of %s", "unknown kind");
	if (rc == REC_BAD)
		return SQLITE_OK;
	/* A record the schema refuses (a second session of one id, a value
	 * too big) is that record's fault: the others are still written. */
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
		skip_record(w, "a record the schema refuses (%s)",
			    sqlite3_errstr(rc));
		return SQLITE_OK;
	}
	return rc;
}

/* ---- opening ---- */

static void wclose(struct writer *w)
{
	for (int i = 0; i < NST; i++) {
		sqlite3_finalize(w->st[i]);
		w->st[i] = NULL;
	}
	sqlite3_close(w->db);
	w->db = NULL;
}

/*
 * The sessions a run of fasciad left `running` (it stopped without
 * closing them: a crash, a power cut): closed as `interrupted`, ended at
 * their last checkpoint, their dose as last checkpointed, each with a
 * daemon/interrupted entry.  One transaction; logged once it committed.
 */
static int close_running(struct writer *w)
{
	sqlite3_stmt *s = w->st[ST_RUNNING], *u = w->st[ST_INTERRUPT];
	json_t *told = fd_must(json_array());
	int64_t now = fd_clock_unix_ms();
	char msg[300];
	int rc;

	if ((rc = run(w->st[ST_BEGIN])) != SQLITE_OK)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 1);
		const char *dev = (const char *)sqlite3_column_text(s, 2);

		snprintf(msg, sizeof(msg),
			 "session %s on device %s was left running (fasciad "
			 "stopped without closing it); closed as interrupted",
			 id, dev);
		sqlite3_bind_int64(u, 1, sqlite3_column_int64(s, 0));
		sqlite3_bind_int64(u, 2, sqlite3_column_int64(s, 3));
		if ((rc = run(u)) != SQLITE_OK ||
		    (rc = own_log(w, now, "daemon", dev, id, "interrupted", msg,
				  -1)) != SQLITE_OK)
			break;
		json_array_append_new(told, json_string(msg));
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		rc = run(w->st[ST_COMMIT]);
out:
	if (rc == SQLITE_OK) {
		for (size_t i = 0; i < json_array_size(told); i++)
			log_warnx("journal: %s",
				  json_string_value(json_array_get(told, i)));
	} else if (!sqlite3_get_autocommit(w->db)) {
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	}
	json_decref(told);
	return rc;
}

/* Open, check, create or migrate the file; on the first success, close
 * what an earlier run left running.  0, or -1 with why and no
 * connection. */
static int jopen(struct fd_journal *j, char *why, size_t len)
{
	struct writer *w = &j->w;
	int rc, version;
	uint64_t seq;

	if (path_why(j->path, true, why, len) < 0)
		return -1;
	rc = sqlite3_open_v2(j->path, &w->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc_why(w->db, rc, "cannot open", j->path, why, len);
		goto fail;
	}
	sqlite3_extended_result_codes(w->db, 1);
	sqlite3_busy_timeout(w->db, JOURNAL_BUSY_MS);
	if (schema_check(w->db, j->path, &version, why, len) < 0)
		goto fail;
	if (sqlite3_db_readonly(w->db, "main") == 1) {
		snprintf(why, len, "cannot write %s: %s", j->path,
			 rc_words(SQLITE_READONLY));
		goto fail;
	}
	/* Only now, the file known to be ours: these write to it. */
	if ((rc = sqlite3_exec(w->db,
			       "PRAGMA journal_mode = WAL;"
			       "PRAGMA synchronous = FULL;"
			       "PRAGMA foreign_keys = ON",
			       NULL, NULL, NULL)) != SQLITE_OK) {
		rc_why(w->db, rc, "cannot set up", j->path, why, len);
		goto fail;
	}
	if (migrate(w->db, j->path, why, len) < 0)
		goto fail;
	for (int i = 0; i < NST; i++)
		if ((rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1,
					     SQLITE_PREPARE_PERSISTENT,
					     &w->st[i], NULL)) != SQLITE_OK) {
			rc_why(w->db, rc, "cannot read", j->path, why, len);
			goto fail;
		}
	if ((rc = sqlite3_step(w->st[ST_MAXSEQ])) != SQLITE_ROW) {
		rc_why(w->db, rc, "cannot read", j->path, why, len);
		goto fail;
	}
	seq = (uint64_t)sqlite3_column_int64(w->st[ST_MAXSEQ], 0);
	sqlite3_reset(w->st[ST_MAXSEQ]);
	if ((rc = sqlite3_step(w->st[ST_LATE])) != SQLITE_ROW) {
		rc_why(w->db, rc, "cannot read", j->path, why, len);
		goto fail;
	}
	w->late_ms = sqlite3_column_int64(w->st[ST_LATE], 0);
	w->max_time = sqlite3_column_type(w->st[ST_LATE], 1) == SQLITE_NULL
			      ? INT64_MIN
			      : sqlite3_column_int64(w->st[ST_LATE], 1);
	sqlite3_reset(w->st[ST_LATE]);
	/* never back: a gap the writer skipped stays skipped */
	if (seq > w->next_seq)
		w->next_seq = seq;
	if (!w->closed_running) {
		if ((rc = close_running(w)) != SQLITE_OK) {
			rc_why(w->db, rc, "cannot write", j->path, why, len);
			goto fail;
		}
		w->closed_running = true;
	}
	return 0;
fail:
	wclose(w);
	return -1;
}

/* ---- the writer ---- */

/* The writer could not open or write: unhealthy from now (if not yet),
 * logged when the reason is new, retried in JOURNAL_RETRY_MS. */
static void troubled(struct fd_journal *j, const char *why)
{
	struct writer *w = &j->w;
	bool news;

	if (!w->trouble) {
		w->trouble = true;
		w->trouble_since = fd_clock_unix_ms();
		snprintf(w->trouble_why, sizeof(w->trouble_why), "%s", why);
	}
	if (strcmp(why, w->told) != 0) {
		log_warnx("journal: %s; records are kept in memory (up to %d) "
			  "and written once it can be, retrying every second",
			  why, FD_JOURNAL_QUEUE);
		snprintf(w->told, sizeof(w->told), "%s", why);
	}
	w->retry_at = mono_ms() + JOURNAL_RETRY_MS;
	pthread_mutex_lock(&j->lock);
	news = j->h.ok || strcmp(j->h.error, why) != 0;
	j->h.ok = false;
	snprintf(j->h.error, sizeof(j->h.error), "%s", why);
	j->h.since_ms = w->trouble_since;
	pthread_mutex_unlock(&j->lock);
	if (news)
		notify(j);
}

/* The journal entries of records the full ring refused, right where
 * they would have been: their seqs skipped, then a journal/lost entry. */
static int write_lost(struct writer *w, const struct lost_episode *e)
{
	char msg[200];
	uint64_t from = w->next_seq;

	w->next_seq += e->logs;
	if (e->logs > 0)
		snprintf(msg, sizeof(msg),
			 "%llu records were lost, the journal's queue being "
			 "full; among them %llu log entries (seq %llu to %llu)",
			 (unsigned long long)e->records,
			 (unsigned long long)e->logs, (unsigned long long)from,
			 (unsigned long long)(w->next_seq - 1));
	else
		snprintf(msg, sizeof(msg),
			 "%llu records were lost, the journal's queue being "
			 "full",
			 (unsigned long long)e->records);
	return own_log(w, fd_clock_unix_ms(), "journal", NULL, NULL, "lost",
		       msg, (int64_t)e->records);
}

/* The episodes of b that go after record number no (before the first
 * record: every earlier one). */
static int write_lost_after(struct writer *w, const struct batch *b,
			    uint64_t no)
{
	int rc = SQLITE_OK;

	for (int i = 0; i < b->nlost && rc == SQLITE_OK; i++)
		if (no + 1 == b->first ? b->lost[i].after <= no
				       : b->lost[i].after == no)
			rc = write_lost(w, &b->lost[i]);
	return rc;
}

static int own_trouble(struct writer *w, bool recovered, unsigned held)
{
	char from[40], to[40], msg[400];
	int64_t now = fd_clock_unix_ms();

	fmt_time(w->trouble_since, from, sizeof(from));
	fmt_time(now, to, sizeof(to));
	if (!recovered) {
		snprintf(msg, sizeof(msg),
			 "the journal could not be written from %s: %s", from,
			 w->trouble_why);
		return own_log(w, w->trouble_since, "journal", NULL, NULL,
			       "trouble", msg, -1);
	}
	snprintf(msg, sizeof(msg),
		 "the journal is written again: it could not be from %s to "
		 "%s (%s); %u records were held and are written",
		 from, to, w->trouble_why, held);
	return own_log(w, now, "journal", NULL, NULL, "recovered", msg, -1);
}

/*
 * Write b in one transaction: the trouble it ends (if any), then the
 * records in order, each followed by the gap of the records lost after
 * it, then the recovery.  0, or -1 with why: rolled back, nothing of it
 * written, the seqs it would have taken free again.
 */
static int write_batch(struct fd_journal *j, const struct batch *b, char *why,
		       size_t len)
{
	struct writer *w = &j->w;
	uint64_t seq0;
	int64_t late0, max0;
	int rc;

	w->skipped = 0;
	if (w->db == NULL && jopen(j, why, len) < 0)
		return -1;
	seq0 = w->next_seq;
	late0 = w->late_ms;
	max0 = w->max_time;
	if ((rc = run(w->st[ST_BEGIN])) != SQLITE_OK ||
	    (w->trouble && (rc = own_trouble(w, false, 0)) != SQLITE_OK) ||
	    (rc = write_lost_after(w, b, b->first - 1)) != SQLITE_OK)
		goto fail;
	for (unsigned i = 0; i < b->n; i++) {
		const struct jslot *r =
			&j->ring[(j->head + i) % FD_JOURNAL_QUEUE];

		if ((rc = write_record(w, r)) != SQLITE_OK ||
		    (rc = write_lost_after(w, b, b->first + i)) != SQLITE_OK)
			goto fail;
	}
	if (w->trouble && (rc = own_trouble(w, true, b->n)) != SQLITE_OK)
		goto fail;
	if (b->fail) {
		rc = SQLITE_FULL;
		goto fail;
	}
	if ((rc = run(w->st[ST_COMMIT])) != SQLITE_OK)
		goto fail;
	if (w->skipped > 0)
		log_warnx("journal: %d record%s not kept: %s", w->skipped,
			  w->skipped > 1 ? "s" : "", w->skip_why);
	return 0;
fail:
	if (!sqlite3_get_autocommit(w->db))
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	w->next_seq = seq0;
	w->late_ms = late0;
	w->max_time = max0;
	rc_why(b->fail ? NULL : w->db, rc, "cannot write", j->path, why, len);
	/* A full disk or a lock leaves the connection good; anything else
	 * may not have: open afresh next time. */
	if ((rc & 0xff) != SQLITE_FULL && (rc & 0xff) != SQLITE_BUSY &&
	    (rc & 0xff) != SQLITE_LOCKED)
		wclose(w);
	return -1;
}

/* Under lock: what the next write takes. */
static void take(struct fd_journal *j, struct batch *b)
{
	b->n = j->n;
	b->first = j->h.committed + 1;
	b->nlost = j->nlost;
	memcpy(b->lost, j->lost, sizeof(b->lost));
	b->fail = false;
	j->urgent = false;
#ifdef FD_JOURNAL_TEST
	if (j->test_fail_commits > 0) {
		j->test_fail_commits--;
		b->fail = true;
	}
#endif
}

/* b is on disk: the ring forgets it, the health says so. */
static void committed(struct fd_journal *j, const struct batch *b)
{
	struct writer *w = &j->w;
	bool was_bad = w->trouble;

	/* Ours until head moves: put() only writes past head + n. */
	for (unsigned i = 0; i < b->n; i++) {
		struct jslot *r = &j->ring[(j->head + i) % FD_JOURNAL_QUEUE];

		json_decref(r->rec);
		r->rec = NULL;
	}
	pthread_mutex_lock(&j->lock);
	j->head = (j->head + b->n) % FD_JOURNAL_QUEUE;
	j->n -= b->n;
	j->h.committed += b->n;
	/* An episode may have grown while b was written: the rest of it
	 * goes at the start of the next write. */
	for (int i = 0; i < b->nlost; i++)
		for (int k = 0; k < j->nlost; k++)
			if (j->lost[k].after == b->lost[i].after) {
				j->lost[k].records -= b->lost[i].records;
				j->lost[k].logs -= b->lost[i].logs;
			}
	for (int k = 0; k < j->nlost;)
		if (j->lost[k].records == 0)
			memmove(&j->lost[k], &j->lost[k + 1],
				(size_t)(--j->nlost - k) * sizeof(j->lost[0]));
		else
			k++;
	j->h.ok = true;
	j->h.error[0] = '\0';
	j->h.since_ms = 0;
	j->h.next_seq = w->next_seq;
	/* what came during the write has waited long enough (samples alone
	 * wait for more) */
	if (j->n > 0)
		j->first_put_ms = j->urgent ? 0 : mono_ms();
	pthread_mutex_unlock(&j->lock);
	if (was_bad) {
		char since[40];

		fmt_time(w->trouble_since, since, sizeof(since));
		log_info("journal: %s is written again (%s, since %s); the %u "
			 "records held are written",
			 j->path, w->trouble_why, since, b->n);
	}
	w->trouble = false;
	w->told[0] = '\0';
	notify(j);
}

/* ---- retention ---- */

/*
 * Delete the trace rows of sessions that ended more than keep_days ago,
 * RETENTION_BATCH rows per transaction, and stop as soon as records wait:
 * retention only ever takes the writer's idle time.  The summaries and
 * the log are kept.
 */
static void retention(struct fd_journal *j)
{
	struct writer *w = &j->w;
	int64_t now = fd_clock_unix_ms();
	sqlite3_stmt *old = w->st[ST_OLD], *purge = w->st[ST_PURGE];
	uint64_t deleted = 0;
	bool busy = false;
	int rc;

	w->retention_more = false;
	w->retention_next = now + RETENTION_EVERY_MS;
	for (;;) {
		sqlite3_int64 sn;
		int changes;

		sqlite3_bind_int64(old, 1,
				   now - (int64_t)j->keep_days * 86400000);
		rc = sqlite3_step(old);
		sn = sqlite3_column_int64(old, 0);
		sqlite3_reset(old);
		if (rc != SQLITE_ROW)
			break;
		sqlite3_bind_int64(purge, 1, sn);
		sqlite3_bind_int(purge, 2, RETENTION_BATCH);
		if ((rc = run(w->st[ST_BEGIN])) != SQLITE_OK ||
		    (rc = run(purge)) != SQLITE_OK)
			break;
		if ((changes = sqlite3_changes(w->db)) == 0) {
			sqlite3_bind_int64(w->st[ST_PURGED], 1, sn);
			rc = run(w->st[ST_PURGED]);
		}
		if (rc != SQLITE_OK ||
		    (rc = run(w->st[ST_COMMIT])) != SQLITE_OK)
			break;
		deleted += (uint64_t)changes;
		pthread_mutex_lock(&j->lock);
		busy = j->n > 0 || j->stopping;
		pthread_mutex_unlock(&j->lock);
		if (busy) {
			w->retention_more = true;
			break;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE && !busy) {
		if (!sqlite3_get_autocommit(w->db))
			sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
		log_warnx("journal: old traces could not be deleted (%s); "
			  "trying again in a minute",
			  rc_words(rc));
	}
	if (deleted > 0) {
#ifdef FD_JOURNAL_TEST
		pthread_mutex_lock(&j->lock);
		j->test_trace_deleted += deleted;
		pthread_mutex_unlock(&j->lock);
#endif
		notify(j);
	}
}

/* ---- the thread ---- */

enum work { WORK_STOP, WORK_BATCH, WORK_RETENTION };

static void wait_until(struct fd_journal *j, int64_t until_ms)
{
	struct timespec ts = {until_ms / 1000, (until_ms % 1000) * 1000000};

	pthread_cond_timedwait(&j->work, &j->lock, &ts);
}

/* Under lock: wait for something to do. */
static enum work next_work(struct fd_journal *j)
{
	struct writer *w = &j->w;

	for (;;) {
		int64_t now = mono_ms(), until;
		bool pending = j->n > 0 || j->nlost > 0;

		if (j->stopping && (!pending || now >= j->deadline_ms))
			return WORK_STOP;
		if (w->trouble) {
			/* also with nothing queued: to be healthy again */
			if (now >= w->retry_at)
				return WORK_BATCH;
			until = w->retry_at;
		} else if (pending) {
			int64_t linger = j->urgent || j->nlost > 0
						 ? JOURNAL_LINGER_MS
						 : JOURNAL_SAMPLE_LINGER_MS;

			if (j->stopping || j->first_put_ms == 0 ||
			    now >= j->first_put_ms + linger ||
			    j->n >= FD_JOURNAL_QUEUE / 4)
				return WORK_BATCH;
			until = j->first_put_ms + linger;
		} else if (!j->stopping && w->db != NULL &&
			   (w->retention_more ||
			    fd_clock_unix_ms() >= w->retention_next)) {
			return WORK_RETENTION;
		} else {
			until = now + JOURNAL_IDLE_MS;
		}
		if (j->stopping && until > j->deadline_ms)
			until = j->deadline_ms;
		wait_until(j, until);
	}
}

static void *writer_main(void *arg)
{
	struct fd_journal *j = arg;
	struct batch b;
	char why[200];
	enum work what;

	pthread_mutex_lock(&j->lock);
	while ((what = next_work(j)) != WORK_STOP) {
		if (what == WORK_BATCH)
			take(j, &b);
		pthread_mutex_unlock(&j->lock);
		if (what == WORK_RETENTION)
			retention(j);
		else if (write_batch(j, &b, why, sizeof(why)) == 0)
			committed(j, &b);
		else
			troubled(j, why);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	wclose(&j->w);
	return NULL;
}

/* ---- the main thread's side ---- */

struct fd_journal *fd_journal_open(struct event_base *base, const char *path,
				   int trace_keep_days,
				   fd_journal_changed changed, void *arg)
{
	struct fd_journal *j = xcalloc(1, sizeof(*j));
	size_t len = strlen(path);
	pthread_condattr_t ca;
	sigset_t all, old;
	char why[200];
	int err;

	j->path = xcalloc(1, len + 1);
	memcpy(j->path, path, len);
	/* config.c bounds it to 1..36500: a trace is always kept a day */
	j->keep_days = trace_keep_days < 1 ? 1 : trace_keep_days;
	j->changed = changed;
	j->arg = arg;
	j->ring = xcalloc(FD_JOURNAL_QUEUE, sizeof(*j->ring));
	j->h.ok = true;
	j->w.next_seq = 1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->work, &ca);
	pthread_condattr_destroy(&ca);
	if ((j->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("journal: eventfd");
	j->wake_ev = event_new(base, j->wake_fd, EV_READ | EV_PERSIST,
			       journal_wake_cb, j);
	if (j->wake_ev == NULL || event_add(j->wake_ev, NULL) == -1)
		fatalx("journal: cannot watch its eventfd");
	if (jopen(j, why, sizeof(why)) < 0)
		troubled(j, why);
	j->h.next_seq = j->w.next_seq;
	/* Signals go to the loop's thread and never interrupt a write. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&j->thread, NULL, writer_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		fatal("journal: cannot start its thread");
	}
	return j;
}

/* Under lock: count a record the full ring refused, in the gap after
 * the last record it took. */
static void note_lost(struct fd_journal *j, bool log)
{
	uint64_t after = j->h.queued;
	struct lost_episode *e = j->nlost > 0 ? &j->lost[j->nlost - 1] : NULL;

	/* Past LOST_EPISODES (never seen: one opens per commit), the last
	 * one takes the rest, a little late. */
	if (e == NULL || (e->after != after && j->nlost < LOST_EPISODES)) {
		e = &j->lost[j->nlost++];
		*e = (struct lost_episode){.after = after};
	}
	e->records++;
	e->logs += log;
}

uint64_t fd_journal_put(struct fd_journal *j, enum fd_jkind kind, json_t *rec)
{
	uint64_t no = 0;

	if (rec == NULL)
		return 0;
	pthread_mutex_lock(&j->lock);
	if (kind == FD_J_SAMPLE && j->n >= FD_JOURNAL_QUEUE / 2) {
		j->h.samples_dropped++;
	} else if (j->n == FD_JOURNAL_QUEUE) {
		j->h.lost++;
		note_lost(j, kind == FD_J_LOG);
	} else {
		j->ring[(j->head + j->n) % FD_JOURNAL_QUEUE] =
			(struct jslot){.kind = kind, .rec = rec};
		rec = NULL;
		if (j->n++ == 0)
			j->first_put_ms = mono_ms();
		j->urgent |= kind != FD_J_SAMPLE;
		no = ++j->h.queued;
		pthread_cond_signal(&j->work);
	}
	pthread_mutex_unlock(&j->lock);
	json_decref(rec); /* refused: ours to free, outside the lock */
	return no;
}

void fd_journal_health(struct fd_journal *j, struct fd_journal_health *h)
{
	pthread_mutex_lock(&j->lock);
	*h = j->h;
	h->waiting = j->n;
	pthread_mutex_unlock(&j->lock);
}

void fd_journal_close(struct fd_journal **jp, double timeout_s)
{
	struct fd_journal *j = *jp;
	struct timespec until;
	unsigned left;
	int err;

	if (j == NULL)
		return;
	*jp = NULL;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	j->deadline_ms = mono_ms() + (int64_t)(fmax(timeout_s, 0) * 1000);
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
	/* A write the disk never answers keeps the thread: then leave it
	 * (and j) to the exit rather than wait for ever. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)fmax(timeout_s, 0) + 5;
	if ((err = pthread_timedjoin_np(j->thread, NULL, &until)) != 0) {
		log_warnx("journal: the writer is stuck in a write (the disk "
			  "does not answer); %u records may not be written",
			  j->n);
		return;
	}
	if ((left = j->n) > 0)
		log_warnx("journal: %u record%s could not be written to %s "
			  "before stopping (%s)",
			  left, left > 1 ? "s" : "", j->path,
			  j->h.ok ? "time out" : j->h.error);
	for (unsigned i = 0; i < left; i++)
		json_decref(j->ring[(j->head + i) % FD_JOURNAL_QUEUE].rec);
	event_free(j->wake_ev);
	close(j->wake_fd);
	pthread_cond_destroy(&j->work);
	pthread_mutex_destroy(&j->lock);
	free(j->ring);
	free(j->path);
	free(j);
}

int fd_journal_check(const char *path, char *why, size_t len)
{
	sqlite3 *db = NULL;
	struct stat st;
	int rc, version;

	if (stat(path, &st) < 0 && errno == ENOENT) {
		if (path_why(path, true, why, len) < 0)
			return -1;
		snprintf(why, len, "%s would be created", path);
		return 0;
	}
	if (path_why(path, false, why, len) < 0)
		return -1;
	/* Read-write without CREATE; nothing written, not even the
	 * checkpoint a last connection makes as it closes. */
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				       NULL);
	if (rc != SQLITE_OK) {
		rc_why(db, rc, "cannot open", path, why, len);
		goto fail;
	}
	if (schema_check(db, path, &version, why, len) < 0)
		goto fail;
	if (sqlite3_db_readonly(db, "main") == 1) {
		snprintf(why, len, "cannot write %s: %s", path,
			 rc_words(SQLITE_READONLY));
		goto fail;
	}
	if (version < nsteps)
		snprintf(why, len, "%s would be %s version %d", path,
			 version == 0 ? "set up as" : "migrated to", nsteps);
	else
		snprintf(why, len, "%s is a journal of version %d", path,
			 version);
	sqlite3_close(db);
	return 0;
fail:
	sqlite3_close(db);
	return -1;
}

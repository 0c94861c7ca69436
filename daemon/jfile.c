/*
 * The journal's file (docs/records.md, "The file"): its schema and the
 * steps that migrate an older one, the statements the writer keeps
 * prepared, opening it for the writer and checking it for -n, and
 * SQLite's errors in an operator's words.  A file that is not a journal
 * of ours is refused before anything is written to it.  The connection is
 * the writer thread's (the opener's at start); -n's check opens one of its
 * own and writes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"

#define JOURNAL_BUSY_MS 5000 /* another program holding the file */

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

/* Prepared at every open, kept for the life of the connection: the
 * writes of jwrite.c, and the open's own two reads (ST_MAXSEQ, ST_LATE). */
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

/* ---- words for an operator ---- */

const char *jfile_words(int rc)
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

void jfile_why(sqlite3 *db, int rc, const char *doing, const char *path,
	       char *why, size_t len)
{
	int e = db != NULL ? sqlite3_system_errno(db) : 0;

	if (e != 0 && (rc & 0xff) != SQLITE_FULL)
		snprintf(why, len, "%s: %s %s (%s)", jfile_words(rc), doing,
			 path, strerror(e));
	else
		snprintf(why, len, "%s: %s %s", jfile_words(rc), doing, path);
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

void jfile_time(int64_t ms, char *buf, size_t len)
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
			jfile_why(db, rc, "cannot read", path, why, len);
		return -1;
	}
	if (app == 0 && ver == 0 && nobj == 0) {
		*version = 0;
		return 0;
	}
	if (app != FD_JOURNAL_APP_ID) {
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
		 FD_JOURNAL_APP_ID);
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
	jfile_why(db, rc, "cannot set up", path, why, len);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* ---- opening ---- */

/* schema_check(), and the file writable. */
static int writable_check(sqlite3 *db, const char *path, int *version,
			  char *why, size_t len)
{
	if (schema_check(db, path, version, why, len) < 0)
		return -1;
	if (sqlite3_db_readonly(db, "main") == 1) {
		snprintf(why, len, "cannot write %s: %s", path,
			 jfile_words(SQLITE_READONLY));
		return -1;
	}
	return 0;
}

/* Prepare every statement, then read where the log stands: the seq of
 * its next entry (never back: a gap the writer skipped stays skipped)
 * and its disorder.  SQLITE_OK, or the error. */
static int prepare(struct writer *w)
{
	sqlite3_stmt *seq, *late;
	uint64_t next;
	int rc = SQLITE_OK;

	for (int i = 0; i < NST && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &w->st[i],
					NULL);
	if (rc != SQLITE_OK)
		return rc;
	seq = w->st[ST_MAXSEQ];
	late = w->st[ST_LATE];
	if ((rc = sqlite3_step(seq)) != SQLITE_ROW)
		return rc;
	next = (uint64_t)sqlite3_column_int64(seq, 0);
	sqlite3_reset(seq);
	if ((rc = sqlite3_step(late)) != SQLITE_ROW)
		return rc;
	w->late_ms = sqlite3_column_int64(late, 0);
	w->max_time = sqlite3_column_type(late, 1) == SQLITE_NULL
			      ? INT64_MIN
			      : sqlite3_column_int64(late, 1);
	sqlite3_reset(late);
	if (next > w->next_seq)
		w->next_seq = next;
	return SQLITE_OK;
}

void jfile_close(struct writer *w)
{
	for (int i = 0; i < NST; i++) {
		sqlite3_finalize(w->st[i]);
		w->st[i] = NULL;
	}
	sqlite3_close(w->db);
	w->db = NULL;
}

int jfile_open(struct writer *w, char *why, size_t len)
{
	int rc, version;

	if (path_why(w->path, true, why, len) < 0)
		return -1;
	rc = sqlite3_open_v2(w->path, &w->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		jfile_why(w->db, rc, "cannot open", w->path, why, len);
		goto fail;
	}
	sqlite3_extended_result_codes(w->db, 1);
	sqlite3_busy_timeout(w->db, JOURNAL_BUSY_MS);
	if (writable_check(w->db, w->path, &version, why, len) < 0)
		goto fail;
	/* Only now, the file known to be ours: these write to it. */
	if ((rc = sqlite3_exec(w->db,
			       "PRAGMA journal_mode = WAL;"
			       "PRAGMA synchronous = FULL;"
			       "PRAGMA foreign_keys = ON",
			       NULL, NULL, NULL)) != SQLITE_OK) {
		jfile_why(w->db, rc, "cannot set up", w->path, why, len);
		goto fail;
	}
	if (migrate(w->db, w->path, why, len) < 0)
		goto fail;
	if ((rc = prepare(w)) != SQLITE_OK) {
		jfile_why(w->db, rc, "cannot read", w->path, why, len);
		goto fail;
	}
	return 0;
fail:
	jfile_close(w);
	return -1;
}

int jfile_check(const char *path, char *why, size_t len)
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
		jfile_why(db, rc, "cannot open", path, why, len);
		goto fail;
	}
	if (writable_check(db, path, &version, why, len) < 0)
		goto fail;
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

/*
 * The journal's writer: the schema it creates and the files it refuses
 * (garbage, a directory, a missing directory, a newer version, another
 * program's database), its migrations, the sessions a stopped daemon left
 * running, the seq (one per entry, on across a reopen, a gap where
 * entries were lost), a failed write that keeps its records and recovers,
 * retention, and what close leaves unwritten.  A test hook fails commits
 * (SQLITE_FULL), and the writer retries every 50 ms instead of 1 s; the
 * clock of the records and of retention is the test's.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define FD_JOURNAL_TEST
#define JOURNAL_RETRY_MS 50
#include "../../daemon/journal.c"
#include "../../daemon/jwrite.c"
#include "../../daemon/jfile.c"

#include "../daemon_stubs.h"

#define T0 1795440000000LL
#define DAY_MS 86400000LL

static char dir[64], path[128];
static struct event_base *base;
static struct event *watchdog;
static bool timed_out;
static struct fd_journal *j;
static int nchanged;
static bool saw_unhealthy;
static struct fd_journal_health bad_health; /* the first unhealthy one */

static void changed_cb(void *arg)
{
	struct fd_journal_health h;

	assert_ptr_equal(arg, &nchanged);
	nchanged++;
	fd_journal_health(j, &h);
	if (!h.ok && !saw_unhealthy) {
		saw_unhealthy = true;
		bad_health = h;
	}
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = true;
}

static struct fd_journal_health health(void)
{
	struct fd_journal_health h;

	fd_journal_health(j, &h);
	return h;
}

/* Run the loop until the writer has committed record no; the watchdog
 * turns a hung writer into a failure instead of a hung test. */
static void until_committed(uint64_t no)
{
	while (health().committed < no || health().waiting > 0) {
		assert_false(timed_out);
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	}
}

static void until_healthy(bool ok)
{
	while (health().ok != ok) {
		assert_false(timed_out);
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	}
}

static void jopen_test(int keep_days)
{
	j = fd_journal_open(base, path, keep_days, changed_cb, &nchanged);
	assert_non_null(j);
}

static int setup(void **state)
{
	struct timeval tv = {20, 0};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-journal-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_non_null(base = event_base_new());
	assert_non_null(watchdog = evtimer_new(base, watchdog_cb, NULL));
	assert_int_equal(evtimer_add(watchdog, &tv), 0);
	timed_out = false;
	nchanged = 0;
	saw_unhealthy = false;
	stub_warnings = 0;
	stub_unix_ms = T0;
	steps = journal_steps;
	nsteps = JOURNAL_NSTEPS;
	j = NULL;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fd_journal_close(&j, 5);
	event_free(watchdog);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- looking at the file with a connection of the test's ---- */

/* Made when missing: another program's database, in one test. */
static sqlite3 *look(void)
{
	sqlite3 *db;

	assert_int_equal(
		sqlite3_open_v2(path, &db,
				SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
				NULL),
		SQLITE_OK);
	return db;
}

/* The first column of the first row of sql (one text parameter, or
 * NULL), as an integer; -1 when there is no row. */
static int64_t sql_int(const char *sql, const char *param)
{
	sqlite3 *db = look();
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (param != NULL)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static char *sql_text(const char *sql, const char *param)
{
	sqlite3 *db = look();
	sqlite3_stmt *s;
	char *v = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (param != NULL)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void sql_exec(const char *sql)
{
	sqlite3 *db = look();

	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void write_file(const char *p, const char *data, size_t len)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *p, char *buf, size_t size)
{
	FILE *f = fopen(p, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

/* ---- records ---- */

static uint64_t put_log(int64_t t, const char *kind, const char *device,
			const char *session, const char *event)
{
	return fd_journal_put(j, FD_J_LOG,
			      json_pack("{s:I, s:s, s:s?, s:s?, s:s, s:s}",
					"time", (json_int_t)t, "kind", kind,
					"device", device, "session", session,
					"event", event, "message", "m"));
}

static uint64_t put_open(const char *id, const char *device, int64_t started,
			 int hz)
{
	return fd_journal_put(
		j, FD_J_SESSION_OPEN,
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:I, s:f, s:i, "
			  "s:i}",
			  "id", id, "device", device, "profile", "gentle",
			  "profile_sha256", "abc", "patient", "MRN-1",
			  "operator", "note", "left leg", "started",
			  (json_int_t)started, "planned_s", 360.0, "chambers",
			  2, "trace_hz", hz));
}

static uint64_t put_sample(const char *id, int64_t t, double p, double dose)
{
	return fd_journal_put(
		j, FD_J_SAMPLE,
		json_pack("{s:s, s:I, s:[f, f], s:[f, f], s:f, s:f, "
			  "s:[{s:i, s:f}]}",
			  "session", id, "t", (json_int_t)t, "pressure", p,
			  p + 1, "setpoint", 30.0, 31.0, "delivered_s",
			  dose / 10, "paused_s", 0.0, "dose", "chamber", 1,
			  "mmhg_s", dose));
}

static uint64_t put_close(const char *id, int64_t ended, const char *reason)
{
	return fd_journal_put(
		j, FD_J_SESSION_CLOSE,
		json_pack("{s:s, s:I, s:s, s:n, s:f, s:f, s:[{s:i, s:f}]}",
			  "id", id, "ended", (json_int_t)ended, "end_reason",
			  reason, "alarm", "delivered_s", 360.0, "paused_s",
			  0.0, "dose", "chamber", 1, "mmhg_s", 999.0));
}

/* ---- the schema ---- */

static void test_creates_schema(void **state)
{
	char *mode;

	(void)state;
	jopen_test(365);
	assert_true(health().ok);
	assert_int_equal(health().next_seq, 1);
	fd_journal_close(&j, 5);
	assert_null(j);
	assert_int_equal(sql_int("PRAGMA user_version", NULL), 1);
	assert_int_equal(sql_int("PRAGMA application_id", NULL),
			 FD_JOURNAL_APP_ID);
	mode = sql_text("PRAGMA journal_mode", NULL);
	assert_string_equal(mode, "wal");
	free(mode);
	assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE "
				 "type = 'table'",
				 NULL),
			 5);
	assert_int_equal(
		sql_int("SELECT count(*) FROM log_late WHERE ms = 0", NULL), 1);
	/* trace is keyed by session and sample, without a rowid */
	assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE "
				 "name = 'trace' AND sql LIKE '%WITHOUT ROWID'",
				 NULL),
			 1);

	/* open again: nothing to migrate, nothing changes */
	jopen_test(365);
	assert_true(health().ok);
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("PRAGMA user_version", NULL), 1);
	assert_int_equal(stub_warnings, 0);
}

/* A file that is not a journal stays as it was: unhealthy from the
 * start, the reason names the file, the writer keeps trying. */
static void refused(const char *want)
{
	struct fd_journal_health h;
	char why[256];

	jopen_test(365);
	h = health();
	assert_false(h.ok);
	assert_non_null(strstr(h.error, path));
	assert_non_null(strstr(h.error, want));
	assert_int_equal(h.since_ms, T0);
	assert_int_equal(stub_warnings, 1);
	/* records are queued meanwhile */
	assert_int_equal(put_log(T0, "daemon", NULL, NULL, "start"), 1);
	assert_int_equal(health().waiting, 1);
	fd_journal_close(&j, 0.1);
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, want));
}

static void test_refuses_garbage(void **state)
{
	static const char junk[] = "this is not a database, it is a letter "
				   "to the editor, long enough to be read";
	char buf[256];

	(void)state;
	write_file(path, junk, sizeof(junk));
	refused("is not a fascia journal");
	assert_int_equal(read_file(path, buf, sizeof(buf)), sizeof(junk));
	assert_memory_equal(buf, junk, sizeof(junk));
}

static void test_refuses_directory(void **state)
{
	(void)state;
	assert_int_equal(mkdir(path, 0755), 0);
	refused("it is a directory");
}

static void test_refuses_other_programs_database(void **state)
{
	char *mode;

	(void)state;
	sql_exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);"
		 "INSERT INTO accounts(name) VALUES ('x')");
	refused("another program's SQLite database");
	/* untouched: not even made WAL */
	mode = sql_text("PRAGMA journal_mode", NULL);
	assert_string_equal(mode, "delete");
	free(mode);
	assert_int_equal(sql_int("PRAGMA user_version", NULL), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM accounts", NULL), 1);
}

static void test_refuses_newer_version(void **state)
{
	(void)state;
	jopen_test(365);
	fd_journal_close(&j, 5);
	sql_exec("PRAGMA user_version = 2");
	refused("was written by a newer fasciad (version 2); this one reads "
		"up to 1");
	assert_int_equal(sql_int("PRAGMA user_version", NULL), 2);
}

/* A missing directory: unhealthy, then written once it is there, with
 * the trouble and the recovery in the log around what was held. */
static void test_missing_directory_then_there(void **state)
{
	char want[300], *msg;

	(void)state;
	snprintf(path, sizeof(path), "%s/sub/journal.db", dir);
	snprintf(want, sizeof(want),
		 "cannot open %s: the directory %s/sub does not exist", path,
		 dir);
	jopen_test(365);
	assert_false(health().ok);
	assert_string_equal(health().error, want);
	assert_int_equal(put_log(T0 + 1, "daemon", NULL, NULL, "start"), 1);
	assert_int_equal(put_log(T0 + 2, "link", "sim", NULL, "up"), 2);
	snprintf(want, sizeof(want), "%s/sub", dir);
	assert_int_equal(mkdir(want, 0755), 0);
	until_committed(2);
	assert_true(health().ok);
	assert_int_equal(health().next_seq, 5);
	fd_journal_close(&j, 5);
	msg = sql_text("SELECT data FROM log WHERE seq = 1 AND kind = "
		       "'journal' AND event = 'trouble'",
		       NULL);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "does not exist"));
	free(msg);
	assert_int_equal(sql_int("SELECT time FROM log WHERE seq = 1", NULL),
			 T0);
	assert_int_equal(sql_int("SELECT count(*) FROM log WHERE seq IN (2, 3)"
				 " AND event IN ('start', 'up')",
				 NULL),
			 2);
	msg = sql_text("SELECT data FROM log WHERE seq = 4 AND kind = "
		       "'journal' AND event = 'recovered'",
		       NULL);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "2 records were held"));
	free(msg);
}

/* A step that adds a column plays a later version: it runs once, in
 * order, keeps what was there; the older daemon then refuses the file. */
static void test_migrates_and_refuses_back(void **state)
{
	static const char *const later[] = {
		step_v1, "ALTER TABLE sessions ADD COLUMN extra TEXT;"};
	char why[256];

	(void)state;
	jopen_test(365);
	put_open("s-1", "sim", T0, 1);
	until_committed(1);
	fd_journal_close(&j, 5);
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), 0);

	steps = later;
	nsteps = 2;
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "would be migrated to version 2"));
	jopen_test(365);
	assert_true(health().ok);
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("PRAGMA user_version", NULL), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM sessions WHERE id = ?1 "
				 "AND extra IS NULL",
				 "s-1"),
			 1);
	/* the session open then did not close: interrupted at the
	 * migrating open */
	assert_int_equal(stub_warnings, 1);

	steps = journal_steps;
	nsteps = JOURNAL_NSTEPS;
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "newer fasciad (version 2); this one "
				    "reads up to 1"));
}

/* -n writes nothing: a missing file is not made, a journal's bytes stay
 * as they were. */
static void test_check_writes_nothing(void **state)
{
	char why[256], before[65536], after[65536];
	struct stat st;
	size_t n;

	(void)state;
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "would be created"));
	assert_int_equal(stat(path, &st), -1);

	jopen_test(365);
	put_log(T0, "daemon", NULL, NULL, "start");
	until_committed(1);
	fd_journal_close(&j, 5);
	n = read_file(path, before, sizeof(before));
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), 0);
	assert_int_equal(read_file(path, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);

	snprintf(path, sizeof(path), "%s/none/journal.db", dir);
	assert_int_equal(fd_journal_check(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "does not exist"));
}

/* ---- sessions ---- */

static void test_interrupted_session_closed_at_open(void **state)
{
	char *dose, *data;

	(void)state;
	jopen_test(365);
	put_open("sim-1", "sim", T0, 1);
	put_sample("sim-1", T0 + 1000, 10.0, 5.0);
	put_sample("sim-1", T0 + 2000, 20.0, 15.0);
	put_sample("sim-1", T0 + 3000, 30.0, 45.5);
	put_open("sim-2", "other", T0, 1);
	put_close("sim-2", T0 + 500, "completed");
	until_committed(6);
	/* what a crash leaves: the journal stops, no SESSION_CLOSE */
	fd_journal_close(&j, 5);
	assert_int_equal(stub_warnings, 0);

	stub_unix_ms = T0 + 60000;
	jopen_test(365);
	assert_int_equal(stub_warnings, 1);
	assert_int_equal(health().next_seq, 2);
	fd_journal_close(&j, 5);
	data = sql_text("SELECT end_reason || ' ' || ended FROM sessions "
			"WHERE id = ?1",
			"sim-1");
	assert_string_equal(data, "interrupted 1795440003000");
	free(data);
	dose = sql_text("SELECT dose FROM sessions WHERE id = ?1", "sim-1");
	assert_string_equal(dose, "[{\"chamber\":1,\"mmhg_s\":45.5}]");
	free(dose);
	assert_int_equal(sql_int("SELECT delivered_s * 100 FROM sessions "
				 "WHERE id = ?1",
				 "sim-1"),
			 455);
	data = sql_text("SELECT end_reason FROM sessions WHERE id = ?1",
			"sim-2");
	assert_string_equal(data, "completed");
	free(data);
	/* one daemon/interrupted entry naming the session and the device */
	assert_int_equal(sql_int("SELECT count(*) FROM log", NULL), 1);
	assert_int_equal(sql_int("SELECT time FROM log WHERE seq = 1 AND kind "
				 "= 'daemon' AND event = 'interrupted' AND "
				 "device = 'sim' AND session = 'sim-1'",
				 NULL),
			 T0 + 60000);
	data = sql_text("SELECT data FROM log WHERE seq = 1", NULL);
	assert_non_null(strstr(data, "session sim-1 on device sim was left "
				     "running"));
	free(data);
}

static void test_session_summary_and_trace_rows(void **state)
{
	char *s;

	(void)state;
	jopen_test(365);
	put_open("sim-1", "sim", T0, 2);
	/* 2 Hz: k from the time; a sample the journal never got (+1500)
	 * leaves its k empty */
	put_sample("sim-1", T0 + 20, 24.56, 1.0);
	put_sample("sim-1", T0 + 510, -1.0, 2.0);
	put_sample("sim-1", T0 + 2010, 300.0, 3.0);
	put_close("sim-1", T0 + 3000, "stopped");
	fd_journal_put(j, FD_J_PROFILE,
		       json_pack("{s:s, s:s, s:s}", "sha256", "abc", "name",
				 "gentle", "document",
				 "{\"name\":\"gentle\"}"));
	fd_journal_put(j, FD_J_PROFILE,
		       json_pack("{s:s, s:s, s:s}", "sha256", "abc", "name",
				 "gentle", "document", "{\"other\":1}"));
	until_committed(7);
	fd_journal_close(&j, 5);
	s = sql_text("SELECT group_concat(k || ':' || hex(pressure), ' ') FROM"
		     " (SELECT k, pressure FROM trace ORDER BY k)",
		     NULL);
	/* int16 tenths, little-endian: 246 = F600, 256 = 0001, -10 =
	 * F6FF, 3000 = B80B, 3010 = C20B */
	assert_string_equal(s, "0:F6000001 1:F6FF0000 4:B80BC20B");
	free(s);
	s = sql_text("SELECT end_reason || ' ' || ended || ' ' || "
		     "delivered_s || ' ' || trace_t0 || ' ' || chambers || "
		     "' ' || trace_hz FROM sessions WHERE id = ?1",
		     "sim-1");
	assert_string_equal(s, "stopped 1795440003000 360.0 1795440000020 2 2");
	free(s);
	s = sql_text("SELECT document FROM profiles WHERE sha256 = ?1", "abc");
	assert_string_equal(s, "{\"name\":\"gentle\"}");
	free(s);
}

/* A record the writer cannot use is left out alone, with a warning. */
static void test_bad_record_left_out(void **state)
{
	(void)state;
	jopen_test(365);
	put_sample("nobody", T0, 1.0, 1.0);
	put_open("sim-1", "sim", T0, 1);
	put_open("sim-1", "sim", T0, 1); /* its id again */
	fd_journal_put(j, FD_J_LOG, json_pack("{s:s}", "kind", "daemon"));
	put_log(T0, "daemon", NULL, NULL, "start");
	put_close("sim-1", T0 + 10, "stopped");
	/* after its close: would undo the summary */
	until_committed(put_sample("sim-1", T0 + 20, 1.0, 1.0));
	assert_true(health().ok);
	fd_journal_close(&j, 5);
	assert_true(stub_warnings >= 1);
	assert_int_equal(sql_int("SELECT count(*) FROM sessions", NULL), 1);
	assert_int_equal(sql_int("SELECT delivered_s FROM sessions", NULL),
			 360);
	assert_int_equal(sql_int("SELECT count(*) FROM trace", NULL), 0);
	/* the entry without an event took seq 1: the gap shows it */
	assert_int_equal(
		sql_int("SELECT seq FROM log WHERE event = 'start'", NULL), 2);
}

/* ---- seq ---- */

static void test_seq_one_per_entry_and_on_across_reopen(void **state)
{
	(void)state;
	jopen_test(365);
	assert_int_equal(put_log(T0, "daemon", NULL, NULL, "start"), 1);
	assert_int_equal(put_open("sim-1", "sim", T0, 0), 2);
	assert_int_equal(put_log(T0, "command", "sim", "sim-1", "start"), 3);
	assert_int_equal(put_close("sim-1", T0 + 9, "completed"), 4);
	assert_int_equal(put_log(T0, "daemon", NULL, NULL, "stop"), 5);
	until_committed(5);
	assert_int_equal(health().next_seq, 4);
	assert_int_equal(health().queued, 5);
	fd_journal_close(&j, 5);
	jopen_test(365);
	assert_int_equal(health().next_seq, 4);
	assert_int_equal(put_log(T0, "daemon", NULL, NULL, "start"), 1);
	until_committed(1);
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("SELECT group_concat(seq) = '1,2,3,4' FROM "
				 "(SELECT seq FROM log ORDER BY seq)",
				 NULL),
			 1);
	assert_int_equal(
		sql_int("SELECT seq FROM log WHERE event = 'stop'", NULL), 3);
}

/* How far the log's times run back (qread.c's window in seq): kept by
 * the writer, on across a reopen. */
static void test_log_disorder_kept(void **state)
{
	(void)state;
	jopen_test(365);
	put_log(T0 + 100, "daemon", NULL, NULL, "a");
	put_log(T0 + 300, "daemon", NULL, NULL, "b");
	put_log(T0 + 150, "daemon", NULL, NULL, "c"); /* 150 back */
	until_committed(put_log(T0 + 200, "daemon", NULL, NULL, "d"));
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("SELECT ms FROM log_late", NULL), 150);
	jopen_test(365);
	until_committed(put_log(T0 + 50, "daemon", NULL, NULL, "e"));
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("SELECT ms FROM log_late", NULL), 250);
}

static void set_fail(int n)
{
	pthread_mutex_lock(&j->lock);
	j->test_fail_commits = n;
	pthread_mutex_unlock(&j->lock);
}

/*
 * A full queue: the records it refuses are counted; the log entries
 * among them leave a gap in seq, followed by a journal/lost entry that
 * says how many, right after the last record taken before them.  A
 * sample is refused already at half full.
 */
static void test_lost_records_leave_a_gap(void **state)
{
	struct fd_journal_health h;
	char *msg;

	(void)state;
	jopen_test(365);
	put_open("sim-1", "sim", T0, 1);
	until_committed(1);
	set_fail(1 << 30);
	for (int i = 1; i <= FD_JOURNAL_QUEUE; i++)
		assert_int_equal(put_log(T0 + i, "state", "sim", NULL, "x"),
				 (uint64_t)i + 1);
	assert_int_equal(put_sample("sim-1", T0, 1, 1), 0);
	assert_int_equal(put_log(T0, "alarm", "sim", NULL, "lost1"), 0);
	assert_int_equal(put_log(T0, "alarm", "sim", NULL, "lost2"), 0);
	assert_int_equal(put_close("sim-1", T0, "completed"), 0);
	h = health();
	assert_int_equal(h.lost, 3);
	assert_int_equal(h.samples_dropped, 1);
	assert_int_equal(h.waiting, FD_JOURNAL_QUEUE);
	until_healthy(false);
	set_fail(0);
	until_committed(FD_JOURNAL_QUEUE + 1);
	/* taken after the loss: after the gap */
	assert_int_equal(put_log(T0, "daemon", NULL, NULL, "after"),
			 FD_JOURNAL_QUEUE + 2);
	until_committed(FD_JOURNAL_QUEUE + 2);
	fd_journal_close(&j, 5);

	/* 1 trouble, 2..8193 the entries, 8194-8195 lost, 8196 lost, 8197
	 * recovered, 8198 after */
	assert_int_equal(
		sql_int("SELECT seq FROM log WHERE event = 'trouble'", NULL),
		1);
	assert_int_equal(
		sql_int("SELECT max(seq) FROM log WHERE event = 'x'", NULL),
		FD_JOURNAL_QUEUE + 1);
	assert_int_equal(sql_int("SELECT count(*) FROM log WHERE seq IN "
				 "(8194, 8195)",
				 NULL),
			 0);
	assert_int_equal(sql_int("SELECT seq FROM log WHERE event = 'lost' AND "
				 "kind = 'journal'",
				 NULL),
			 8196);
	msg = sql_text("SELECT data FROM log WHERE event = 'lost'", NULL);
	assert_non_null(strstr(msg, "\"count\":3"));
	assert_non_null(strstr(msg, "seq 8194 to 8195"));
	free(msg);
	assert_int_equal(sql_int("SELECT seq FROM log WHERE event = "
				 "'recovered'",
				 NULL),
			 8197);
	assert_int_equal(
		sql_int("SELECT seq FROM log WHERE event = 'after'", NULL),
		8198);
	/* the one session closed never came: still running */
	assert_int_equal(sql_int("SELECT count(*) FROM sessions WHERE "
				 "end_reason = 'running'",
				 NULL),
			 1);
}

/* ---- failures ---- */

static void test_failed_write_keeps_records_and_recovers(void **state)
{
	char *msg;

	(void)state;
	jopen_test(365);
	set_fail(3);
	for (int i = 0; i < 5; i++)
		put_log(T0 + i, "alarm", "sim", NULL, "raised");
	stub_unix_ms = T0 + 1000;
	until_committed(5);
	assert_true(saw_unhealthy);
	assert_non_null(strstr(bad_health.error, "disk full"));
	assert_non_null(strstr(bad_health.error, path));
	assert_int_equal(bad_health.committed, 0);
	assert_int_equal(bad_health.waiting, 5);
	assert_int_equal(bad_health.since_ms, T0 + 1000);
	assert_true(health().ok);
	assert_int_equal(health().error[0], '\0');
	assert_int_equal(stub_warnings, 1); /* once, for one reason */
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("SELECT count(*) FROM log", NULL), 7);
	assert_int_equal(sql_int("SELECT count(*) FROM log WHERE seq BETWEEN 2"
				 " AND 6 AND event = 'raised'",
				 NULL),
			 5);
	msg = sql_text("SELECT data FROM log WHERE seq = 7 AND event = "
		       "'recovered'",
		       NULL);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "5 records were held"));
	assert_non_null(strstr(msg, "disk full"));
	free(msg);
	msg = sql_text("SELECT data FROM log WHERE seq = 1 AND event = "
		       "'trouble'",
		       NULL);
	assert_non_null(strstr(msg, "disk full"));
	free(msg);
}

/* close gives up after its timeout, says how many it could not write. */
static void test_close_tells_what_is_left(void **state)
{
	(void)state;
	jopen_test(365);
	set_fail(1 << 30);
	put_log(T0, "alarm", "sim", NULL, "raised");
	put_log(T0, "alarm", "sim", NULL, "cleared");
	until_healthy(false);
	stub_warnings = 0;
	fd_journal_close(&j, 0.2);
	assert_null(j);
	assert_int_equal(stub_warnings, 1);
	assert_int_equal(sql_int("SELECT count(*) FROM log", NULL), 0);
}

/* ---- retention ---- */

static uint64_t test_deleted(void)
{
	uint64_t n;

	pthread_mutex_lock(&j->lock);
	n = j->test_trace_deleted;
	pthread_mutex_unlock(&j->lock);
	return n;
}

static void test_retention_drops_old_traces_only(void **state)
{
	uint64_t no = 0;

	(void)state;
	jopen_test(7);
	/* old: ended on day 0, 1200 samples (several batches) */
	put_open("old", "sim", T0, 1);
	for (int i = 0; i < 1200; i++)
		put_sample("old", T0 + 1000 * i, 20, i);
	put_close("old", T0 + 1200 * 1000, "completed");
	/* new: ended on day 5; running: never ended */
	put_open("new", "sim", T0 + 5 * DAY_MS, 1);
	put_sample("new", T0 + 5 * DAY_MS, 20, 1);
	put_close("new", T0 + 5 * DAY_MS + 1000, "completed");
	put_open("running", "sim", T0 + 5 * DAY_MS, 1);
	no = put_sample("running", T0 + 5 * DAY_MS, 20, 1);
	until_committed(no);
	assert_int_equal(sql_int("SELECT count(*) FROM trace", NULL), 1202);

	/* day 8: "old" ended more than 7 days ago */
	stub_unix_ms = T0 + 8 * DAY_MS;
	no = put_log(stub_unix_ms, "daemon", NULL, NULL, "tick");
	until_committed(no);
	while (test_deleted() < 1200) {
		assert_false(timed_out);
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	}
	fd_journal_close(&j, 5);
	assert_int_equal(sql_int("SELECT count(*) FROM trace", NULL), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM trace JOIN sessions ON "
				 "sessions.n = trace.session WHERE id = ?1",
				 "old"),
			 0);
	/* the summary and the log are kept */
	assert_int_equal(sql_int("SELECT trace_kept FROM sessions WHERE id = "
				 "?1",
				 "old"),
			 0);
	assert_int_equal(sql_int("SELECT count(*) FROM sessions", NULL), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM log", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_creates_schema),
		T(test_refuses_garbage),
		T(test_refuses_directory),
		T(test_refuses_other_programs_database),
		T(test_refuses_newer_version),
		T(test_missing_directory_then_there),
		T(test_migrates_and_refuses_back),
		T(test_check_writes_nothing),
		T(test_interrupted_session_closed_at_open),
		T(test_session_summary_and_trace_rows),
		T(test_bad_record_left_out),
		T(test_seq_one_per_entry_and_on_across_reopen),
		T(test_log_disorder_kept),
		T(test_lost_records_leave_a_gap),
		T(test_failed_write_keeps_records_and_recovers),
		T(test_close_tells_what_is_left),
		T(test_retention_drops_old_traces_only),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

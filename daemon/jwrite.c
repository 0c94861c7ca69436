/*
 * The journal's writes (docs/records.md, "What reaches the writer"): each
 * kind of record into its rows; a batch of them in one transaction, with
 * the entries the writer adds of its own (records the full queue lost,
 * trouble and recovery); the sessions an earlier run left running; and
 * retention, which deletes old traces in the writer's idle time.  It runs
 * on the writer thread (journal.c), on the connection jfile.c opens.  A
 * record refused for its content is left out (and logged): the others of
 * its batch are still written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "journal.h"

#define RETENTION_BATCH 500 /* trace rows per transaction */
#define RETENTION_EVERY_MS 60000
#define REC_BAD (-1) /* write_*(): the record was refused */

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
		int16_t q = FD_JOURNAL_TRACE_NULL;

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

int jwrite_open(struct writer *w, char *why, size_t len)
{
	int rc;

	if (jfile_open(w, why, len) < 0)
		return -1;
	if (!w->closed_running) {
		if ((rc = close_running(w)) != SQLITE_OK) {
			jfile_why(w->db, rc, "cannot write", w->path, why, len);
			jfile_close(w);
			return -1;
		}
		w->closed_running = true;
	}
	return 0;
}

/* ---- a batch ---- */

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

/* The journal/trouble entry of t (at its start), or, recovered, the
 * journal/recovered one of its end, held records written. */
static int own_trouble(struct writer *w, const struct trouble *t,
		       bool recovered, unsigned held)
{
	char from[40], to[40], msg[400];
	int64_t now = fd_clock_unix_ms();

	jfile_time(t->since_ms, from, sizeof(from));
	jfile_time(now, to, sizeof(to));
	if (!recovered) {
		snprintf(msg, sizeof(msg),
			 "the journal could not be written from %s: %s", from,
			 t->why);
		return own_log(w, t->since_ms, "journal", NULL, NULL, "trouble",
			       msg, -1);
	}
	snprintf(msg, sizeof(msg),
		 "the journal is written again: it could not be from %s to "
		 "%s (%s); %u records were held and are written",
		 from, to, t->why, held);
	return own_log(w, now, "journal", NULL, NULL, "recovered", msg, -1);
}

/* Every write of b, in order, in the open transaction. */
static int write_in_order(struct writer *w, const struct batch *b)
{
	int rc;

	if (b->trouble &&
	    (rc = own_trouble(w, b->trouble, false, 0)) != SQLITE_OK)
		return rc;
	if ((rc = write_lost_after(w, b, b->first - 1)) != SQLITE_OK)
		return rc;
	for (unsigned i = 0; i < b->n; i++) {
		const struct jslot *r =
			&b->ring[(b->head + i) % FD_JOURNAL_QUEUE];

		if ((rc = write_record(w, r)) != SQLITE_OK ||
		    (rc = write_lost_after(w, b, b->first + i)) != SQLITE_OK)
			return rc;
	}
	if (b->trouble)
		return own_trouble(w, b->trouble, true, b->n);
	return SQLITE_OK;
}

int jwrite_batch(struct writer *w, const struct batch *b, char *why, size_t len)
{
	uint64_t seq0;
	int64_t late0, max0;
	int rc;

	w->skipped = 0;
	if (w->db == NULL && jwrite_open(w, why, len) < 0)
		return -1;
	seq0 = w->next_seq;
	late0 = w->late_ms;
	max0 = w->max_time;
	if ((rc = run(w->st[ST_BEGIN])) != SQLITE_OK ||
	    (rc = write_in_order(w, b)) != SQLITE_OK)
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
	jfile_why(b->fail ? NULL : w->db, rc, "cannot write", w->path, why,
		  len);
	/* A full disk or a lock leaves the connection good; anything else
	 * may not have: open afresh next time. */
	if ((rc & 0xff) != SQLITE_FULL && (rc & 0xff) != SQLITE_BUSY &&
	    (rc & 0xff) != SQLITE_LOCKED)
		jfile_close(w);
	return -1;
}

/* ---- retention ---- */

/*
 * Delete the trace rows of sessions that ended more than keep_days ago,
 * RETENTION_BATCH rows per transaction, and stop as soon as records wait:
 * retention only ever takes the writer's idle time.  The summaries and
 * the log are kept.
 */
uint64_t jwrite_retention(struct writer *w, bool (*stop)(void *), void *arg)
{
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
				   now - (int64_t)w->keep_days * 86400000);
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
		if ((busy = stop(arg))) {
			w->retention_more = true;
			break;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE && !busy) {
		if (!sqlite3_get_autocommit(w->db))
			sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
		log_warnx("journal: old traces could not be deleted (%s); "
			  "trying again in a minute",
			  jfile_words(rc));
	}
	return deleted;
}

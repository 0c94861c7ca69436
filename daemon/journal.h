/*
 * The journal's own header: what its three files share, and no other file
 * of the daemon sees (they call fd_journal_*, fasciad.h).  journal.c is
 * the queue and the writer thread; jwrite.c writes the records it takes,
 * in one transaction per batch; jfile.c is the file itself: its schema and
 * migration, its statements, opening and checking it, and SQLite's errors
 * in an operator's words.  journal.c calls jwrite.c and jfile.c, jwrite.c
 * calls jfile.c, and never back.
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fasciad.h"

#define LOST_EPISODES 8

/* The writer's prepared statements (jfile.c's stmt_sql[]). */
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

/* A record in the ring, as fd_journal_put() was given it. */
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

/* The writer could not open or write the file from since_ms on. */
struct trouble {
	bool on;
	int64_t since_ms; /* Unix ms */
	char why[200];    /* what began it */
};

/* What one write takes from the ring: n records from ring[head] on
 * (wrapping at FD_JOURNAL_QUEUE), the first of them record number
 * `first`, the episodes of records lost among them, and the trouble the
 * write ends when it commits. */
struct batch {
	const struct jslot *ring;
	unsigned head, n;
	uint64_t first;
	struct lost_episode lost[LOST_EPISODES];
	int nlost;
	const struct trouble *trouble; /* NULL: none */
	bool fail; /* tests: this commit fails with SQLITE_FULL */
};

/* The connection and what the writer keeps of the file: the writer
 * thread's own (the opener's before it starts). */
struct writer {
	const char *path; /* the journal's */
	int keep_days;    /* of a trace after its session ended */
	sqlite3 *db;      /* NULL: not open */
	sqlite3_stmt *st[NST];
	bool closed_running; /* the sessions an earlier run left are closed */
	uint64_t next_seq;
	/* The log's disorder (log_late): the most an entry's time lies
	 * before the latest time of the entries before it.  qread.c turns
	 * a time window into a range of seq with it. */
	int64_t late_ms;
	int64_t max_time;       /* of every entry so far */
	int64_t retention_next; /* unix ms */
	bool retention_more;    /* a pass was cut short by records */
	int skipped;            /* records refused in this batch */
	char skip_why[160];     /* the first one's reason */
};

/* ---- jfile.c: the file ---- */

/*
 * Open w->path (creating it), check it is a journal this daemon writes,
 * set it up or migrate it, prepare the statements and read where the log
 * stands (w->next_seq never goes back).  0, or -1 with why and no
 * connection.
 */
int jfile_open(struct writer *w, char *why, size_t len);
/* Finalize the statements and close the connection; NULL-safe. */
void jfile_close(struct writer *w);
/* fd_journal_check(). */
int jfile_check(const char *path, char *why, size_t len);
/* An SQLite result code in an operator's words. */
const char *jfile_words(int rc);
/* "WORDS: DOING PATH (errno's words)" into why, the errno when db (may
 * be NULL) has one. */
void jfile_why(sqlite3 *db, int rc, const char *doing, const char *path,
	       char *why, size_t len);
/* "YYYY-MM-DD HH:MM:SS UTC" of a Unix time in ms. */
void jfile_time(int64_t ms, char *buf, size_t len);

/* ---- jwrite.c: the records into the file ---- */

/* jfile_open() and, on the first success, close the sessions an earlier
 * run left running.  0, or -1 with why and no connection. */
int jwrite_open(struct writer *w, char *why, size_t len);
/*
 * Write b in one transaction (opening the file when it is not): the
 * trouble it ends (if any), then the records in order, each followed by
 * the gap of the records lost after it, then the recovery.  A record
 * refused for its content is left out and logged.  0, or -1 with why:
 * rolled back, nothing of it written, the seqs it would have taken free
 * again.
 */
int jwrite_batch(struct writer *w, const struct batch *b, char *why,
		 size_t len);
/* Delete old traces, a transaction at a time, until stop(arg) (asked
 * after each) says records wait.  Returns the trace rows deleted. */
uint64_t jwrite_retention(struct writer *w, bool (*stop)(void *), void *arg);

#endif

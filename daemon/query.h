/*
 * The queries' own header: what their three files share, and no other
 * file of the daemon sees (they call fd_query_*, fasciad.h).  query.c is
 * the reader thread and its queue; qargs.c checks a request's arguments,
 * on the loop; qread.c runs a query on the reader's connection and makes
 * its answer of the rows.  query.c calls qargs.c and qread.c, never back.
 */
#ifndef QUERY_H
#define QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fasciad.h"

#define QUERY_LIMIT 50
#define QUERY_LIMIT_MAX 1000
#define QUERY_STR 128 /* a string argument's bytes, with its NUL */

enum qcmd { Q_HISTORY, Q_SESSION, Q_LOG };

/* The kinds of log entry (docs/records.md): bit i of qargs.kinds is
 * qargs_kinds[i]. */
#define NKINDS 6
extern const char *const qargs_kinds[NKINDS];

/* The filters a request has: also the shape of its statement. */
enum {
	F_DEVICE = 1,
	F_SINCE = 2,
	F_UNTIL = 4,
	F_BEFORE = 8,
	F_WHO = 16,  /* history: patient; log: session */
	F_KIND = 32, /* log: one kind */
	F_SHAPES = 64
};

/* A request's arguments, checked. */
struct qargs {
	enum qcmd cmd;
	unsigned filters;
	char device[QUERY_STR];
	char who[QUERY_STR]; /* history: patient; log: session */
	char id[QUERY_STR];  /* session.get: session; history: before */
	int64_t since, until, before_seq;
	int64_t seq_above, seq_below; /* log: since and until, as seqs */
	int limit;
	unsigned kinds; /* log: bit i for qargs_kinds[i]; 0: every kind */
	bool trace;
};

struct qjob {
	struct qargs a;
	fd_query_done done;
	void *arg;
	/* the answer: result, or the error code with field and message */
	json_t *result;
	const char *code;
	char field[16];
	char msg[300];
};

/* The reader's statements of one shape (qread.c's qs_sql[]). */
enum {
	QS_BEGIN,
	QS_END,
	QS_BEFORE,
	QS_SESSION,
	QS_PROFILE,
	QS_SLOG,
	QS_TRACE,
	QS_LATE,
	QS_SEQ_BELOW,
	QS_SEQ_ABOVE,
	NQS
};

/* The reader thread's connection and its statements. */
struct reader {
	char *path;
	sqlite3 *db; /* NULL: not open */
	sqlite3_stmt *st[NQS];
	sqlite3_stmt *history[F_SHAPES];
	sqlite3_stmt *log[F_SHAPES];
};

/* ---- qargs.c: a request's arguments ---- */

/*
 * The arguments of req, a request of cmd, into *a: 0, or -1 with *reply
 * a bad_request naming the argument (or unknown_command).  Members it
 * does not know are ignored, as everywhere in the protocol
 * (docs/protocol.md).  A pure function of the request.
 */
int qargs_parse(const char *cmd, json_t *req, struct qargs *a, json_t **reply);

/* ---- qread.c: a query on the reader's connection ---- */

/* Answer job (its result, or its code, field and msg) on connection r,
 * which is opened when it is not, and closed again when it failed. */
void qread_run(struct reader *r, struct qjob *job);
/* Finalize the statements and close the connection; NULL-safe. */
void qread_close(struct reader *r);

#endif

/*
 * The arguments of history, session.get and log (docs/records.md, "The
 * commands"), checked on the loop as soon as a request comes: a bad one
 * is answered there and then, a bad_request naming its field, and what
 * reaches the reader thread (query.c, qread.c) is a struct qargs it need
 * not check again.  Pure functions of the request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "query.h"

#define ALL_KINDS ((1u << NKINDS) - 1)

const char *const qargs_kinds[NKINDS] = {"alarm", "command", "state",
					 "link",  "daemon",  "journal"};

static json_t *bad(json_t *req, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static json_t *bad(json_t *req, const char *field, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fd_server_error(json_object_get(req, "id"), "bad_request", field,
			       "%s", msg);
}

/* An optional string argument into out (QUERY_STR bytes); sets flag in
 * *filters when present.  0, or -1 with *reply. */
static int query_opt_string(json_t *req, const char *key, char *out,
			    unsigned *filters, unsigned flag, json_t **reply)
{
	json_t *v = json_object_get(req, key);
	size_t len = json_string_length(v);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		*reply = bad(req, key, "\"%s\" must be a string", key);
		return -1;
	}
	if (len >= QUERY_STR || strlen(json_string_value(v)) != len) {
		*reply = bad(req, key,
			     "\"%s\" must be at most %d bytes, without NUL",
			     key, QUERY_STR - 1);
		return -1;
	}
	memcpy(out, json_string_value(v), len + 1);
	*filters |= flag;
	return 0;
}

/* An optional integer argument in lo..hi. */
static int opt_int(json_t *req, const char *key, int64_t lo, int64_t hi,
		   const char *what, int64_t *out, unsigned *filters,
		   unsigned flag, json_t **reply)
{
	json_t *v = json_object_get(req, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		*reply = bad(req, key, "\"%s\" must be %s", key, what);
		return -1;
	}
	*out = json_integer_value(v);
	*filters |= flag;
	return 0;
}

/* since, until and limit, which history and log share. */
static int opt_window(json_t *req, struct qargs *a, json_t **reply)
{
	unsigned none = 0;
	int64_t limit = QUERY_LIMIT;

	if (opt_int(req, "since", INT64_MIN, INT64_MAX,
		    "an integer (Unix time in ms)", &a->since, &a->filters,
		    F_SINCE, reply) < 0 ||
	    opt_int(req, "until", INT64_MIN, INT64_MAX,
		    "an integer (Unix time in ms)", &a->until, &a->filters,
		    F_UNTIL, reply) < 0 ||
	    opt_int(req, "limit", 1, QUERY_LIMIT_MAX,
		    "an integer from 1 to 1000", &limit, &none, 0, reply) < 0)
		return -1;
	if ((a->filters & F_SINCE) && (a->filters & F_UNTIL) &&
	    a->until <= a->since) {
		*reply = bad(req, "until", "\"until\" must be after \"since\"");
		return -1;
	}
	a->limit = (int)limit;
	return 0;
}

static int opt_kinds(json_t *req, struct qargs *a, json_t **reply)
{
	json_t *v = json_object_get(req, "kinds"), *k;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		*reply = bad(req, "kinds",
			     "\"kinds\" must be a non-empty list of: alarm, "
			     "command, state, link, daemon, journal");
		return -1;
	}
	json_array_foreach(v, i, k)
	{
		int n = 0;

		while (n < NKINDS &&
		       (!json_is_string(k) ||
			strcmp(json_string_value(k), qargs_kinds[n]) != 0))
			n++;
		if (n == NKINDS) {
			*reply = bad(req, "kinds",
				     "\"kinds\": %s%.40s%s is no kind (alarm, "
				     "command, state, link, daemon, journal)",
				     json_is_string(k) ? "\"" : "",
				     json_is_string(k) ? json_string_value(k)
						       : "a non-string",
				     json_is_string(k) ? "\"" : "");
			return -1;
		}
		a->kinds |= 1u << n;
	}
	/* every kind is no filter at all */
	if (a->kinds == ALL_KINDS)
		a->kinds = 0;
	return 0;
}

static int parse_history(json_t *req, struct qargs *a, json_t **reply)
{
	a->cmd = Q_HISTORY;
	if (query_opt_string(req, "device", a->device, &a->filters, F_DEVICE,
			     reply) < 0 ||
	    query_opt_string(req, "patient", a->who, &a->filters, F_WHO,
			     reply) < 0 ||
	    opt_window(req, a, reply) < 0 ||
	    query_opt_string(req, "before", a->id, &a->filters, F_BEFORE,
			     reply) < 0)
		return -1;
	return 0;
}

static int parse_session(json_t *req, struct qargs *a, json_t **reply)
{
	unsigned none = 0;
	json_t *v;

	a->cmd = Q_SESSION;
	/* "session", not "id": that is the request's own */
	if (json_object_get(req, "session") == NULL) {
		*reply = bad(req, "session",
			     "\"session\" (the session's id) is missing");
		return -1;
	}
	if (query_opt_string(req, "session", a->id, &none, 0, reply) < 0)
		return -1;
	v = json_object_get(req, "trace");
	if (v != NULL && !json_is_boolean(v)) {
		*reply = bad(req, "trace", "\"trace\" must be true or false");
		return -1;
	}
	a->trace = json_is_true(v);
	return 0;
}

static int parse_log(json_t *req, struct qargs *a, json_t **reply)
{
	a->cmd = Q_LOG;
	if (query_opt_string(req, "device", a->device, &a->filters, F_DEVICE,
			     reply) < 0 ||
	    opt_kinds(req, a, reply) < 0 ||
	    query_opt_string(req, "session", a->who, &a->filters, F_WHO,
			     reply) < 0 ||
	    opt_window(req, a, reply) < 0 ||
	    opt_int(req, "before", 1, INT64_MAX, "a positive integer (a seq)",
		    &a->before_seq, &a->filters, F_BEFORE, reply) < 0)
		return -1;
	return 0;
}

int qargs_parse(const char *cmd, json_t *req, struct qargs *a, json_t **reply)
{
	memset(a, 0, sizeof(*a));
	if (cmd == NULL)
		cmd = "";
	if (strcmp(cmd, "history") == 0)
		return parse_history(req, a, reply);
	if (strcmp(cmd, "session.get") == 0)
		return parse_session(req, a, reply);
	if (strcmp(cmd, "log") == 0)
		return parse_log(req, a, reply);
	*reply = fd_server_error(json_object_get(req, "id"), "unknown_command",
				 "cmd", "no query \"%.64s\"", cmd);
	return -1;
}

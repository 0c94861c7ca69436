/*
 * The journal's queries, on a journal written by the real writer with
 * known data: every filter and the paging of history and log, session.get
 * with and without its trace, the arguments' errors (each naming its
 * field), a journal that cannot be read, and the reader thread: answers on
 * the loop, `busy` when its queue is full, what destroy still answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define FD_QUERY_TEST
#include "../../daemon/journal.c"
#include "../../daemon/jwrite.c"
#include "../../daemon/jfile.c"
#include "../../daemon/query.c"
#include "../../daemon/qargs.c"
#include "../../daemon/qread.c"

#include "../daemon_stubs.h"

/* server.c's replies (the rest of server.c wants sockets). */
json_t *fd_server_error(json_t *id, const char *code, const char *field,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (field != NULL)
		json_object_set_new(err, "field", json_string(field));
	return json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
			 id ? id : json_null(), "ok", 0, "error", err);
}

json_t *fd_server_ok(json_t *id, json_t *result)
{
	return json_pack("{s:i, s:O, s:b, s:o}", "v", 1, "id",
			 id ? id : json_null(), "ok", 1, "result", result);
}

#define T0 1795440000000LL

static char dir[64], path[128];
static struct event_base *base;
static struct event *watchdog;
static bool timed_out;
static struct reader rd;        /* the pure path: qread_run() on it */
static json_t *put_log_entries; /* every entry as put, with its seq */

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = true;
}

/* ---- the data ---- */

static const struct sess {
	const char *id, *device, *patient;
	int64_t started;
	bool closed;
} sessions[] = {
	{"s1", "a", "P1", T0 + 1000, true},  {"s2", "b", "P2", T0 + 2000, true},
	{"s3", "a", "P2", T0 + 3000, true},  {"s4", "b", "P1", T0 + 4000, true},
	{"s5", "a", NULL, T0 + 4000, true}, /* same start: by id */
	{"s6", "a", "P1", T0 + 6000, false},
};
#define NSESS (int)(sizeof(sessions) / sizeof(sessions[0]))

static uint64_t log_put(struct fd_journal *j, json_t *e)
{
	json_t *copy = json_deep_copy(e);

	json_object_set_new(
		copy, "seq",
		json_integer((json_int_t)json_array_size(put_log_entries) + 1));
	json_array_append_new(put_log_entries, copy);
	return fd_journal_put(j, FD_J_LOG, e);
}

static void sample(struct fd_journal *j, const char *id, int64_t t, double p0,
		   double p1)
{
	fd_journal_put(j, FD_J_SAMPLE,
		       json_pack("{s:s, s:I, s:[f, f], s:[f, f], s:f, s:f, "
				 "s:[]}",
				 "session", id, "t", (json_int_t)t, "pressure",
				 p0, p1, "setpoint", 30.0, 30.0, "delivered_s",
				 1.0, "paused_s", 0.0, "dose"));
}

/* The journal: six sessions, their log, a trace of s1 with a gap. */
static void write_journal(void)
{
	struct fd_journal *j = fd_journal_open(base, path, 365, NULL, NULL);
	struct fd_journal_health h;
	uint64_t last = 0;

	put_log_entries = json_array();
	fd_journal_put(j, FD_J_PROFILE,
		       json_pack("{s:s, s:s, s:s}", "sha256", "abc", "name",
				 "gentle", "document",
				 "{\"name\":\"gentle\",\"steps\":[1]}"));
	log_put(j,
		json_pack("{s:I, s:s, s:n, s:n, s:s, s:s}", "time",
			  (json_int_t)T0, "kind", "daemon", "device", "session",
			  "event", "start", "message", "fasciad started"));
	log_put(j, json_pack("{s:I, s:s, s:s, s:n, s:s, s:s}", "time",
			     (json_int_t)(T0 + 500), "kind", "link", "device",
			     "a", "session", "event", "up", "message", ""));
	for (int i = 0; i < NSESS; i++) {
		const struct sess *s = &sessions[i];

		fd_journal_put(
			j, FD_J_SESSION_OPEN,
			json_pack("{s:s, s:s, s:s, s:s, s:s?, s:n, s:s, s:I, "
				  "s:f, s:i, s:i}",
				  "id", s->id, "device", s->device, "profile",
				  "gentle", "profile_sha256", "abc", "patient",
				  s->patient, "operator", "note", "left leg",
				  "started", (json_int_t)s->started,
				  "planned_s", 360.0, "chambers", 2, "trace_hz",
				  1));
		log_put(j, json_pack("{s:I, s:s, s:s, s:s, s:s, s:n, s:s, "
				     "s:s, s:s, s:s}",
				     "time", (json_int_t)s->started, "kind",
				     "command", "device", s->device, "session",
				     s->id, "event", "start", "by", "outcome",
				     "ok", "message", "", "profile", "gentle",
				     "sha256", "abc"));
		log_put(j, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, "
				     "s:s}",
				     "time", (json_int_t)s->started + 1, "kind",
				     "state", "device", s->device, "session",
				     s->id, "event", "changed", "from", "idle",
				     "to", "running", "cause", "start"));
		if (i % 2 == 0)
			log_put(j,
				json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, "
					  "s:s, s:i, s:f, s:n, s:s}",
					  "time", (json_int_t)s->started + 2,
					  "kind", "alarm", "device", s->device,
					  "session", s->id, "event", "raised",
					  "alarm", "overpressure", "priority",
					  "high", "chamber", 1, "value", 55.5,
					  "threshold", "message", "too high"));
		if (i == 0) {
			sample(j, "s1", s->started, 24.6, 0.1);
			sample(j, "s1", s->started + 1000, 20.0, 0.2);
			sample(j, "s1", s->started + 3000, 1.5, -0.5);
		}
		if (s->closed)
			last = fd_journal_put(
				j, FD_J_SESSION_CLOSE,
				json_pack("{s:s, s:I, s:s, s:n, s:f, s:f, "
					  "s:[{s:i, s:f}, {s:i, s:f}]}",
					  "id", s->id, "ended",
					  (json_int_t)s->started + 500,
					  "end_reason", "completed", "alarm",
					  "delivered_s", 359.9, "paused_s", 0.0,
					  "dose", "chamber", 1, "mmhg_s", 10.5,
					  "chamber", 2, "mmhg_s", 11.0));
	}
	/* a clock stepped back: this entry is 4 s before the latest */
	log_put(j,
		json_pack("{s:I, s:s, s:s, s:n, s:s, s:s}", "time",
			  (json_int_t)(T0 + 2002), "kind", "link", "device",
			  "b", "session", "event", "down", "message", "late"));
	last = log_put(j, json_pack("{s:I, s:s, s:n, s:n, s:s, s:s}", "time",
				    (json_int_t)(T0 + 9000), "kind", "daemon",
				    "device", "session", "event", "reload",
				    "message", "reloaded"));
	do {
		assert_false(timed_out);
		fd_journal_health(j, &h);
		if (h.committed < last)
			event_base_loop(base, EVLOOP_ONCE);
	} while (h.committed < last);
	assert_true(h.ok);
	fd_journal_close(&j, 5);
}

static int setup(void **state)
{
	struct timeval tv = {20, 0};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-query-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	assert_non_null(base = event_base_new());
	assert_non_null(watchdog = evtimer_new(base, watchdog_cb, NULL));
	assert_int_equal(evtimer_add(watchdog, &tv), 0);
	timed_out = false;
	write_journal();
	memset(&rd, 0, sizeof(rd));
	rd.path = path;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	qread_close(&rd);
	json_decref(put_log_entries);
	event_free(watchdog);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- asking ---- */

/* The reply to request text (with cmd) on the pure path: the result, or
 * {"code", "field", "message"} for an error. */
static json_t *ask(const char *text)
{
	json_t *req = json_loads(text, 0, NULL), *reply = NULL, *out;
	struct qjob job;

	assert_non_null(req);
	memset(&job, 0, sizeof(job));
	if (qargs_parse(json_string_value(json_object_get(req, "cmd")), req,
			&job.a, &reply) < 0) {
		out = json_incref(json_object_get(reply, "error"));
		assert_true(json_equal(json_object_get(reply, "id"),
				       json_object_get(req, "id")) ||
			    json_object_get(req, "id") == NULL);
		json_decref(reply);
		json_decref(req);
		return out;
	}
	json_decref(req);
	qread_run(&rd, &job);
	if (job.result != NULL)
		return job.result;
	return json_pack("{s:s, s:s, s:s}", "code", job.code, "field",
			 job.field, "message", job.msg);
}

static void assert_error(json_t *e, const char *code, const char *field)
{
	if (json_object_get(e, "code") == NULL ||
	    strcmp(json_string_value(json_object_get(e, "code")), code) != 0 ||
	    strcmp(json_string_value(json_object_get(e, "field")), field) !=
		    0) {
		char *text = json_dumps(e, 0);

		print_error("want %s naming %s, got %s\n", code, field, text);
		free(text);
		fail();
	}
}

/* The error of request text. */
static void assert_refused(const char *text, const char *code,
			   const char *field)
{
	json_t *e = ask(text);

	assert_error(e, code, field);
	json_decref(e);
}

/* The ids of a history result, ',' between. */
static void assert_ids(json_t *res, const char *want, bool more)
{
	char got[256] = "";
	json_t *s;
	size_t i;

	assert_non_null(json_object_get(res, "sessions"));
	json_array_foreach(json_object_get(res, "sessions"), i, s) snprintf(
		got + strlen(got), sizeof(got) - strlen(got), "%s%s",
		i ? "," : "", json_string_value(json_object_get(s, "id")));
	assert_string_equal(got, want);
	assert_int_equal(json_is_true(json_object_get(res, "more")), more);
	json_decref(res);
}

/* ---- arguments ---- */

static void test_arguments_name_their_field(void **state)
{
	static const struct {
		const char *req, *field;
	} bad[] = {
		{"{\"cmd\":\"history\",\"device\":1}", "device"},
		{"{\"cmd\":\"history\",\"device\":null}", "device"},
		{"{\"cmd\":\"history\",\"patient\":true}", "patient"},
		{"{\"cmd\":\"history\",\"since\":\"x\"}", "since"},
		{"{\"cmd\":\"history\",\"since\":1.5}", "since"},
		{"{\"cmd\":\"history\",\"until\":[]}", "until"},
		{"{\"cmd\":\"history\",\"since\":10,\"until\":10}", "until"},
		{"{\"cmd\":\"history\",\"limit\":0}", "limit"},
		{"{\"cmd\":\"history\",\"limit\":1001}", "limit"},
		{"{\"cmd\":\"history\",\"limit\":\"5\"}", "limit"},
		{"{\"cmd\":\"history\",\"before\":3}", "before"},
		{"{\"cmd\":\"session.get\"}", "session"},
		{"{\"cmd\":\"session.get\",\"id\":\"s1\"}", "session"},
		{"{\"cmd\":\"session.get\",\"session\":5}", "session"},
		{"{\"cmd\":\"session.get\",\"session\":\"s1\",\"trace\":1}",
		 "trace"},
		{"{\"cmd\":\"log\",\"kinds\":[]}", "kinds"},
		{"{\"cmd\":\"log\",\"kinds\":\"alarm\"}", "kinds"},
		{"{\"cmd\":\"log\",\"kinds\":[\"alarm\",\"bogus\"]}", "kinds"},
		{"{\"cmd\":\"log\",\"kinds\":[1]}", "kinds"},
		{"{\"cmd\":\"log\",\"session\":1}", "session"},
		{"{\"cmd\":\"log\",\"before\":\"x\"}", "before"},
		{"{\"cmd\":\"log\",\"before\":0}", "before"},
		{"{\"cmd\":\"log\",\"limit\":-1}", "limit"},
	};
	json_t *req, *reply = NULL;
	struct qargs a;
	char longname[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i].req, "bad_request", bad[i].field);
	memset(longname, 'x', sizeof(longname));
	longname[sizeof(longname) - 1] = '\0';
	req = json_pack("{s:s, s:s, s:i}", "cmd", "history", "device", longname,
			"id", 7);
	assert_int_equal(qargs_parse("history", req, &a, &reply), -1);
	/* the request's id is echoed */
	assert_int_equal(json_integer_value(json_object_get(reply, "id")), 7);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(reply, "error"), "field")),
			    "device");
	json_decref(reply);
	json_decref(req);

	/* members it does not know are ignored, as everywhere */
	req = json_pack("{s:s, s:s, s:i}", "cmd", "log", "colour", "red",
			"limit", 3);
	assert_int_equal(qargs_parse("log", req, &a, &reply), 0);
	assert_int_equal(a.limit, 3);
	json_decref(req);
	/* every kind is no filter */
	req = json_loads("{\"kinds\":[\"alarm\",\"command\",\"state\","
			 "\"link\",\"daemon\",\"journal\",\"alarm\"]}",
			 0, NULL);
	assert_int_equal(qargs_parse("log", req, &a, &reply), 0);
	assert_int_equal(a.kinds, 0);
	assert_int_equal(a.limit, QUERY_LIMIT);
	json_decref(req);
}

/* ---- history ---- */

static void test_history_newest_first_and_paging(void **state)
{
	(void)state;
	assert_ids(ask("{\"cmd\":\"history\"}"), "s6,s5,s4,s3,s2,s1", false);
	assert_ids(ask("{\"cmd\":\"history\",\"limit\":2}"), "s6,s5", true);
	assert_ids(ask("{\"cmd\":\"history\",\"limit\":2,\"before\":\"s5\"}"),
		   "s4,s3", true);
	assert_ids(ask("{\"cmd\":\"history\",\"limit\":2,\"before\":\"s3\"}"),
		   "s2,s1", false);
	assert_ids(ask("{\"cmd\":\"history\",\"before\":\"s1\"}"), "", false);
	assert_refused("{\"cmd\":\"history\",\"before\":\"nope\"}",
		       "bad_request", "before");
}

static void test_history_filters(void **state)
{
	(void)state;
	assert_ids(ask("{\"cmd\":\"history\",\"device\":\"a\"}"), "s6,s5,s3,s1",
		   false);
	assert_ids(ask("{\"cmd\":\"history\",\"patient\":\"P1\"}"), "s6,s4,s1",
		   false);
	assert_ids(ask("{\"cmd\":\"history\",\"device\":\"a\","
		       "\"patient\":\"P1\",\"limit\":1}"),
		   "s6", true);
	assert_ids(ask("{\"cmd\":\"history\",\"device\":\"a\","
		       "\"patient\":\"P1\",\"before\":\"s6\"}"),
		   "s1", false);
	/* since <= started < until */
	assert_ids(ask("{\"cmd\":\"history\",\"since\":1795440002000,"
		       "\"until\":1795440004000}"),
		   "s3,s2", false);
	assert_ids(ask("{\"cmd\":\"history\",\"since\":1795440004000}"),
		   "s6,s5,s4", false);
	assert_ids(ask("{\"cmd\":\"history\",\"until\":1795440004001,"
		       "\"device\":\"b\",\"limit\":1,\"before\":\"s4\"}"),
		   "s2", false);
	assert_ids(ask("{\"cmd\":\"history\",\"device\":\"zzz\"}"), "", false);
}

static void test_history_summary(void **state)
{
	json_t *res = ask("{\"cmd\":\"history\",\"limit\":1,"
			  "\"before\":\"s4\"}");
	json_t *want = json_loads(
		"{\"id\":\"s3\",\"device\":\"a\",\"profile\":\"gentle\","
		"\"profile_sha256\":\"abc\",\"patient\":\"P2\","
		"\"operator\":null,\"note\":\"left leg\","
		"\"started\":1795440003000,\"ended\":1795440003500,"
		"\"end_reason\":\"completed\",\"alarm\":null,"
		"\"planned_s\":360.0,\"delivered_s\":359.9,\"paused_s\":0.0,"
		"\"trace_hz\":1,\"chambers\":[{\"chamber\":1,\"mmhg_s\":10.5},"
		"{\"chamber\":2,\"mmhg_s\":11.0}]}",
		0, NULL);
	json_t *got = json_array_get(json_object_get(res, "sessions"), 0);

	(void)state;
	assert_non_null(want);
	assert_true(json_equal(got, want));
	json_decref(want);
	json_decref(res);
	/* the running one: no end, no dose yet */
	res = ask("{\"cmd\":\"history\",\"limit\":1}");
	got = json_array_get(json_object_get(res, "sessions"), 0);
	assert_string_equal(
		json_string_value(json_object_get(got, "end_reason")),
		"running");
	assert_true(json_is_null(json_object_get(got, "ended")));
	assert_int_equal(json_array_size(json_object_get(got, "chambers")), 0);
	json_decref(res);
}

/* ---- session.get ---- */

static void test_session_get(void **state)
{
	json_t *res = ask("{\"cmd\":\"session.get\",\"session\":\"s1\"}"), *s,
	       *e;
	json_t *doc =
		json_loads("{\"name\":\"gentle\",\"steps\":[1]}", 0, NULL);
	size_t i;

	(void)state;
	s = json_object_get(res, "session");
	assert_string_equal(json_string_value(json_object_get(s, "id")), "s1");
	assert_true(json_equal(json_object_get(s, "profile_document"), doc));
	assert_null(json_object_get(s, "trace"));
	/* its log, oldest first, each entry as it was put */
	assert_int_equal(json_array_size(json_object_get(s, "log")), 3);
	json_array_foreach(json_object_get(s, "log"), i, e)
	{
		json_t *want = json_array_get(
			put_log_entries,
			(size_t)json_integer_value(json_object_get(e, "seq")) -
				1);

		assert_true(json_equal(e, want));
		assert_string_equal(
			json_string_value(json_object_get(e, "session")), "s1");
		if (i > 0)
			assert_true(
				json_integer_value(json_object_get(e, "seq")) >
				json_integer_value(json_object_get(
					json_array_get(
						json_object_get(s, "log"),
						i - 1),
					"seq")));
	}
	json_decref(doc);
	json_decref(res);
	assert_refused("{\"cmd\":\"session.get\",\"session\":\"nope\"}",
		       "bad_request", "session");
}

static void test_session_get_trace(void **state)
{
	json_t *res = ask("{\"cmd\":\"session.get\",\"session\":\"s1\","
			  "\"trace\":true}");
	/* 1 Hz: the sample at +3000 is k 3; k 2 never came */
	json_t *want = json_loads(
		"{\"hz\":1,\"t0\":1795440001000,"
		"\"pressure\":[[24.6,0.1],[20.0,0.2],null,[1.5,-0.5]],"
		"\"setpoint\":[[30.0,30.0],[30.0,30.0],null,[30.0,30.0]]}",
		0, NULL);
	json_t *got = json_object_get(json_object_get(res, "session"), "trace");
	char *text = json_dumps(got, FD_JSON_FLAGS);

	(void)state;
	assert_non_null(want);
	if (!json_equal(got, want))
		print_error("got %s\n", text);
	assert_true(json_equal(got, want));
	/* one decimal on the wire */
	assert_non_null(strstr(text, "[24.6,0.1]"));
	free(text);
	json_decref(want);
	json_decref(res);
	/* no trace: an empty one, starting at the start */
	res = ask(
		"{\"cmd\":\"session.get\",\"session\":\"s2\",\"trace\":true}");
	got = json_object_get(json_object_get(res, "session"), "trace");
	assert_int_equal(json_integer_value(json_object_get(got, "t0")),
			 T0 + 2000);
	assert_int_equal(json_array_size(json_object_get(got, "pressure")), 0);
	json_decref(res);
}

/* ---- log ---- */

typedef bool (*entry_pred)(json_t *e, const void *arg);

static bool str_is(json_t *e, const char *key, const char *v)
{
	const char *s = json_string_value(json_object_get(e, key));

	return s != NULL && strcmp(s, v) == 0;
}

/* The entries put that p keeps, newest first, below before (0: all),
 * at most limit. */
static json_t *want_log(entry_pred p, const void *arg, int64_t before,
			size_t limit, bool *more)
{
	json_t *list = json_array();

	*more = false;
	for (size_t i = json_array_size(put_log_entries); i-- > 0;) {
		json_t *e = json_array_get(put_log_entries, i);

		if ((before &&
		     json_integer_value(json_object_get(e, "seq")) >= before) ||
		    !p(e, arg))
			continue;
		if (json_array_size(list) == limit) {
			*more = true;
			break;
		}
		json_array_append(list, e);
	}
	return list;
}

static void assert_log(const char *req, entry_pred p, const void *arg,
		       int64_t before, size_t limit)
{
	json_t *res = ask(req);
	bool more;
	json_t *want = want_log(p, arg, before, limit, &more);

	if (!json_equal(json_object_get(res, "entries"), want)) {
		char *a = json_dumps(res, 0), *b = json_dumps(want, 0);

		print_error("%s\n got %s\nwant %s\n", req, a, b);
		free(a);
		free(b);
		fail();
	}
	assert_int_equal(json_is_true(json_object_get(res, "more")), more);
	json_decref(want);
	json_decref(res);
}

static bool any(json_t *e, const void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

static bool kind_in(json_t *e, const void *arg)
{
	for (const char *const *k = arg; *k != NULL; k++)
		if (str_is(e, "kind", *k))
			return true;
	return false;
}

static bool device_is(json_t *e, const void *arg)
{
	return str_is(e, "device", arg);
}

static bool session_is(json_t *e, const void *arg)
{
	return str_is(e, "session", arg);
}

static bool a_alarm_or_state(json_t *e, const void *arg)
{
	(void)arg;
	return str_is(e, "device", "a") &&
	       (str_is(e, "kind", "alarm") || str_is(e, "kind", "state"));
}

struct window {
	int64_t since, until;
};

static bool in_window(json_t *e, const void *arg)
{
	const struct window *w = arg;
	int64_t t = json_integer_value(json_object_get(e, "time"));

	return t >= w->since && (w->until == 0 || t < w->until);
}

struct window_device {
	const struct window *w;
	const char *device;
};

static bool in_window_on(json_t *e, const void *arg)
{
	const struct window_device *wd = arg;

	return in_window(e, wd->w) && str_is(e, "device", wd->device);
}

static void assert_log_and(const char *req, entry_pred p,
			   const struct window *w, const char *device)
{
	struct window_device wd = {w, device};

	(void)p;
	assert_log(req, in_window_on, &wd, 0, 3);
}

static void test_log_newest_first_and_paging(void **state)
{
	size_t n;

	(void)state;
	n = json_array_size(put_log_entries);
	assert_int_equal(n, 2 + 6 * 2 + 3 + 2);
	assert_log("{\"cmd\":\"log\"}", any, NULL, 0, 50);
	assert_log("{\"cmd\":\"log\",\"limit\":5}", any, NULL, 0, 5);
	assert_log("{\"cmd\":\"log\",\"limit\":5,\"before\":10}", any, NULL, 10,
		   5);
	assert_log("{\"cmd\":\"log\",\"limit\":5,\"before\":5}", any, NULL, 5,
		   5);
	assert_log("{\"cmd\":\"log\",\"before\":1}", any, NULL, 1, 50);
}

static void test_log_filters(void **state)
{
	static const char *const alarm[] = {"alarm", NULL};
	static const char *const three[] = {"alarm", "daemon", "link", NULL};

	(void)state;
	assert_log("{\"cmd\":\"log\",\"kinds\":[\"alarm\"]}", kind_in, alarm, 0,
		   50);
	assert_log("{\"cmd\":\"log\",\"kinds\":[\"alarm\",\"daemon\","
		   "\"link\"],\"limit\":4}",
		   kind_in, three, 0, 4);
	assert_log("{\"cmd\":\"log\",\"kinds\":[\"link\",\"alarm\","
		   "\"daemon\"],\"limit\":4,\"before\":15}",
		   kind_in, three, 15, 4);
	assert_log("{\"cmd\":\"log\",\"device\":\"b\"}", device_is, "b", 0, 50);
	assert_log("{\"cmd\":\"log\",\"device\":\"a\",\"limit\":3,"
		   "\"before\":12}",
		   device_is, "a", 12, 3);
	assert_log("{\"cmd\":\"log\",\"session\":\"s3\"}", session_is, "s3", 0,
		   50);
	assert_log("{\"cmd\":\"log\",\"device\":\"a\",\"kinds\":[\"state\","
		   "\"alarm\"],\"limit\":3}",
		   a_alarm_or_state, NULL, 0, 3);
	assert_log("{\"cmd\":\"log\",\"kinds\":[\"journal\"]}", kind_in,
		   (const char *const[]){"journal", NULL}, 0, 50);
}

/* since and until, exact however out of order the times are: the log's
 * disorder (an entry 4 s before the one before it) widens the range of
 * seq the scan looks at, never past what matches. */
static void test_log_time_window(void **state)
{
	static const int64_t at[] = {T0 - 1,    T0,        T0 + 1,    T0 + 500,
				     T0 + 2000, T0 + 2002, T0 + 2003, T0 + 3000,
				     T0 + 4001, T0 + 6002, T0 + 6003, T0 + 9000,
				     T0 + 9001};
	const int n = (int)(sizeof(at) / sizeof(at[0]));
	char req[200];

	(void)state;
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(put_log_entries, 0), "seq")),
			 1);
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++) {
			struct window w = {at[i], at[k]};

			snprintf(req, sizeof(req),
				 "{\"cmd\":\"log\",\"since\":%lld,"
				 "\"until\":%lld}",
				 (long long)w.since, (long long)w.until);
			assert_log(req, in_window, &w, 0, 50);
			snprintf(req, sizeof(req),
				 "{\"cmd\":\"log\",\"since\":%lld,"
				 "\"limit\":2,\"before\":16}",
				 (long long)w.since);
			w.until = 0;
			assert_log(req, in_window, &w, 16, 2);
			snprintf(req, sizeof(req),
				 "{\"cmd\":\"log\",\"until\":%lld,"
				 "\"limit\":3,\"device\":\"b\"}",
				 (long long)at[k]);
			w = (struct window){INT64_MIN, at[k]};
			assert_log_and(req, in_window, &w, "b");
		}
}

/* ---- a journal that cannot be read ---- */

static void test_unreadable_journal(void **state)
{
	json_t *e;
	char other[160];
	FILE *f;

	(void)state;
	snprintf(other, sizeof(other), "%s/missing.db", dir);
	qread_close(&rd);
	rd.path = other;
	e = ask("{\"cmd\":\"history\"}");
	assert_error(e, "internal", "");
	assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
			       "the journal cannot be read: "));
	assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
			       other));
	json_decref(e);

	f = fopen(other, "w");
	fputs("not a database at all, but long enough to look like one to "
	      "SQLite's header check, or perhaps not",
	      f);
	fclose(f);
	e = ask("{\"cmd\":\"log\"}");
	assert_error(e, "internal", "");
	assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
			       "not a fascia journal"));
	json_decref(e);
	rd.path = path;
}

/* ---- the thread ---- */

struct answer {
	json_t *result;
	char code[32], field[16], msg[300];
	pthread_t thread;
	int n;
};

static void done_cb(json_t *result, const char *code, const char *field,
		    const char *msg, void *arg)
{
	struct answer *a = arg;

	a->n++;
	a->result = result;
	snprintf(a->code, sizeof(a->code), "%s", code ? code : "");
	snprintf(a->field, sizeof(a->field), "%s", field);
	snprintf(a->msg, sizeof(a->msg), "%s", msg);
	a->thread = pthread_self();
}

static void until_answered(struct answer *a, int n)
{
	for (int i = 0; i < n; i++)
		while (a[i].n == 0) {
			assert_false(timed_out);
			assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
		}
}

static void test_thread_answers_on_the_loop(void **state)
{
	struct fd_query *q = fd_query_new(base, path);
	struct answer a[QUERY_QUEUE + 1];
	json_t *req = json_loads("{\"v\":1,\"id\":3,\"cmd\":\"history\","
				 "\"limit\":1}",
				 0, NULL),
	       *reply = NULL;

	(void)state;
	memset(a, 0, sizeof(a));
	/* a job keeps its slot until its done() has run: with the loop
	 * not running, the ring fills however fast the reader is */
	for (int i = 0; i < QUERY_QUEUE; i++)
		assert_int_equal(fd_query_submit(q, "history", req, done_cb,
						 &a[i], &reply),
				 0);
	assert_int_equal(fd_query_submit(q, "history", req, done_cb,
					 &a[QUERY_QUEUE], &reply),
			 -1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(reply, "error"), "code")),
			    "busy");
	assert_int_equal(json_integer_value(json_object_get(reply, "id")), 3);
	json_decref(reply);
	reply = NULL;
	until_answered(a, QUERY_QUEUE);
	for (int i = 0; i < QUERY_QUEUE; i++) {
		assert_int_equal(a[i].n, 1);
		assert_true(pthread_equal(a[i].thread, pthread_self()));
		assert_ids(a[i].result, "s6", true);
	}
	assert_int_equal(a[QUERY_QUEUE].n, 0);

	/* a bad argument is answered at once, done() never runs */
	json_object_set_new(req, "limit", json_integer(0));
	assert_int_equal(
		fd_query_submit(q, "history", req, done_cb, &a[0], &reply), -1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(reply, "error"), "field")),
			    "limit");
	json_decref(reply);

	/* an error of the journal comes through done() */
	memset(a, 0, sizeof(a));
	json_object_set_new(req, "limit", json_integer(1));
	json_object_set_new(req, "before", json_string("nope"));
	assert_int_equal(
		fd_query_submit(q, "history", req, done_cb, &a[0], &reply), 0);
	until_answered(a, 1);
	assert_null(a[0].result);
	assert_string_equal(a[0].code, "bad_request");
	assert_string_equal(a[0].field, "before");

	/* destroy answers what is still queued */
	memset(a, 0, sizeof(a));
	json_object_del(req, "before");
	for (int i = 0; i < 3; i++)
		assert_int_equal(
			fd_query_submit(q, "log", req, done_cb, &a[i], &reply),
			0);
	fd_query_destroy(&q);
	assert_null(q);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(a[i].n, 1);
		assert_int_equal(json_array_size(json_object_get(a[i].result,
								 "entries")),
				 1);
		json_decref(a[i].result);
	}
	fd_query_destroy(&q);
	json_decref(req);
}

/* The reader reads while the writer writes (WAL): a new entry shows in
 * the next answer. */
static void test_reads_while_writing(void **state)
{
	struct fd_journal *j;
	struct fd_journal_health h;
	json_t *res;
	uint64_t no;

	(void)state;
	res = ask("{\"cmd\":\"log\",\"limit\":1}");
	assert_int_equal(
		json_integer_value(json_object_get(
			json_array_get(json_object_get(res, "entries"), 0),
			"seq")),
		json_array_size(put_log_entries));
	json_decref(res);
	/* s6 was left running: this open closes it, with an entry */
	j = fd_journal_open(base, path, 365, NULL, NULL);
	no = fd_journal_put(j, FD_J_LOG,
			    json_pack("{s:I, s:s, s:n, s:n, s:s}", "time",
				      (json_int_t)T0, "kind", "daemon",
				      "device", "session", "event", "new"));
	do {
		assert_false(timed_out);
		fd_journal_health(j, &h);
		if (h.committed < no)
			event_base_loop(base, EVLOOP_ONCE);
	} while (h.committed < no);
	res = ask("{\"cmd\":\"log\",\"limit\":2}");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(res, "entries"), 0),
			"event")),
		"new");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(res, "entries"), 1),
			"event")),
		"interrupted");
	json_decref(res);
	assert_ids(ask("{\"cmd\":\"history\",\"limit\":1}"), "s6", true);
	fd_journal_close(&j, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_arguments_name_their_field),
		T(test_history_newest_first_and_paging),
		T(test_history_filters),
		T(test_history_summary),
		T(test_session_get),
		T(test_session_get_trace),
		T(test_log_newest_first_and_paging),
		T(test_log_filters),
		T(test_log_time_window),
		T(test_unreadable_journal),
		T(test_thread_answers_on_the_loop),
		T(test_reads_while_writing),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

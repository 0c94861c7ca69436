/*
 * The control protocol without sockets: request decoding and its error
 * replies, the dispatch of every command, the deferred device commands
 * and their verdicts, profile.put storing a file atomically, and the
 * state message of a snapshot with every field of docs/protocol.md's example.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../daemon/interlock.c"
#include "../../daemon/profiles.c"
#include "../../daemon/publish.c"
#include "../../daemon/server.c"
#include "../../daemon/security.c"
#include "../../daemon/certs.c"
#include "../../daemon/config.c"
#include "../../daemon/confdev.c"
/* The replies commands.c sends (a verdict's, a profile.put's) are
 * captured here instead of going to a socket. */
static json_t *captured;
static void captured_send(struct fd_daemon *dd, const struct fd_envelope *e,
			  json_t *reply)
{
	(void)dd;
	(void)e;
	json_decref(captured);
	captured = reply;
}
#define fd_server_send captured_send
#include "../../daemon/commands.c"
#include "../../daemon/record.c"
#undef fd_server_send
#include "../../daemon/dose.c"
#include "../../daemon/journal.c"
#include "../../daemon/jwrite.c"
#include "../../daemon/jfile.c"
#include "../../daemon/query.c"
#include "../../daemon/qargs.c"
#include "../../daemon/qread.c"
#include "../../daemon/store.c"
#include "../../daemon/session.c"
#include "../../daemon/state.c"

#include "../daemon_stubs.h"

static int submit_rc; /* what fd_device_submit returns */
static int submits;
static struct fd_command last_cmd;

int fd_device_submit(struct fd_device *dev, const struct fd_command *c)
{
	(void)dev;
	if (submit_rc == 0) {
		submits++;
		last_cmd = *c;
	}
	return submit_rc;
}

/* ---- the rig ---- */

static const char *good_profile =
	"{\"name\":\"wave\",\"description\":\"test\",\"chambers\":2,"
	"\"max_pressure_mmhg\":40,\"max_ramp_mmhg_s\":10,\"repeat\":1,"
	"\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":2},"
	"{\"set\":{\"all\":0},\"ramp_s\":3,\"hold_s\":1}]}";

static struct fd_daemon *d;
static char dir[64];
/* a client that may do everything: the roles are test_security.py's */
static const struct fd_envelope env = {
	.identity = "client", .identity_len = 6, .who.role = FD_ROLE_ADMIN};

static int setup(void **state)
{
	FILE *f;
	char path[128];

	(void)state;
	d = xcalloc(1, sizeof(*d));
	d->conf.tick_hz = 50;
	d->conf.publish_hz = 10;
	d->conf.max_session_s = 3600;
	d->ndev = 2;
	d->dev = xcalloc(2, sizeof(*d->dev));
	for (int i = 0; i < 2; i++) {
		struct fd_device_conf *c = &d->dev[i].conf;

		snprintf(c->name, sizeof(c->name), "%s", i ? "b" : "a");
		snprintf(c->host, sizeof(c->host), "127.0.0.1");
		c->port = 1502 + i;
		c->unit = 1;
		c->chambers = 4;
		c->limit_mmhg = 80;
		d->dev[i].daemon = d;
		d->conf.dev[i] = *c;
	}
	d->conf.ndev = 2;
	fd_profiles_limits(&d->conf, &d->limits);
	snprintf(dir, sizeof(dir), "/tmp/fascia-srv-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/wave.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(good_profile, f);
	fclose(f);
	assert_int_equal(fd_profiles_load(dir, &d->limits, &d->profiles), 0);
	assert_int_equal(d->profiles.n, 1);
	submit_rc = 0;
	submits = 0;
	assert_non_null(d->base = event_base_new());
	d->store = fd_store_new(d->base);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fd_store_destroy(&d->store);
	fd_commands_close(d);
	fd_server_close(d);
	event_base_free(d->base);
	json_decref(captured);
	captured = NULL;
	free(d->dev);
	free(d);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static json_t *ask_len(const char *text, size_t len)
{
	return fd_server_handle(d, text, len, &env);
}

/* A device command: NULL when deferred (the test asserts it). */
static json_t *ask_deferred(const char *text)
{
	return ask_len(text, strlen(text));
}

static json_t *ask(const char *text)
{
	json_t *r = ask_len(text, strlen(text));

	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "v")), 1);
	assert_true(json_is_boolean(json_object_get(r, "ok")));
	return r;
}

/* The reply is an error with code (and field, unless NULL). */
static void assert_error(json_t *r, const char *code, const char *field)
{
	json_t *e = json_object_get(r, "error");

	assert_true(json_is_false(json_object_get(r, "ok")));
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "code")),
			    code);
	assert_true(json_is_string(json_object_get(e, "message")));
	if (field != NULL)
		assert_string_equal(
			json_string_value(json_object_get(e, "field")), field);
}

static void expect_error(const char *req, const char *code, const char *field)
{
	json_t *r = ask(req);

	assert_error(r, code, field);
	json_decref(r);
}

static json_t *result(json_t *r)
{
	assert_true(json_is_true(json_object_get(r, "ok")));
	return json_object_get(r, "result");
}

/* ---- decoding ---- */

static void test_not_json(void **state)
{
	static const char nul[] = "{\"v\":1,\"cmd\":\"hel\0lo\"}";
	json_t *r;

	(void)state;
	expect_error("{", "bad_request", NULL);
	expect_error("", "bad_request", NULL);
	expect_error("{\"v\":1,\"cmd\":\"\xff\"}", "bad_request", NULL);
	expect_error("{\"v\":1,\"v\":1,\"cmd\":\"hello\"}", "bad_request",
		     NULL);
	r = ask_len(nul, sizeof(nul) - 1);
	assert_error(r, "bad_request", NULL);
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
}

static void test_not_object(void **state)
{
	(void)state;
	expect_error("[1,2]", "bad_request", NULL);
	expect_error("\"hello\"", "bad_request", NULL);
	expect_error("42", "bad_request", NULL);
	expect_error("null", "bad_request", NULL);
}

static void test_version(void **state)
{
	json_t *r;

	(void)state;
	r = ask("{\"id\":5,\"cmd\":\"hello\"}");
	assert_error(r, "bad_request", "v");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 5);
	json_decref(r);
	expect_error("{\"v\":2,\"cmd\":\"hello\"}", "bad_request", "v");
	expect_error("{\"v\":\"1\",\"cmd\":\"hello\"}", "bad_request", "v");
	expect_error("{\"v\":1.0,\"cmd\":\"hello\"}", "bad_request", "v");
}

static void test_id_echoed(void **state)
{
	static const char *const ids[] = {"7", "\"x-1\"", "{\"a\":[1,2]}",
					  "null", "-1.5"};
	char req[128];
	json_t *r, *want;

	(void)state;
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		snprintf(req, sizeof(req),
			 "{\"v\":1,\"id\":%s,\"cmd\":\"hello\"}", ids[i]);
		r = ask(req);
		want = json_loads(ids[i], JSON_DECODE_ANY, NULL);
		assert_true(json_equal(json_object_get(r, "id"), want));
		json_decref(want);
		json_decref(r);
	}
	r = ask("{\"v\":1,\"cmd\":\"hello\"}");
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	/* an error echoes it too */
	r = ask("{\"v\":1,\"id\":\"q\",\"cmd\":\"nope\"}");
	assert_string_equal(json_string_value(json_object_get(r, "id")), "q");
	json_decref(r);
}

static void test_cmd(void **state)
{
	(void)state;
	expect_error("{\"v\":1}", "bad_request", "cmd");
	expect_error("{\"v\":1,\"cmd\":5}", "bad_request", "cmd");
	expect_error("{\"v\":1,\"cmd\":null}", "bad_request", "cmd");
	expect_error("{\"v\":1,\"cmd\":\"fly\"}", "unknown_command", "cmd");
	expect_error("{\"v\":1,\"cmd\":\"\"}", "unknown_command", "cmd");
}

static void test_device_arg(void **state)
{
	static const char *const cmds[] = {"start", "pause", "resume",
					   "stop",  "vent",  "ack"};
	char req[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		snprintf(req, sizeof(req), "{\"v\":1,\"cmd\":\"%s\"}", cmds[i]);
		expect_error(req, "bad_request", "device");
		snprintf(req, sizeof(req),
			 "{\"v\":1,\"cmd\":\"%s\",\"device\":1}", cmds[i]);
		expect_error(req, "bad_request", "device");
		snprintf(req, sizeof(req),
			 "{\"v\":1,\"cmd\":\"%s\",\"device\":\"zz\"}", cmds[i]);
		expect_error(req, "unknown_device", "device");
	}
	expect_error("{\"v\":1,\"cmd\":\"status\",\"device\":\"zz\"}",
		     "unknown_device", "device");
	expect_error("{\"v\":1,\"cmd\":\"status\",\"device\":[]}",
		     "bad_request", "device");
	assert_int_equal(submits, 0);
}

static void test_start_profile(void **state)
{
	(void)state;
	expect_error("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\"}",
		     "bad_request", "profile");
	expect_error("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\","
		     "\"profile\":\"nope\"}",
		     "unknown_profile", "profile");
	expect_error("{\"v\":1,\"cmd\":\"profile.get\",\"name\":\"nope\"}",
		     "unknown_profile", "name");
	expect_error("{\"v\":1,\"cmd\":\"profile.get\"}", "bad_request",
		     "name");
	assert_int_equal(submits, 0);
}

/* ---- device commands ---- */

static void test_deferred_and_busy(void **state)
{
	struct fd_pending *pd = &d->dev[0].pending;
	struct fd_outbox *out = xcalloc(1, sizeof(*out));
	json_t *r;

	(void)state;
	/* unknown fields are ignored */
	assert_null(ask_deferred("{\"v\":1,\"id\":9,\"cmd\":\"start\","
				 "\"device\":\"a\",\"profile\":\"wave\","
				 "\"later\":true}"));
	assert_int_equal(submits, 1);
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
	assert_string_equal(last_cmd.profile.name, "wave");
	assert_true(pd->active);
	assert_int_equal(pd->token, last_cmd.token);
	assert_memory_equal(pd->env.identity, "client", 6);

	/* a second command while the first waits: busy, not submitted */
	expect_error("{\"v\":1,\"cmd\":\"stop\",\"device\":\"a\"}", "busy",
		     NULL);
	assert_int_equal(submits, 1);
	/* the other device is free */
	assert_null(
		ask_deferred("{\"v\":1,\"cmd\":\"vent\",\"device\":\"b\"}"));
	assert_int_equal(submits, 2);

	/* a stale verdict (another token) is not this request's answer */
	out->have_snap = true;
	out->snap.state = FD_RUNNING;
	out->have_verdict = true;
	out->verdict.token = pd->token + 1;
	out->verdict.verdict = FD_OK;
	fd_commands_news(d, &d->dev[0], out);
	assert_null(captured);
	assert_true(pd->active);
	/* the verdict: ok with the state of the snapshot it came with, then
	 * the slot is free */
	out->verdict.token = pd->token;
	fd_commands_news(d, &d->dev[0], out);
	r = captured;
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
	assert_string_equal(
		json_string_value(json_object_get(result(r), "state")),
		"running");
	assert_false(pd->active);

	/* the device layer refuses: busy */
	submit_rc = -1;
	expect_error("{\"v\":1,\"cmd\":\"pause\",\"device\":\"a\"}", "busy",
		     NULL);
	assert_false(pd->active);
	free(out);
}

static void test_verdict_codes(void **state)
{
	static const struct {
		enum fd_verdict v;
		const char *code;
	} map[] = {{FD_EINTERLOCK, "interlock"},
		   {FD_EFORBIDDEN, "forbidden"},
		   {FD_EBUSY, "busy"}};
	struct fd_outbox *out = xcalloc(1, sizeof(*out));
	json_t *r;

	(void)state;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		memset(out, 0, sizeof(*out));
		out->have_verdict = true;
		out->verdict.verdict = map[i].v;
		snprintf(out->verdict.why, sizeof(out->verdict.why),
			 "because %zu", i);
		r = verdict_reply(&d->dev[0], out);
		assert_error(r, map[i].code, NULL);
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(r, "error"), "message")),
			out->verdict.why);
		json_decref(r);
	}
	free(out);
}

/* ---- queries ---- */

static void test_queries(void **state)
{
	json_t *r, *res, *dev;

	(void)state;
	r = ask("{\"v\":1,\"cmd\":\"hello\"}");
	res = result(r);
	assert_int_equal(json_integer_value(json_object_get(res, "protocol")),
			 1);
	assert_int_equal(json_array_size(json_object_get(res, "devices")), 2);
	assert_int_equal(json_integer_value(json_object_get(res, "tick_hz")),
			 50);
	json_decref(r);

	r = ask("{\"v\":1,\"cmd\":\"devices\"}");
	dev = json_array_get(json_object_get(result(r), "devices"), 1);
	assert_string_equal(json_string_value(json_object_get(dev, "name")),
			    "b");
	assert_string_equal(json_string_value(json_object_get(dev, "state")),
			    "offline");
	assert_string_equal(json_string_value(json_object_get(dev, "address")),
			    "127.0.0.1:1503");
	assert_true(json_is_false(
		json_object_get(json_object_get(dev, "link"), "up")));
	json_decref(r);

	r = ask("{\"v\":1,\"cmd\":\"profiles\"}");
	dev = json_array_get(json_object_get(result(r), "profiles"), 0);
	assert_string_equal(json_string_value(json_object_get(dev, "name")),
			    "wave");
	assert_true(json_number_value(json_object_get(dev, "duration_s")) > 0);
	json_decref(r);

	/* no journal here (journal = off): the record's queries say so */
	r = ask("{\"v\":1,\"cmd\":\"history\"}");
	assert_true(json_is_false(json_object_get(r, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(r, "error"), "message")),
			       "journal = off"));
	json_decref(r);

	r = ask("{\"v\":1,\"cmd\":\"status\"}");
	assert_int_equal(json_array_size(json_object_get(result(r), "devices")),
			 2);
	json_decref(r);
}

/* ---- profile.put ---- */

static int count_files(void)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dp);
	return n;
}

static void test_put_invalid(void **state)
{
	json_t *r;

	(void)state;
	r = ask("{\"v\":1,\"cmd\":\"profile.put\",\"profile\":{\"name\":\"hi\","
		"\"description\":\"x\",\"chambers\":2,\"max_pressure_mmhg\":"
		"500,\"max_ramp_mmhg_s\":10,\"repeat\":1,\"steps\":[{\"set\":"
		"{\"1\":30},\"ramp_s\":3,\"hold_s\":2}]}}");
	assert_error(r, "invalid_profile", "max_pressure_mmhg");
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(r, "error"), "message")),
			       "max_pressure_mmhg"));
	json_decref(r);
	/* a bad step names its path */
	r = ask("{\"v\":1,\"cmd\":\"profile.put\",\"profile\":{\"name\":\"hi\","
		"\"description\":\"x\",\"chambers\":2,\"max_pressure_mmhg\":"
		"40,\"max_ramp_mmhg_s\":10,\"repeat\":1,\"steps\":[{\"set\":"
		"{\"1\":45},\"ramp_s\":5,\"hold_s\":2}]}}");
	assert_error(r, "invalid_profile", NULL);
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(r, "error"), "field")),
			       "steps[0]"));
	json_decref(r);
	expect_error("{\"v\":1,\"cmd\":\"profile.put\"}", "bad_request",
		     "profile");
	expect_error("{\"v\":1,\"cmd\":\"profile.put\",\"profile\":\"x\"}",
		     "bad_request", "profile");
	expect_error("{\"v\":1,\"cmd\":\"profile.put\",\"profile\":{}}",
		     "invalid_profile", NULL);
	assert_int_equal(d->profiles.n, 1);
	assert_int_equal(count_files(), 1);
	assert_null(fd_profiles_find(&d->profiles, "hi"));
}

/* A profile.put is answered once the store has the file on disk: run
 * the loop until the answer comes. */
static json_t *put(const char *req)
{
	json_decref(captured);
	captured = NULL;
	assert_null(ask_deferred(req));
	for (int i = 0; captured == NULL && i < 1000; i++)
		event_base_loop(d->base, EVLOOP_ONCE);
	assert_non_null(captured);
	return json_incref(captured);
}

static void test_put_valid(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_error err;
	char req[1024], path[128];
	json_t *r, *doc;

	(void)state;
	snprintf(req, sizeof(req),
		 "{\"v\":1,\"id\":1,\"cmd\":\"profile.put\",\"profile\":%s}",
		 good_profile);
	/* the same name as the stored one, another name: */
	memcpy(strstr(req, "\"wave\""), "\"wav2\"", 6);
	r = put(req);
	assert_string_equal(
		json_string_value(json_object_get(result(r), "name")), "wav2");
	assert_true(json_is_true(json_object_get(result(r), "stored")));
	json_decref(r);
	assert_int_equal(d->profiles.n, 2);
	assert_int_equal(count_files(), 2); /* no temporary left */
	snprintf(path, sizeof(path), "%s/wav2.json", dir);
	assert_int_equal(fascia_profile_load_file(path, &d->limits, &p, &err),
			 0);
	assert_true(fascia_profile_equal(
		&p, fd_profiles_find(&d->profiles, "wav2")));
	/* replacing one keeps the count */
	r = put(req);
	result(r);
	json_decref(r);
	assert_int_equal(d->profiles.n, 2);
	assert_int_equal(count_files(), 2);

	r = ask("{\"v\":1,\"cmd\":\"profile.get\",\"name\":\"wav2\"}");
	doc = json_object_get(result(r), "profile");
	assert_true(json_is_object(doc));
	assert_string_equal(json_string_value(json_object_get(doc, "name")),
			    "wav2");
	assert_int_equal(json_integer_value(json_object_get(doc, "chambers")),
			 2);
	json_decref(r);
	/* the fresh set reloads from the directory */
	{
		struct fd_profiles *set = xcalloc(1, sizeof(*set));

		assert_int_equal(fd_profiles_load(dir, &d->limits, set), 0);
		assert_int_equal(set->n, 2);
		free(set);
	}
}

/* ---- the state message ---- */

static json_t *member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		fail_msg("missing \"%s\"", key);
	return v;
}

static void fill_snapshot(struct fd_snapshot *s)
{
	s->tick = 100;
	s->mono_s = 1000.0;
	s->unix_ms = 1795440000123;
	s->state = FD_RUNNING;
	s->have_session = true;
	s->session_seq = 3;
	snprintf(s->session_id, sizeof(s->session_id), "a-1795440000123-3fa2");
	snprintf(s->profile, sizeof(s->profile), "wave");
	s->pos.step = 2;
	s->pos.cycle = 1;
	s->pos.elapsed_s = 151.23;
	s->pos.remaining_s = 208.77;
	s->chambers = 2;
	s->pressure[0] = 31.84;
	s->setpoint[0] = 32.0;
	s->valve[0] = 0;
	s->pressure[1] = 12.06;
	s->setpoint[1] = 20;
	s->valve[1] = 1;
	s->supply = 212.44;
	s->alarm[0].id = ILK_DEVIATION;
	s->alarm[0].chamber = 1;
	s->alarm[0].present = true;
	s->alarm[0].since_s = 999.5;
	snprintf(s->alarm[0].message, sizeof(s->alarm[0].message), "leak");
	s->nalarm = 1;
	s->link.up = true;
	s->link.rtt_us = 180;
	s->link.exchanges = 5000;
	s->link.fc23 = true;
	s->link.rtt_hist[2] = 7;
	s->link.ticks = 5001;
	s->link.late_ticks = 2;
	s->link.max_late_ms = 1.26;
	s->status = 0x23;
	s->have_reading = true;
}

static void assert_number(json_t *v, double want)
{
	assert_true(json_is_number(v));
	assert_true(fabs(json_number_value(v) - want) < 1e-9);
}

static void check_state(json_t *st)
{
	json_t *sess = member(st, "session"), *ch, *al, *link;

	assert_int_equal(json_integer_value(member(st, "v")), 1);
	assert_string_equal(json_string_value(member(st, "device")), "a");
	assert_true(json_is_integer(member(st, "seq")));
	assert_true(json_integer_value(member(st, "time")) > 1600000000000);
	assert_string_equal(json_string_value(member(st, "state")), "running");
	assert_string_equal(json_string_value(member(sess, "id")),
			    "a-1795440000123-3fa2");
	assert_string_equal(json_string_value(member(sess, "profile")), "wave");
	assert_int_equal(json_integer_value(member(sess, "step")), 2);
	assert_int_equal(json_integer_value(member(sess, "cycle")), 1);
	assert_number(member(sess, "elapsed_s"), 151.2);
	assert_number(member(sess, "remaining_s"), 208.8);
	ch = member(st, "chambers");
	assert_int_equal(json_array_size(ch), 2);
	assert_number(member(json_array_get(ch, 0), "pressure"), 31.8);
	assert_number(member(json_array_get(ch, 0), "setpoint"), 32.0);
	assert_string_equal(
		json_string_value(member(json_array_get(ch, 0), "valve")),
		"hold");
	assert_string_equal(
		json_string_value(member(json_array_get(ch, 1), "valve")),
		"inflate");
	assert_number(member(st, "supply"), 212.4);
	al = json_array_get(member(st, "alarms"), 0);
	assert_string_equal(json_string_value(member(al, "id")), "deviation");
	assert_int_equal(json_integer_value(member(al, "chamber")), 1);
	assert_string_equal(json_string_value(member(al, "priority")),
			    "medium");
	assert_true(json_is_true(member(al, "latched")));
	assert_true(json_is_true(member(al, "present")));
	assert_int_equal(json_integer_value(member(al, "since")),
			 1795440000123 - 500);
	assert_string_equal(json_string_value(member(al, "message")), "leak");
	link = member(st, "link");
	assert_true(json_is_true(member(link, "up")));
	assert_int_equal(json_integer_value(member(link, "rtt_us")), 180);
	assert_int_equal(json_integer_value(member(link, "timeouts")), 0);
	assert_int_equal(json_integer_value(member(link, "reconnects")), 0);
	assert_int_equal(json_integer_value(member(link, "exchanges")), 5000);
	assert_true(json_is_integer(member(link, "exceptions")));
	assert_true(json_is_integer(member(link, "errors")));
	assert_true(json_is_true(member(link, "fc23")));
	assert_int_equal(json_array_size(member(link, "rtt_hist")),
			 FD_RTT_BUCKETS);
	assert_int_equal(
		json_integer_value(json_array_get(member(link, "rtt_hist"), 2)),
		7);
	assert_int_equal(json_integer_value(
				 member(member(st, "device_status"), "status")),
			 0x23);
	assert_true(
		json_is_integer(member(member(st, "device_status"), "fault")));
	assert_int_equal(
		json_integer_value(member(member(st, "ticks"), "count")), 5001);
	assert_int_equal(
		json_integer_value(member(member(st, "ticks"), "late")), 2);
	assert_number(member(member(st, "ticks"), "max_late_ms"), 1.3);
}

static void test_state_json(void **state)
{
	struct fd_outbox *out = xcalloc(1, sizeof(*out));
	json_t *r, *st;

	(void)state;
	/* before any snapshot: offline, nothing known */
	r = ask("{\"v\":1,\"cmd\":\"status\",\"device\":\"a\"}");
	st = result(r);
	assert_string_equal(json_string_value(member(st, "state")), "offline");
	assert_true(json_is_null(member(st, "session")));
	assert_int_equal(json_array_size(member(st, "chambers")), 0);
	assert_int_equal(json_array_size(member(st, "alarms")), 0);
	assert_true(json_is_false(member(member(st, "link"), "up")));
	json_decref(r);

	/* the control thread runs, but the device has never answered:
	 * unknown, not zero */
	d->dev[0].box.have_snap = true;
	fill_snapshot(&d->dev[0].box.snap);
	d->dev[0].box.snap.have_reading = false;
	d->dev[0].box.snap.state = FD_OFFLINE;
	d->dev[0].box.snap.have_session = false;
	d->dev[0].box.snap.nalarm = 0;
	r = ask("{\"v\":1,\"cmd\":\"status\",\"device\":\"a\"}");
	st = result(r);
	assert_string_equal(json_string_value(member(st, "state")), "offline");
	assert_int_equal(json_array_size(member(st, "chambers")), 0);
	assert_true(json_is_null(member(st, "supply")));
	assert_true(json_is_null(member(st, "device_status")));
	json_decref(r);

	fill_snapshot(&d->dev[0].box.snap);
	out->have_snap = true;
	out->snap = d->dev[0].box.snap;
	out->changed = true;
	fd_publish_news(d, &d->dev[0], out);
	r = ask("{\"v\":1,\"cmd\":\"status\",\"device\":\"a\"}");
	check_state(result(r));
	/* the lateness histogram: in the status reply, not in state messages */
	assert_true(
		json_is_array(member(member(result(r), "ticks"), "late_hist")));
	json_decref(r);
	r = fd_publish_state_json("a", &out->snap, NULL, 1, fd_clock_unix_ms(),
				  false);
	check_state(r);
	assert_null(json_object_get(member(r, "ticks"), "late_hist"));
	/* as sent: pressures rounded to 0.1 read so (31.84 -> 31.8), not
	 * 31.800000000000001 */
	{
		char *text = json_dumps(r, FD_JSON_FLAGS);

		assert_non_null(strstr(text, "\"pressure\":31.8,"));
		free(text);
	}
	json_decref(r);
	/* publishing advanced seq: the change of state, and nothing else */
	assert_int_equal(d->dev[0].seq, 1);
	out->changed = false;
	fd_publish_news(d, &d->dev[0], out);
	assert_int_equal(d->dev[0].seq, 1);
	free(out);
}

static void test_event_json(void **state)
{
	struct fd_outbox *out = xcalloc(1, sizeof(*out));
	struct fd_event_rec e;
	const char *topic;
	json_t *m;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.kind = FD_E_STATE;
	e.from = FD_IDLE;
	e.to = FD_RUNNING;
	e.cause = FD_EV_START;
	e.ctx.unix_ms = 1000; /* when it happened, not when it is sent */
	snprintf(e.text, sizeof(e.text), "idle -> running");
	m = fd_publish_event_json("a", &e, 7, &topic);
	assert_string_equal(topic, "event");
	assert_string_equal(json_string_value(member(m, "kind")), "state");
	assert_string_equal(json_string_value(member(m, "from")), "idle");
	assert_string_equal(json_string_value(member(m, "to")), "running");
	assert_string_equal(json_string_value(member(m, "cause")), "start");
	assert_int_equal(json_integer_value(member(m, "seq")), 7);
	assert_int_equal(json_integer_value(member(m, "time")), 1000);
	json_decref(m);

	e.kind = FD_E_ALARM;
	e.alarm = ILK_OVERPRESSURE;
	e.chamber = 2;
	snprintf(e.text, sizeof(e.text), "chamber 2 at 90 mmHg");
	m = fd_publish_event_json("a", &e, 8, &topic);
	assert_string_equal(topic, "alarm");
	assert_string_equal(json_string_value(member(m, "kind")), "raised");
	assert_string_equal(json_string_value(member(m, "alarm")),
			    "overpressure");
	assert_string_equal(json_string_value(member(m, "priority")), "high");
	assert_int_equal(json_integer_value(member(m, "chamber")), 2);
	assert_string_equal(json_string_value(member(m, "device")), "a");
	json_decref(m);

	/* a session event: the session of its own tick */
	e.kind = FD_E_SESSION;
	e.ctx.have_session = true;
	e.ctx.session_seq = 4;
	snprintf(e.ctx.session_id, sizeof(e.ctx.session_id), "a-4-0000");
	snprintf(e.ctx.profile, sizeof(e.ctx.profile), "wave");
	e.ctx.pos.step = 3;
	snprintf(e.text, sizeof(e.text), "paused");
	m = fd_publish_event_json("a", &e, 9, &topic);
	assert_string_equal(
		json_string_value(member(member(m, "session"), "id")),
		"a-4-0000");
	assert_int_equal(
		json_integer_value(member(member(m, "session"), "step")), 3);
	json_decref(m);

	/* publishing without a socket still counts; a change between the
	 * sub-states of fault is not published */
	out->ev[0] = e;
	out->ev[1] = e;
	out->ev[1].kind = FD_E_STATE;
	out->ev[1].from = FD_FAULT;
	out->ev[1].to = FD_FAULT_RESETTING;
	assert_false(fd_publish_wanted(&out->ev[1]));
	out->nev = 2;
	fd_publish_news(d, &d->dev[1], out);
	assert_int_equal(d->dev[1].seq, 1);
	free(out);
}

/* Random bytes and mangled requests: always an error reply. */
static void test_garbage(void **state)
{
	char buf[256];
	json_t *r;

	(void)state;
	srand(1);
	for (int i = 0; i < 2000; i++) {
		size_t n = (size_t)(rand() % (int)sizeof(buf));

		for (size_t j = 0; j < n; j++)
			buf[j] = (char)(rand() % 256);
		if (i % 2 && n > 2) {
			buf[0] = '{';
			buf[n - 1] = '}';
		}
		r = ask_len(buf, n);
		assert_non_null(r);
		assert_true(json_is_false(json_object_get(r, "ok")));
		json_decref(r);
	}
	assert_int_equal(submits, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_not_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_object, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id_echoed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_arg, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_profile, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deferred_and_busy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verdict_codes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_invalid, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_put_valid, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_state_json, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_event_json, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

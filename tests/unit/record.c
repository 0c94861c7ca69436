/*
 * The treatment record's main-thread side (daemon/record.c), through the
 * requests (commands.c) and a device's news, on a real journal and reader
 * in a temporary directory: start's patient and note and its session id;
 * the journal_required interlock (a journal in a missing directory, then
 * made; commits made to fail with the FD_JOURNAL_TEST hook); the sessions
 * the news opens and closes, how they end, their dose and their log; a
 * verdict's answer held until its record is committed (another connection
 * holding the write lock keeps the writer waiting), or sent saying it is
 * not; and no patient or note in anything published (zmq_send() is
 * captured under publish.c).  The writer retries every 50 ms; the
 * records' clock is the test's; the loop runs until what is awaited
 * comes, a watchdog turning a hang into a failure.
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
#include <zmq.h>

#define FD_JOURNAL_TEST
#define JOURNAL_RETRY_MS 50

#include "../../daemon/interlock.c"
#include "../../daemon/profiles.c"
/* What fd_publish() sends is kept here instead of going to a socket. */
static int published_send(void *sock, const void *buf, size_t len, int flags);
#define zmq_send published_send
#include "../../daemon/publish.c"
#undef zmq_send
#include "../../daemon/server.c"
#include "../../daemon/security.c"
#include "../../daemon/certs.c"
#include "../../daemon/config.c"
#include "../../daemon/confdev.c"
/* The replies commands.c and record.c send are captured here. */
static void captured_send(struct fd_daemon *dd, const struct fd_envelope *e,
			  json_t *reply);
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

#define T0 1795440000000LL
#define MAX_SENT 16
#define PATIENT "MRN-0042"
#define NOTE "left leg, after surgery"

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
static struct event *watchdog;
static bool timed_out;
static struct fd_server fake_server; /* pub set: fd_publish() sends */
/* a client that may do everything: the roles are test_security.py's */
static const struct fd_envelope env = {
	.identity = "client", .identity_len = 6, .who.role = FD_ROLE_ADMIN};

/* The replies sent, and how many records were committed at the time. */
static json_t *sent[MAX_SENT];
static uint64_t sent_committed[MAX_SENT];
static int nsent;

/* Everything published, one message a line. */
static char *published;
static size_t published_len;

static void captured_send(struct fd_daemon *dd, const struct fd_envelope *e,
			  json_t *reply)
{
	struct fd_journal_health h = {0};

	(void)dd;
	(void)e;
	assert_true(nsent < MAX_SENT);
	if (d->journal != NULL)
		fd_journal_health(d->journal, &h);
	sent_committed[nsent] = h.committed;
	sent[nsent++] = reply;
}

static int published_send(void *sock, const void *buf, size_t len, int flags)
{
	char *p = realloc(published, published_len + len + 2);

	(void)flags;
	assert_ptr_equal(sock, &fake_server);
	assert_non_null(p);
	published = p;
	memcpy(published + published_len, buf, len);
	published_len += len;
	published[published_len++] = '\n';
	published[published_len] = '\0';
	return (int)len;
}

static void forget_sent(void)
{
	for (int i = 0; i < nsent; i++)
		json_decref(sent[i]);
	nsent = 0;
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = true;
}

static void rig(const char *journal, bool required)
{
	struct timeval tv = {20, 0};
	char path[128];
	FILE *f;

	d = xcalloc(1, sizeof(*d));
	d->conf.tick_hz = 50;
	d->conf.publish_hz = 10;
	d->conf.max_session_s = 3600;
	d->conf.journal_required = required;
	d->conf.trace_hz = 1;
	d->conf.trace_keep_days = 365;
	snprintf(d->conf.journal, sizeof(d->conf.journal), "%s", journal);
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
	snprintf(path, sizeof(path), "%s/wave.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(good_profile, f);
	fclose(f);
	assert_int_equal(fd_profiles_load(dir, &d->limits, &d->profiles), 0);
	assert_int_equal(d->profiles.n, 1);
	submit_rc = 0;
	submits = 0;
	nsent = 0;
	published_len = 0;
	stub_unix_ms = T0;
	fake_server.pub = &fake_server;
	d->server = &fake_server;
	assert_non_null(d->base = event_base_new());
	assert_non_null(watchdog = evtimer_new(d->base, watchdog_cb, NULL));
	assert_int_equal(evtimer_add(watchdog, &tv), 0);
	timed_out = false;
	fd_record_open(d);
	assert_non_null(d->journal);
	assert_non_null(d->query);
}

static int setup(void **state)
{
	char path[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-rec-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	rig(path, true);
	return 0;
}

/* The journal's directory does not exist: the journal cannot open. */
static int setup_missing(void **state)
{
	char path[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-rec-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing/journal.db", dir);
	rig(path, true);
	return 0;
}

static int setup_missing_optional(void **state)
{
	setup_missing(state);
	d->conf.journal_required = false;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fd_record_close(d);
	fd_commands_close(d);
	forget_sent();
	event_free(watchdog);
	event_base_free(d->base);
	free(d->dev);
	free(d);
	free(published);
	published = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- waiting on the loop ---- */

static struct fd_journal_health health(void)
{
	struct fd_journal_health h;

	fd_journal_health(d->journal, &h);
	return h;
}

static void loop_once(void)
{
	assert_false(timed_out);
	assert_int_equal(event_base_loop(d->base, EVLOOP_ONCE), 0);
}

static void until_sent(int n)
{
	while (nsent < n)
		loop_once();
}

static void until_committed(void)
{
	struct fd_journal_health h;

	while (h = health(), h.committed < h.queued || h.waiting > 0)
		loop_once();
}

static void until_healthy(bool ok)
{
	while (health().ok != ok)
		loop_once();
}

/* The commits of the writer fail (SQLITE_FULL) from now, or no more. */
static void fail_commits(int n)
{
	pthread_mutex_lock(&d->journal->lock);
	d->journal->test_fail_commits = n;
	pthread_mutex_unlock(&d->journal->lock);
}

/* ---- requests ---- */

static json_t *ask(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *ask(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fd_server_handle(d, buf, strlen(buf), &env);
}

static const char *err_code(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "code"));
}

static const char *err_field(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "field"));
}

static const char *err_message(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "message"));
}

static json_t *result(json_t *r)
{
	assert_true(json_is_true(json_object_get(r, "ok")));
	return json_object_get(r, "result");
}

/* A query of the record: deferred to the reader, answered on the loop. */
static json_t *query(const char *text)
{
	json_t *r;

	forget_sent();
	assert_null(fd_server_handle(d, text, strlen(text), &env));
	until_sent(1);
	assert_int_equal(nsent, 1);
	r = sent[0];
	nsent = 0;
	return r;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

static void assert_number(json_t *v, double want)
{
	assert_true(json_is_number(v));
	if (fabs(json_number_value(v) - want) > 1e-9)
		fail_msg("%g, not %g", json_number_value(v), want);
}

/* ---- a device's news ---- */

static struct fd_outbox *news_of(struct fd_device *dev)
{
	struct fd_outbox *o = xcalloc(1, sizeof(*o));

	o->have_snap = true;
	o->snap = dev->box.snap;
	o->snap.chambers = dev->conf.chambers;
	o->snap.have_reading = true;
	o->snap.unix_ms = stub_unix_ms;
	return o;
}

static struct fd_event_rec *add_event(struct fd_outbox *o,
				      enum fd_event_kind kind)
{
	struct fd_event_rec *e = &o->ev[o->nev++];
	const struct fd_snapshot *sn = &o->snap;

	assert_true(o->nev <= FD_OUTBOX_EVENTS);
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ctx.unix_ms = stub_unix_ms;
	e->ctx.have_session = sn->have_session;
	e->ctx.session_seq = sn->session_seq;
	memcpy(e->ctx.session_id, sn->session_id, sizeof(sn->session_id));
	memcpy(e->ctx.profile, sn->profile, sizeof(sn->profile));
	return e;
}

static void add_state(struct fd_outbox *o, enum fd_state from, enum fd_state to,
		      enum fd_event cause)
{
	struct fd_event_rec *e = add_event(o, FD_E_STATE);

	e->from = from;
	e->to = to;
	e->cause = cause;
	snprintf(e->text, sizeof(e->text), "%s -> %s",
		 fd_state_table_name(from), fd_state_table_name(to));
	o->snap.state = to;
	o->changed = true;
}

static void add_text(struct fd_outbox *o, enum fd_event_kind kind,
		     const char *text)
{
	snprintf(add_event(o, kind)->text, sizeof(o->ev[0].text), "%s", text);
}

static void add_alarm(struct fd_outbox *o, enum fd_event_kind kind,
		      enum ilk_id id, int chamber, double value,
		      double threshold, const char *text)
{
	struct fd_event_rec *e = add_event(o, kind);

	e->alarm = id;
	e->chamber = chamber;
	e->value = value;
	e->threshold = threshold;
	snprintf(e->text, sizeof(e->text), "%s", text);
	o->changed = true;
}

/* The verdict on the last command submitted. */
static void add_verdict(struct fd_outbox *o, enum fd_verdict v)
{
	o->have_verdict = true;
	o->verdict.cmd = last_cmd.cmd;
	o->verdict.token = last_cmd.token;
	o->verdict.verdict = v;
}

/* The dose so far of the snapshot's session; final once closed. */
static void set_dose(struct fd_snapshot *sn, bool open)
{
	struct fd_dose *ds = &sn->dose[sn->session_seq & 1];
	static const double max[] = {31.26, 32, 12, 0};
	static const double mmhg_s[] = {1234.56, 800, 10, 0};
	static const double above[] = {20.04, 5, 0, 0};
	static const double set_s[] = {100, 100, 100, 0};
	static const double set_mmhg_s[] = {2500, 2000, 500, 0};

	memset(ds, 0, sizeof(*ds));
	ds->session_seq = sn->session_seq;
	ds->open = open;
	ds->chambers = 4;
	ds->delivered_s = open ? 10 : 300.04;
	ds->paused_s = open ? 0 : 12.36;
	for (int i = 0; i < 4; i++) {
		ds->max_mmhg[i] = max[i];
		ds->mmhg_s[i] = mmhg_s[i];
		ds->above_s[i] = above[i];
		ds->set_s[i] = set_s[i];
		ds->set_mmhg_s[i] = set_mmhg_s[i];
	}
}

/* fd_device_news()'s consumers, in its order; the snapshot becomes the
 * device's (what fd_device_peek() gives). */
static void give_news(struct fd_device *dev, struct fd_outbox *o)
{
	dev->box.have_snap = true;
	dev->box.snap = o->snap;
	fd_publish_news(d, dev, o);
	fd_record_news(d, dev, o);
	fd_commands_news(d, dev, o);
	free(o);
}

/* The answer to the verdict just given: held until its record is
 * committed, then sent. */
static json_t *held_answer(void)
{
	uint64_t qno = health().queued;
	json_t *r;

	assert_int_equal(nsent, 0);
	until_sent(1);
	assert_int_equal(nsent, 1);
	assert_true(sent_committed[0] >= qno);
	r = sent[0];
	nsent = 0;
	return r;
}

/* A start with the given arguments (JSON members, "" for none), taken by
 * the device; its id in id.  The session's record is open. */
static void begin_session(struct fd_device *dev, const char *args, char *id)
{
	struct fd_outbox *o;
	json_t *r;

	assert_null(ask("{\"v\":1,\"id\":1,\"cmd\":\"start\",\"device\":\"%s\","
			"\"profile\":\"wave\"%s}",
			dev->conf.name, args));
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
	snprintf(id, FD_SESSION_ID_MAX, "%s", last_cmd.session_id);
	o = news_of(dev);
	o->snap.have_session = true;
	o->snap.session_seq++;
	snprintf(o->snap.session_id, sizeof(o->snap.session_id), "%s", id);
	snprintf(o->snap.profile, sizeof(o->snap.profile), "wave");
	set_dose(&o->snap, true);
	add_state(o, FD_IDLE, FD_RUNNING, FD_EV_START);
	add_text(o, FD_E_SESSION, "started wave");
	add_verdict(o, FD_OK);
	give_news(dev, o);
	assert_true(dev->rec.open);
	assert_string_equal(dev->rec.id, id);
	r = held_answer();
	assert_string_equal(str(result(r), "state"), "running");
	json_decref(r);
}

/* The session's last news: at rest, the final dose. */
static struct fd_outbox *end_news(struct fd_device *dev)
{
	struct fd_outbox *o = news_of(dev);

	set_dose(&o->snap, false);
	return o;
}

/* ---- start's patient and note ---- */

static void test_patient_refused(void **state)
{
	static const char *const bad[] = {
		"\"MRN 0042\"",
		"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAA\"",
		"42",
		"\"\"",
		"\"M\\u00fcller\"",
		"{\"mrn\":\"x\"}",
	};
	char args[700], note[600];
	json_t *r, *log;
	char *text;

	(void)state;
	assert_int_equal(strlen(bad[1]), 65 + 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(args, sizeof(args), ",\"patient\":%s", bad[i]);
		r = ask("{\"v\":1,\"id\":2,\"cmd\":\"start\",\"device\":\"a\","
			"\"profile\":\"wave\"%s}",
			args);
		assert_non_null(r);
		assert_string_equal(err_code(r), "bad_request");
		assert_string_equal(err_field(r), "patient");
		assert_non_null(strstr(err_message(r), "patient"));
		json_decref(r);
	}
	memset(note, 'n', 501);
	note[501] = '\0';
	r = ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\",\"profile\":"
		"\"wave\",\"patient\":\"P1\",\"note\":\"%s\"}",
		note);
	assert_string_equal(err_code(r), "bad_request");
	assert_string_equal(err_field(r), "note");
	json_decref(r);
	r = ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\",\"profile\":"
		"\"wave\",\"note\":7}");
	assert_string_equal(err_field(r), "note");
	json_decref(r);
	/* nothing went to the device, nothing waits for a session */
	assert_int_equal(submits, 0);
	assert_false(d->dev[0].pending.active);
	assert_false(d->dev[0].rec.starting);
	assert_null(d->dev[0].rec.start_rec);

	/* the refusals are in the log, without what was refused */
	until_committed();
	log = query("{\"v\":1,\"cmd\":\"log\",\"kinds\":[\"command\"]}");
	assert_int_equal(
		json_array_size(json_object_get(result(log), "entries")), 8);
	assert_string_equal(
		str(json_array_get(json_object_get(result(log), "entries"), 0),
		    "outcome"),
		"bad_request");
	text = json_dumps(log, 0);
	assert_null(strstr(text, "MRN 0042"));
	assert_null(strstr(text, "AAAAAAAA"));
	free(text);
	json_decref(log);

	/* 64 characters is a patient reference */
	memset(note, 'A', 64);
	note[64] = '\0';
	snprintf(args, sizeof(args), ",\"patient\":\"%s\"", note);
	assert_null(ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\","
			"\"profile\":\"wave\"%s}",
			args));
	assert_int_equal(submits, 1);
	assert_true(d->dev[0].rec.starting);
}

static void test_start_session_id(void **state)
{
	struct fd_record_dev *rd = &d->dev[1].rec;
	char ms[32], id[FD_SESSION_ID_MAX];
	struct fd_outbox *o;
	const char *p;
	json_t *r;

	(void)state;
	stub_unix_ms = T0 + 4321;
	assert_null(ask("{\"v\":1,\"id\":3,\"cmd\":\"start\",\"device\":\"b\","
			"\"profile\":\"wave\",\"patient\":\"" PATIENT
			"\",\"note\":\"" NOTE "\"}"));
	assert_int_equal(submits, 1);
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
	assert_string_equal(last_cmd.profile.name, "wave");
	snprintf(id, sizeof(id), "%s", last_cmd.session_id);
	/* DEVICE-<ms>-<4 hex> */
	snprintf(ms, sizeof(ms), "b-%lld-", (long long)stub_unix_ms);
	assert_memory_equal(id, ms, strlen(ms));
	p = id + strlen(ms);
	assert_int_equal(strlen(p), 4);
	assert_int_equal(strspn(p, "0123456789abcdef"), 4);
	/* held for the session's record until its start */
	assert_true(rd->starting);
	assert_string_equal(rd->start_id, id);
	assert_string_equal(str(rd->start_rec, "id"), id);
	assert_string_equal(str(rd->start_rec, "patient"), PATIENT);
	assert_string_equal(str(rd->start_rec, "note"), NOTE);
	assert_string_equal(str(rd->start_rec, "profile"), "wave");
	assert_int_equal(strlen(str(rd->start_rec, "profile_sha256")), 64);

	/* refused by the device: forgotten, the answer says why */
	o = news_of(&d->dev[1]);
	add_verdict(o, FD_EINTERLOCK);
	snprintf(o->verdict.why, sizeof(o->verdict.why),
		 "cannot start: no garment connected");
	give_news(&d->dev[1], o);
	assert_false(rd->starting);
	assert_null(rd->start_rec);
	assert_false(rd->open);
	r = held_answer();
	assert_string_equal(err_code(r), "interlock");
	json_decref(r);
	/* the next start has an id of its own */
	stub_unix_ms++;
	assert_null(ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"b\","
			"\"profile\":\"wave\"}"));
	assert_string_not_equal(last_cmd.session_id, id);
	assert_string_equal(rd->start_id, last_cmd.session_id);
	snprintf(ms, sizeof(ms), "b-%lld-", (long long)stub_unix_ms);
	assert_memory_equal(last_cmd.session_id, ms, strlen(ms));
	assert_true(json_is_null(json_object_get(rd->start_rec, "patient")));
}

/* ---- journal_required ---- */

/* The journal is in trouble (h.error): start and ack are refused naming
 * it, vent goes to the device and its answer says it is not recorded. */
static void check_interlock(const char *device)
{
	struct fd_journal_health h = health();
	int before = submits;
	struct fd_outbox *o;
	json_t *r, *rec;

	assert_false(h.ok);
	assert_true(h.error[0] != '\0');
	r = ask("{\"v\":1,\"id\":4,\"cmd\":\"start\",\"device\":\"%s\","
		"\"profile\":\"wave\",\"patient\":\"P7\"}",
		device);
	assert_non_null(r);
	assert_string_equal(err_code(r), "interlock");
	assert_non_null(strstr(err_message(r), h.error));
	assert_non_null(strstr(err_message(r), "journal_required"));
	json_decref(r);
	r = ask("{\"v\":1,\"id\":5,\"cmd\":\"ack\",\"device\":\"%s\"}", device);
	assert_non_null(r);
	assert_string_equal(err_code(r), "interlock");
	assert_non_null(strstr(err_message(r), h.error));
	json_decref(r);
	assert_int_equal(submits, before);

	/* vent always goes, answered at once: its record waits */
	assert_null(ask("{\"v\":1,\"id\":6,\"cmd\":\"vent\",\"device\":\"%s\"}",
			device));
	assert_int_equal(submits, before + 1);
	assert_int_equal(last_cmd.cmd, FD_CMD_VENT);
	o = news_of(&d->dev[device[0] == 'b']);
	add_verdict(o, FD_OK);
	give_news(&d->dev[device[0] == 'b'], o);
	assert_int_equal(nsent, 1);
	rec = json_object_get(result(sent[0]), "recorded");
	assert_true(json_is_false(json_object_get(rec, "committed")));
	assert_string_equal(str(rec, "message"), h.error);
	forget_sent();
	/* so do stop and pause */
	assert_null(
		ask("{\"v\":1,\"cmd\":\"stop\",\"device\":\"%s\"}", device));
	assert_int_equal(submits, before + 2);
	o = news_of(&d->dev[device[0] == 'b']);
	add_verdict(o, FD_EFORBIDDEN);
	give_news(&d->dev[device[0] == 'b'], o);
	assert_int_equal(nsent, 1);
	forget_sent();
}

/* The directory is made: the writer's next try opens the journal, writes
 * what waited, and the alarm clears. */
static void make_missing_dir(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	until_healthy(true);
	until_committed();
	while (d->journal_alarm.present)
		loop_once();
}

static void test_journal_missing_required(void **state)
{
	struct fd_journal_health h = health();

	(void)state;
	assert_false(h.ok);
	assert_non_null(strstr(h.error, "does not exist"));
	check_interlock("a");
	/* the alarm, on every device */
	while (!d->journal_alarm.present)
		loop_once();
	assert_non_null(strstr(d->journal_alarm.message, h.error));
	assert_non_null(published);
	assert_non_null(strstr(published, "\"alarm\":\"journal\""));
	assert_non_null(strstr(published, "\"device\":\"b\""));
	make_missing_dir();
	/* start is allowed again */
	assert_null(ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"b\","
			"\"profile\":\"wave\"}"));
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
}

static void test_journal_missing_optional(void **state)
{
	(void)state;
	assert_false(health().ok);
	assert_null(ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\","
			"\"profile\":\"wave\",\"patient\":\"P8\"}"));
	assert_int_equal(submits, 1);
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
	assert_null(ask("{\"v\":1,\"cmd\":\"ack\",\"device\":\"b\"}"));
	assert_int_equal(submits, 2);
	assert_int_equal(last_cmd.cmd, FD_CMD_ACK);
	make_missing_dir();
}

/* Commits fail (the hook's SQLITE_FULL): the same interlock, until they
 * succeed again; journal_required = no lets a start through meanwhile. */
static void test_journal_failing(void **state)
{
	(void)state;
	fd_record_daemon(d, "start", "test");
	until_committed();
	assert_true(health().ok);
	fail_commits(1000000);
	fd_record_daemon(d, "reload", "test");
	until_healthy(false);
	assert_non_null(strstr(health().error, "disk full"));
	check_interlock("b");
	d->conf.journal_required = false;
	assert_null(ask("{\"v\":1,\"cmd\":\"start\",\"device\":\"a\","
			"\"profile\":\"wave\"}"));
	assert_int_equal(last_cmd.cmd, FD_CMD_START);
	d->conf.journal_required = true;
	fail_commits(0);
	until_healthy(true);
	until_committed();
	while (d->journal_alarm.present)
		loop_once();
}

/* ---- sessions ---- */

/* A fault and its ack (the alarm's entries), then a session: its start,
 * a trace sample, a pause, a stop, the release to idle.  Returns when it
 * ended. */
static int64_t play_stopped(struct fd_device *dev, char *id)
{
	struct fd_outbox *o;
	json_t *r;

	o = news_of(dev);
	add_alarm(o, FD_E_ALARM, ILK_GARMENT, 0, NAN, NAN, "garment off");
	add_state(o, FD_IDLE, FD_FAULT, FD_EV_TRIP);
	give_news(dev, o);
	stub_unix_ms += 1000;
	assert_null(ask("{\"v\":1,\"cmd\":\"ack\",\"device\":\"a\"}"));
	o = news_of(dev);
	add_alarm(o, FD_E_ALARM_ACK, ILK_GARMENT, 0, NAN, NAN, "garment off");
	add_state(o, FD_FAULT, FD_IDLE, FD_EV_ACK);
	add_verdict(o, FD_OK);
	give_news(dev, o);
	r = held_answer();
	assert_string_equal(str(result(r), "state"), "idle");
	json_decref(r);

	stub_unix_ms += 1000;
	begin_session(dev, ",\"patient\":\"" PATIENT "\",\"note\":\"" NOTE "\"",
		      id);
	sample_cb(-1, 0, d);
	stub_unix_ms += 1000;
	o = news_of(dev);
	add_state(o, FD_RUNNING, FD_PAUSED, FD_EV_PAUSE);
	add_text(o, FD_E_SESSION, "paused");
	add_state(o, FD_PAUSED, FD_RUNNING, FD_EV_RESUME);
	add_text(o, FD_E_SESSION, "resumed");
	give_news(dev, o);
	stub_unix_ms += 1000;
	assert_null(ask("{\"v\":1,\"cmd\":\"stop\",\"device\":\"a\"}"));
	o = news_of(dev);
	add_state(o, FD_RUNNING, FD_RELEASING, FD_EV_STOP);
	add_text(o, FD_E_SESSION, "stopped");
	add_verdict(o, FD_OK);
	give_news(dev, o);
	json_decref(held_answer());
	assert_true(dev->rec.open);
	stub_unix_ms += 1000;
	o = end_news(dev);
	o->snap.have_session = false;
	add_state(o, FD_RELEASING, FD_IDLE, FD_EV_RELEASED);
	give_news(dev, o);
	assert_false(dev->rec.open);
	until_committed();
	return stub_unix_ms;
}

static void assert_chamber(json_t *ch, int i, double max, double mean,
			   double mmhg_s, double above)
{
	json_t *c = json_array_get(ch, (size_t)i);

	assert_int_equal(json_integer_value(json_object_get(c, "chamber")),
			 i + 1);
	assert_number(json_object_get(c, "max_mmhg"), max);
	assert_number(json_object_get(c, "mean_mmhg"), mean);
	assert_number(json_object_get(c, "mmhg_s"), mmhg_s);
	assert_number(json_object_get(c, "above_30_s"), above);
}

/* The summary, found by its patient: stopped, the snapshot's dose. */
static void check_stopped_summary(const char *id, int64_t ended)
{
	json_t *r, *s, *list, *ch;

	r = query("{\"v\":1,\"cmd\":\"history\",\"patient\":\"" PATIENT "\"}");
	list = json_object_get(result(r), "sessions");
	assert_int_equal(json_array_size(list), 1);
	s = json_array_get(list, 0);
	assert_string_equal(str(s, "id"), id);
	assert_string_equal(str(s, "device"), "a");
	assert_string_equal(str(s, "profile"), "wave");
	assert_string_equal(str(s, "patient"), PATIENT);
	assert_string_equal(str(s, "note"), NOTE);
	assert_string_equal(str(s, "end_reason"), "stopped");
	assert_true(json_is_null(json_object_get(s, "alarm")));
	assert_int_equal(json_integer_value(json_object_get(s, "started")),
			 T0 + 2000);
	assert_int_equal(json_integer_value(json_object_get(s, "ended")),
			 ended);
	assert_number(json_object_get(s, "delivered_s"), 300.0);
	assert_number(json_object_get(s, "paused_s"), 12.4);
	ch = json_object_get(s, "chambers");
	assert_int_equal(json_array_size(ch), 4);
	assert_chamber(ch, 0, 31.3, 25, 1234.6, 20.0);
	assert_chamber(ch, 1, 32, 20, 800, 5);
	assert_chamber(ch, 3, 0, 0, 0, 0);
	json_decref(r);
}

/* The whole log: every seq from 1, newest first, no gap; each kind. */
static void check_whole_log(void)
{
	bool state = false, alarm = false, command = false;
	json_t *r, *list, *e;
	size_t i;

	r = query("{\"v\":1,\"cmd\":\"log\",\"limit\":1000}");
	list = json_object_get(result(r), "entries");
	assert_true(json_array_size(list) > 10);
	assert_true(json_is_false(json_object_get(result(r), "more")));
	json_array_foreach(list, i, e)
	{
		assert_int_equal(json_integer_value(json_object_get(e, "seq")),
				 json_array_size(list) - i);
		state |= strcmp(str(e, "kind"), "state") == 0;
		alarm |= strcmp(str(e, "kind"), "alarm") == 0;
		command |= strcmp(str(e, "kind"), "command") == 0;
	}
	assert_true(state && alarm && command);
	json_decref(r);
}

/* The session's own log, oldest first, from its start's change of state
 * to its end's; its trace sample; its commands. */
static void check_session_log(const char *id)
{
	char req[200];
	json_t *r, *s, *list, *e;
	size_t i;

	snprintf(req, sizeof(req),
		 "{\"v\":1,\"cmd\":\"session.get\",\"session\":\"%s\","
		 "\"trace\":true}",
		 id);
	r = query(req);
	s = json_object_get(result(r), "session");
	assert_string_equal(str(s, "end_reason"), "stopped");
	assert_true(json_is_object(json_object_get(s, "profile_document")));
	assert_int_equal(json_array_size(json_object_get(
				 json_object_get(s, "trace"), "pressure")),
			 1);
	list = json_object_get(s, "log");
	e = json_array_get(list, 0);
	assert_string_equal(str(e, "kind"), "state");
	assert_string_equal(str(e, "from"), "idle");
	assert_string_equal(str(e, "to"), "running");
	assert_string_equal(str(e, "cause"), "start");
	json_array_foreach(list, i, e)
	{
		assert_string_equal(str(e, "session"), id);
		if (i > 0)
			assert_true(
				json_integer_value(json_object_get(e, "seq")) >
				json_integer_value(json_object_get(
					json_array_get(list, i - 1), "seq")));
	}
	assert_string_equal(str(e, "to"), "idle");
	json_decref(r);

	snprintf(req, sizeof(req),
		 "{\"v\":1,\"cmd\":\"log\",\"session\":\"%s\",\"kinds\":"
		 "[\"command\"]}",
		 id);
	r = query(req);
	list = json_object_get(result(r), "entries");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(str(json_array_get(list, 0), "event"), "stop");
	assert_string_equal(str(json_array_get(list, 1), "event"), "start");
	assert_string_equal(str(json_array_get(list, 1), "outcome"), "ok");
	json_decref(r);
}

static void test_session_stopped(void **state)
{
	char id[FD_SESSION_ID_MAX];
	int64_t ended;

	(void)state;
	ended = play_stopped(&d->dev[0], id);
	check_stopped_summary(id, ended);
	check_whole_log();
	check_session_log(id);
	/* and none of it was published */
	assert_non_null(published);
	assert_non_null(strstr(published, id));
	assert_null(strstr(published, PATIENT));
	assert_null(strstr(published, NOTE));
	assert_null(strstr(published, "\"patient\""));
}

/* An interlock ends the session: fault, with the alarm that did. */
static void test_session_fault(void **state)
{
	struct fd_device *dev = &d->dev[1];
	char id[FD_SESSION_ID_MAX];
	json_t *r, *s, *e;
	struct fd_outbox *o;

	(void)state;
	begin_session(dev, ",\"patient\":\"P-9\"", id);
	stub_unix_ms += 1000;
	o = end_news(dev);
	add_alarm(o, FD_E_ALARM, ILK_OVERPRESSURE, 2, 95.5, 85,
		  "chamber 2 at 95.5 mmHg");
	add_state(o, FD_RUNNING, FD_FAULT, FD_EV_TRIP);
	give_news(dev, o);
	assert_false(dev->rec.open);
	until_committed();

	r = query("{\"v\":1,\"cmd\":\"history\",\"device\":\"b\"}");
	s = json_array_get(json_object_get(result(r), "sessions"), 0);
	assert_string_equal(str(s, "id"), id);
	assert_string_equal(str(s, "end_reason"), "fault");
	assert_string_equal(str(s, "alarm"), "overpressure");
	assert_number(json_object_get(s, "delivered_s"), 300.0);
	json_decref(r);
	r = query("{\"v\":1,\"cmd\":\"log\",\"kinds\":[\"alarm\"]}");
	e = json_array_get(json_object_get(result(r), "entries"), 0);
	assert_string_equal(str(e, "event"), "raised");
	assert_string_equal(str(e, "alarm"), "overpressure");
	assert_string_equal(str(e, "priority"), "high");
	assert_string_equal(str(e, "device"), "b");
	assert_string_equal(str(e, "session"), id);
	assert_int_equal(json_integer_value(json_object_get(e, "chamber")), 2);
	assert_number(json_object_get(e, "value"), 95.5);
	assert_number(json_object_get(e, "threshold"), 85);
	json_decref(r);
}

/* Another connection holds the journal's write lock: the writer waits
 * for it (its busy timeout, 5 s), as for a slow disk. */
static sqlite3 *lock_journal(void)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(d->conf.journal, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	return db;
}

static void unlock_journal(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
}

/* An ack's answer waits while its record is not committed, and goes once
 * it is. */
static void test_ack_held(void **state)
{
	struct fd_device *dev = &d->dev[0];
	struct fd_outbox *o;
	uint64_t qno;
	sqlite3 *db;
	json_t *r;

	(void)state;
	o = news_of(dev);
	add_alarm(o, FD_E_ALARM, ILK_ESTOP, 0, NAN, NAN, "e-stop pressed");
	add_state(o, FD_IDLE, FD_FAULT, FD_EV_TRIP);
	give_news(dev, o);
	until_committed();

	assert_null(ask("{\"v\":1,\"id\":8,\"cmd\":\"ack\",\"device\":\"a\"}"));
	db = lock_journal();
	o = news_of(dev);
	add_alarm(o, FD_E_ALARM_ACK, ILK_ESTOP, 0, NAN, NAN, "e-stop pressed");
	add_state(o, FD_FAULT, FD_IDLE, FD_EV_ACK);
	add_verdict(o, FD_OK);
	give_news(dev, o);
	qno = health().queued;
	/* the writer waits for the lock: the answer stays held */
	for (int i = 0; i < 3; i++)
		loop_once();
	assert_int_equal(nsent, 0);
	assert_true(health().ok);
	assert_true(health().committed < qno);
	/* the lock goes: the answer goes, its record committed */
	unlock_journal(db);
	until_sent(1);
	assert_true(sent_committed[0] >= qno);
	r = sent[0];
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 8);
	assert_null(json_object_get(result(r), "recorded"));
	assert_string_equal(str(result(r), "state"), "idle");
	forget_sent();
	until_committed();
	assert_true(health().ok);
}

/* A held answer that waits FD_VERDICT_TIMEOUT_S goes, saying why. */
static void test_held_timeout(void **state)
{
	struct fd_outbox *o;
	json_t *rec;

	(void)state;
	fd_record_daemon(d, "start", "test");
	until_committed();
	assert_null(ask("{\"v\":1,\"cmd\":\"pause\",\"device\":\"b\"}"));
	fail_commits(1000000);
	o = news_of(&d->dev[1]);
	add_verdict(o, FD_OK);
	give_news(&d->dev[1], o);
	until_healthy(false);
	assert_int_equal(nsent, 0);
	/* the monotonic clock: a step of the wall clock does not count */
	stub_unix_ms += (int64_t)(FD_VERDICT_TIMEOUT_S * 1000) + 1;
	stub_mono_us += (uint64_t)(FD_VERDICT_TIMEOUT_S * 1e6) + 1;
	until_sent(1);
	rec = json_object_get(result(sent[0]), "recorded");
	assert_true(json_is_false(json_object_get(rec, "committed")));
	assert_string_equal(str(rec, "message"), health().error);
	forget_sent();
	fail_commits(0);
	until_healthy(true);
}

/* Events a control thread could not hand over are missing from the
 * record: it says how many, once per growth of the count, on the device
 * they were lost on. */
static void test_lost_events_recorded(void **state)
{
	struct fd_outbox *o;
	json_t *r, *e;

	(void)state;
	o = news_of(&d->dev[0]);
	o->snap.events_lost = 5;
	give_news(&d->dev[0], o);
	o = news_of(&d->dev[0]); /* the same count: nothing new */
	o->snap.events_lost = 5;
	give_news(&d->dev[0], o);
	o = news_of(&d->dev[0]);
	o->snap.events_lost = 7;
	give_news(&d->dev[0], o);
	until_committed();
	r = query("{\"v\":1,\"cmd\":\"log\",\"kinds\":[\"journal\"]}");
	e = json_object_get(result(r), "entries");
	assert_int_equal(json_array_size(e), 2);
	/* newest first */
	assert_string_equal(str(json_array_get(e, 0), "event"), "lost");
	assert_string_equal(str(json_array_get(e, 0), "device"),
			    d->dev[0].conf.name);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(e, 0), "count")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(e, 1), "count")),
			 5);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_patient_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_session_id, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_journal_missing_required,
						setup_missing, teardown),
		cmocka_unit_test_setup_teardown(test_journal_missing_optional,
						setup_missing_optional,
						teardown),
		cmocka_unit_test_setup_teardown(test_journal_failing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_session_stopped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_session_fault, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ack_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_events_recorded,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_timeout, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

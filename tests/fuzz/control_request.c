/*
 * Fuzz fasciad's control requests (daemon/server.c, commands.c, record.c,
 * query.c): any payload through fd_server_handle() — fd_server_decode()
 * and the whole dispatch — on a fake daemon of two devices, no sockets:
 * fd_device_submit() is a stub, the verdict of a deferred command is
 * handed back at once (a start's with the news of a whole session: its
 * start, a trace sample, and one of the ways it ends), and so is the
 * store's answer to a profile.put (fd_store_write() is a stub that writes
 * nothing).  The treatment record is real: fd_record_open() opens a
 * journal and its reader in the fuzzer's temporary directory, seeded with
 * a few sessions and log entries.  A query waits for the reader's answer,
 * and a device command's answer for its record's commit, on the event
 * loop, bounded; each request ends once everything it queued is
 * committed (the writer is told not to wait for more, hurry()), so that
 * what it allocated is freed by then.  The journal is started afresh every
 * ROTATE_RECORDS records, so that every query runs on a small one.
 *
 * Invariants: every request gets exactly one reply {"v":1,"id":...,
 * "ok":bool,...} that json_dumps() can encode (fd_server_send() is fatal
 * otherwise) — at once, or once its device's verdict and its record, its
 * file or its query's answer came (each request has its own envelope);
 * a device command's answer comes once its record is committed, or says
 * it is not (result.recorded); a query's answer is never `internal` (the
 * journal is sound) and keeps to its arguments (order, filters, limit); no
 * `patient` given to a start, and no seeded note, ever appears in
 * anything fd_publish() sends (zmq_send() is captured under publish.c);
 * nothing crashes, nothing leaks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "../../daemon/interlock.c"
#include "../../daemon/profiles.c"
/* What fd_publish() sends: every frame is looked at, none goes out. */
static int published_send(void *sock, const void *buf, size_t len, int flags);
#define zmq_send published_send
#include "../../daemon/publish.c"
#undef zmq_send
#include "../../daemon/server.c"
#include "../../daemon/security.c"
#include "../../daemon/certs.c"
#include "../../daemon/config.c"
#include "../../daemon/confdev.c"
/* Every reply commands.c and record.c send (a verdict's, held for its
 * record, a query's, a profile.put's) is looked at here. */
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
#include "../../daemon/session.c"
#include "../../daemon/state.c"

#include "check.h"

#include "../daemon_stubs.h"

#define ROTATE_RECORDS 4000 /* a fresh journal after this many */
#define WAIT_S 5            /* the most an answer may take */
#define WATCH_MAX 32        /* patients watched for in what is published */
#define IDS_MAX 64          /* session ids made lately */
#define WAITING_MAX 256     /* answers held for their record */

static int submit_rc; /* what fd_device_submit returns */
static bool submitted;
static struct fd_command last_cmd;

/* The store: the write is taken, and answered once the request is. */
static fd_store_done stored_done;
static void *stored_arg;

/* The replies sent, this request's; each request has its own envelope,
 * which says whose a reply is. */
static uint64_t req_no;
static int nsent;
static json_t *sent;
static bool device_reply;    /* this request's is a device's verdict */
static uint64_t verdict_qno; /* the records queued when it was given */

/* Device commands whose answer waits for its record: qno, the records
 * queued when it was held, all of which it waits for. */
static struct waiting {
	uint64_t req_no;
	uint64_t qno;
} waiting[WAITING_MAX];
static int nwaiting;
static bool waited_ok; /* the last of them answered ok */

int fd_store_write(struct fd_store *s, const char *dir, const char *name,
		   const void *data, size_t len, fd_store_done done, void *arg)
{
	(void)s;
	(void)dir;
	(void)name;
	(void)data;
	(void)len;
	CHECK(stored_done == NULL);
	stored_done = done;
	stored_arg = arg;
	return 0;
}

int fd_device_submit(struct fd_device *dev, const struct fd_command *c)
{
	(void)dev;
	if (submit_rc == 0) {
		submitted = true;
		last_cmd = *c;
	}
	return submit_rc;
}

/* ---- the fake daemon ---- */

static const char *const seed_profiles[] = {
	"{\"name\":\"gentle-wave\",\"description\":\"test\",\"chambers\":2,"
	"\"max_pressure_mmhg\":40,\"max_ramp_mmhg_s\":10,\"repeat\":1,"
	"\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":2},"
	"{\"set\":{\"all\":0},\"ramp_s\":3,\"hold_s\":1}]}",
	"{\"name\":\"pulse\",\"description\":\"every chamber to 40\","
	"\"chambers\":4,\"max_pressure_mmhg\":45,\"max_ramp_mmhg_s\":10,"
	"\"gradient\":\"distal-high\",\"repeat\":3,\"steps\":["
	"{\"set\":{\"all\":40},\"ramp_s\":5,\"hold_s\":5},"
	"{\"set\":{\"all\":0},\"ramp_s\":5,\"hold_s\":10}]}",
};
#define NSEED (int)(sizeof(seed_profiles) / sizeof(seed_profiles[0]))

static struct fd_daemon *d;
static struct fascia_profile seeds[NSEED];
static char dir[64];
static struct fd_server fake_server; /* pub set: fd_publish() sends */

static void unlink_profiles(void)
{
	char path[1100];

	for (int i = 0; i < d->profiles.n; i++) {
		snprintf(path, sizeof(path), "%s/%s.json", dir,
			 d->profiles.p[i].name);
		unlink(path);
	}
}

static void remove_files(void)
{
	static const char *const journal[] = {"journal.db", "journal.db-wal",
					      "journal.db-shm"};
	char path[1100];

	unlink_profiles();
	for (size_t i = 0; i < sizeof(journal) / sizeof(journal[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, journal[i]);
		unlink(path);
	}
}

static void until_committed(void);

/* At exit: the answers sent, the writer and the reader stopped, then the
 * files. */
static void remove_dir(void)
{
	if (d == NULL || dir[0] == '\0')
		return;
	until_committed();
	fd_record_close(d);
	remove_files();
	rmdir(dir);
}

/* A snapshot with a session, chambers and alarms, so that status
 * builds every part of the state message. */
static void fake_snapshot(struct fd_device *dev)
{
	struct fd_snapshot *s = &dev->box.snap;

	dev->box.have_snap = true;
	s->tick = 1234;
	s->mono_s = 100.0;
	s->unix_ms = 1700000000000;
	s->state = FD_RUNNING;
	s->have_session = true;
	s->session_seq = 3;
	snprintf(s->profile, sizeof(s->profile), "gentle-wave");
	s->pos.step = 1;
	s->pos.cycle = 1;
	s->pos.elapsed_s = 12.5;
	s->pos.remaining_s = NAN;
	s->chambers = dev->conf.chambers;
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		s->pressure[i] = 10.0 * i;
		s->setpoint[i] = 12.0 * i;
		s->valve[i] = (uint8_t)(i % 4); /* 3: not a valve state */
	}
	s->supply = 250;
	s->nalarm = 2;
	s->alarm[0].id = ILK_OVERPRESSURE;
	s->alarm[0].chamber = 2;
	s->alarm[0].present = true;
	s->alarm[0].since_s = 99.5;
	snprintf(s->alarm[0].message, sizeof(s->alarm[0].message),
		 "chamber 2 at 90 mmHg");
	s->alarm[1].id = ILK_COMMS;
	s->alarm[1].since_s = INFINITY;
	memcpy(s->alarm[1].message, "cut \xe2\x82", 7); /* cut UTF-8 */
	s->link.up = true;
	s->have_reading = (dev->conf.chambers & 4) != 0;
	s->link.rtt_us = 800;
	s->link.exchanges = 42;
	s->link.max_late_ms = 1.5;
}

/* ---- what is published: no patient, no note ---- */

static char *vocab; /* everything published while seeding */
static size_t vocab_len;
static bool building_vocab;
/* The seed's patients and notes, and the patients of the last starts */
static const char *const canaries[] = {"MRN-0042", "PT.seed_77", "seed-note-"};
static char watched[WATCH_MAX][FD_SESSION_ID_MAX + 8];
static int nwatched, watch_next;
static char ids[IDS_MAX][FD_SESSION_ID_MAX];
static int nids, ids_next;

static void vocab_add(const char *t, size_t len)
{
	char *v = realloc(vocab, vocab_len + len + 2);

	if (v == NULL)
		abort();
	vocab = v;
	memcpy(vocab + vocab_len, t, len);
	vocab_len += len;
	vocab[vocab_len++] = '\n';
	vocab[vocab_len] = '\0';
}

static int published_send(void *sock, const void *buf, size_t len, int flags)
{
	char *t = malloc(len + 1);

	(void)flags;
	CHECK(sock == fake_server.pub);
	CHECK(t != NULL);
	memcpy(t, buf, len);
	t[len] = '\0';
	CHECK(strstr(t, "\"patient\"") == NULL);
	CHECK(strstr(t, "\"note\"") == NULL);
	for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++) {
		if (strstr(t, canaries[i]) != NULL) {
			fprintf(stderr, "published: %s\nwith \"%s\"\n", t,
				canaries[i]);
			CHECK(!"a patient or a note was published");
		}
	}
	for (int i = 0; i < nwatched; i++) {
		if (strstr(t, watched[i]) != NULL) {
			fprintf(stderr, "published: %s\nwith \"%s\"\n", t,
				watched[i]);
			CHECK(!"a patient was published");
		}
	}
	if (building_vocab)
		vocab_add(t, len);
	free(t);
	return (int)len;
}

/*
 * Whether p can be watched for: a string that what is published cannot
 * hold for another reason.  The messages are made of what the fake daemon
 * puts in (the seeding published every kind of it), numbers, and the
 * session ids; p is one of [A-Za-z0-9._-], so it never spans JSON's
 * punctuation.
 */
static bool watchable(const char *p)
{
	size_t n = strlen(p);

	if (n < 3 || strspn(p, "0123456789.eE+-") == n)
		return false;
	if ((vocab != NULL && strstr(vocab, p) != NULL) ||
	    strstr(dir, p) != NULL)
		return false;
	for (int i = 0; i < nids; i++)
		if (strstr(ids[i], p) != NULL)
			return false;
	return true;
}

static void watch(const char *p)
{
	if (p == NULL || !watchable(p))
		return;
	snprintf(watched[watch_next], sizeof(watched[0]), "%s", p);
	watch_next = (watch_next + 1) % WATCH_MAX;
	if (nwatched < WATCH_MAX)
		nwatched++;
}

/* A session id is published: a patient it happens to contain is no
 * longer one to watch for. */
static void new_session_id(const char *id)
{
	int kept = 0;

	snprintf(ids[ids_next], sizeof(ids[0]), "%s", id);
	ids_next = (ids_next + 1) % IDS_MAX;
	if (nids < IDS_MAX)
		nids++;
	for (int i = 0; i < nwatched; i++)
		if (strstr(id, watched[i]) == NULL)
			memmove(watched[kept++], watched[i],
				sizeof(watched[0]));
	nwatched = kept;
	watch_next = kept % WATCH_MAX;
}

/* ---- replies ---- */

static void check_reply(json_t *r)
{
	json_t *ok, *err;
	char *text;

	CHECK(json_is_object(r));
	CHECK(json_integer_value(json_object_get(r, "v")) == 1);
	CHECK(json_object_get(r, "id") != NULL);
	ok = json_object_get(r, "ok");
	CHECK(json_is_boolean(ok));
	if (json_is_true(ok)) {
		CHECK(json_object_get(r, "result") != NULL);
	} else {
		err = json_object_get(r, "error");
		CHECK(json_is_object(err));
		CHECK(json_is_string(json_object_get(err, "code")));
		CHECK(json_is_string(json_object_get(err, "message")));
	}
	/* what fd_server_send() does, fatally when it cannot */
	text = json_dumps(r, FD_JSON_FLAGS);
	CHECK(text != NULL);
	free(text);
}

/* A device's verdict goes once the records queued up to qno are
 * committed, or says that they are not. */
static void check_recorded(json_t *reply, uint64_t qno)
{
	json_t *result = json_object_get(reply, "result");
	json_t *rec = json_object_get(result, "recorded");
	struct fd_journal_health h = {0};

	if (d->journal != NULL)
		fd_journal_health(d->journal, &h);
	if (h.committed >= qno)
		return;
	/* an error has no result to say it in */
	if (result == NULL)
		return;
	CHECK(json_is_object(rec));
	CHECK(json_is_false(json_object_get(rec, "committed")));
	CHECK(json_is_string(json_object_get(rec, "message")));
}

static void captured_send(struct fd_daemon *dd, const struct fd_envelope *e,
			  json_t *reply)
{
	unsigned long long no;
	char id[32];
	int i;

	CHECK(dd == d);
	CHECK(e != NULL && e->identity_len > 1 &&
	      e->identity_len < sizeof(id) && e->identity[0] == 'c');
	check_reply(reply);
	memcpy(id, e->identity, e->identity_len);
	id[e->identity_len] = '\0';
	no = strtoull(id + 1, NULL, 16);
	/* a request's answer held for its record */
	for (i = 0; i < nwaiting && waiting[i].req_no != no; i++)
		;
	if (i < nwaiting) {
		check_recorded(reply, waiting[i].qno);
		waited_ok = json_is_true(json_object_get(reply, "ok"));
		waiting[i] = waiting[--nwaiting];
		json_decref(reply);
		return;
	}
	/* this request's, at once */
	CHECK(no == req_no);
	if (device_reply) {
		struct fd_journal_health h;

		fd_journal_health(d->journal, &h);
		check_recorded(reply, h.queued);
	}
	nsent++;
	json_decref(sent);
	sent = reply;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the loop until a reply is sent; it always comes, and soon. */
static void until_sent(void)
{
	double until = mono_s() + WAIT_S;

	while (nsent == 0) {
		CHECK(mono_s() < until);
		CHECK(event_base_loop(d->base, EVLOOP_ONCE) == 0);
	}
}

/*
 * The writer gathers what comes within JOURNAL_LINGER_MS (20 ms) into one
 * commit.  A request's records need not wait for company: the writer is
 * told to write what it has now (journal.c's own test of first_put_ms).
 */
static void hurry(void)
{
	struct fd_journal *j = d->journal;

	pthread_mutex_lock(&j->lock);
	j->first_put_ms = 0;
	pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
}

/*
 * Run the loop until every record queued is committed and every answer
 * held for its record is sent.  So each request ends with nothing of its
 * own left in the queue or held: what it allocated is freed, which keeps
 * libFuzzer's leak check (run after every request that allocated more
 * than it freed) for the requests that leak.
 */
static void until_committed(void)
{
	double until = mono_s() + WAIT_S;
	struct fd_journal_health h;

	for (;;) {
		fd_journal_health(d->journal, &h);
		if (h.committed == h.queued && h.waiting == 0 && nwaiting == 0)
			break;
		CHECK(h.ok);
		CHECK(mono_s() < until);
		hurry();
		CHECK(event_base_loop(d->base, EVLOOP_ONCE) == 0);
	}
}

/* ---- a device's news ---- */

/* fd_device_news()'s consumers, in its order. */
static void deliver(struct fd_device *dev, const struct fd_outbox *news)
{
	struct fd_journal_health h;

	fd_publish_news(d, dev, news);
	fd_record_news(d, dev, news);
	fd_commands_news(d, dev, news);
	/* what the verdict's answer waits for */
	fd_journal_health(d->journal, &h);
	if (news->have_verdict)
		verdict_qno = h.queued;
}

static struct fd_event_rec *add_event(struct fd_outbox *o,
				      enum fd_event_kind kind,
				      const struct fd_snapshot *sn)
{
	struct fd_event_rec *e = &o->ev[o->nev++];

	CHECK(o->nev <= FD_OUTBOX_EVENTS);
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ctx.tick = sn->tick;
	e->ctx.unix_ms = sn->unix_ms;
	e->ctx.have_session = sn->have_session;
	e->ctx.session_seq = sn->session_seq;
	memcpy(e->ctx.session_id, sn->session_id, sizeof(sn->session_id));
	memcpy(e->ctx.profile, sn->profile, sizeof(sn->profile));
	e->ctx.pos = sn->pos;
	return e;
}

static void add_state(struct fd_outbox *o, struct fd_snapshot *sn,
		      enum fd_state from, enum fd_state to, enum fd_event cause)
{
	struct fd_event_rec *e = add_event(o, FD_E_STATE, sn);

	e->from = from;
	e->to = to;
	e->cause = cause;
	snprintf(e->text, sizeof(e->text), "%s -> %s",
		 fd_state_table_name(from), fd_state_table_name(to));
	sn->state = to;
}

static void add_text(struct fd_outbox *o, const struct fd_snapshot *sn,
		     enum fd_event_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_text(struct fd_outbox *o, const struct fd_snapshot *sn,
		     enum fd_event_kind kind, const char *fmt, ...)
{
	struct fd_event_rec *e = add_event(o, kind, sn);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

static void add_alarm(struct fd_outbox *o, const struct fd_snapshot *sn,
		      enum fd_event_kind kind, enum ilk_id id, int chamber,
		      double value, double threshold)
{
	struct fd_event_rec *e = add_event(o, kind, sn);

	e->alarm = id;
	e->chamber = chamber;
	e->value = value;
	e->threshold = threshold;
	snprintf(e->text, sizeof(e->text), "%s on chamber %d",
		 ilk_rows[id].name, chamber);
}

static void fill_dose(struct fd_dose *ds, int seq, int chambers, bool open,
		      unsigned k)
{
	memset(ds, 0, sizeof(*ds));
	ds->session_seq = seq;
	ds->open = open;
	ds->chambers = chambers;
	ds->delivered_s = open ? 1.0 : 30.25 + k % 97;
	ds->paused_s = (k % 3) * 1.5;
	for (int i = 0; i < chambers; i++) {
		ds->max_mmhg[i] = 30 + i + (k % 10) * 0.37;
		ds->mmhg_s[i] = 100.0 * (i + 1) + k % 1000;
		ds->above_s[i] = i * 0.5;
		ds->set_s[i] =
			i == chambers - 1 ? 0 : 10; /* mean 0: never set */
		ds->set_mmhg_s[i] = ds->set_s[i] * (25 + i);
	}
}

enum ending {
	END_STOPPED,
	END_COMPLETED,
	END_VENTED,
	END_FAULT,
	END_COMMS,
	END_RELEASE,
	NENDINGS
};

/* How a session ends, after its start's tick: the events of the ticks
 * that end it (session.c's order), and the final dose. */
static void ending_news(struct fd_outbox *o, struct fd_snapshot *sn,
			enum ending end, unsigned k)
{
	if (k & 1) {
		add_state(o, sn, FD_RUNNING, FD_PAUSED, FD_EV_PAUSE);
		add_text(o, sn, FD_E_SESSION, "paused");
		add_state(o, sn, FD_PAUSED, FD_RUNNING, FD_EV_RESUME);
		add_text(o, sn, FD_E_SESSION, "resumed");
	}
	switch (end) {
	case END_STOPPED:
		add_state(o, sn, FD_RUNNING, FD_RELEASING, FD_EV_STOP);
		add_text(o, sn, FD_E_SESSION, "stopped");
		add_state(o, sn, FD_RELEASING, FD_IDLE, FD_EV_RELEASED);
		break;
	case END_COMPLETED:
		add_state(o, sn, FD_RUNNING, FD_RELEASING, FD_EV_END);
		add_text(o, sn, FD_E_SESSION, "completed");
		add_state(o, sn, FD_RELEASING, FD_IDLE, FD_EV_RELEASED);
		break;
	case END_VENTED:
		add_state(o, sn, FD_RUNNING, FD_VENTING, FD_EV_VENT);
		add_text(o, sn, FD_E_SESSION, "vented by the operator");
		add_state(o, sn, FD_VENTING, FD_IDLE, FD_EV_RELEASED);
		break;
	case END_FAULT:
		add_alarm(o, sn, FD_E_ALARM, ILK_OVERPRESSURE, 2, 95.5, 85);
		add_state(o, sn, FD_RUNNING, FD_FAULT, FD_EV_TRIP);
		break;
	case END_COMMS:
		add_alarm(o, sn, FD_E_ALARM, ILK_COMMS, 0, NAN, NAN);
		add_text(o, sn, FD_E_LINK, "down: timed out");
		add_state(o, sn, FD_RUNNING, FD_FAULT, FD_EV_LINK_DOWN);
		break;
	case END_RELEASE:
		add_alarm(o, sn, FD_E_ALARM, ILK_SESSION_TIME, 0, 400, 396);
		add_state(o, sn, FD_RUNNING, FD_FAULT_RELEASING,
			  FD_EV_TRIP_RELEASE);
		add_state(o, sn, FD_FAULT_RELEASING, FD_FAULT, FD_EV_RELEASED);
		break;
	case NENDINGS:
		break;
	}
	sn->have_session = false;
	fill_dose(&sn->dose[sn->session_seq & 1], sn->session_seq, sn->chambers,
		  false, k);
	/* now and then the control thread found its outbox full */
	if (k % 5 == 0)
		sn->events_lost += 1 + k % 3;
}

/*
 * A start the device took (a has its verdict): the start's tick, a trace
 * sample, then how the session ends.  The device's snapshot is the
 * session's meanwhile (the trace's sample peeks it) and keeps its
 * session number and doses after.
 */
static void play_session(struct fd_device *dev, struct fd_outbox *a,
			 enum ending end, unsigned k)
{
	struct fd_snapshot saved = dev->box.snap;
	bool had = dev->box.have_snap;
	struct fd_outbox *b = xcalloc(1, sizeof(*b));
	struct fd_snapshot *sn = &a->snap;

	a->have_snap = true;
	a->changed = true;
	sn->unix_ms = stub_unix_ms;
	sn->tick++;
	sn->chambers = dev->conf.chambers;
	sn->have_reading = true;
	sn->session_seq = saved.session_seq + 1;
	sn->have_session = true;
	snprintf(sn->session_id, sizeof(sn->session_id), "%s",
		 last_cmd.session_id);
	snprintf(sn->profile, sizeof(sn->profile), "%s", last_cmd.profile.name);
	memset(&sn->pos, 0, sizeof(sn->pos));
	fill_dose(&sn->dose[sn->session_seq & 1], sn->session_seq, sn->chambers,
		  true, k);
	add_state(a, sn, FD_IDLE, FD_RUNNING, FD_EV_START);
	add_text(a, sn, FD_E_SESSION, "started %s", sn->profile);
	deliver(dev, a);
	CHECK(dev->rec.open);
	CHECK(strcmp(dev->rec.id, last_cmd.session_id) == 0);

	dev->box.have_snap = true;
	dev->box.snap = *sn;
	sample_cb(-1, 0, d);

	b->have_snap = true;
	b->changed = true;
	b->snap = *sn;
	sn = &b->snap;
	sn->unix_ms += 400;
	sn->tick += 20;
	ending_news(b, sn, end, k);
	deliver(dev, b);
	CHECK(!dev->rec.open);

	saved.session_seq = sn->session_seq;
	saved.events_lost = sn->events_lost;
	memcpy(saved.dose, sn->dose, sizeof(saved.dose));
	dev->box.snap = saved;
	dev->box.have_snap = had;
	free(b);
}

/* ---- one request ---- */

/* What the fake devices and the store answer, drawn from the input. */
struct answers {
	int submit_rc;
	enum fd_verdict verdict;
	bool why;
	int store_err;
	enum ending ending;
	unsigned k;
};

/* An ack the device took: its alarm acknowledged and cleared, idle. */
static void ack_news(struct fd_device *dev, struct fd_outbox *news)
{
	struct fd_snapshot *sn = &news->snap;

	sn->unix_ms = stub_unix_ms;
	sn->have_session = false;
	add_alarm(news, sn, FD_E_ALARM_ACK, ILK_OVERPRESSURE, 2, NAN, NAN);
	add_state(news, sn, FD_FAULT, FD_IDLE, FD_EV_ACK);
	news->changed = true;
	deliver(dev, news);
}

/* The command went to a device: its verdict (a start's with its
 * session, an ack's with its alarm), and the answer, held until its
 * record is committed. */
static void answer_device(const struct answers *an)
{
	struct fd_device *dev = NULL;
	struct fd_outbox *news;

	CHECK(submitted);
	for (int i = 0; i < d->ndev; i++) {
		if (d->dev[i].pending.active) {
			CHECK(dev == NULL);
			dev = &d->dev[i];
			CHECK(dev->pending.token == last_cmd.token);
		}
	}
	CHECK(dev != NULL);
	CHECK(last_cmd.cmd > FD_CMD_NONE && last_cmd.cmd <= FD_CMD_ACK);
	if (last_cmd.cmd == FD_CMD_START) {
		CHECK(fd_profiles_find(&d->profiles, last_cmd.profile.name) !=
		      NULL);
		CHECK(dev->rec.starting);
		CHECK(strcmp(dev->rec.start_id, last_cmd.session_id) == 0);
		CHECK(strncmp(last_cmd.session_id, dev->conf.name,
			      strlen(dev->conf.name)) == 0);
		new_session_id(last_cmd.session_id);
		watch(json_string_value(
			json_object_get(dev->rec.start_rec, "patient")));
	}
	/* a stale verdict is ignored, the right one answers */
	news = xcalloc(1, sizeof(*news));
	news->have_snap = dev->box.have_snap;
	news->snap = dev->box.snap;
	news->have_verdict = true;
	news->verdict.cmd = last_cmd.cmd;
	news->verdict.token = last_cmd.token + 1;
	fd_commands_news(d, dev, news);
	CHECK(dev->pending.active);
	CHECK(nsent == 0);
	news->verdict.token = last_cmd.token;
	news->verdict.verdict = an->verdict;
	device_reply = true;
	if (an->why)
		snprintf(news->verdict.why, sizeof(news->verdict.why),
			 "refused \xc3");
	if (last_cmd.cmd == FD_CMD_START && an->verdict == FD_OK)
		play_session(dev, news, an->ending, an->k);
	else if (last_cmd.cmd == FD_CMD_ACK && an->verdict == FD_OK)
		ack_news(dev, news);
	else
		deliver(dev, news);
	device_reply = false;
	CHECK(!dev->pending.active);
	CHECK(!dev->rec.starting);
	if (nsent == 0) {
		/* held until its record is committed */
		CHECK(rec_of(d)->nheld > 0);
		CHECK(nwaiting < WAITING_MAX);
		waiting[nwaiting++] = (struct waiting){req_no, verdict_qno};
	}
	CHECK(nsent <= 1);
	free(news);
}

/* A string member, or NULL. */
static const char *filter(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* o's key is the request's, when the request filters on it. */
static bool same(json_t *o, json_t *req, const char *key)
{
	const char *want = filter(req, key);

	return want == NULL ||
	       (filter(o, key) != NULL && strcmp(filter(o, key), want) == 0);
}

/* since <= t < until, those of them the request has. */
static bool in_window(json_t *req, json_int_t t)
{
	json_t *since = json_object_get(req, "since");
	json_t *until = json_object_get(req, "until");

	return (!json_is_integer(since) || t >= json_integer_value(since)) &&
	       (!json_is_integer(until) || t < json_integer_value(until));
}

/* A page of history or log: at most limit items, and whether more. */
static json_t *page(json_t *req, json_t *res, const char *key)
{
	json_t *list = json_object_get(res, key);
	json_int_t limit = json_integer_value(json_object_get(req, "limit"));

	CHECK(json_is_array(list));
	CHECK(json_is_boolean(json_object_get(res, "more")));
	CHECK(json_array_size(list) <= (size_t)(limit > 0 ? limit : 50));
	return list;
}

static void check_history(json_t *req, json_t *res)
{
	json_t *list = page(req, res, "sessions"), *s, *prev = NULL;
	size_t i;

	json_array_foreach(list, i, s)
	{
		json_int_t t =
			json_integer_value(json_object_get(s, "started"));

		CHECK(filter(s, "id") != NULL && filter(s, "device") != NULL &&
		      filter(s, "end_reason") != NULL);
		CHECK(json_is_integer(json_object_get(s, "started")));
		CHECK(json_is_array(json_object_get(s, "chambers")));
		CHECK(same(s, req, "device") && same(s, req, "patient"));
		CHECK(in_window(req, t));
		/* newest first, by started then id */
		if (prev != NULL) {
			json_int_t pt = json_integer_value(
				json_object_get(prev, "started"));

			CHECK(pt > t ||
			      (pt == t && strcmp(filter(prev, "id"),
						 filter(s, "id")) > 0));
		}
		prev = s;
	}
}

static void check_log(json_t *req, json_t *res)
{
	json_t *list = page(req, res, "entries"), *e, *k;
	json_t *kinds = json_object_get(req, "kinds");
	json_int_t before = json_integer_value(json_object_get(req, "before"));
	json_int_t prev = 0;
	size_t i, j;

	json_array_foreach(list, i, e)
	{
		json_int_t seq = json_integer_value(json_object_get(e, "seq"));
		bool kind = !json_is_array(kinds);

		CHECK(json_is_integer(json_object_get(e, "seq")));
		CHECK(json_is_integer(json_object_get(e, "time")));
		CHECK(filter(e, "kind") != NULL && filter(e, "event") != NULL);
		/* newest first */
		CHECK(i == 0 || seq < prev);
		prev = seq;
		json_array_foreach(kinds, j, k)
		{
			kind |= strcmp(json_string_value(k),
				       filter(e, "kind")) == 0;
		}
		CHECK(kind);
		CHECK(same(e, req, "device") && same(e, req, "session"));
		CHECK(before <= 0 || seq < before);
		CHECK(in_window(
			req, json_integer_value(json_object_get(e, "time"))));
	}
}

static void check_session(json_t *req, json_t *res)
{
	json_t *s = json_object_get(res, "session"), *log, *e, *trace;
	json_int_t prev = 0;
	size_t i;

	CHECK(json_is_object(s));
	CHECK(strcmp(filter(s, "id"), filter(req, "session")) == 0);
	log = json_object_get(s, "log");
	CHECK(json_is_array(log));
	/* oldest first, the session's own */
	json_array_foreach(log, i, e)
	{
		json_int_t seq = json_integer_value(json_object_get(e, "seq"));

		CHECK(i == 0 || seq > prev);
		prev = seq;
		CHECK(filter(e, "session") != NULL &&
		      strcmp(filter(e, "session"), filter(s, "id")) == 0);
	}
	trace = json_object_get(s, "trace");
	if (json_is_true(json_object_get(req, "trace"))) {
		CHECK(json_is_object(trace));
		CHECK(json_array_size(json_object_get(trace, "pressure")) ==
		      json_array_size(json_object_get(trace, "setpoint")));
	} else {
		CHECK(trace == NULL);
	}
}

/* A query went to the reader: its answer, which keeps to its request. */
static void answer_query(const uint8_t *data, size_t size)
{
	const char *code, *cmd;
	char msg[256];
	json_t *req = fd_server_decode((const char *)data, size, &code, msg,
				       sizeof(msg));
	json_t *err, *res;

	CHECK(req != NULL && code == NULL);
	cmd = filter(req, "cmd");
	CHECK(cmd != NULL);
	until_sent();
	CHECK(nsent == 1);
	CHECK(json_equal(json_object_get(sent, "id"),
			 json_object_get(req, "id")) ||
	      (json_object_get(req, "id") == NULL &&
	       json_is_null(json_object_get(sent, "id"))));
	if (json_is_false(json_object_get(sent, "ok"))) {
		err = json_object_get(sent, "error");
		code = filter(err, "code");
		if (strcmp(code, "bad_request") != 0 &&
		    strcmp(code, "busy") != 0) {
			fprintf(stderr, "%s: %s\n", code,
				filter(err, "message"));
			CHECK(!"a query failed on a sound journal");
		}
		json_decref(req);
		return;
	}
	res = json_object_get(sent, "result");
	if (strcmp(cmd, "history") == 0)
		check_history(req, res);
	else if (strcmp(cmd, "log") == 0)
		check_log(req, res);
	else if (strcmp(cmd, "session.get") == 0)
		check_session(req, res);
	else
		CHECK(!"a reply deferred for no reason");
	json_decref(req);
}

/* A refusal for the role names the role needed, above the client's. */
static void check_role(json_t *r, const struct fd_envelope *env)
{
	json_t *err = json_object_get(r, "error");
	const char *need = json_string_value(json_object_get(err, "role"));
	enum fd_role role;

	if (need == NULL)
		return;
	CHECK(strcmp(json_string_value(json_object_get(err, "code")),
		     "forbidden") == 0);
	CHECK(conf_role_parse(need, &role) == 0 && role > env->who.role);
}

/* One request and everything that answers it; exactly one reply. */
static void request(const uint8_t *data, size_t size, const struct answers *an)
{
	struct fd_envelope env = {.delimiter = true};
	int before = d->profiles.n;
	json_t *r;

	env.identity_len =
		(size_t)snprintf((char *)env.identity, sizeof(env.identity),
				 "c%llx", (unsigned long long)++req_no);
	/* every role, a gateway or not: the role table's refusals and "as" */
	env.who.role = (enum fd_role)(FD_ROLE_OBSERVER + size % 3);
	env.who.gateway = size / 3 % 2;
	snprintf(env.who.name, sizeof(env.who.name), "fuzz");
	submit_rc = an->submit_rc;
	submitted = false;
	nsent = 0;
	json_decref(sent);
	sent = NULL;

	r = fd_server_handle(d, (const char *)data, size, &env);
	if (r == NULL && stored_done != NULL) {
		/* deferred: a profile.put waits for the store */
		fd_store_done done = stored_done;

		CHECK(!submitted);
		stored_done = NULL;
		done(an->store_err, stored_arg);
		CHECK(nsent == 1);
	} else if (r == NULL && submitted) {
		answer_device(an);
	} else if (r == NULL) {
		/* deferred: a query went to the reader */
		answer_query(data, size);
	} else {
		CHECK(!submitted);
		CHECK(nsent == 0);
		check_reply(r);
		check_role(r, &env);
		json_decref(r);
	}
	for (int i = 0; i < d->ndev; i++) {
		CHECK(!d->dev[i].pending.active);
		CHECK(!d->dev[i].rec.open);
		CHECK(!d->dev[i].rec.starting);
	}
	/* back to the seed profiles after a profile.put */
	if (d->profiles.n != before ||
	    memcmp(d->profiles.p, seeds, sizeof(seeds)) != 0) {
		unlink_profiles();
		memcpy(d->profiles.p, seeds, sizeof(seeds));
		d->profiles.n = NSEED;
	}
}

/* ---- the journal's seed ---- */

#define SEED_ID "sim-1795440000123-3fa2" /* docs/records.md's example */

static void seed_request(const char *text, const struct answers *an)
{
	request((const uint8_t *)text, strlen(text), an);
	if (nsent == 0) {
		until_committed();
		CHECK(waited_ok);
	} else {
		CHECK(json_is_true(json_object_get(sent, "ok")));
	}
}

/* A session put as the writer takes it, with a known id (the corpus
 * names it) and a trace with a gap. */
static void seed_fixed(void)
{
	char sha[65], *text = fd_profiles_text(&seeds[0]);

	sha256_hex(text, sha);
	fd_journal_put(d->journal, FD_J_PROFILE,
		       json_pack("{s:s, s:s, s:s}", "sha256", sha, "name",
				 seeds[0].name, "document", text));
	free(text);
	fd_journal_put(
		d->journal, FD_J_SESSION_OPEN,
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:I, s:f, s:i, "
			  "s:i}",
			  "id", SEED_ID, "device", "sim", "profile",
			  "gentle-wave", "profile_sha256", sha, "patient",
			  "MRN-0042", "operator", "note", "seed-note-5d1c",
			  "started", (json_int_t)1795440000123, "planned_s",
			  12.0, "chambers", 4, "trace_hz", 1));
	for (int k = 0; k < 4; k++)
		fd_journal_put(
			d->journal, FD_J_SAMPLE,
			json_pack("{s:s, s:I, s:[f, f, f, f], s:[f, f, f, f], "
				  "s:f, s:f, s:[]}",
				  "session", SEED_ID, "t",
				  (json_int_t)(1795440000123 +
					       1000 * k * (k != 2)),
				  "pressure", 10.0 * k, 5.0, 0.0, -1.0,
				  "setpoint", 30.0, 30.0, 0.0, 0.0,
				  "delivered_s", (double)k, "paused_s", 0.0,
				  "dose"));
	fd_journal_put(d->journal, FD_J_SESSION_CLOSE,
		       json_pack("{s:s, s:I, s:s, s:s, s:f, s:f, s:[]}", "id",
				 SEED_ID, "ended", (json_int_t)1795440012000,
				 "end_reason", "fault", "alarm", "deviation",
				 "delivered_s", 12.0, "paused_s", 0.0, "dose"));
}

/*
 * A few sessions and log entries: the fixed one, and others through the
 * requests and the news, every way a session ends, on both devices, with
 * the patients and notes of canaries[].
 */
static void seed_journal(void)
{
	static const struct {
		const char *req;
		enum ending end;
	} starts[] = {
		{"{\"v\":1,\"id\":1,\"cmd\":\"start\",\"device\":\"sim\","
		 "\"profile\":\"gentle-wave\",\"patient\":\"MRN-0042\","
		 "\"note\":\"left leg, seed-note-5d1c\"}",
		 END_STOPPED},
		{"{\"v\":1,\"id\":2,\"cmd\":\"start\",\"device\":\"rtu1\","
		 "\"profile\":\"pulse\",\"patient\":\"PT.seed_77\"}",
		 END_FAULT},
		{"{\"v\":1,\"id\":3,\"cmd\":\"start\",\"device\":\"sim\","
		 "\"profile\":\"pulse\",\"note\":\"seed-note-91ab\"}",
		 END_VENTED},
	};
	static const char ack[] = "{\"v\":1,\"id\":4,\"cmd\":\"ack\","
				  "\"device\":\"rtu1\"}";
	struct fd_outbox *news = xcalloc(1, sizeof(*news));
	struct answers an = {.verdict = FD_OK};

	seed_fixed();
	fd_record_daemon(d, "start", "fasciad 0.1: 2 devices, journal %s",
			 d->conf.journal);
	news->have_snap = true;
	news->snap = d->dev[1].box.snap;
	add_text(news, &news->snap, FD_E_LINK, "up");
	deliver(&d->dev[1], news);
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		an.ending = starts[i].end;
		an.k = (unsigned)i;
		stub_unix_ms += 1000;
		seed_request(starts[i].req, &an);
	}
	/* rtu1 faulted: acknowledged */
	stub_unix_ms += 1000;
	seed_request(ack, &an);
	/* every way a session ends, for what they publish */
	for (int e = 0; e < NENDINGS; e++) {
		char req[160];

		an.ending = (enum ending)e;
		an.k = (unsigned)e;
		snprintf(req, sizeof(req),
			 "{\"v\":1,\"id\":%d,\"cmd\":\"start\",\"device\":"
			 "\"%s\",\"profile\":\"%s\"}",
			 10 + e, e & 1 ? "rtu1" : "sim", seeds[e % NSEED].name);
		stub_unix_ms += 1000;
		seed_request(req, &an);
	}
	/* and the state message of the fake snapshot */
	memset(news, 0, sizeof(*news));
	news->have_snap = true;
	news->changed = true;
	news->snap = d->dev[0].box.snap;
	deliver(&d->dev[0], news);
	free(news);
	until_committed();
}

/* A fresh journal: the last one has grown past ROTATE_RECORDS. */
static void journal_fresh(void)
{
	until_committed();
	fd_record_close(d);
	remove_files();
	fd_record_open(d);
	CHECK(d->journal != NULL && d->query != NULL);
	seed_journal();
}

static void setup(void)
{
	struct fascia_profile_error err;

	d = xcalloc(1, sizeof(*d));
	d->conf.tick_hz = 50;
	d->conf.publish_hz = 10;
	d->conf.max_session_s = 3600;
	d->conf.journal_required = true;
	d->conf.trace_hz = 1;
	d->conf.trace_keep_days = 1;
	d->ndev = 2;
	d->dev = xcalloc(2, sizeof(*d->dev));
	for (int i = 0; i < 2; i++) {
		struct fd_device_conf *c = &d->dev[i].conf;

		snprintf(c->name, sizeof(c->name), "%s", i ? "rtu1" : "sim");
		snprintf(c->host, sizeof(c->host), "127.0.0.1");
		c->unit = 1;
		c->limit_mmhg = 80;
		c->watchdog_ms = 500;
		c->port = 1502 + i;
		c->chambers = 4 + 4 * i;
		if (i == 1) {
			c->transport = TRANSPORT_RTU;
			snprintf(c->path, sizeof(c->path), "/dev/ttyUSB0");
		}
		d->dev[i].daemon = d;
		d->conf.dev[i] = *c;
	}
	d->conf.ndev = 2;
	fd_profiles_limits(&d->conf, &d->limits);
	for (int i = 0; i < NSEED; i++)
		if (fascia_profile_parse(seed_profiles[i],
					 strlen(seed_profiles[i]), &d->limits,
					 &seeds[i], &err) != 0)
			fatalx("seed profile %d: %s: %s", i, err.field,
			       err.message);
	/* sorted by name, as fd_profiles_add() keeps them */
	memcpy(d->profiles.p, seeds, sizeof(seeds));
	d->profiles.n = NSEED;
	snprintf(dir, sizeof(dir), "/tmp/fascia-fuzz-XXXXXX");
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	snprintf(d->profiles.dir, sizeof(d->profiles.dir), "%s", dir);
	snprintf(d->conf.journal, sizeof(d->conf.journal), "%s/journal.db",
		 dir);
	fake_server.pub = &fake_server;
	d->server = &fake_server;
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	fake_snapshot(&d->dev[0]);
	fd_record_open(d);
	CHECK(d->journal != NULL && d->query != NULL);
	atexit(remove_dir);
	/* what the seed publishes (its patients and notes never) is what
	 * may be published */
	building_vocab = true;
	seed_journal();
	building_vocab = false;
	CHECK(vocab != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fd_journal_health h;
	struct answers an;

	if (d == NULL)
		setup();
	if (size > FD_REQUEST_MAX)
		return 0;
	/* the record's timers, when due (the trace, the held answers) */
	CHECK(event_base_loop(d->base, EVLOOP_NONBLOCK) == 0);
	fd_journal_health(d->journal, &h);
	if (h.queued > ROTATE_RECORDS)
		journal_fresh();
	/* 1 ms a request: a held answer times out (2 s) only when the
	 * writer is stuck */
	stub_unix_ms += 1;
	/* the device's answer, from the input's size: no format to keep */
	an.submit_rc = size % 7 == 3 ? -1 : 0;
	an.verdict = (enum fd_verdict)(size % 6);
	an.why = size & 1;
	an.store_err = size % 5 == 1 ? EIO : 0;
	an.ending = (enum ending)(size / 6 % NENDINGS);
	an.k = (unsigned)size;
	request(data, size, &an);
	until_committed();
	return 0;
}

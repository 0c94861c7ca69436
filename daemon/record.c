/*
 * The treatment record, the main thread's side: what each device's news
 * means for the journal (journal.c writes it, on its own thread), the
 * trace's samples, the commands' outcomes, and the `journal` alarm.
 *
 * Nothing here waits for the disk: every record is queued with
 * fd_journal_put(), which never blocks, and a reply that must wait for
 * the record (an ack) is held here until the writer says it is
 * committed.  A session's record opens on its "started" event with what
 * the start command brought (the patient reference, the note, the
 * profile's hash) and closes when the device is at rest again (idle,
 * fault, offline), with the final dose the control thread computed from
 * every reading (dose.c), carried in the snapshot.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "fasciad.h"

#define PATIENT_MAX 64
#define NOTE_MAX 500
#define HELD_MAX 64 /* replies waiting for their record */

/* A reply waiting until the records queued before it are committed. */
struct held {
	uint64_t qno;
	struct fd_envelope env;
	json_t *reply;
	double since_s; /* monotonic: a clock step neither hurries nor
			   holds it */
};

struct record {
	struct event *sample_timer;
	struct event *held_timer;
	struct held held[HELD_MAX];
	int nheld;
	uint64_t last_qno; /* of the last record queued */
	bool told_trouble; /* the journal alarm is raised */
};

static struct record *rec_of(struct fd_daemon *d)
{
	return d->record;
}

static uint64_t rec_put(struct fd_daemon *d, enum fd_jkind kind, json_t *o)
{
	struct record *r = rec_of(d);
	uint64_t qno;

	if (d->journal == NULL || r == NULL) {
		json_decref(o);
		return 0;
	}
	qno = fd_journal_put(d->journal, kind, fd_must(o));
	if (qno > 0)
		r->last_qno = qno;
	return qno;
}

/* A log entry: {"time", "kind", "device", "session", "event"} and the
 * fields of more (stolen). */
static uint64_t log_entry(struct fd_daemon *d, int64_t time_ms,
			  const char *kind, const char *device,
			  const char *session, const char *event, json_t *more)
{
	json_t *o = fd_must(json_pack(
		"{s:I, s:s, s:s?, s:s?, s:s}", "time", (json_int_t)time_ms,
		"kind", kind, "device", device, "session",
		session && session[0] ? session : NULL, "event", event));

	if (more != NULL) {
		json_object_update(o, more);
		json_decref(more);
	}
	return rec_put(d, FD_J_LOG, o);
}

void fd_record_daemon(struct fd_daemon *d, const char *event, const char *fmt,
		      ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_entry(d, fd_clock_unix_ms(), "daemon", NULL, NULL, event,
		  json_pack("{s:s}", "message", msg));
}

/* ---- the journal's health: the alarm, the held replies ---- */

static void send_held(struct fd_daemon *d, bool all)
{
	struct record *r = rec_of(d);
	struct fd_journal_health h;
	int kept = 0;

	if (d->journal != NULL)
		fd_journal_health(d->journal, &h);
	else
		h.committed = UINT64_MAX;
	for (int i = 0; i < r->nheld; i++) {
		struct held *x = &r->held[i];

		if (all || x->qno <= h.committed) {
			fd_server_send(d, &x->env, x->reply);
		} else {
			r->held[kept++] = *x;
		}
	}
	r->nheld = kept;
}

static void journal_changed(void *arg)
{
	struct fd_daemon *d = arg;
	struct record *r = rec_of(d);
	struct fd_daemon_alarm *a = &d->journal_alarm;
	struct fd_journal_health h;

	fd_journal_health(d->journal, &h);
	send_held(d, false);
	if (!h.ok && !r->told_trouble) {
		r->told_trouble = true;
		a->present = true;
		a->since_ms = h.since_ms;
		snprintf(a->message, sizeof(a->message),
			 "the treatment record cannot be written: %s", h.error);
		log_warnx("ALARM journal: %s; %s", a->message,
			  d->conf.journal_required
				  ? "start is refused until it can"
				  : "sessions go on unrecorded "
				    "(journal_required = no)");
		fd_publish_daemon_alarm(d, "journal", a);
	} else if (h.ok && r->told_trouble) {
		r->told_trouble = false;
		a->present = false;
		snprintf(a->message, sizeof(a->message),
			 "the treatment record is written again");
		log_info("journal: written again; alarm cleared");
		fd_publish_daemon_alarm(d, "journal", a);
	}
}

bool fd_record_writable(struct fd_daemon *d, char *why, size_t len)
{
	struct fd_journal_health h;

	if (d->journal == NULL)
		return true;
	fd_journal_health(d->journal, &h);
	if (h.ok)
		return true;
	snprintf(why, len, "%s", h.error);
	return false;
}

/* An answer sent before its record is written says so: in its result,
 * or in the error of a refusal. */
static void mark_unrecorded(json_t *reply, const char *why)
{
	json_t *in = json_object_get(reply, "result");

	if (in == NULL)
		in = json_object_get(reply, "error");
	json_object_set_new(in, "recorded",
			    fd_must(json_pack("{s:b, s:s}", "committed", 0,
					      "message", why)));
}

void fd_record_send_committed(struct fd_daemon *d,
			      const struct fd_envelope *env, json_t *reply)
{
	struct record *r = rec_of(d);
	char why[200];
	struct held *x;

	if (d->journal == NULL || r == NULL) {
		fd_server_send(d, env, reply);
		return;
	}
	/* A record that cannot be written now does not hold the answer: it
	 * waits in the queue, and the answer says so. */
	if (!fd_record_writable(d, why, sizeof(why)) || r->nheld == HELD_MAX) {
		if (r->nheld == HELD_MAX)
			snprintf(why, sizeof(why),
				 "%d answers already wait for the disk",
				 HELD_MAX);
		mark_unrecorded(reply, why);
		fd_server_send(d, env, reply);
		return;
	}
	x = &r->held[r->nheld++];
	x->qno = r->last_qno;
	x->env = *env;
	x->reply = reply;
	x->since_s = fd_clock_mono_s();
	send_held(d, false);
}

/* A reply held longer than FD_VERDICT_TIMEOUT_S (the disk is stuck, or
 * failed after the check) goes with what became of its record. */
static void held_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct fd_daemon *d = arg;
	struct record *r = rec_of(d);
	double now = fd_clock_mono_s();
	char why[200] = "";
	int kept = 0;

	(void)fd;
	(void)what;
	send_held(d, false);
	for (int i = 0; i < r->nheld; i++) {
		struct held *x = &r->held[i];

		if (now - x->since_s < FD_VERDICT_TIMEOUT_S) {
			r->held[kept++] = *x;
			continue;
		}
		if (fd_record_writable(d, why, sizeof(why)))
			snprintf(
				why, sizeof(why),
				"not committed within %.0f s: the disk is slow",
				FD_VERDICT_TIMEOUT_S);
		mark_unrecorded(x->reply, why);
		fd_server_send(d, &x->env, x->reply);
	}
	r->nheld = kept;
}

/* ---- sessions ---- */

static json_t *dose_json(const struct fd_dose *ds)
{
	json_t *a = fd_must(json_array());

	for (int i = 0; i < ds->chambers; i++)
		json_array_append_new(
			a,
			fd_must(json_pack(
				"{s:i, s:f, s:f, s:f, s:f}", "chamber", i + 1,
				"max_mmhg", round(ds->max_mmhg[i] * 10) / 10,
				"mean_mmhg",
				round(fd_dose_mean(ds, i) * 10) / 10, "mmhg_s",
				round(ds->mmhg_s[i] * 10) / 10, "above_30_s",
				round(ds->above_s[i] * 10) / 10)));
	return a;
}

/* The dose of the session numbered seq, in sn: NULL when the snapshot no
 * longer has it (it cannot happen: fasciad.h, struct fd_outbox). */
static const struct fd_dose *dose_of(const struct fd_snapshot *sn, int seq)
{
	const struct fd_dose *ds = &sn->dose[seq & 1];

	return ds->session_seq == seq ? ds : NULL;
}

static void put_dose(json_t *o, const struct fd_dose *ds)
{
	json_object_set_new(o, "delivered_s",
			    json_real(round(ds->delivered_s * 10) / 10));
	json_object_set_new(o, "paused_s",
			    json_real(round(ds->paused_s * 10) / 10));
	json_object_set_new(o, "dose", dose_json(ds));
}

/* The session's record closes: the device is at rest, or the daemon
 * stops (reason "shutdown"). */
static void close_session(struct fd_daemon *d, struct fd_device *dev,
			  const struct fd_snapshot *sn, int64_t time_ms,
			  const char *reason)
{
	struct fd_record_dev *rd = &dev->rec;
	const struct fd_dose *ds = sn ? dose_of(sn, rd->session_seq) : NULL;
	json_t *o;

	if (!rd->open)
		return;
	/* the alarm that ended it: only a fault's */
	o = fd_must(json_pack("{s:s, s:I, s:s, s:s?}", "id", rd->id, "ended",
			      (json_int_t)time_ms, "end_reason", reason,
			      "alarm",
			      rd->alarm >= 0 && strcmp(reason, "fault") == 0
				      ? ilk_rows[rd->alarm].name
				      : NULL));
	if (ds != NULL) {
		put_dose(o, ds);
	} else {
		log_warnx("device %s: session %s closed without its final "
			  "dose; the record keeps the last sample's",
			  dev->conf.name, rd->id);
	}
	rec_put(d, FD_J_SESSION_CLOSE, o);
	rd->open = false;
}

/* The start of the session fd_record_start() prepared (its change of
 * state, cause start). */
static void open_session(struct fd_daemon *d, struct fd_device *dev,
			 const struct fd_event_rec *e)
{
	struct fd_record_dev *rd = &dev->rec;

	if (!rd->starting || strcmp(rd->start_id, e->ctx.session_id) != 0) {
		log_warnx("device %s: session %s started without its start "
			  "command's record",
			  dev->conf.name, e->ctx.session_id);
		return;
	}
	json_object_set_new(rd->start_rec, "started",
			    json_integer((json_int_t)e->ctx.unix_ms));
	rec_put(d, FD_J_SESSION_OPEN, rd->start_rec);
	rd->start_rec = NULL;
	rd->starting = false;
	rd->open = true;
	snprintf(rd->id, sizeof(rd->id), "%s", e->ctx.session_id);
	rd->session_seq = e->ctx.session_seq;
	rd->end_reason = "running";
	rd->alarm = -1;
}

/* What a change of state says of how its session ends, or NULL: a
 * fault (a lost link too), or the profile's end, the operator's stop or
 * vent, by the change's cause. */
static const char *ending(const struct fd_event_rec *e)
{
	if (fd_state_is_fault(e->to) || e->to == FD_OFFLINE)
		return "fault";
	switch (e->cause) {
	case FD_EV_END:
		return "completed";
	case FD_EV_STOP:
		return "stopped";
	case FD_EV_VENT:
		return "vented";
	default:
		return NULL;
	}
}

/* ---- the news ---- */

static json_t *number_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static void alarm_entry(struct fd_daemon *d, struct fd_device *dev,
			const struct fd_event_rec *e, const char *event,
			const char *session)
{
	json_t *more = fd_must(json_pack(
		"{s:s, s:s, s:i, s:s}", "alarm",
		ilk_rows[e->alarm % ILK_COUNT].name, "priority",
		ilk_priority_name(ilk_rows[e->alarm % ILK_COUNT].priority),
		"chamber", e->chamber, "message", e->text));

	if (e->kind == FD_E_ALARM) {
		json_object_set_new(more, "value", number_or_null(e->value));
		json_object_set_new(more, "threshold",
				    number_or_null(e->threshold));
	}
	log_entry(d, e->ctx.unix_ms, "alarm", dev->conf.name, session, event,
		  more);
}

static void record_event(struct fd_daemon *d, struct fd_device *dev,
			 const struct fd_outbox *news,
			 const struct fd_event_rec *e)
{
	struct fd_record_dev *rd = &dev->rec;
	const char *name = dev->conf.name;
	const char *session = rd->open ? rd->id : NULL;
	const char *why;

	switch (e->kind) {
	case FD_E_STATE:
		/* the start's own change opens the record, so that the
		 * session's log begins with it */
		if (e->cause == FD_EV_START) {
			open_session(d, dev, e);
			session = rd->open ? rd->id : NULL;
		}
		log_entry(d, e->ctx.unix_ms, "state", name, session, "changed",
			  json_pack("{s:s, s:s, s:s}", "from",
				    fd_state_table_name(e->from), "to",
				    fd_state_table_name(e->to), "cause",
				    fd_event_name(e->cause)));
		/* a fault is the end, whatever came before it */
		if (rd->open && (why = ending(e)) != NULL &&
		    strcmp(rd->end_reason, "fault") != 0)
			rd->end_reason = why;
		if (rd->open && fd_session_at_rest(e->to))
			close_session(d, dev, &news->snap, e->ctx.unix_ms,
				      rd->end_reason);
		break;
	case FD_E_SESSION:
		log_entry(d, e->ctx.unix_ms, "state", name, session, "session",
			  json_pack("{s:s}", "message", e->text));
		break;
	case FD_E_ALARM:
		if (rd->open && rd->alarm < 0)
			rd->alarm = (int)e->alarm;
		snprintf(rd->alarm_session[e->alarm % ILK_COUNT],
			 sizeof(rd->alarm_session[0]), "%s",
			 session ? session : "");
		alarm_entry(d, dev, e, "raised", session);
		break;
	case FD_E_ALARM_ACK:
		session = rd->alarm_session[e->alarm % ILK_COUNT];
		alarm_entry(d, dev, e, "acknowledged", session);
		alarm_entry(d, dev, e, "cleared", session);
		break;
	case FD_E_LINK:
		log_entry(d, e->ctx.unix_ms, "link", name, session,
			  strncmp(e->text, "up", 2) == 0 ? "up" : "down",
			  json_pack("{s:s}", "message", e->text));
		break;
	}
}

void fd_record_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news)
{
	uint64_t lost;

	if (d->journal == NULL)
		return;
	for (int i = 0; i < news->nev; i++)
		record_event(d, dev, news, &news->ev[i]);
	/* Events the control thread could not hand over are missing from
	 * the record too: the record says how many, where they went. */
	if (news->have_snap && news->snap.events_lost > dev->rec.events_lost) {
		lost = news->snap.events_lost - dev->rec.events_lost;
		dev->rec.events_lost = news->snap.events_lost;
		log_entry(d, news->snap.unix_ms, "journal", dev->conf.name,
			  dev->rec.open ? dev->rec.id : NULL, "lost",
			  json_pack("{s:I, s:s}", "count", (json_int_t)lost,
				    "message",
				    "events the device's control thread "
				    "could not hand over (the main thread fell "
				    "behind) are missing here; the state "
				    "messages still carried the alarms"));
	}
}

/* ---- the trace ---- */

static json_t *numbers_json(const double *v, int n)
{
	json_t *a = fd_must(json_array());

	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_real(round(v[i] * 10) / 10));
	return a;
}

/* Every open session's sample: the trace (when trace_hz > 0) and the
 * dose so far, which a session closed as interrupted keeps. */
static void sample_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_daemon *d = arg;
	struct fd_snapshot *sn = xcalloc(1, sizeof(*sn));

	(void)fd;
	(void)what;
	for (int i = 0; i < d->ndev; i++) {
		struct fd_device *dev = &d->dev[i];
		const struct fd_dose *ds;
		json_t *o;

		if (!dev->rec.open || !fd_device_peek(dev, sn) ||
		    (ds = dose_of(sn, dev->rec.session_seq)) == NULL ||
		    !ds->open)
			continue;
		o = fd_must(json_pack("{s:s, s:I}", "session", dev->rec.id, "t",
				      (json_int_t)sn->unix_ms));
		if (d->conf.trace_hz > 0) {
			json_object_set_new(
				o, "pressure",
				numbers_json(sn->pressure, sn->chambers));
			json_object_set_new(
				o, "setpoint",
				numbers_json(sn->setpoint, sn->chambers));
		}
		put_dose(o, ds);
		rec_put(d, FD_J_SAMPLE, o);
	}
	free(sn);
}

/* ---- commands ---- */

static void session_id(const struct fd_device *dev, char *out, size_t len)
{
	uint16_t rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint16_t)random();
	snprintf(out, len, "%s-%lld-%04x", dev->conf.name,
		 (long long)fd_clock_unix_ms(), (unsigned)rnd);
}

static bool patient_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > PATIENT_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789._-") == n;
}

/* An optional string argument: NULL when absent; *bad set when present
 * and not a string. */
static const char *arg_opt_string(json_t *req, const char *key, bool *bad)
{
	json_t *v = json_object_get(req, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		*bad = true;
	return json_string_value(v);
}

/* Characters of a UTF-8 string (jansson's strings are valid UTF-8): the
 * bytes that do not continue one. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void sha256_hex(const char *text, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
	for (size_t i = 0; i < sizeof(h); i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Who, for the record: a name, or null (curve = no). */
static json_t *name_json(const char *name)
{
	return name[0] ? json_string(name) : json_null();
}

int fd_record_start(struct fd_daemon *d, struct fd_device *dev, json_t *req,
		    const struct fd_envelope *env,
		    const struct fascia_profile *p, struct fd_command *c,
		    json_t **reply)
{
	const struct fd_who *who = env ? &env->who : NULL;
	json_t *id = json_object_get(req, "id");
	struct fd_record_dev *rd = &dev->rec;
	bool bad = false;
	const char *patient = arg_opt_string(req, "patient", &bad);
	const char *note;
	char why[200], sha[65], *text;

	if (bad || (patient != NULL && !patient_ok(patient))) {
		*reply = fd_server_error(
			id, "bad_request", "patient",
			"\"patient\" must be 1 to %d of A-Z a-z 0-9 . _ - (an "
			"opaque reference, not a name)",
			PATIENT_MAX);
		return -1;
	}
	note = arg_opt_string(req, "note", &bad);
	if (bad || (note != NULL && utf8_chars(note) > NOTE_MAX)) {
		*reply = fd_server_error(id, "bad_request", "note",
					 "\"note\" must be a string of at most "
					 "%d characters",
					 NOTE_MAX);
		return -1;
	}
	if (d->conf.journal_required &&
	    !fd_record_writable(d, why, sizeof(why))) {
		*reply = fd_server_error(
			id, "interlock", NULL,
			"cannot start: the treatment record cannot be written "
			"(%s); fix the journal, or set journal_required = no "
			"to treat unrecorded",
			why);
		return -1;
	}
	session_id(dev, c->session_id, sizeof(c->session_id));
	fd_record_start_refused(dev);
	if (d->journal == NULL)
		return 0;
	text = fd_profiles_text(p);
	sha256_hex(text, sha);
	rec_put(d, FD_J_PROFILE,
		json_pack("{s:s, s:s, s:s}", "sha256", sha, "name", p->name,
			  "document", text));
	free(text);
	/* the operator: the person a gateway acts for, else the client */
	rd->start_rec = fd_must(json_pack(
		"{s:s, s:s, s:s, s:s, s:s?, s:o, s:s?, s:f, s:i, s:i}", "id",
		c->session_id, "device", dev->conf.name, "profile", p->name,
		"profile_sha256", sha, "patient", patient, "operator",
		name_json(who == NULL  ? ""
			  : who->as[0] ? who->as
				       : who->name),
		"note", note, "planned_s",
		round(fascia_profile_duration_s(p) * 10) / 10, "chambers",
		dev->conf.chambers, "trace_hz", d->conf.trace_hz));
	snprintf(rd->start_id, sizeof(rd->start_id), "%s", c->session_id);
	rd->starting = true;
	return 0;
}

void fd_record_start_refused(struct fd_device *dev)
{
	json_decref(dev->rec.start_rec);
	dev->rec.start_rec = NULL;
	dev->rec.starting = false;
}

void fd_record_command(struct fd_daemon *d, const char *cmd, json_t *req,
		       const struct fd_envelope *env, json_t *reply)
{
	const struct fd_who *who = env ? &env->who : NULL;
	json_t *err = json_object_get(reply, "error");
	const struct fascia_profile *p;
	const char *device, *session = NULL, *pname;
	char sha[65], *text;
	json_t *more;

	if (d->journal == NULL)
		return;
	device = json_string_value(json_object_get(req, "device"));
	/* the session it acts on: the one open on its device (a start's own,
	 * opened by the news just before its verdict) */
	for (int i = 0; device != NULL && i < d->ndev; i++)
		if (strcmp(d->dev[i].conf.name, device) == 0 &&
		    d->dev[i].rec.open)
			session = d->dev[i].rec.id;
	more = fd_must(json_pack(
		"{s:o, s:o, s:s, s:s}", "by", name_json(who ? who->name : ""),
		"as", name_json(who ? who->as : ""), "outcome",
		err ? json_string_value(json_object_get(err, "code")) : "ok",
		"message",
		err ? json_string_value(json_object_get(err, "message")) : ""));
	if ((pname = json_string_value(json_object_get(req, "profile")))) {
		json_object_set_new(more, "profile", json_string(pname));
		/* the document it named, as stored now (a put's new one) */
		if ((p = fd_profiles_find(&d->profiles, pname)) != NULL) {
			text = fd_profiles_text(p);
			sha256_hex(text, sha);
			free(text);
			json_object_set_new(more, "sha256", json_string(sha));
		}
	}
	log_entry(d, fd_clock_unix_ms(), "command", device, session, cmd, more);
}

/* ---- life ---- */

void fd_record_open(struct fd_daemon *d)
{
	struct record *r = xcalloc(1, sizeof(*r));
	struct timeval tv = {0, 0};
	int hz = d->conf.trace_hz > 0 ? d->conf.trace_hz : 1;

	d->record = r;
	if (strcmp(d->conf.journal, "off") == 0) {
		log_info("journal = off: no treatment record is kept");
		return;
	}
	if (sodium_init() < 0)
		fatalx("libsodium cannot start");
	d->journal =
		fd_journal_open(d->base, d->conf.journal,
				d->conf.trace_keep_days, journal_changed, d);
	d->query = fd_query_new(d->base, d->conf.journal);
	tv.tv_sec = hz == 1;
	tv.tv_usec = hz == 1 ? 0 : 1000000 / hz;
	r->sample_timer = event_new(d->base, -1, EV_PERSIST, sample_cb, d);
	r->held_timer = event_new(d->base, -1, EV_PERSIST, held_timeout, d);
	if (r->sample_timer == NULL || event_add(r->sample_timer, &tv) < 0 ||
	    r->held_timer == NULL ||
	    event_add(r->held_timer, &(struct timeval){0, 250000}) < 0)
		fatalx("cannot start the journal's timers");
}

void fd_record_close(struct fd_daemon *d)
{
	struct record *r = rec_of(d);
	struct fd_snapshot *sn = xcalloc(1, sizeof(*sn));

	if (r == NULL) {
		free(sn);
		return;
	}
	for (int i = 0; i < d->ndev; i++) {
		struct fd_device *dev = &d->dev[i];

		if (dev->rec.open)
			close_session(d, dev,
				      fd_device_peek(dev, sn) ? sn : NULL,
				      fd_clock_unix_ms(), "shutdown");
		fd_record_start_refused(dev);
	}
	free(sn);
	if (r->sample_timer)
		event_free(r->sample_timer);
	if (r->held_timer)
		event_free(r->held_timer);
	fd_query_destroy(&d->query);
	fd_journal_close(&d->journal, 2.0);
	send_held(d, true);
	free(r);
	d->record = NULL;
}

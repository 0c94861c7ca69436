/*
 * The journal: the treatment record (docs/records.md) in one SQLite file,
 * written by a thread of its own.  This file is its queue and its thread;
 * jwrite.c writes the records and jfile.c owns the file (journal.h).
 *
 * The main thread hands each record over with fd_journal_put(), which only
 * takes the lock to put a pointer in a ring: it never waits for the disk.
 * The writer takes everything queued, writes it in one transaction, and
 * only then lets the ring forget it: a record leaves the ring committed or
 * not at all, so a failed write (disk full, I/O error) loses nothing that
 * was queued.  The writer keeps it and tries again every second; the loop
 * hears of every commit and every change of health through an eventfd
 * (store.c's pattern).  What the file holds, and why, is docs/records.md's
 * "The file".
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "journal.h"

#ifndef JOURNAL_RETRY_MS
#define JOURNAL_RETRY_MS 1000 /* after a failed open or write */
#endif
#define JOURNAL_LINGER_MS 20 /* gather a burst (an alarm's entries) */
/* Trace samples alone wait longer: each commit is an fsync, and the
 * kernel's fsync path delays the control threads' wake-ups on a small
 * box (docs/performance.md); a sample is the least a crash may lose. */
#define JOURNAL_SAMPLE_LINGER_MS 500
#define JOURNAL_IDLE_MS 1000 /* an idle writer looks at retention */

struct fd_journal {
	char *path;
	fd_journal_changed changed;
	void *arg;
	int wake_fd;
	struct event *wake_ev;
	pthread_t thread;

	/* Under lock.  ring[head] is record number h.committed + 1; the n
	 * records from there wait for the disk (or are being written). */
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct jslot *ring;
	unsigned head, n;
	int64_t first_put_ms; /* monotonic: when n went from 0; 0: no linger */
	bool urgent;          /* a record other than a sample waits */
	struct lost_episode lost[LOST_EPISODES];
	int nlost;
	struct fd_journal_health h;
	bool stopping;
	int64_t deadline_ms; /* monotonic: stop writing then */
#ifdef FD_JOURNAL_TEST
	int test_fail_commits;       /* the next ones fail, SQLITE_FULL */
	uint64_t test_trace_deleted; /* trace rows retention removed */
#endif

	/* The writer thread's own (the opener's before it starts). */
	struct writer w;
	struct trouble trouble; /* not written since trouble.since_ms */
	char told[200];         /* the reason last logged */
	int64_t retry_at;       /* monotonic ms */
};

/* Real time, not fd_clock's: the writer's waits are on a real condvar,
 * whereas the records' and retention's times are fd_clock_unix_ms(). */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify(struct fd_journal *j)
{
	uint64_t one = 1;

	/* Only a counter at its maximum refuses this, and then the loop
	 * has a wake-up pending anyway. */
	(void)!write(j->wake_fd, &one, sizeof(one));
}

static void journal_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_journal *j = arg;
	uint64_t n;

	(void)what;
	(void)!read(fd, &n, sizeof(n));
	if (j->changed != NULL)
		j->changed(j->arg);
}

/* ---- the writer's side ---- */

/* The writer could not open or write: unhealthy from now (if not yet),
 * logged when the reason is new, retried in JOURNAL_RETRY_MS. */
static void troubled(struct fd_journal *j, const char *why)
{
	struct trouble *t = &j->trouble;
	bool news;

	if (!t->on) {
		t->on = true;
		t->since_ms = fd_clock_unix_ms();
		snprintf(t->why, sizeof(t->why), "%s", why);
	}
	if (strcmp(why, j->told) != 0) {
		log_warnx("journal: %s; records are kept in memory (up to %d) "
			  "and written once it can be, retrying every second",
			  why, FD_JOURNAL_QUEUE);
		snprintf(j->told, sizeof(j->told), "%s", why);
	}
	j->retry_at = mono_ms() + JOURNAL_RETRY_MS;
	pthread_mutex_lock(&j->lock);
	news = j->h.ok || strcmp(j->h.error, why) != 0;
	j->h.ok = false;
	snprintf(j->h.error, sizeof(j->h.error), "%s", why);
	j->h.since_ms = t->since_ms;
	pthread_mutex_unlock(&j->lock);
	if (news)
		notify(j);
}

/* Under lock: what the next write takes. */
static void take(struct fd_journal *j, struct batch *b)
{
	b->ring = j->ring;
	b->head = j->head;
	b->n = j->n;
	b->first = j->h.committed + 1;
	b->nlost = j->nlost;
	memcpy(b->lost, j->lost, sizeof(b->lost));
	b->trouble = j->trouble.on ? &j->trouble : NULL;
	b->fail = false;
	j->urgent = false;
#ifdef FD_JOURNAL_TEST
	if (j->test_fail_commits > 0) {
		j->test_fail_commits--;
		b->fail = true;
	}
#endif
}

/* Under lock: the episodes b wrote are forgotten.  One may have grown
 * while b was written: the rest of it goes at the start of the next
 * write. */
static void forget_lost(struct fd_journal *j, const struct batch *b)
{
	for (int i = 0; i < b->nlost; i++)
		for (int k = 0; k < j->nlost; k++)
			if (j->lost[k].after == b->lost[i].after) {
				j->lost[k].records -= b->lost[i].records;
				j->lost[k].logs -= b->lost[i].logs;
			}
	for (int k = 0; k < j->nlost;)
		if (j->lost[k].records == 0)
			memmove(&j->lost[k], &j->lost[k + 1],
				(size_t)(--j->nlost - k) * sizeof(j->lost[0]));
		else
			k++;
}

/* b is on disk: the ring forgets it, the health says so. */
static void committed(struct fd_journal *j, const struct batch *b)
{
	/* Ours until head moves: put() only writes past head + n. */
	for (unsigned i = 0; i < b->n; i++) {
		struct jslot *r = &j->ring[(j->head + i) % FD_JOURNAL_QUEUE];

		json_decref(r->rec);
		r->rec = NULL;
	}
	pthread_mutex_lock(&j->lock);
	j->head = (j->head + b->n) % FD_JOURNAL_QUEUE;
	j->n -= b->n;
	j->h.committed += b->n;
	forget_lost(j, b);
	j->h.ok = true;
	j->h.error[0] = '\0';
	j->h.since_ms = 0;
	j->h.next_seq = j->w.next_seq;
	/* what came during the write has waited long enough (samples alone
	 * wait for more) */
	if (j->n > 0)
		j->first_put_ms = j->urgent ? 0 : mono_ms();
	pthread_mutex_unlock(&j->lock);
	if (j->trouble.on) {
		char since[40];

		jfile_time(j->trouble.since_ms, since, sizeof(since));
		log_info("journal: %s is written again (%s, since %s); the %u "
			 "records held are written",
			 j->path, j->trouble.why, since, b->n);
	}
	j->trouble.on = false;
	j->told[0] = '\0';
	notify(j);
}

/* Retention's question after each of its transactions. */
static bool records_wait(void *arg)
{
	struct fd_journal *j = arg;
	bool busy;

	pthread_mutex_lock(&j->lock);
	busy = j->n > 0 || j->stopping;
	pthread_mutex_unlock(&j->lock);
	return busy;
}

static void retention(struct fd_journal *j)
{
	uint64_t deleted = jwrite_retention(&j->w, records_wait, j);

	if (deleted == 0)
		return;
#ifdef FD_JOURNAL_TEST
	pthread_mutex_lock(&j->lock);
	j->test_trace_deleted += deleted;
	pthread_mutex_unlock(&j->lock);
#endif
	notify(j);
}

/* ---- the thread ---- */

enum work { WORK_STOP, WORK_BATCH, WORK_RETENTION };

static void wait_until(struct fd_journal *j, int64_t until_ms)
{
	struct timespec ts = {until_ms / 1000, (until_ms % 1000) * 1000000};

	pthread_cond_timedwait(&j->work, &j->lock, &ts);
}

/* Under lock: wait for something to do. */
static enum work next_work(struct fd_journal *j)
{
	struct writer *w = &j->w;

	for (;;) {
		int64_t now = mono_ms(), until;
		bool pending = j->n > 0 || j->nlost > 0;

		if (j->stopping && (!pending || now >= j->deadline_ms))
			return WORK_STOP;
		if (j->trouble.on) {
			/* also with nothing queued: to be healthy again */
			if (now >= j->retry_at)
				return WORK_BATCH;
			until = j->retry_at;
		} else if (pending) {
			int64_t linger = j->urgent || j->nlost > 0
						 ? JOURNAL_LINGER_MS
						 : JOURNAL_SAMPLE_LINGER_MS;

			if (j->stopping || j->first_put_ms == 0 ||
			    now >= j->first_put_ms + linger ||
			    j->n >= FD_JOURNAL_QUEUE / 4)
				return WORK_BATCH;
			until = j->first_put_ms + linger;
		} else if (!j->stopping && w->db != NULL &&
			   (w->retention_more ||
			    fd_clock_unix_ms() >= w->retention_next)) {
			return WORK_RETENTION;
		} else {
			until = now + JOURNAL_IDLE_MS;
		}
		if (j->stopping && until > j->deadline_ms)
			until = j->deadline_ms;
		wait_until(j, until);
	}
}

static void *writer_main(void *arg)
{
	struct fd_journal *j = arg;
	struct batch b;
	char why[200];
	enum work what;

	pthread_mutex_lock(&j->lock);
	while ((what = next_work(j)) != WORK_STOP) {
		if (what == WORK_BATCH)
			take(j, &b);
		pthread_mutex_unlock(&j->lock);
		if (what == WORK_RETENTION)
			retention(j);
		else if (jwrite_batch(&j->w, &b, why, sizeof(why)) == 0)
			committed(j, &b);
		else
			troubled(j, why);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	jfile_close(&j->w);
	return NULL;
}

/* ---- the main thread's side ---- */

/* The lock, the condvar on the monotonic clock, and the eventfd. */
static void hand_over_init(struct fd_journal *j, struct event_base *base)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->work, &ca);
	pthread_condattr_destroy(&ca);
	if ((j->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("journal: eventfd");
	j->wake_ev = event_new(base, j->wake_fd, EV_READ | EV_PERSIST,
			       journal_wake_cb, j);
	if (j->wake_ev == NULL || event_add(j->wake_ev, NULL) == -1)
		fatalx("journal: cannot watch its eventfd");
}

struct fd_journal *fd_journal_open(struct event_base *base, const char *path,
				   int trace_keep_days,
				   fd_journal_changed changed, void *arg)
{
	struct fd_journal *j = xcalloc(1, sizeof(*j));
	size_t len = strlen(path);
	sigset_t all, old;
	char why[200];
	int err;

	j->path = xcalloc(1, len + 1);
	memcpy(j->path, path, len);
	j->changed = changed;
	j->arg = arg;
	j->ring = xcalloc(FD_JOURNAL_QUEUE, sizeof(*j->ring));
	j->h.ok = true;
	j->w.path = j->path;
	/* config.c bounds it to 1..36500: a trace is always kept a day */
	j->w.keep_days = trace_keep_days < 1 ? 1 : trace_keep_days;
	j->w.next_seq = 1;
	hand_over_init(j, base);
	if (jwrite_open(&j->w, why, sizeof(why)) < 0)
		troubled(j, why);
	j->h.next_seq = j->w.next_seq;
	/* Signals go to the loop's thread and never interrupt a write. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&j->thread, NULL, writer_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		fatal("journal: cannot start its thread");
	}
	return j;
}

/* Under lock: count a record the full ring refused, in the gap after
 * the last record it took. */
static void note_lost(struct fd_journal *j, bool log)
{
	uint64_t after = j->h.queued;
	struct lost_episode *e = j->nlost > 0 ? &j->lost[j->nlost - 1] : NULL;

	/* Past LOST_EPISODES (never seen: one opens per commit), the last
	 * one takes the rest, a little late. */
	if (e == NULL || (e->after != after && j->nlost < LOST_EPISODES)) {
		e = &j->lost[j->nlost++];
		*e = (struct lost_episode){.after = after};
	}
	e->records++;
	e->logs += log;
}

uint64_t fd_journal_put(struct fd_journal *j, enum fd_jkind kind, json_t *rec)
{
	uint64_t no = 0;

	if (rec == NULL)
		return 0;
	pthread_mutex_lock(&j->lock);
	if (kind == FD_J_SAMPLE && j->n >= FD_JOURNAL_QUEUE / 2) {
		j->h.samples_dropped++;
	} else if (j->n == FD_JOURNAL_QUEUE) {
		j->h.lost++;
		note_lost(j, kind == FD_J_LOG);
	} else {
		j->ring[(j->head + j->n) % FD_JOURNAL_QUEUE] =
			(struct jslot){.kind = kind, .rec = rec};
		rec = NULL;
		if (j->n++ == 0)
			j->first_put_ms = mono_ms();
		j->urgent |= kind != FD_J_SAMPLE;
		no = ++j->h.queued;
		pthread_cond_signal(&j->work);
	}
	pthread_mutex_unlock(&j->lock);
	json_decref(rec); /* refused: ours to free, outside the lock */
	return no;
}

void fd_journal_health(struct fd_journal *j, struct fd_journal_health *h)
{
	pthread_mutex_lock(&j->lock);
	*h = j->h;
	h->waiting = j->n;
	pthread_mutex_unlock(&j->lock);
}

void fd_journal_close(struct fd_journal **jp, double timeout_s)
{
	struct fd_journal *j = *jp;
	struct timespec until;
	unsigned left;
	int err;

	if (j == NULL)
		return;
	*jp = NULL;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	j->deadline_ms = mono_ms() + (int64_t)(fmax(timeout_s, 0) * 1000);
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
	/* A write the disk never answers keeps the thread: then leave it
	 * (and j) to the exit rather than wait for ever. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)fmax(timeout_s, 0) + 5;
	if ((err = pthread_timedjoin_np(j->thread, NULL, &until)) != 0) {
		log_warnx("journal: the writer is stuck in a write (the disk "
			  "does not answer); %u records may not be written",
			  j->n);
		return;
	}
	if ((left = j->n) > 0)
		log_warnx("journal: %u record%s could not be written to %s "
			  "before stopping (%s)",
			  left, left > 1 ? "s" : "", j->path,
			  j->h.ok ? "time out" : j->h.error);
	for (unsigned i = 0; i < left; i++)
		json_decref(j->ring[(j->head + i) % FD_JOURNAL_QUEUE].rec);
	event_free(j->wake_ev);
	close(j->wake_fd);
	pthread_cond_destroy(&j->work);
	pthread_mutex_destroy(&j->lock);
	free(j->ring);
	free(j->path);
	free(j);
}

int fd_journal_check(const char *path, char *why, size_t len)
{
	/* a question about the file alone: jfile.c's */
	return jfile_check(path, why, len);
}

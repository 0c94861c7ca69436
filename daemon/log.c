/*
 * Logging to stderr and, for a daemon, to syslog, with OpenBSD's verbs:
 * log_warn adds strerror(errno), fatal/fatalx exit.
 *
 * syslog() and a write to stderr can block: journald falls behind, the
 * pipe stderr goes to is full.  The main thread runs the libevent loop and
 * must not block, so once log_start() has run, log_* only format the line
 * on the caller's stack and copy it into a bounded ring; a writer thread of
 * its own takes the lines out one at a time and writes them, without the
 * ring's lock held while it writes.  Before log_start() (the daemon has not
 * forked yet) and after log_close(), lines are written at once, as before.
 *
 * A full ring never makes the caller wait: the line is dropped and counted.
 * The count is written, as one LOG_WARNING line, where the lost lines would
 * have been: after the lines queued before the first loss, before the first
 * one queued after it.  Nothing is lost without a trace.
 *
 * The ring's mutex is taken by the main thread and other threads that are
 * not real-time, each for the copy of one line; the control threads
 * (SCHED_FIFO) do not log, so they never wait on it.
 *
 * fatal and fatalx do not wait for the writer, which may be the thing that
 * is stuck: they take what is queued (if the lock is free at once), write
 * it and their own line directly, and exit.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fasciad.h"

#define LOG_RING 256 /* a power of two: the counters wrap with it */
#define LOG_LINE 512

/* How vlog treats a line. */
#define LF_ERRNO 0x1 /* append ": strerror(errno)" */
#define LF_NOW 0x2   /* write it from this thread, queue or not */

struct log_line {
	int pri;
	char text[LOG_LINE];
};

static bool use_syslog;
static bool debug;
/* Where the "fasciad: ..." lines go; NULL is stderr (tests set a file). */
static FILE *log_out;

/* The ring and its writer; everything below is guarded by log_mtx. */
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;
static pthread_t log_thread;
static bool log_running; /* log_* queue rather than write */
static bool log_stopping;
static struct log_line log_ring[LOG_RING];
static unsigned log_head, log_tail; /* next to write, next free */
static unsigned long log_dropped;
static unsigned log_drop_at; /* log_tail at the first of log_dropped */

void log_init(bool to_syslog, bool verbose)
{
	use_syslog = to_syslog;
	debug = verbose;
	if (use_syslog)
		openlog("fasciad", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* Write one line: the call that may block. */
static void emit(int pri, const char *text)
{
	if (use_syslog)
		syslog(pri, "%s", text);
	fprintf(log_out ? log_out : stderr, "fasciad: %s\n", text);
}

static void emit_dropped(unsigned long n)
{
	char text[96];

	snprintf(text, sizeof(text),
		 "%lu log messages dropped (the log could not keep up)", n);
	emit(LOG_WARNING, text);
}

/*
 * With log_mtx held: take the next line into l (true) and any count of
 * lines dropped just before it into *lost.  A count is due once every line
 * queued before the loss is out, even if no line follows yet.
 */
static bool take(struct log_line *l, unsigned long *lost)
{
	*lost = 0;
	if (log_dropped && log_head == log_drop_at) {
		*lost = log_dropped;
		log_dropped = 0;
	}
	if (log_head == log_tail)
		return false;
	*l = log_ring[log_head % LOG_RING];
	log_head++;
	return true;
}

static void *writer(void *arg)
{
	struct log_line l;
	unsigned long lost;
	bool have;

	(void)arg;
	pthread_mutex_lock(&log_mtx);
	for (;;) {
		while (log_head == log_tail && !log_dropped && !log_stopping)
			pthread_cond_wait(&log_cond, &log_mtx);
		have = take(&l, &lost);
		if (!have && !lost)
			break; /* stopping, and everything is out */
		pthread_mutex_unlock(&log_mtx);
		if (lost)
			emit_dropped(lost);
		if (have)
			emit(l.pri, l.text);
		pthread_mutex_lock(&log_mtx);
	}
	pthread_mutex_unlock(&log_mtx);
	return NULL;
}

/* Queue l for the writer: true, even if it had to be dropped; false when
 * no writer runs and the caller must write it. */
static bool enqueue(const struct log_line *l)
{
	bool queued;

	pthread_mutex_lock(&log_mtx);
	queued = log_running;
	if (queued && log_tail - log_head == LOG_RING) {
		if (log_dropped++ == 0)
			log_drop_at = log_tail;
	} else if (queued) {
		struct log_line *slot = &log_ring[log_tail % LOG_RING];

		slot->pri = l->pri;
		memcpy(slot->text, l->text, strlen(l->text) + 1);
		log_tail++;
		pthread_cond_signal(&log_cond);
	}
	pthread_mutex_unlock(&log_mtx);
	return queued;
}

/* For fatal: write what is queued from this thread, without waiting for a
 * lock someone holds; the writer may keep the line it is writing. */
static void flush_now(void)
{
	struct log_line l;
	unsigned long lost;
	bool have;

	for (int i = 0; i <= LOG_RING; i++) {
		if (pthread_mutex_trylock(&log_mtx) != 0)
			return;
		have = take(&l, &lost);
		pthread_mutex_unlock(&log_mtx);
		if (lost)
			emit_dropped(lost);
		if (!have)
			return;
		emit(l.pri, l.text);
	}
}

static void vlog(int pri, int flags, const char *fmt, va_list ap)
{
	int saved = errno;
	struct log_line l;
	size_t room = sizeof(l.text);
	const char *err = NULL;

	if (flags & LF_ERRNO) {
		/* keep room for the error, however long the message */
		err = strerror(saved);
		room -= strlen(err) + 2;
	}
	l.pri = pri;
	vsnprintf(l.text, room, fmt, ap);
	if (err) {
		strcat(l.text, ": ");
		strcat(l.text, err);
	}
	if (flags & LF_NOW) {
		flush_now();
		emit(pri, l.text);
	} else if (!enqueue(&l)) {
		emit(pri, l.text);
	}
	errno = saved;
}

void log_start(void)
{
	sigset_t all, old;
	int err;

	pthread_mutex_lock(&log_mtx);
	if (log_running) {
		pthread_mutex_unlock(&log_mtx);
		return;
	}
	log_stopping = false;
	/* Signals are the loop's: the writer inherits a mask of all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&log_thread, NULL, writer, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_running = err == 0;
	pthread_mutex_unlock(&log_mtx);
	if (err) {
		errno = err;
		fatal("cannot start the log's writer thread");
	}
}

void log_close(void)
{
	bool running;

	pthread_mutex_lock(&log_mtx);
	running = log_running;
	/* From here on, lines are written by their callers. */
	log_running = false;
	log_stopping = true;
	pthread_cond_signal(&log_cond);
	pthread_mutex_unlock(&log_mtx);
	if (running)
		pthread_join(log_thread, NULL);
}

/* The verbs differ only in priority and flags: each is vlog on its own
 * arguments. */
#define LOG_VA(pri, flags, fmt)                                                \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		vlog(pri, flags, fmt, ap);                                     \
		va_end(ap);                                                    \
	} while (0)

void log_warn(const char *fmt, ...)
{
	LOG_VA(LOG_WARNING, LF_ERRNO, fmt);
}

void log_warnx(const char *fmt, ...)
{
	LOG_VA(LOG_WARNING, 0, fmt);
}

void log_info(const char *fmt, ...)
{
	LOG_VA(LOG_INFO, 0, fmt);
}

void log_debug(const char *fmt, ...)
{
	if (debug)
		LOG_VA(LOG_DEBUG, 0, fmt);
}

void fatal(const char *fmt, ...)
{
	LOG_VA(LOG_CRIT, LF_ERRNO | LF_NOW, fmt);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_VA(LOG_CRIT, LF_NOW, fmt);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL && n && size)
		fatal("calloc");
	return p;
}

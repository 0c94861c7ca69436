/*
 * fascia-web's log: lines on stderr, "fascia-web: ...", which systemd's
 * journal takes as they come.
 *
 * A write to stderr can block (journald falls behind, the pipe is full),
 * and the loop must not: once log_start() has run, a line is formatted on
 * the caller's stack and copied into a bounded ring, and a writer thread
 * takes it out and writes it without the lock held.  A full ring drops the
 * line and counts it; the count is written where the lines were lost.
 * Before log_start() (-n, --add-user, the start) lines are written at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define LOG_RING 256 /* a power of two */
#define LOG_LINE 512

static bool verbose_log;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;
static pthread_t log_thread;
static bool log_running, log_stopping;
static char log_ring[LOG_RING][LOG_LINE];
static unsigned log_head, log_tail; /* next to write, next free */
static unsigned long log_dropped;

void log_init(bool verbose)
{
	verbose_log = verbose;
}

static void emit(const char *text)
{
	fprintf(stderr, "fascia-web: %s\n", text);
}

static void *writer(void *arg)
{
	char line[LOG_LINE];
	unsigned long dropped;

	(void)arg;
	pthread_mutex_lock(&log_mtx);
	for (;;) {
		while (log_head == log_tail && !log_dropped && !log_stopping)
			pthread_cond_wait(&log_cond, &log_mtx);
		if (log_head == log_tail && !log_dropped)
			break; /* stopping, and nothing left */
		dropped = 0;
		if (log_head != log_tail) {
			memcpy(line, log_ring[log_head % LOG_RING], LOG_LINE);
			log_head++;
		} else {
			dropped = log_dropped;
			log_dropped = 0;
		}
		pthread_mutex_unlock(&log_mtx);
		if (dropped)
			snprintf(line, sizeof(line),
				 "%lu log lines lost: the log could not keep "
				 "up",
				 dropped);
		emit(line);
		pthread_mutex_lock(&log_mtx);
	}
	pthread_mutex_unlock(&log_mtx);
	return NULL;
}

void log_start(void)
{
	pthread_mutex_lock(&log_mtx);
	if (!log_running &&
	    pthread_create(&log_thread, NULL, writer, NULL) == 0)
		log_running = true;
	pthread_mutex_unlock(&log_mtx);
}

void log_close(void)
{
	pthread_mutex_lock(&log_mtx);
	if (!log_running) {
		pthread_mutex_unlock(&log_mtx);
		return;
	}
	log_stopping = true;
	pthread_cond_signal(&log_cond);
	pthread_mutex_unlock(&log_mtx);
	pthread_join(log_thread, NULL);
	log_running = false;
	log_stopping = false;
}

static void put(const char *text)
{
	pthread_mutex_lock(&log_mtx);
	if (!log_running) {
		pthread_mutex_unlock(&log_mtx);
		emit(text);
		return;
	}
	if (log_tail - log_head >= LOG_RING) {
		log_dropped++;
	} else {
		snprintf(log_ring[log_tail % LOG_RING], LOG_LINE, "%s", text);
		log_tail++;
	}
	pthread_cond_signal(&log_cond);
	pthread_mutex_unlock(&log_mtx);
}

static void vlog(bool with_errno, const char *fmt, va_list ap)
{
	char line[LOG_LINE];
	int saved = errno;
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
			 strerror(saved));
	put(line);
	errno = saved;
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!verbose_log)
		return;
	va_start(ap, fmt);
	vlog(false, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(false, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(true, fmt, ap);
	va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(false, fmt, ap);
	va_end(ap);
}

/* Not through the writer, which may be what is stuck. */
static _Noreturn void vfatal(bool with_errno, const char *fmt, va_list ap)
{
	char line[LOG_LINE];
	int saved = errno, n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
			 strerror(saved));
	emit(line);
	exit(1);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(true, fmt, ap);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(false, fmt, ap);
}

/*
 * Logging to stderr and, for a daemon, to syslog, with OpenBSD's verbs:
 * log_warn adds strerror(errno), fatal/fatalx exit.  Safe to call from the
 * control threads (one write per message).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fasciad.h"

static bool use_syslog;
static bool debug;

void log_init(bool to_syslog, bool verbose)
{
	use_syslog = to_syslog;
	debug = verbose;
	if (use_syslog)
		openlog("fasciad", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void vlog(int pri, const char *fmt, va_list ap, const char *err)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (use_syslog)
		syslog(pri, err ? "%s: %s" : "%s%s", msg, err ? err : "");
	fprintf(stderr, err ? "fasciad: %s: %s\n" : "fasciad: %s%s\n", msg,
		err ? err : "");
}

void log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap, err);
	va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!debug)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL && n && size)
		fatal("calloc");
	return p;
}

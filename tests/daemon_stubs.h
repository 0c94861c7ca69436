/*
 * Stand-ins for daemon/log.c and the main thread's side of daemon/device.c,
 * for the tests and fuzz targets that #include the daemon's other modules
 * without its threads.  Include once, after the daemon's .c files.
 * Warnings are counted (stub_warnings), not printed; fatal errors print
 * and abort.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int stub_warnings;

void log_warn(const char *fmt, ...)
{
	(void)fmt;
	stub_warnings++;
}
void log_warnx(const char *fmt, ...)
{
	(void)fmt;
	stub_warnings++;
}
void log_info(const char *fmt, ...)
{
	(void)fmt;
}
void log_debug(const char *fmt, ...)
{
	(void)fmt;
}
static _Noreturn void stub_die(const char *fmt, va_list ap)
{
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	abort();
}
void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stub_die(fmt, ap);
}
void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stub_die(fmt, ap);
}
void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		abort();
	return p;
}

/* No control thread: the snapshot is the one the test put in dev->snap. */
bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap)
{
	if (dev->have_snap)
		*snap = dev->snap;
	return dev->have_snap;
}

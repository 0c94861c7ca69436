/*
 * Stand-ins for daemon/log.c, daemon/clock.c and the main thread's side of
 * daemon/device.c, for the tests and fuzz targets that #include the
 * daemon's other modules without its threads.  The clock is the test's:
 * stub_mono_us and stub_unix_ms, moved by the test.  Include once, after the
 * daemon's .c files. Warnings are counted (stub_warnings), not printed; fatal
 * errors print and abort.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int stub_warnings;
static int stub_logs; /* every log call, of any priority */

void log_warn(const char *fmt, ...)
{
	(void)fmt;
	stub_warnings++;
	stub_logs++;
}
void log_warnx(const char *fmt, ...)
{
	(void)fmt;
	stub_warnings++;
	stub_logs++;
}
void log_start(void)
{
}
void log_close(void)
{
}
void log_info(const char *fmt, ...)
{
	(void)fmt;
	stub_logs++;
}
void log_debug(const char *fmt, ...)
{
	(void)fmt;
	stub_logs++;
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

static uint64_t stub_mono_us = 1000000000;
static int64_t stub_unix_ms = 1795440000000;

double fd_clock_mono_s(void)
{
	return (double)stub_mono_us / 1e6;
}
uint64_t fd_clock_mono_us(void)
{
	return stub_mono_us;
}
int64_t fd_clock_unix_ms(void)
{
	return stub_unix_ms;
}

#ifndef STUBS_KEEP_DEVICE
/* No control thread: the snapshot is the one the test put in the
 * device's mailbox (dev->box). */
bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap)
{
	if (dev->box.have_snap)
		*snap = dev->box.snap;
	return dev->box.have_snap;
}
#endif

/*
 * fascia-top without a terminal: once a second, one plain line per device
 * (state, session, pressures/setpoints, alarms, link), for logs and pipes.
 * It stops after --count lines, or once the daemon has been silent for
 * PLAIN_GONE_MS; when nothing at all answers within PLAIN_START_MS of the
 * start it exits 3.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "top.h"

#define PLAIN_START_MS 5000
#define PLAIN_GONE_MS 10000
#define PLAIN_PERIOD_MS 1000

/* Append to buf (of len), keeping it NUL-terminated when it fills. */
static size_t add(char *buf, size_t len, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t add(char *buf, size_t len, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= len)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, len - at, fmt, ap);
	va_end(ap);
	if (n < 0)
		return at;
	return at + (size_t)n < len ? at + (size_t)n : len;
}

void plain_format(const struct top *t, const struct top_device *d, char *buf,
		  size_t len)
{
	size_t at = 0;
	int i;

	at = add(buf, len, at, "%s state=%s%s", d->name, d->state,
		 top_device_stale(t, d) ? " STALE" : "");
	if (d->in_session)
		at = add(buf, len, at,
			 " profile=%s step=%d cycle=%d elapsed_s=%.1f "
			 "remaining_s=%.1f",
			 d->profile, d->step, d->cycle, d->elapsed_s,
			 d->remaining_s);
	/* "?" is unknown: no reading yet, or one that is not a number */
	at = add(buf, len, at, " pressures=%s", d->nchambers ? "" : "?");
	for (i = 0; i < d->nchambers; i++) {
		const struct top_chamber *c = &d->chambers[i];

		at = add(buf, len, at, "%s", i ? "," : "");
		if (c->pressure_known)
			at = add(buf, len, at, "%.1f", c->pressure);
		else
			at = add(buf, len, at, "?");
		if (c->setpoint_known)
			at = add(buf, len, at, "/%.1f", c->setpoint);
		else
			at = add(buf, len, at, "/?");
	}
	if (d->supply_known)
		at = add(buf, len, at, " supply=%.1f", d->supply);
	else
		at = add(buf, len, at, " supply=?");
	at = add(buf, len, at, " alarms=");
	if (d->nalarms == 0)
		at = add(buf, len, at, "none");
	for (i = 0; i < d->nalarms; i++) {
		const struct top_alarm *a = &d->alarms[i];

		at = add(buf, len, at, "%s%s:%s%s%s", i ? "," : "", a->id,
			 a->priority, a->latched ? ":latched" : "",
			 a->present ? ":present" : "");
	}
	add(buf, len, at, " link=%s rtt_us=%lld timeouts=%lld errors=%lld",
	    d->link_up ? "up" : "down", d->rtt_us, d->timeouts, d->errors);
}

static void wait_monitor(struct top *t, int timeout_ms)
{
	struct pollfd fd;

	if (timeout_ms <= 0)
		return;
	fd.fd = fascia_monitor_fd(t->monitor);
	fd.events = POLLIN;
	fd.revents = 0;
	/* ZMQ_FD is edge-triggered: never wait long on it alone. */
	if (timeout_ms > 100)
		timeout_ms = 100;
	poll(&fd, 1, timeout_ms); /* a negative fd: just the timeout */
}

/* Wait for the daemon: a reply to the query, or a first state message. */
static bool reach(struct top *t)
{
	if (top_model_query(t) == 0)
		return true;
	if (t->refused)
		return false; /* the publisher refuses the same certificate */
	while (top_now_ms() - t->started_ms < PLAIN_START_MS) {
		if (top_model_drain(t, 1000) > 0 && t->last_state_ms)
			return true;
		wait_monitor(t, 100);
	}
	return false;
}

static void print_stamp(void)
{
	char stamp[16];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fputs(stamp, stdout);
}

/* One batch: a line per device.  Returns the lines printed. */
static long print_batch(const struct top *t, long left)
{
	char line[2048];
	long n = 0;
	int i;

	if (top_daemon_unreachable(t)) {
		print_stamp();
		printf(" daemon unreachable: no state for %lld s\n",
		       (long long)(top_silence_ms(t) / 1000));
		return 0;
	}
	for (i = 0; i < t->ndevices && (left < 0 || n < left); i++) {
		plain_format(t, &t->devices[i], line, sizeof(line));
		print_stamp();
		printf(" %s\n", line);
		n++;
	}
	return n;
}

/* The plain loop: 0 after --count lines, 1 when the daemon went away or
 * the output failed, 3 when it was unreachable from the start. */
int plain_run(struct top *t, long count)
{
	int64_t next;
	long printed = 0;

	signal(SIGPIPE, SIG_IGN);
	if (!reach(t)) {
		if (t->refused)
			fprintf(stderr, "fascia-top: %s: %s\n", t->control,
				top_no_reply_why(t));
		else
			fprintf(stderr,
				"fascia-top: no reply from %s / %s within %d "
				"ms: %s\n",
				t->control, t->publish, PLAIN_START_MS,
				top_no_reply_why(t));
		return 3;
	}
	next = top_now_ms();
	for (;;) {
		top_model_drain(t, 2000);
		top_model_maybe_requery(t);
		if (top_now_ms() >= next) {
			printed += print_batch(t, count < 0 ? -1
							    : count - printed);
			if (fflush(stdout) != 0 || ferror(stdout))
				return 1;
			if (count >= 0 && printed >= count)
				return 0;
			next += PLAIN_PERIOD_MS;
		}
		if (top_silence_ms(t) > PLAIN_GONE_MS) {
			fprintf(stderr, "fascia-top: daemon gone for %d s\n",
				PLAIN_GONE_MS / 1000);
			return 1;
		}
		wait_monitor(t, (int)(next - top_now_ms()));
	}
}

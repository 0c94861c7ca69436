/*
 * fasciad under systemd (docs/install.md): sd_notify() through libsystemd.
 * READY=1 once the sockets listen and every device's thread runs, STATUS=
 * a line of the devices and their states, RELOADING=1 and READY=1 around
 * SIGHUP, STOPPING=1 on the way out, and WATCHDOG=1 at half of
 * WATCHDOG_USEC, sent only while the main loop runs (it is a timer of the
 * loop) and every control thread has ticked within the last second: a
 * daemon whose loop or a device's thread is wedged is restarted, and the
 * device's own watchdog has vented it by then (docs/safety.md).  Outside
 * systemd (no NOTIFY_SOCKET) nothing here does anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "fasciad.h"

struct notify {
	struct event *watchdog;
	uint64_t watchdog_us; /* WATCHDOG_USEC, 0: none */
	double ready_s;       /* when READY=1 went */
	bool withheld;        /* the last WATCHDOG=1 was not sent */
	char status[512];     /* the last STATUS= sent */
	enum fd_state state[FD_MAX_DEVICES];
};

static struct notify *notify_of(struct fd_daemon *d)
{
	return d->notify;
}

static void send_status(struct fd_daemon *d, const char *prefix)
{
	struct notify *n = notify_of(d);
	char line[sizeof(n->status)], msg[sizeof(line) + 64];

	fd_notify_status_text(d, n->state, line, sizeof(line));
	if (prefix == NULL && strcmp(line, n->status) == 0)
		return;
	snprintf(n->status, sizeof(n->status), "%s", line);
	snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix ? prefix : "", line);
	sd_notify(0, msg);
}

void fd_notify_status_text(struct fd_daemon *d, const enum fd_state *state,
			   char *out, size_t len)
{
	size_t at;

	at = (size_t)snprintf(out, len, "%d device%s:", d->ndev,
			      d->ndev == 1 ? "" : "s");
	for (int i = 0; i < d->ndev && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s %s %s",
				       i ? "," : "", d->dev[i].conf.name,
				       fd_state_name(state[i]));
	if (d->journal_alarm.present && at < len)
		snprintf(out + at, len - at, "; the record is not written");
}

bool fd_notify_alive(struct fd_daemon *d, double now, char *why, size_t len)
{
	static struct fd_snapshot snap; /* large; the main thread is one */

	for (int i = 0; i < d->ndev; i++) {
		struct fd_device *dev = &d->dev[i];

		if (!fd_device_peek(dev, &snap)) {
			snprintf(why, len, "device %s has not ticked yet",
				 dev->conf.name);
			return false;
		}
		if (now - snap.mono_s > FD_NOTIFY_TICKED_S) {
			snprintf(why, len,
				 "device %s has not ticked for %.1f s",
				 dev->conf.name, now - snap.mono_s);
			return false;
		}
	}
	return true;
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_daemon *d = arg;
	struct notify *n = notify_of(d);
	double now = fd_clock_mono_s();
	char why[160];

	(void)fd;
	(void)what;
	/* a thread only starting has a second to tick */
	if (!fd_notify_alive(d, now, why, sizeof(why)) &&
	    now - n->ready_s > FD_NOTIFY_TICKED_S) {
		if (!n->withheld)
			log_warnx("watchdog: WATCHDOG=1 withheld (%s): systemd "
				  "restarts fasciad if it goes on",
				  why);
		n->withheld = true;
		return;
	}
	if (n->withheld)
		log_info("watchdog: every device ticks again: WATCHDOG=1");
	n->withheld = false;
	sd_notify(0, "WATCHDOG=1");
}

void fd_notify_ready(struct fd_daemon *d)
{
	struct notify *n;
	uint64_t us = 0;
	struct timeval tv;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	n = xcalloc(1, sizeof(*n));
	d->notify = n;
	for (int i = 0; i < d->ndev; i++)
		n->state[i] = FD_OFFLINE;
	n->ready_s = fd_clock_mono_s();
	send_status(d, "READY=1\n");
	if (sd_watchdog_enabled(0, &us) <= 0 || us == 0)
		return;
	n->watchdog_us = us;
	tv.tv_sec = (time_t)(us / 2 / 1000000);
	tv.tv_usec = (suseconds_t)(us / 2 % 1000000);
	n->watchdog = event_new(d->base, -1, EV_PERSIST, watchdog_cb, d);
	if (n->watchdog == NULL || event_add(n->watchdog, &tv) < 0)
		fatalx("libevent: cannot start the watchdog's timer");
	log_info("watchdog: WATCHDOG=1 every %.3f s (WATCHDOG_USEC %llu)",
		 (double)us / 2e6, (unsigned long long)us);
}

void fd_notify_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news)
{
	struct notify *n = notify_of(d);

	if (n == NULL || !news->have_snap)
		return;
	n->state[dev - d->dev] = news->snap.state;
	if (news->changed)
		send_status(d, NULL);
}

void fd_notify_reloading(struct fd_daemon *d, bool done)
{
	if (notify_of(d) == NULL)
		return;
	if (done)
		send_status(d, "READY=1\n");
	else
		sd_notify(0, "RELOADING=1\nSTATUS=reloading the profiles and "
			     "the clients' certificates");
}

void fd_notify_stopping(struct fd_daemon *d)
{
	if (notify_of(d) != NULL)
		sd_notify(0, "STOPPING=1\nSTATUS=venting every device and "
			     "stopping");
}

void fd_notify_close(struct fd_daemon *d)
{
	struct notify *n = notify_of(d);

	if (n == NULL)
		return;
	if (n->watchdog != NULL)
		event_free(n->watchdog);
	free(n);
	d->notify = NULL;
}

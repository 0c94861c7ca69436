/*
 * A device's two threads and what crosses between them.  The control
 * thread (tick.c) takes commands and hands over its news through one
 * mailbox under dev->lock, which it only ever trylocks; the main thread
 * takes the news with the snapshot under the same lock, at once, and gives
 * it to every consumer: the subscribers (publish.c), the client waiting
 * for a verdict (commands.c) and the log, in that order.  An eventfd wakes
 * the main loop for news only, not for every tick.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fasciad.h"

#define THREAD_STACK (256 * 1024)
#define RT_PRIORITY 20

/* ---- the hand-over, both ways ---- */

bool fd_device_move(struct fd_outbox *dst, struct fd_outbox *src)
{
	int n = FD_OUTBOX_EVENTS - dst->nev;

	if (src->have_snap) {
		dst->snap = src->snap;
		dst->have_snap = true;
	}
	dst->changed |= src->changed;
	src->changed = false;
	if (n > src->nev)
		n = src->nev;
	memcpy(&dst->ev[dst->nev], src->ev, (size_t)n * sizeof(src->ev[0]));
	dst->nev += n;
	src->nev -= n;
	memmove(src->ev, &src->ev[n], (size_t)src->nev * sizeof(src->ev[0]));
	if (src->have_verdict && !dst->have_verdict) {
		dst->verdict = src->verdict;
		dst->have_verdict = true;
		src->have_verdict = false;
	}
	return dst->changed || dst->nev > 0 || dst->have_verdict;
}

bool fd_device_take_command(struct fd_device *dev, struct fd_command *c)
{
	bool taken = false;

	if (pthread_mutex_trylock(&dev->lock) != 0)
		return false;
	if (dev->cmd_pending) {
		*c = dev->cmd;
		dev->cmd_pending = false;
		dev->cmd_active = true;
		taken = true;
	}
	pthread_mutex_unlock(&dev->lock);
	return taken;
}

bool fd_device_post(struct fd_device *dev, struct fd_outbox *out)
{
	uint64_t one = 1;
	bool stop, news;

	if (pthread_mutex_trylock(&dev->lock) != 0)
		return false; /* kept for the next tick */
	news = fd_device_move(&dev->box, out);
	stop = dev->stop;
	pthread_mutex_unlock(&dev->lock);
	/* A failed write means the counter is already non-zero: the main
	 * loop will look anyway. */
	if (news)
		(void)!write(dev->wake_fd, &one, sizeof(one));
	return stop;
}

void fd_device_take(struct fd_device *dev, struct fd_outbox *out)
{
	out->have_snap = false;
	out->nev = 0;
	out->changed = false;
	out->have_verdict = false;
	pthread_mutex_lock(&dev->lock);
	fd_device_move(out, &dev->box);
	if (out->have_verdict)
		dev->cmd_active = false;
	pthread_mutex_unlock(&dev->lock);
}

bool fd_device_peek(struct fd_device *dev, struct fd_snapshot *snap)
{
	bool have;

	pthread_mutex_lock(&dev->lock);
	have = dev->box.have_snap;
	if (have)
		*snap = dev->box.snap;
	pthread_mutex_unlock(&dev->lock);
	return have;
}

int fd_device_submit(struct fd_device *dev, const struct fd_command *c)
{
	int rc = -1;

	pthread_mutex_lock(&dev->lock);
	if (!dev->cmd_pending && !dev->cmd_active && !dev->stop) {
		dev->cmd = *c;
		dev->cmd_pending = true;
		rc = 0;
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

/* ---- the news, to its consumers ---- */

/* The record: every transition (with its cause), session step, alarm and
 * link change goes to the log, after the subscribers have had it. */
static void log_event(struct fd_device *dev, const struct fd_snapshot *sn,
		      const struct fd_event_rec *e)
{
	const char *name = dev->conf.name;

	switch (e->kind) {
	case FD_E_STATE:
		log_info("device %s: %s -> %s (%s)", name,
			 fd_state_table_name(e->from),
			 fd_state_table_name(e->to), fd_event_name(e->cause));
		break;
	case FD_E_SESSION:
		log_info("device %s: session %s", name, e->text);
		break;
	case FD_E_ALARM:
		log_warnx("device %s: ALARM %s (chamber %d): %s", name,
			  ilk_rows[e->alarm % ILK_COUNT].name, e->chamber,
			  e->text);
		break;
	case FD_E_ALARM_ACK:
		log_info("device %s: alarm %s acknowledged", name,
			 ilk_rows[e->alarm % ILK_COUNT].name);
		break;
	case FD_E_LINK:
		if (strncmp(e->text, "up", 2) == 0)
			log_info("device %s: link up (%s)", name,
				 sn->link.fc23 ? "FC23"
					       : "no FC23: FC16 + FC03");
		else
			log_warnx("device %s: link %s; last error: %s", name,
				  e->text, sn->link.last_error);
		/* said: not again as the reason it cannot be reached */
		snprintf(dev->error_told, sizeof(dev->error_told), "%s",
			 sn->link.last_error);
		break;
	}
}

/* Why a device cannot be reached, once per distinct reason while its link
 * is down (not once per retry), with what happens meanwhile. */
static void log_link_error(struct fd_device *dev, const struct fd_snapshot *sn)
{
	const char *err = sn->link.last_error;

	if (sn->link.up) {
		dev->error_told[0] = '\0';
		return;
	}
	if (err[0] == '\0' || strcmp(err, dev->error_told) == 0)
		return;
	if (dev->conf.transport == TRANSPORT_TCP)
		log_warnx("device %s: cannot reach it at %s:%d: %s; retrying",
			  dev->conf.name, dev->conf.host, dev->conf.port, err);
	else
		log_warnx("device %s: cannot reach it on %s: %s; retrying",
			  dev->conf.name, dev->conf.path, err);
	snprintf(dev->error_told, sizeof(dev->error_told), "%s", err);
}

static void log_news(struct fd_daemon *d, struct fd_device *dev,
		     const struct fd_outbox *news)
{
	(void)d;
	for (int i = 0; i < news->nev; i++)
		log_event(dev, &news->snap, &news->ev[i]);
	if (news->have_snap)
		log_link_error(dev, &news->snap);
	if (news->have_snap && news->snap.events_lost > dev->events_lost_told) {
		log_warnx("device %s: %llu events lost in all: the main "
			  "thread fell behind (the state messages still "
			  "carry the alarms)",
			  dev->conf.name,
			  (unsigned long long)news->snap.events_lost);
		dev->events_lost_told = news->snap.events_lost;
	}
}

/* Who gets a device's news, in order: subscribers first, then the record
 * (queued: an ack's answer waits for its alarm's record), then the client
 * waiting for a verdict, then the log (a write or two per line). */
static void (*const consumers[])(struct fd_daemon *, struct fd_device *,
				 const struct fd_outbox *) = {
	fd_publish_news, fd_record_news, fd_commands_news,
	fd_notify_news,  log_news,
};

void fd_device_news(struct fd_daemon *d, struct fd_device *dev,
		    const struct fd_outbox *news)
{
	for (size_t i = 0; i < sizeof(consumers) / sizeof(consumers[0]); i++)
		consumers[i](d, dev, news);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fd_device *dev = arg;
	struct fd_outbox *news = &dev->daemon->news;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) != sizeof(n) && errno != EAGAIN)
		log_warn("device %s: eventfd", dev->conf.name);
	fd_device_take(dev, news);
	fd_device_news(dev->daemon, dev, news);
}

/* ---- the thread's life ---- */

/* SCHED_FIFO refused: which grant is missing, said once for every device
 * (CAP_SYS_NICE, or an RLIMIT_RTPRIO as high as RT_PRIORITY). */
static void no_rt_priority(const struct fd_device *dev, int err)
{
	static bool told;
	struct rlimit rl;
	char limit[32] = "unknown";

	if (told) {
		log_debug("device %s: normal priority too", dev->conf.name);
		return;
	}
	told = true;
	if (getrlimit(RLIMIT_RTPRIO, &rl) == 0)
		snprintf(limit, sizeof(limit), "%llu",
			 (unsigned long long)rl.rlim_cur);
	log_warnx("device %s: no real-time priority (%s): the control threads "
		  "tick at normal priority.  Grant CAP_SYS_NICE "
		  "(AmbientCapabilities=) or an RLIMIT_RTPRIO of %d "
		  "(LimitRTPRIO=; it is %s now)",
		  dev->conf.name, strerror(err), RT_PRIORITY, limit);
}

/* The thread, at real-time priority where the process has the right: a
 * refusal is logged, once, and the thread ticks at normal priority. */
static int spawn(struct fd_device *dev)
{
	struct sched_param sp = {.sched_priority = RT_PRIORITY};
	pthread_attr_t attr;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	pthread_attr_setschedparam(&attr, &sp);
	err = pthread_create(&dev->thread, &attr, fd_tick_thread, dev->ctl);
	if (err == EPERM) {
		no_rt_priority(dev, err);
		pthread_attr_setinheritsched(&attr, PTHREAD_INHERIT_SCHED);
		err = pthread_create(&dev->thread, &attr, fd_tick_thread,
				     dev->ctl);
	}
	pthread_attr_destroy(&attr);
	return err;
}

int fd_device_start(struct fd_device *dev)
{
	int err;

	dev->ctl = fd_tick_new(dev, &dev->daemon->conf);
	pthread_mutex_init(&dev->lock, NULL);
	dev->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dev->wake_fd == -1)
		fatal("eventfd");
	dev->wake_ev = event_new(dev->daemon->base, dev->wake_fd,
				 EV_READ | EV_PERSIST, wake_cb, dev);
	if (dev->wake_ev == NULL || event_add(dev->wake_ev, NULL) == -1)
		fatalx("device %s: cannot watch its eventfd", dev->conf.name);
	if ((err = spawn(dev)) != 0) {
		errno = err;
		log_warn("device %s: cannot start its control thread",
			 dev->conf.name);
		fd_tick_free(&dev->ctl);
		return -1;
	}
	dev->started = true;
	return 0;
}

void fd_device_request_stop(struct fd_device *dev, double timeout_s)
{
	if (!dev->started)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->stop = true;
	dev->stop_timeout_s = timeout_s;
	pthread_mutex_unlock(&dev->lock);
}

void fd_device_stop(struct fd_device *dev, double timeout_s)
{
	struct timespec until;

	if (!dev->started)
		return;
	fd_device_request_stop(dev, timeout_s);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)timeout_s + 1;
	if (pthread_timedjoin_np(dev->thread, NULL, &until) != 0) {
		log_warnx("device %s: control thread did not stop; leaving it "
			  "to the device watchdog",
			  dev->conf.name);
		return;
	}
	/* What the thread handed over last, which no wake-up took. */
	fd_device_take(dev, &dev->daemon->news);
	fd_device_news(dev->daemon, dev, &dev->daemon->news);
	log_info("device %s: %s", dev->conf.name,
		 fd_tick_vented(dev->ctl) ? "vented"
					  : "NOT confirmed vented at shutdown");
	fd_record_daemon(dev->daemon, "stop", "device %s: %s", dev->conf.name,
			 fd_tick_vented(dev->ctl)
				 ? "vented"
				 : "NOT confirmed vented at shutdown");
	dev->started = false;
	fd_tick_free(&dev->ctl);
	event_free(dev->wake_ev);
	dev->wake_ev = NULL;
	close(dev->wake_fd);
	pthread_mutex_destroy(&dev->lock);
}

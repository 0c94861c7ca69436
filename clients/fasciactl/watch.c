/*
 * fasciactl watch: the daemon's published state, events and alarms as one
 * line each.  State messages come at publish_hz (10 a second); a person
 * reads one a second, so a device's state line is printed at most once a
 * second unless its state changed.  --json prints every message.
 *
 * fasciad publishes every device's state at least once a second, so a few
 * seconds of silence mean a wrong publish endpoint or a daemon gone: watch
 * says so on stderr, once for each silence, and keeps waiting.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fasciactl.h"

#define WATCH_POLL_MS 200 /* how soon a signal is noticed at the latest */
#define WATCH_DEVICES_MAX 256
#define WATCH_STATE_PERIOD_MS 1000
#define WATCH_QUIET_MS 3000 /* silence worth a word on stderr */

struct shown {
	char device[128];
	char state[32];
	int64_t at_ms; /* monotonic time the last state line was printed */
};

struct watch {
	const char *device; /* NULL: every device */
	struct shown shown[WATCH_DEVICES_MAX];
	int nshown;
	long lines;
	uint64_t gaps;
	int64_t heard_ms; /* monotonic time of the last message for us */
	bool heard_any;   /* a message for us has come since the start */
	bool quiet_said;  /* this silence has been reported */
};

static volatile sig_atomic_t watch_stop;

static void on_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a state message for its device is due a line now. */
static bool state_due(struct watch *w, const json_t *st)
{
	const char *dev = json_string_value(json_object_get(st, "device"));
	const char *state = json_string_value(json_object_get(st, "state"));
	int64_t now = mono_ms();
	struct shown *s = NULL;

	if (dev == NULL || state == NULL)
		return true;
	for (int i = 0; i < w->nshown && s == NULL; i++)
		if (strcmp(w->shown[i].device, dev) == 0)
			s = &w->shown[i];
	if (s == NULL) {
		if (w->nshown == WATCH_DEVICES_MAX)
			return true;
		s = &w->shown[w->nshown++];
		snprintf(s->device, sizeof(s->device), "%s", dev);
		s->state[0] = '\0';
		s->at_ms = now - WATCH_STATE_PERIOD_MS;
	}
	if (strcmp(s->state, state) == 0 &&
	    now - s->at_ms < WATCH_STATE_PERIOD_MS)
		return false;
	snprintf(s->state, sizeof(s->state), "%s", state);
	s->at_ms = now;
	return true;
}

/* Whether a message of topic is about the device watched (any, without
 * one). */
static bool for_us(const struct watch *w, const char *topic)
{
	const char *dot = strchr(topic, '.');

	return w->device == NULL ||
	       (dot != NULL && strcmp(dot + 1, w->device) == 0);
}

/* Print one message, if it is for us; returns whether a line went out. */
static bool show(struct ctl *ctl, struct watch *w, const char *topic,
		 const json_t *msg)
{
	const char *dot = strchr(topic, '.');
	size_t kind = dot != NULL ? (size_t)(dot - topic) : strlen(topic);

	if (!for_us(w, topic))
		return false;
	if (ctl->json) {
		json_t *o =
			json_pack("{s:s,s:O}", "topic", topic, "message", msg);

		ctl_print_json(o);
		json_decref(o);
	} else if (kind == 5 && strncmp(topic, "state", 5) == 0) {
		if (!state_due(w, msg))
			return false;
		print_state_line(stdout, msg);
	} else if (kind == 5 && strncmp(topic, "event", 5) == 0) {
		print_event_line(stdout, msg);
	} else if (kind == 5 && strncmp(topic, "alarm", 5) == 0) {
		print_alarm_line(stdout, msg);
	} else {
		return false;
	}
	fflush(stdout);
	return true;
}

/* Check the daemon answers, and knows the device; an exit code. */
static int watch_precheck(struct ctl *ctl, const char *device)
{
	json_t *reply, *devs, *d;
	size_t i;
	int rc;

	rc = ctl_call_quiet(ctl, json_pack("{s:s}", "cmd", "hello"), &reply);
	if (rc != CTL_OK || device == NULL) {
		json_decref(reply);
		return rc;
	}
	devs = json_object_get(json_object_get(reply, "result"), "devices");
	rc = CTL_REFUSED;
	json_array_foreach(devs, i, d)
	{
		if (json_is_string(d) &&
		    strcmp(json_string_value(d), device) == 0)
			rc = CTL_OK;
	}
	if (rc != CTL_OK) {
		fprintf(stderr,
			"fasciactl: unknown_device: \"%s\" is not a "
			"configured device\n",
			device);
		ctl_list_devices(stderr, devs);
	}
	json_decref(reply);
	return rc;
}

/* After WATCH_QUIET_MS without a message for us: one line on stderr. */
static void note_silence(struct ctl *ctl, struct watch *w)
{
	int64_t quiet = mono_ms() - w->heard_ms;

	if (w->quiet_said || quiet < WATCH_QUIET_MS)
		return;
	w->quiet_said = true;
	if (!w->heard_any)
		fprintf(stderr,
			"fasciactl: nothing received from %s in %lld s: is it "
			"fasciad's publish endpoint (--publish, "
			"FASCIA_PUBLISH)? still waiting\n",
			ctl->publish, (long long)(quiet / 1000));
	else
		fprintf(stderr,
			"fasciactl: nothing received from %s for %lld s (has "
			"fasciad stopped?); still waiting\n",
			ctl->publish, (long long)(quiet / 1000));
}

static int watch_loop(struct ctl *ctl, struct watch *w,
		      struct fascia_monitor *m)
{
	char topic[256];
	json_t *msg;
	int rc;

	w->heard_ms = mono_ms();
	while (!watch_stop && (ctl->count == 0 || w->lines < ctl->count)) {
		note_silence(ctl, w);
		rc = fascia_monitor_next(m, WATCH_POLL_MS, topic, sizeof(topic),
					 &msg);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 && errno == EPROTO) {
			fprintf(stderr,
				"fasciactl: %s: a message that is not "
				"fascia's protocol\n",
				ctl->publish);
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "fasciactl: %s: %s\n", ctl->publish,
				strerror(errno));
			return CTL_UNREACHABLE;
		}
		if (rc == 0)
			continue;
		if (for_us(w, topic)) {
			w->heard_ms = mono_ms();
			w->heard_any = true;
			w->quiet_said = false;
		}
		if (fascia_monitor_gaps(m) != w->gaps) {
			fprintf(stderr, "fasciactl: %llu messages missed\n",
				(unsigned long long)(fascia_monitor_gaps(m) -
						     w->gaps));
			w->gaps = fascia_monitor_gaps(m);
		}
		if (show(ctl, w, topic, msg))
			w->lines++;
		json_decref(msg);
		if (ferror(stdout))
			break; /* the reader went away: nothing to tell */
	}
	return CTL_OK;
}

int cmd_watch(struct ctl *ctl, int argc, char **argv)
{
	static struct watch w;
	const struct fascia_security *sec;
	struct fascia_monitor *m;
	struct sigaction sa;
	int rc;

	if (argc > 1) {
		ctl_usage_hint("usage: fasciactl watch [--count N] [DEVICE]");
		return CTL_USAGE;
	}
	memset(&w, 0, sizeof(w));
	w.device = argc == 1 ? argv[0] : NULL;
	if ((rc = watch_precheck(ctl, w.device)) != CTL_OK ||
	    (rc = ctl_security(ctl, &sec)) != CTL_OK)
		return rc;
	if ((m = fascia_monitor_new_secure(ctl->publish, "", sec)) == NULL)
		return ctl_endpoint_error(ctl->publish, ctl->publish_src);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = watch_loop(ctl, &w, m);
	fascia_monitor_destroy(&m);
	return rc;
}

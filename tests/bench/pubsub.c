/*
 * pubsub: publish latency, as a subscriber on the same machine sees it.
 *
 *   build/bench/pubsub sub ENDPOINT NSUB SECONDS
 *                      [--cert FILE --server-key KEY] [--pair ENDPOINT2]
 *       NSUB SUB sockets on a fasciad publisher (topic "state."), CURVE
 *       clients with --cert and --server-key (bench_opt.h); with --pair,
 *       NSUB more, plaintext, on another fasciad's ENDPOINT2, in the same
 *       loop (the sockets are read starting from either group in turn),
 *       measured alike and reported as "pair": the two publishers at the
 *       same moments, on the same subscribing process.  Each
 *       state message's latency is CLOCK_MONOTONIC now - link.t_read_us
 *       (the exchange that read its values).  Reported twice: over the
 *       messages that carry a new state (published at once, on the
 *       change) and over all of them (most come from the publish_hz
 *       timer, so they include the wait for it).
 *   build/bench/pubsub bare NSUB SECONDS HZ [hop]
 *       the floor: a bare PUB socket in a thread of this process sends, at
 *       HZ, a message the size of a state message stamped with t_read_us
 *       just before it is built and sent; the same NSUB subscribers and
 *       the same parsing measure it.  With "hop", the stamp is taken in a
 *       second thread ticking at HZ, which wakes the publishing thread
 *       through an eventfd, as fasciad's control thread wakes its main
 *       thread: the cost of that one hand-over, measured alone.
 *
 * Prints one JSON object: {"change":{n,p50_us,p99_us,max_us},"all":{...}},
 * and for fasciad "inside": link.t_built_us - link.t_read_us of the change
 * messages, the daemon's own part of their latency; with --pair, the
 * second group's as "pair":{"change":...}.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "bench_opt.h"

#define MAX_SUB 64
#define MAX_DEV 16
#define MAX_SAMPLES (1 << 21)
#define MAX_GOT 256     /* messages taken per poll before parsing */
#define GOT_BYTES 16384 /* the largest message parsed */

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

struct samples {
	float *us;
	size_t n;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void add(struct samples *s, double us)
{
	if (s->us == NULL &&
	    (s->us = malloc(MAX_SAMPLES * sizeof(float))) == NULL)
		abort();
	if (s->n < MAX_SAMPLES)
		s->us[s->n++] = (float)us;
}

static int cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static void report(const char *name, struct samples *s, bool comma)
{
	size_t n = s->n;

	if (n)
		qsort(s->us, n, sizeof(float), cmp);
	printf("%s\"%s\":{\"n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
	       "\"max_us\":%.1f}",
	       comma ? "," : "", name, n, n ? s->us[n / 2] : 0.0,
	       n ? s->us[(size_t)(n * 0.99)] : 0.0, n ? s->us[n - 1] : 0.0);
}

/* ---- the bare publisher ---- */

struct bare {
	void *ctx;
	void *pub;
	char endpoint[128];
	int hz;
	double seconds;
	bool hop;               /* stamped by hop_tick, handed over */
	int efd;                /* hop: the hand-over's eventfd */
	_Atomic uint64_t stamp; /* hop: the last stamp */
	_Atomic bool done;
};

/* hop: tick at hz, stamp, wake the publisher (fasciad's control thread). */
static void *hop_tick(void *arg)
{
	struct bare *b = arg;
	struct timespec next;
	long period = 1000000000L / b->hz;
	uint64_t end, one = 1;

	usleep(300000);
	clock_gettime(CLOCK_MONOTONIC, &next);
	end = mono_us() + (uint64_t)(b->seconds * 1e6);
	while (mono_us() < end) {
		next.tv_nsec += period;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		b->stamp = mono_us();
		(void)!write(b->efd, &one, sizeof(one));
	}
	b->done = true;
	return NULL;
}

/* The next message's stamp: now, after sleeping to the next deadline; or
 * (hop) the stamp handed over.  0: the run is over. */
static uint64_t next_stamp(struct bare *b, struct timespec *next, long period,
			   uint64_t end)
{
	if (b->hop) {
		struct pollfd p = {.fd = b->efd, .events = POLLIN};
		uint64_t n;

		while (!b->done) {
			if (poll(&p, 1, 100) == 1 &&
			    read(b->efd, &n, sizeof(n)) == sizeof(n))
				return b->stamp;
		}
		return 0;
	}
	if (mono_us() >= end)
		return 0;
	next->tv_nsec += period;
	while (next->tv_nsec >= 1000000000L) {
		next->tv_nsec -= 1000000000L;
		next->tv_sec++;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
	return mono_us();
}

static void *bare_pub(void *arg)
{
	struct bare *b = arg;
	void *pub = b->pub;
	char pad[1200], msg[1600];
	struct timespec next;
	long period = 1000000000L / b->hz;
	uint64_t end;

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = 0;
	usleep(300000); /* the subscribers' joining */
	clock_gettime(CLOCK_MONOTONIC, &next);
	end = mono_us() + (uint64_t)(b->seconds * 1e6);
	for (unsigned n = 0;; n++) {
		uint64_t t = next_stamp(b, &next, period, end);
		int len;

		if (t == 0)
			break;
		/* Alternate two states, so every message is a change too. */
		len = snprintf(msg, sizeof(msg),
			       "{\"v\":1,\"device\":\"bare\",\"seq\":%u,"
			       "\"state\":\"%s\",\"link\":{\"t_read_us\":%llu},"
			       "\"pad\":\"%s\"}",
			       n, n % 2 ? "idle" : "fault",
			       (unsigned long long)t, pad);
		zmq_send(pub, "state.bare", 10, ZMQ_SNDMORE);
		zmq_send(pub, msg, (size_t)len, 0);
	}
	zmq_close(pub);
	return NULL;
}

/*
 * The bare publisher runs in a process of its own, as fasciad does: a
 * child with its own ZeroMQ context (forked before this process makes
 * one), which binds, hands its endpoint over a pipe and publishes.
 */
static pid_t start_publisher(struct bare *b)
{
	int fds[2];
	pid_t pid;
	ssize_t n;

	if (pipe(fds) != 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		size_t len = sizeof(b->endpoint);
		pthread_t th, hop_th;

		close(fds[0]);
		b->ctx = zmq_ctx_new();
		b->pub = zmq_socket(b->ctx, ZMQ_PUB);
		if (zmq_bind(b->pub, "tcp://127.0.0.1:*") != 0)
			_exit(1);
		zmq_getsockopt(b->pub, ZMQ_LAST_ENDPOINT, b->endpoint, &len);
		(void)!write(fds[1], b->endpoint, strlen(b->endpoint) + 1);
		close(fds[1]);
		if (b->hop && (b->efd = eventfd(0, EFD_CLOEXEC)) < 0)
			_exit(1);
		/* the thread takes the socket over (pthread_create is a
		 * barrier) */
		if (pthread_create(&th, NULL, bare_pub, b) != 0 ||
		    (b->hop && pthread_create(&hop_th, NULL, hop_tick, b) != 0))
			_exit(1);
		pthread_join(th, NULL);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], b->endpoint, sizeof(b->endpoint) - 1);
	close(fds[0]);
	if (n <= 0)
		return -1;
	b->endpoint[n] = 0;
	return pid;
}

/* ---- the subscribers ---- */

static void report_group(struct samples *change, struct samples *all,
			 struct samples *inside)
{
	report("change", change, false);
	report("all", all, true);
	if (inside->n)
		report("inside", inside, true);
}

struct prev {
	char dev[32];
	char state[16];
};

int main(int argc, char **argv)
{
	static struct prev prev[MAX_SUB][MAX_DEV];
	static struct {
		int sock;
		uint64_t t;
		char buf[GOT_BYTES];
	} got[MAX_GOT];
	/* [0]: ENDPOINT's subscribers, [1]: --pair's */
	struct samples change[2] = {{0}}, all[2] = {{0}}, inside[2] = {{0}};
	void *ctx;
	void *sub[MAX_SUB];
	zmq_pollitem_t items[MAX_SUB];
	struct bare b = {0};
	struct fascia_security sec;
	pid_t child = -1;
	bool bare;
	int nsub, ntot, rot = 0;
	uint64_t end;
	const char *pair = bench_opt_value(&argc, argv, "--pair");

	if (curve_opt_take("pubsub", &argc, argv, &sec) < 0)
		return 2;
	if (argc < 5)
		nsub = 0;
	else
		nsub = atoi(argv[strcmp(argv[1], "bare") == 0 ? 2 : 3]);
	bare = argc >= 5 && strcmp(argv[1], "bare") == 0;
	if (nsub < 1 || nsub > (pair ? MAX_SUB / 2 : MAX_SUB) ||
	    (pair && (bare || !*pair))) {
		fprintf(stderr, "usage: pubsub sub ENDPOINT NSUB SECONDS "
				"[--cert FILE --server-key KEY] "
				"[--pair ENDPOINT2] | "
				"pubsub bare NSUB SECONDS HZ [hop]\n");
		return 2;
	}
	if (bare && curve_opt_on(&sec)) {
		fprintf(stderr, "pubsub: bare: --cert and --server-key are for "
				"sub (a fasciad)\n");
		return 2;
	}
	if (bare) {
		nsub = atoi(argv[2]);
		b.seconds = atof(argv[3]);
		b.hz = atoi(argv[4]);
		b.hop = argc > 5 && strcmp(argv[5], "hop") == 0;
		if ((child = start_publisher(&b)) < 0)
			return 1;
	}
	ctx = zmq_ctx_new();
	ntot = pair ? 2 * nsub : nsub;
	for (int i = 0; i < ntot; i++) {
		int hwm = 100000;

		sub[i] = zmq_socket(ctx, ZMQ_SUB);
		zmq_setsockopt(sub[i], ZMQ_RCVHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(sub[i], ZMQ_SUBSCRIBE, "state.", 6);
		if (i < nsub && curve_opt_apply("pubsub", sub[i], &sec) < 0)
			return 1;
		items[i] = (zmq_pollitem_t){.socket = sub[i],
					    .events = ZMQ_POLLIN};
	}
	for (int i = 0; i < ntot; i++)
		zmq_connect(sub[i], i >= nsub ? pair
				    : bare    ? b.endpoint
					      : argv[2]);
	end = mono_us() + (uint64_t)(atof(bare ? argv[3] : argv[4]) * 1e6) +
	      (bare ? 400000u : 0u);
	signal(SIGTERM, on_term);
	while (mono_us() < end && !stopping) {
		int ngot = 0;

		if (zmq_poll(items, ntot, 100) <= 0)
			continue;
		/* Take every waiting message first, stamped as it arrives, and
		 * parse afterwards: parsing one socket's copy must not delay
		 * the next socket's stamp.  With --pair, each group comes
		 * first every other time. */
		rot = pair ? nsub - rot : 0;
		for (int j = 0; j < ntot; j++) {
			int i = (j + rot) % ntot;

			while (ngot < MAX_GOT &&
			       zmq_recv(sub[i], got[ngot].buf, GOT_BYTES - 1,
					ZMQ_DONTWAIT) >= 0) {
				int more = 0, n;
				size_t ml = sizeof(more);

				zmq_getsockopt(sub[i], ZMQ_RCVMORE, &more, &ml);
				if (!more)
					continue;
				n = zmq_recv(sub[i], got[ngot].buf,
					     GOT_BYTES - 1, 0);
				if (n < 0)
					break;
				got[ngot].t = mono_us();
				if (n > GOT_BYTES - 1)
					continue; /* cut: not parsed */
				got[ngot].buf[n] = 0;
				got[ngot].sock = i;
				ngot++;
			}
		}
		for (int g = 0; g < ngot; g++) {
			int i = got[g].sock, grp = i >= nsub;
			json_t *o = json_loads(got[g].buf, 0, NULL), *tr, *tb;
			const char *dev, *st;

			if (o == NULL)
				continue;
			tr = json_object_get(json_object_get(o, "link"),
					     "t_read_us");
			tb = json_object_get(json_object_get(o, "link"),
					     "t_built_us");
			dev = json_string_value(json_object_get(o, "device"));
			st = json_string_value(json_object_get(o, "state"));
			if (json_is_integer(tr) && json_integer_value(tr) > 0 &&
			    dev && st) {
				double us = (double)got[g].t -
					    (double)json_integer_value(tr);
				int k;

				add(&all[grp], us);
				for (k = 0; k < MAX_DEV && prev[i][k].dev[0] &&
					    strcmp(prev[i][k].dev, dev);
				     k++)
					;
				if (k < MAX_DEV) {
					if (prev[i][k].dev[0] &&
					    strcmp(prev[i][k].state, st)) {
						add(&change[grp], us);
						if (json_is_integer(tb))
							add(&inside[grp],
							    (double)json_integer_value(
								    tb) -
								    (double)json_integer_value(
									    tr));
					}
					snprintf(prev[i][k].dev, 32, "%s", dev);
					snprintf(prev[i][k].state, 16, "%s",
						 st);
				}
			}
			json_decref(o);
		}
	}
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	printf("{");
	report_group(&change[0], &all[0], &inside[0]);
	if (pair) {
		printf(",\"pair\":{\"endpoint\":\"%s\",", pair);
		report_group(&change[1], &all[1], &inside[1]);
		printf("}");
	}
	printf("}\n");
	fflush(stdout);
	for (int i = 0; i < ntot; i++)
		zmq_close(sub[i]);
	_exit(0); /* no linger on the context */
}

/*
 * bare_tick: the floor for tick timing.  A loop that does nothing but
 * sleep to absolute CLOCK_MONOTONIC deadlines, set up as fasciad's control
 * thread is (SCHED_FIFO 20 where allowed, 1 us timer slack, memory
 * locked), so that tests/bench/run.py can run it next to the daemon, in
 * the same load, and compare their lateness.
 *
 *   build/bench/bare_tick HZ SECONDS [THREADS]
 *
 * THREADS loops (default 1) tick at once, as fasciad's control threads do
 * for as many devices.  Prints one JSON object on stdout: the tick count,
 * how many began over half a period late, the lateness of every
 * tick as a sparse histogram in fasciad's buckets ([lowest us, count]),
 * p50/p99/max in us, and the drift of the last deadline from start + n *
 * period in ns.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>

#include "../../daemon/fasciad.h"

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static uint64_t quantile(const uint32_t *h, uint64_t n, double q)
{
	uint64_t want = (uint64_t)(q * (double)n + 0.999999), acc = 0;

	for (unsigned i = 0; i < FD_LATE_BUCKETS; i++) {
		acc += h[i];
		if (acc >= want && acc > 0)
			return fd_late_bucket_lo(i);
	}
	return 0;
}

struct ticker {
	pthread_t t;
	int64_t period_ns;
	uint64_t total;
	uint32_t hist[FD_LATE_BUCKETS];
	uint64_t n, late_ticks; /* late_ticks: over half a period late */
	int64_t max_ns, drift_ns;
};

static void *tick_loop(void *arg)
{
	struct ticker *k = arg;
	struct sched_param sp = {.sched_priority = 20};
	struct timespec next, now;
	int64_t first;

	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	clock_gettime(CLOCK_MONOTONIC, &next);
	first = ns_of(&next) + k->period_ns;
	while (k->n < k->total) {
		int64_t late;

		next.tv_nsec += k->period_ns;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next,
				       NULL) == EINTR)
			;
		clock_gettime(CLOCK_MONOTONIC, &now);
		late = ns_of(&now) - ns_of(&next);
		if (late < 0)
			late = 0;
		if (late > k->max_ns)
			k->max_ns = late;
		if (late > k->period_ns / 2)
			k->late_ticks++;
		k->hist[fd_late_bucket((uint64_t)late / 1000)]++;
		k->n++;
	}
	k->drift_ns =
		ns_of(&next) - (first + (int64_t)(k->n - 1) * k->period_ns);
	return NULL;
}

int main(int argc, char **argv)
{
	static uint32_t hist[FD_LATE_BUCKETS];
	struct ticker *k;
	int64_t max_ns = 0, drift_ns = 0;
	uint64_t n = 0, late_ticks = 0;
	double seconds;
	int hz, threads = 1;

	if ((argc != 3 && argc != 4) || (hz = atoi(argv[1])) <= 0 ||
	    (seconds = atof(argv[2])) <= 0 ||
	    (argc == 4 && (threads = atoi(argv[3])) <= 0)) {
		fprintf(stderr, "usage: bare_tick HZ SECONDS [THREADS]\n");
		return 2;
	}
	mlockall(MCL_CURRENT | MCL_FUTURE);
	if ((k = calloc((size_t)threads, sizeof(*k))) == NULL)
		return 1;
	for (int i = 0; i < threads; i++) {
		k[i].period_ns = 1000000000LL / hz;
		k[i].total = (uint64_t)(seconds * hz);
		if (pthread_create(&k[i].t, NULL, tick_loop, &k[i]) != 0) {
			perror("bare_tick: pthread_create");
			return 1;
		}
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(k[i].t, NULL);
		for (unsigned b = 0; b < FD_LATE_BUCKETS; b++)
			hist[b] += k[i].hist[b];
		n += k[i].n;
		late_ticks += k[i].late_ticks;
		if (k[i].max_ns > max_ns)
			max_ns = k[i].max_ns;
		if (llabs(k[i].drift_ns) > llabs(drift_ns))
			drift_ns = k[i].drift_ns;
	}
	printf("{\"hz\":%d,\"threads\":%d,\"ticks\":%llu,\"late_ticks\":%llu,"
	       "\"p50_us\":%llu,\"p99_us\":%llu,\"max_us\":%.1f,"
	       "\"drift_ns\":%lld,\"late_hist\":[",
	       hz, threads, (unsigned long long)n,
	       (unsigned long long)late_ticks,
	       (unsigned long long)quantile(hist, n, 0.5),
	       (unsigned long long)quantile(hist, n, 0.99), max_ns / 1000.0,
	       (long long)drift_ns);
	for (unsigned i = 0, c = 0; i < FD_LATE_BUCKETS; i++)
		if (hist[i])
			printf("%s[%llu,%u]", c++ ? "," : "",
			       (unsigned long long)fd_late_bucket_lo(i), hist[i]);
	printf("]}\n");
	free(k);
	return 0;
}

/*
 * bare_tick: the floor for tick timing.  A loop that does nothing but
 * sleep to absolute CLOCK_MONOTONIC deadlines, set up as fasciad's control
 * thread is (SCHED_FIFO 20 where allowed, 1 us timer slack, memory
 * locked), so that tests/bench/run.py can run it next to the daemon, in
 * the same load, and compare their lateness.
 *
 *   build/bench/bare_tick HZ SECONDS
 *
 * Prints one JSON object on stdout: the tick count, the lateness of every
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

int main(int argc, char **argv)
{
	static uint32_t hist[FD_LATE_BUCKETS];
	struct sched_param sp = {.sched_priority = 20};
	struct timespec next, now;
	int64_t first, period_ns, max_ns = 0;
	uint64_t n = 0, total;
	double seconds;
	int hz;

	if (argc != 3 || (hz = atoi(argv[1])) <= 0 ||
	    (seconds = atof(argv[2])) <= 0) {
		fprintf(stderr, "usage: bare_tick HZ SECONDS\n");
		return 2;
	}
	period_ns = 1000000000LL / hz;
	total = (uint64_t)(seconds * hz);
	mlockall(MCL_CURRENT | MCL_FUTURE);
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	clock_gettime(CLOCK_MONOTONIC, &next);
	first = ns_of(&next) + period_ns;
	while (n < total) {
		int64_t late;

		next.tv_nsec += period_ns;
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
		if (late > max_ns)
			max_ns = late;
		hist[fd_late_bucket((uint64_t)late / 1000)]++;
		n++;
	}
	printf("{\"hz\":%d,\"ticks\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,"
	       "\"max_us\":%.1f,\"drift_ns\":%lld,\"late_hist\":[",
	       hz, (unsigned long long)n,
	       (unsigned long long)quantile(hist, n, 0.5),
	       (unsigned long long)quantile(hist, n, 0.99), max_ns / 1000.0,
	       (long long)(ns_of(&next) - (first + (int64_t)(n - 1) * period_ns)));
	for (unsigned i = 0, k = 0; i < FD_LATE_BUCKETS; i++)
		if (hist[i])
			printf("%s[%llu,%u]", k++ ? "," : "",
			       (unsigned long long)fd_late_bucket_lo(i), hist[i]);
	printf("]}\n");
	return 0;
}

/*
 * plain_client: the raw limit for one device's exchange.  A plain
 * libmodbus client loop doing what fasciad does per tick — one FC23 that
 * writes block W (the heartbeat changing) and reads block R — as fast as
 * the server answers, against the same simulator.
 *
 *   build/bench/plain_client PORT SECONDS [HZ]
 *
 * With HZ, one exchange per period, sleeping to absolute CLOCK_MONOTONIC
 * deadlines in between as fasciad's control thread does: the floor of a
 * controller's CPU at that rate (an exchange and a sleep, nothing else).
 * Prints one JSON object: exchanges, exchanges per second, round-trip
 * p50/p99 in us, and the CPU time (user + system) per exchange in us.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <modbus.h>

#include <fascia/regmap.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct fascia_block_w w = {
		.command = FASCIA_CMD_IDLE,
		.watchdog_ms = 500,
		.limit_mmhg = 60.0,
		.pump = true,
	};
	uint16_t wr[FASCIA_BLOCK_W_LEN], rd[FASCIA_BLOCK_R_LEN];
	size_t cap = 1 << 22, n = 0;
	float *rtt = malloc(cap * sizeof(*rtt));
	unsigned long errors = 0;
	double seconds, t0, c0, t, end;
	long period_ns = 0;
	struct timespec next;
	modbus_t *ctx;

	if ((argc != 3 && argc != 4) || (seconds = atof(argv[2])) <= 0 ||
	    rtt == NULL) {
		fprintf(stderr, "usage: plain_client PORT SECONDS [HZ]\n");
		return 2;
	}
	if (argc == 4) {
		long hz = atol(argv[3]);

		if (hz < 1 || hz > 1000000) {
			fprintf(stderr, "plain_client: HZ: 1 to 1000000\n");
			return 2;
		}
		period_ns = 1000000000L / hz;
	}
	ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
	if (ctx == NULL || modbus_connect(ctx) != 0) {
		fprintf(stderr, "plain_client: connect: %s\n",
			modbus_strerror(errno));
		return 1;
	}
	modbus_set_response_timeout(ctx, 1, 0);
	t0 = t = now_s();
	c0 = cpu_s();
	end = t0 + seconds;
	clock_gettime(CLOCK_MONOTONIC, &next);
	do {
		double a;

		if (period_ns > 0) {
			next.tv_nsec += period_ns;
			while (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
					       &next, NULL) == EINTR)
				;
			t = now_s();
		}
		a = t;

		w.heartbeat++;
		fascia_block_w_pack(&w, wr);
		if (modbus_write_and_read_registers(
			    ctx, FASCIA_BLOCK_W_ADDR, FASCIA_BLOCK_W_LEN, wr,
			    FASCIA_BLOCK_R_ADDR, FASCIA_BLOCK_R_LEN,
			    rd) != FASCIA_BLOCK_R_LEN) {
			if (++errors > 1000)
				break;
			modbus_flush(ctx);
		}
		t = now_s();
		if (n < cap)
			rtt[n] = (float)((t - a) * 1e6);
		n++;
	} while (t < end);
	{
		double cpu = cpu_s() - c0, el = t - t0;
		size_t m = n < cap ? n : cap;

		qsort(rtt, m, sizeof(*rtt), cmp);
		printf("{\"exchanges\":%zu,\"errors\":%lu,\"seconds\":%.3f,"
		       "\"rate\":%.1f,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,"
		       "\"cpu_s\":%.4f,\"cpu_us_per_exchange\":%.3f}\n",
		       n, errors, el, (n - errors) / el, m ? rtt[m / 2] : 0.0,
		       m ? rtt[(size_t)(m * 0.99)] : 0.0, cpu,
		       n ? cpu * 1e6 / (double)n : 0.0);
	}
	modbus_close(ctx);
	modbus_free(ctx);
	free(rtt);
	return errors > 1000;
}

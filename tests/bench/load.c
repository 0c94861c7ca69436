/*
 * load: the load of the tick-timing benchmark on a fasciad, and the
 * command round trip.
 *
 *   build/bench/load CONTROL PUBLISH NCLIENTS NSUBS SECONDS
 *                    [--cert FILE --server-key KEY]
 *   build/bench/load CONTROL PUBLISH 1 0 SECONDS --pair CONTROL2
 *                    [--cert FILE --server-key KEY]
 *
 * NCLIENTS DEALER clients each keep one `status` request outstanding (a
 * new one as soon as the reply comes: as fast as the daemon answers),
 * NSUBS subscribers read everything published, and, when NSUBS is not 0,
 * one more subscriber subscribes and never reads (its queue fills, the
 * daemon's PUB drops).  With --cert and --server-key (bench_opt.h) every
 * socket is a CURVE client.
 *
 * Prints {"requests":N,"rate":R,"rtt":{n,p50_us,p99_us,max_us}} at the
 * end: rtt is each request's round trip, send to the reply's last frame,
 * leaving out every client's first (the connection and, with CURVE, the
 * handshake).  `load CONTROL PUBLISH 1 0 SECONDS` is one client with
 * one request at a time: the command round trip alone.
 *
 * --pair CONTROL2: that client and a second one, always plaintext, of
 * CONTROL2 (another fasciad) take turns, one request outstanding in all,
 * each sent when the other's reply came: two round trips measured at the
 * same moments, so that what this machine does to one window and not the
 * next (its round trip moves by a third between windows of a second)
 * falls on both alike.  The second one's figures are "pair":{"rtt":...}.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bench_opt.h"

#define MAX 256
#define MAX_SAMPLES (1 << 21)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* ,"rtt":{n,p50_us,p99_us,max_us} of us[0..n), which it sorts. */
static void print_rtt(float *us, size_t n)
{
	if (n)
		qsort(us, n, sizeof(*us), cmp);
	printf(",\"rtt\":{\"n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
	       "\"max_us\":%.1f}",
	       n, n ? us[n / 2] : 0.0, n ? us[(size_t)(n * 0.99)] : 0.0,
	       n ? us[n - 1] : 0.0);
}

/* One request on sock, its reply's last frame within 2 s: the round trip
 * in us, or -1. */
static double one_call(void *sock, const char *req, size_t len, char *buf,
		       size_t cap)
{
	zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
	double t0 = now_s();
	int more = 1;

	if (zmq_send(sock, req, len, 0) < 0)
		return -1;
	while (more) {
		size_t ml = sizeof(more);

		if (zmq_poll(&it, 1, 2000) <= 0)
			return -1;
		if (zmq_recv(sock, buf, cap, 0) < 0)
			return -1;
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
	}
	return (now_s() - t0) * 1e6;
}

/* --pair: sock[0] (CURVE with the keys) and sock[1] (plaintext) take
 * turns for seconds. */
static int run_pair(void *ctx, const char *ep0, const char *ep1,
		    const struct fascia_security *sec, double seconds,
		    const char *req, float *rtt0)
{
	static char buf[1 << 16];
	float *rtt1 = malloc(MAX_SAMPLES * sizeof(*rtt1));
	float *rtt[2] = {rtt0, rtt1};
	size_t n[2] = {0, 0};
	void *sock[2];
	int zero = 0;
	unsigned long done = 0;
	double t0, end;

	if (rtt1 == NULL)
		return 1;
	for (int k = 0; k < 2; k++) {
		sock[k] = zmq_socket(ctx, ZMQ_DEALER);
		zmq_setsockopt(sock[k], ZMQ_LINGER, &zero, sizeof(zero));
		if (k == 0 && curve_opt_apply("load", sock[k], sec) < 0)
			return 1;
		zmq_connect(sock[k], k == 0 ? ep0 : ep1);
		/* the first reply: the connection (and the handshake) */
		if (one_call(sock[k], req, strlen(req), buf, sizeof(buf)) < 0) {
			fprintf(stderr, "load: no reply from %s\n",
				k == 0 ? ep0 : ep1);
			return 1;
		}
	}
	t0 = now_s();
	end = t0 + seconds;
	for (unsigned turn = 0; now_s() < end; turn++) {
		/* ABBA: each comes first as often as second */
		int k = (turn ^ (turn >> 1)) & 1;
		double us = one_call(sock[k], req, strlen(req), buf,
				     sizeof(buf));

		if (us < 0) {
			fprintf(stderr, "load: no reply from %s\n",
				k == 0 ? ep0 : ep1);
			return 1;
		}
		if (n[k] < MAX_SAMPLES)
			rtt[k][n[k]++] = (float)us;
		done++;
	}
	printf("{\"requests\":%lu,\"rate\":%.1f,\"curve\":%s", done,
	       done / (now_s() - t0), curve_opt_on(sec) ? "true" : "false");
	print_rtt(rtt[0], n[0]);
	printf(",\"pair\":{\"endpoint\":\"%s\",\"curve\":false", ep1);
	print_rtt(rtt[1], n[1]);
	printf("}}\n");
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	static const char req[] = "{\"v\":1,\"id\":1,\"cmd\":\"status\","
				  "\"device\":\"sim\"}";
	static double sent[MAX];
	static unsigned long replies[MAX];
	zmq_pollitem_t it[2 * MAX];
	struct fascia_security sec;
	void *ctx, *deaf = NULL;
	int nc, ns, n, zero = 0;
	unsigned long done = 0;
	float *rtt = malloc(MAX_SAMPLES * sizeof(*rtt));
	size_t nrtt = 0;
	double t0, end;
	const char *pair = bench_opt_value(&argc, argv, "--pair");

	if (curve_opt_take("load", &argc, argv, &sec) < 0)
		return 2;
	if (argc != 6 || (nc = atoi(argv[3])) < 0 || nc > MAX ||
	    (ns = atoi(argv[4])) < 0 || ns > MAX || rtt == NULL ||
	    (pair && (!*pair || nc != 1 || ns != 0))) {
		fprintf(stderr,
			"usage: load CONTROL PUBLISH NCLIENTS NSUBS SECONDS "
			"[--cert FILE --server-key KEY]\n"
			"       load CONTROL PUBLISH 1 0 SECONDS --pair CONTROL2 "
			"[--cert FILE --server-key KEY]\n");
		return 2;
	}
	ctx = zmq_ctx_new();
	if (pair)
		return run_pair(ctx, argv[1], pair, &sec, atof(argv[5]),
				req, rtt);
	n = nc + ns;
	for (int i = 0; i < n; i++) {
		void *s = zmq_socket(ctx, i < nc ? ZMQ_DEALER : ZMQ_SUB);

		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		if (i >= nc)
			zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
		if (curve_opt_apply("load", s, &sec) < 0)
			return 1;
		zmq_connect(s, i < nc ? argv[1] : argv[2]);
		it[i] = (zmq_pollitem_t){.socket = s, .events = ZMQ_POLLIN};
	}
	if (ns > 0) {
		int hwm = 10;

		deaf = zmq_socket(ctx, ZMQ_SUB);
		zmq_setsockopt(deaf, ZMQ_RCVHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(deaf, ZMQ_RCVBUF, &hwm, sizeof(hwm));
		zmq_setsockopt(deaf, ZMQ_SUBSCRIBE, "", 0);
		if (curve_opt_apply("load", deaf, &sec) < 0)
			return 1;
		zmq_connect(deaf, argv[2]);
	}
	t0 = now_s();
	for (int i = 0; i < nc; i++) {
		sent[i] = now_s();
		zmq_send(it[i].socket, req, sizeof(req) - 1, 0);
	}
	end = t0 + atof(argv[5]);
	while (now_s() < end) {
		if (zmq_poll(it, n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(it[i].revents & ZMQ_POLLIN))
				continue;
			while (zmq_recv(it[i].socket, buf, sizeof(buf),
					ZMQ_DONTWAIT) >= 0) {
				int more = 0;
				size_t ml = sizeof(more);

				zmq_getsockopt(it[i].socket, ZMQ_RCVMORE,
					       &more, &ml);
				if (i < nc && !more) {
					double t = now_s();

					if (replies[i]++ > 0 &&
					    nrtt < MAX_SAMPLES)
						rtt[nrtt++] = (float)((t -
								       sent[i]) *
								      1e6);
					done++;
					sent[i] = t;
					zmq_send(it[i].socket, req,
						 sizeof(req) - 1, 0);
				}
			}
		}
	}
	printf("{\"requests\":%lu,\"rate\":%.1f,\"curve\":%s", done,
	       done / (now_s() - t0), curve_opt_on(&sec) ? "true" : "false");
	print_rtt(rtt, nrtt);
	printf("}\n");
	fflush(stdout);
	_exit(0);
}

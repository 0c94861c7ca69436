/*
 * load: the load of the tick-timing benchmark on a fasciad.
 *
 *   build/bench/load CONTROL PUBLISH NCLIENTS NSUBS SECONDS
 *
 * NCLIENTS DEALER clients each keep one `status` request outstanding (a
 * new one as soon as the reply comes: as fast as the daemon answers),
 * NSUBS subscribers read everything published, and one more subscriber
 * subscribes and never reads (its queue fills, the daemon's PUB drops).
 * Prints {"requests":N,"rate":R} at the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define MAX 256

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	static const char req[] = "{\"v\":1,\"id\":1,\"cmd\":\"status\","
				  "\"device\":\"sim\"}";
	zmq_pollitem_t it[2 * MAX];
	void *ctx = zmq_ctx_new(), *deaf;
	int nc, ns, n, zero = 0;
	unsigned long done = 0;
	double t0, end;

	if (argc != 6 || (nc = atoi(argv[3])) < 0 || nc > MAX ||
	    (ns = atoi(argv[4])) < 0 || ns > MAX) {
		fprintf(stderr, "usage: load CONTROL PUBLISH NCLIENTS NSUBS "
				"SECONDS\n");
		return 2;
	}
	n = nc + ns;
	for (int i = 0; i < n; i++) {
		void *s = zmq_socket(ctx, i < nc ? ZMQ_DEALER : ZMQ_SUB);

		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		if (i >= nc)
			zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
		zmq_connect(s, i < nc ? argv[1] : argv[2]);
		it[i] = (zmq_pollitem_t){.socket = s, .events = ZMQ_POLLIN};
	}
	deaf = zmq_socket(ctx, ZMQ_SUB);
	{
		int hwm = 10;

		zmq_setsockopt(deaf, ZMQ_RCVHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(deaf, ZMQ_RCVBUF, &hwm, sizeof(hwm));
	}
	zmq_setsockopt(deaf, ZMQ_SUBSCRIBE, "", 0);
	zmq_connect(deaf, argv[2]);
	for (int i = 0; i < nc; i++)
		zmq_send(it[i].socket, req, sizeof(req) - 1, 0);
	t0 = now_s();
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
					done++;
					zmq_send(it[i].socket, req,
						 sizeof(req) - 1, 0);
				}
			}
		}
	}
	printf("{\"requests\":%lu,\"rate\":%.1f}\n", done,
	       done / (now_s() - t0));
	fflush(stdout);
	_exit(0);
}

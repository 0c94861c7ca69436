/*
 * bench_sim: how many FC23 exchanges per second fascia-sim answers on
 * loopback, next to a plain libmodbus server loop on the same machine with
 * the same client code.  The target is sim/plain >= 0.9; the numbers are
 * printed, never judged by the exit status (timing on a shared machine is
 * not a test).
 *
 *   build/bench/bench_sim --sim build/fascia-sim [--seconds N] [--rounds N]
 *
 * One exchange is what a controller does per tick: write block W (32
 * registers at 0, the heartbeat changing) and read block R (48 at 100) in
 * one FC23.  The two servers are measured alternately, round by round, so
 * that a slow moment of the machine does not land on one of them only; the
 * rate reported is the median of the rounds, the round-trip percentiles are
 * over every exchange.  Both servers are children of this process and are
 * stopped by their process id.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <modbus.h>

#include <fascia/regmap.h>

#define READY_TIMEOUT_MS 5000
#define MAX_ROUNDS 50

struct lat {
	double *us; /* round trips, microseconds */
	size_t n, cap;
};

struct result {
	const char *name;
	double rate[MAX_ROUNDS]; /* exchanges/s of each round */
	int rounds;
	unsigned long errors;
	struct lat lat;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		double *p = realloc(l->us, cap * sizeof(*p));

		if (p == NULL) {
			perror("bench_sim: realloc");
			exit(1);
		}
		l->us = p;
		l->cap = cap;
	}
	l->us[l->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static double median(double *v, int n)
{
	double tmp[MAX_ROUNDS];

	if (n == 0)
		return 0;
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* ---- the two servers ---- */

struct child {
	pid_t pid;
	int port;
};

static void stop_child(struct child *c, const char *name)
{
	int st;

	if (c->pid <= 0)
		return;
	kill(c->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(c->pid, &st, WNOHANG);

		if (r == c->pid) {
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fprintf(stderr,
					"bench_sim: %s (pid %d) ended with "
					"status 0x%x\n",
					name, (int)c->pid, st);
			c->pid = 0;
			return;
		}
		usleep(10000);
	}
	fprintf(stderr, "bench_sim: %s (pid %d) ignored SIGTERM, killing\n",
		name, (int)c->pid);
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &st, 0);
	c->pid = 0;
}

/* Read one line from fd within timeout_ms.  Returns its length, or -1. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t n = 0;
	double end = now_s() + timeout_ms / 1000.0;

	while (n + 1 < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int left = (int)((end - now_s()) * 1000);
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -1;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		n++;
	}
	return -1;
}

/* fork/exec fascia-sim -p 0 and take its port from the ready line. */
static int start_sim(const char *path, struct child *c)
{
	int pfd[2];
	char line[1024], *p;

	if (pipe(pfd) != 0) {
		perror("bench_sim: pipe");
		return -1;
	}
	c->pid = fork();
	if (c->pid < 0) {
		perror("bench_sim: fork");
		return -1;
	}
	if (c->pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execl(path, path, "-p", "0", "-c", "tcp://127.0.0.1:*",
		      (char *)NULL);
		fprintf(stderr, "bench_sim: exec %s: %s\n", path,
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	if (read_line(pfd[0], line, sizeof(line), READY_TIMEOUT_MS) < 0) {
		fprintf(stderr, "bench_sim: no ready line from %s\n", path);
		close(pfd[0]);
		stop_child(c, "fascia-sim");
		return -1;
	}
	/* keep the pipe open: the simulator may write more; it is closed
	 * when this process exits */
	p = strstr(line, "modbus=tcp:");
	if (strncmp(line, "ready ", 6) != 0 || p == NULL) {
		fprintf(stderr, "bench_sim: unexpected ready line \"%s\"\n",
			line);
		stop_child(c, "fascia-sim");
		return -1;
	}
	p += strlen("modbus=tcp:");
	p = strchr(p, ':');
	c->port = p ? atoi(p + 1) : 0;
	if (c->port <= 0 || c->port > 65535) {
		fprintf(stderr, "bench_sim: no port in \"%s\"\n", line);
		stop_child(c, "fascia-sim");
		return -1;
	}
	return 0;
}

/* A port free now: bind port 0, read it back, close. */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (s < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(s, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(s);
	return port;
}

static volatile sig_atomic_t plain_stop;

/* libmodbus retries select() on EINTR: a flag alone would not end a
 * receive, so the handler ends the process (_exit is async-signal-safe). */
static void plain_on_term(int sig)
{
	(void)sig;
	plain_stop = 1;
	_exit(0);
}

/* The plain libmodbus server: one client at a time, receive/reply. */
static void plain_serve(int port, int ready_fd)
{
	uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
	modbus_mapping_t *map;
	modbus_t *ctx;
	int listen_s, status = 0;
	struct sigaction sa = {.sa_handler = plain_on_term};

	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept returns */
	ctx = modbus_new_tcp("127.0.0.1", port);
	map = modbus_mapping_new_start_address(0, 0, 0, 0, 0, 148, 100, 48);
	if (ctx == NULL || map == NULL)
		_exit(3);
	map->tab_registers[FASCIA_REG_MAP_VERSION] = FASCIA_MAP_VERSION;
	map->tab_registers[FASCIA_REG_CHAMBERS] = 8;
	listen_s = modbus_tcp_listen(ctx, 1);
	if (listen_s < 0) {
		status = errno == EADDRINUSE ? 2 : 3;
		if (write(ready_fd, "n", 1) < 0)
			_exit(3);
		_exit(status);
	}
	if (write(ready_fd, "y", 1) != 1)
		_exit(3);
	close(ready_fd);
	while (!plain_stop) {
		if (modbus_tcp_accept(ctx, &listen_s) < 0)
			continue;
		while (!plain_stop) {
			int rc = modbus_receive(ctx, query);

			if (rc > 0)
				modbus_reply(ctx, query, rc, map);
			else if (rc < 0)
				break;
		}
		close(modbus_get_socket(ctx));
		modbus_set_socket(ctx, -1);
	}
	close(listen_s);
	modbus_mapping_free(map);
	modbus_free(ctx);
	_exit(0);
}

static int start_plain(struct child *c)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		int pfd[2], st;
		char ok = 0;

		c->port = free_port();
		if (c->port <= 0 || pipe(pfd) != 0)
			return -1;
		c->pid = fork();
		if (c->pid < 0)
			return -1;
		if (c->pid == 0) {
			close(pfd[0]);
			plain_serve(c->port, pfd[1]);
		}
		close(pfd[1]);
		if (read(pfd[0], &ok, 1) != 1)
			ok = 0;
		close(pfd[0]);
		if (ok == 'y')
			return 0;
		waitpid(c->pid, &st, 0);
		c->pid = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
			break; /* not a port collision: give up */
	}
	fprintf(stderr, "bench_sim: cannot start the plain libmodbus "
			"server\n");
	return -1;
}

/* ---- the client: the same code against both ---- */

static int check_sim_block_r(int port)
{
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
	uint16_t r[FASCIA_BLOCK_R_LEN];
	struct fascia_block_r br;
	int ok = -1;

	if (ctx == NULL || modbus_connect(ctx) != 0) {
		fprintf(stderr, "bench_sim: connect to fascia-sim: %s\n",
			modbus_strerror(errno));
	} else if (modbus_read_registers(ctx, FASCIA_BLOCK_R_ADDR,
					 FASCIA_BLOCK_R_LEN,
					 r) != FASCIA_BLOCK_R_LEN) {
		fprintf(stderr, "bench_sim: read block R: %s\n",
			modbus_strerror(errno));
	} else if (fascia_block_r_unpack(r, &br) != 0) {
		fprintf(stderr, "bench_sim: block R from fascia-sim: %s\n",
			fascia_strerror(errno));
	} else {
		ok = 0;
	}
	if (ctx != NULL) {
		modbus_close(ctx);
		modbus_free(ctx);
	}
	return ok;
}

static int run_round(struct result *res, int port, double seconds,
		     uint16_t *heartbeat)
{
	struct fascia_block_w w = {
		.command = FASCIA_CMD_IDLE,
		.watchdog_ms = FASCIA_WATCHDOG_MS_MAX, /* rounds alternate */
		.limit_mmhg = 100.0,
		.pump = true,
	};
	uint16_t wr[FASCIA_BLOCK_W_LEN], rd[FASCIA_BLOCK_R_LEN];
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
	unsigned long n = 0;
	double t0, t, end;

	if (ctx == NULL || modbus_connect(ctx) != 0) {
		fprintf(stderr, "bench_sim: %s: connect to port %d: %s\n",
			res->name, port, modbus_strerror(errno));
		if (ctx)
			modbus_free(ctx);
		return -1;
	}
	modbus_set_response_timeout(ctx, 1, 0);
	t0 = t = now_s();
	end = t0 + seconds;
	do {
		double a;

		w.heartbeat = ++*heartbeat;
		if (fascia_block_w_pack(&w, wr) != 0) {
			fprintf(stderr, "bench_sim: pack: %s\n",
				fascia_strerror(errno));
			break;
		}
		a = now_s();
		if (modbus_write_and_read_registers(
			    ctx, FASCIA_BLOCK_W_ADDR, FASCIA_BLOCK_W_LEN, wr,
			    FASCIA_BLOCK_R_ADDR, FASCIA_BLOCK_R_LEN,
			    rd) != FASCIA_BLOCK_R_LEN) {
			if (res->errors++ < 3)
				fprintf(stderr, "bench_sim: %s: FC23: %s\n",
					res->name, modbus_strerror(errno));
			if (res->errors > 1000)
				break;
			modbus_flush(ctx);
		} else {
			n++;
		}
		t = now_s();
		lat_add(&res->lat, (t - a) * 1e6);
	} while (t < end);
	res->rate[res->rounds++] = (double)n / (t - t0);
	modbus_close(ctx);
	modbus_free(ctx);
	return 0;
}

static void usage(void)
{
	fputs("usage: bench_sim --sim PATH [--seconds N] [--rounds N]\n"
	      "  measures FC23 exchanges/s of fascia-sim and of a plain\n"
	      "  libmodbus server, alternately, N rounds (default 5) of\n"
	      "  --seconds each (default 2)\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"sim", required_argument, NULL, 's'},
		{"seconds", required_argument, NULL, 't'},
		{"rounds", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct result res[2] = {{.name = "fascia-sim"},
				{.name = "plain libmodbus"}};
	struct child sim = {0}, plain = {0};
	const char *sim_path = NULL;
	double seconds = 2.0, r50[2], r99[2], rate[2];
	uint16_t hb = 0;
	int rounds = 5, c, rc = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sim_path = optarg;
			break;
		case 't':
			seconds = atof(optarg);
			if (!(seconds > 0 && seconds <= 3600))
				usage();
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > MAX_ROUNDS)
				usage();
			break;
		default:
			usage();
		}
	}
	if (sim_path == NULL || optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);

	if (start_sim(sim_path, &sim) != 0)
		goto out;
	if (start_plain(&plain) != 0)
		goto out;
	if (check_sim_block_r(sim.port) != 0)
		goto out;

	printf("FC23 (write 32 at 0, read 48 at 100) on loopback: %d rounds "
	       "of %.1f s each, alternating\n",
	       rounds, seconds);
	printf("fascia-sim pid %d port %d; plain libmodbus pid %d port %d\n\n",
	       (int)sim.pid, sim.port, (int)plain.pid, plain.port);
	printf("%-6s %16s %16s\n", "round", "fascia-sim/s", "plain/s");
	for (int i = 0; i < rounds; i++) {
		/* alternate which goes first */
		int first = i % 2, second = !first;
		struct child *srv[2] = {&sim, &plain};

		if (run_round(&res[first], srv[first]->port, seconds, &hb) ||
		    run_round(&res[second], srv[second]->port, seconds, &hb))
			goto out;
		printf("%-6d %16.0f %16.0f\n", i + 1, res[0].rate[i],
		       res[1].rate[i]);
		fflush(stdout);
	}
	for (int k = 0; k < 2; k++) {
		rate[k] = median(res[k].rate, res[k].rounds);
		r50[k] = percentile(res[k].lat.us, res[k].lat.n, 0.50);
		r99[k] = percentile(res[k].lat.us, res[k].lat.n, 0.99);
	}
	printf("\n%-16s %14s %10s %10s %8s\n", "server", "exchanges/s",
	       "p50 us", "p99 us", "errors");
	for (int k = 0; k < 2; k++)
		printf("%-16s %14.0f %10.1f %10.1f %8lu\n", res[k].name,
		       rate[k], r50[k], r99[k], res[k].errors);
	if (rate[1] > 0) {
		double ratio = rate[0] / rate[1];

		printf("\nratio sim/plain: %.2f (target >= 0.9: %s)\n", ratio,
		       ratio >= 0.9 ? "met" : "NOT met");
	}
	rc = res[0].errors || res[1].errors ? 1 : 0;
out:
	stop_child(&sim, "fascia-sim");
	stop_child(&plain, "plain libmodbus server");
	free(res[0].lat.us);
	free(res[1].lat.us);
	return rc;
}

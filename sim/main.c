/*
 * fascia-sim: a Modbus server that behaves like the fascia actuator
 * controller, pneumatics included, with faults injected from the command
 * line, a scenario file or the control socket.
 *
 * This file reads the command line, builds the devices, opens their
 * Modbus links (server.c) and the control socket (control.c), schedules
 * --inject and scenario events, and runs the libevent loop until SIGTERM
 * or SIGINT.  Once everything listens it prints one "ready" line on
 * stdout, which tests and scripts wait for; diagnostics go to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define EXIT_USAGE 2
#define TICK_MS 10 /* every model is brought up to date this often */

/* A scheduled request and where it came from, for messages. */
struct sched {
	struct sim_event ev;
	const char *origin; /* "--inject SPEC" or the scenario file */
	int entry;          /* 1-based scenario entry; 0 for --inject */
	int seq;            /* order given: ties at the same at_ms */
};

struct opts {
	int port, unit, chambers, ndev;
	const char *control, *listen;
	const char *rtu, *pty_link;
	bool pty, port_set, listen_set, baud_set, parity_set;
	int baud;
	char parity;
	const char *scenario;
	double relief, noise;
	bool noise_set, seed_set, reboot_set;
	unsigned long long seed;
	long reboot_ms;
	bool no_fc23;
};

struct runtime {
	struct sim s;
	struct sched *sched; /* sorted by at_ms, stable */
	int nsched;
	int next; /* first not yet applied */
	struct event *sched_ev;
	struct event *sig[2];
};

uint64_t sim_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sim_device_advance(struct sim_device *d)
{
	bool was = sim_model_booting(&d->model);

	sim_model_advance(&d->model, sim_now_us());
	if (sim_model_booting(&d->model) != was)
		sim_server_link_changed(d);
}

/* ---- command line ---- */

static const char usage_text[] =
	"usage: fascia-sim [-p PORT] [-u UNIT] [-n CHAMBERS] [-c CONTROL]\n"
	"                  [--listen ADDR]\n"
	"                  [--rtu PATH [--baud N] [--parity N|E|O] |\n"
	"                   --pty [--pty-link PATH]]\n"
	"                  [--devices N] [--scenario FILE] [--inject SPEC]...\n"
	"                  [--relief MMHG] [--noise MMHG] [--seed N]\n"
	"                  [--reboot-ms N] [--no-fc23] [-h|--help]\n";

static const char help_text[] =
	"\n"
	"A Modbus server that behaves like the fascia actuator controller,\n"
	"pneumatics included, and injects faults on request.\n"
	"\n"
	"options:\n"
	"  -p, --port PORT       Modbus TCP port, 0..65535 (default 1502);\n"
	"                        0: an ephemeral port for every device\n"
	"  -u, --unit UNIT       Modbus unit id served, 1..247 (default 1)\n"
	"  -n, --chambers N      chambers per device, 1..16 (default 8)\n"
	"  -c, --control ENDPOINT\n"
	"                        ZeroMQ REP control socket\n"
	"                        (default tcp://127.0.0.1:7412;\n"
	"                        tcp://127.0.0.1:* picks a free port)\n"
	"      --listen ADDR     address Modbus TCP listens on\n"
	"                        (default 127.0.0.1)\n"
	"      --rtu PATH        serve Modbus RTU on a serial device\n"
	"                        instead of TCP\n"
	"      --baud N          RTU speed (default 115200)\n"
	"      --parity N|E|O    RTU parity (default N)\n"
	"      --pty             serve Modbus RTU on a new pseudo-terminal\n"
	"      --pty-link PATH   make PATH a symlink to that terminal\n"
	"      --devices N       serve N independent devices, 1..256\n"
	"                        (default 1), on ports PORT..PORT+N-1;\n"
	"                        TCP only\n"
	"      --scenario FILE   inject the faults FILE lists, at their\n"
	"                        times (see docs/simulator.md)\n"
	"      --inject SPEC     inject a fault: NAME[,key=value...][@MS],\n"
	"                        MS milliseconds after the start (default\n"
	"                        0: before the ready line); repeatable\n"
	"      --relief MMHG     mechanical relief valve, 50..300\n"
	"                        (default 200)\n"
	"      --noise MMHG      sensor noise, standard deviation, 0..50\n"
	"                        (default 0.1)\n"
	"      --seed N          noise seed (device i uses N+i-1; default 1)\n"
	"      --reboot-ms N     how long a reboot keeps a device silent,\n"
	"                        0..600000 (default 1000)\n"
	"      --no-fc23         answer FC23 with exception 01, as a device\n"
	"                        without it (controllers fall back to\n"
	"                        FC16 + FC03)\n"
	"  -h, --help            this help\n"
	"\n"
	"faults (--inject, scenario files, the control socket; chamber\n"
	"counts from 1; add device=N to pick a device, default 1):\n"
	"  overpressure  chamber, mmhg      surge: chamber held at >= mmhg\n"
	"  valve_stuck   chamber, state     state: open | closed\n"
	"  leak          chamber, mmhg_s    leak of mmhg_s mmHg/s\n"
	"  blocked       chamber            hose blocked: valves do nothing\n"
	"  sensor        chamber, mode, value\n"
	"                                   mode: stuck (value optional:\n"
	"                                   where it was) | noise (std dev)\n"
	"                                   | offset (added) | range (the\n"
	"                                   reading)\n"
	"  freeze                           firmware frozen\n"
	"  estop                            e-stop pressed\n"
	"  garment_off                      garment disconnected\n"
	"  pump_fail                        pump dead\n"
	"  reboot                           silent for --reboot-ms, then\n"
	"                                   powers on afresh\n"
	"  link          mode, delay_ms     mode: silent | slow | garbage |\n"
	"                                   exception | disconnect;\n"
	"                                   delay_ms for slow (default 200)\n"
	"\n"
	"examples:\n"
	"  fascia-sim -p 0 -c 'tcp://127.0.0.1:*'\n"
	"  fascia-sim --inject leak,chamber=2,mmhg_s=5@1500 "
	"--inject estop@5000\n"
	"\n"
	"When everything listens, one line goes to stdout:\n"
	"  ready modbus=tcp:127.0.0.1:1502 control=tcp://127.0.0.1:7412\n";

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("fascia-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'fascia-sim --help'.\n", stderr);
	exit(EXIT_USAGE);
}

static long parse_long(const char *opt, const char *arg, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
		usage_error("%s: \"%s\" is not an integer in %ld..%ld", opt,
			    arg, lo, hi);
	return v;
}

static double parse_double(const char *opt, const char *arg, double lo,
			   double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (*arg == '\0' || *end != '\0' || errno != 0 || !isfinite(v) ||
	    v < lo || v > hi)
		usage_error("%s: \"%s\" is not a number in %g..%g", opt, arg,
			    lo, hi);
	return v;
}

enum {
	OPT_LISTEN = 256,
	OPT_RTU,
	OPT_BAUD,
	OPT_PARITY,
	OPT_PTY,
	OPT_PTY_LINK,
	OPT_DEVICES,
	OPT_SCENARIO,
	OPT_INJECT,
	OPT_RELIEF,
	OPT_NOISE,
	OPT_SEED,
	OPT_REBOOT_MS,
	OPT_NO_FC23,
};

static const struct option long_opts[] = {
	{"port", required_argument, NULL, 'p'},
	{"unit", required_argument, NULL, 'u'},
	{"chambers", required_argument, NULL, 'n'},
	{"control", required_argument, NULL, 'c'},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"rtu", required_argument, NULL, OPT_RTU},
	{"baud", required_argument, NULL, OPT_BAUD},
	{"parity", required_argument, NULL, OPT_PARITY},
	{"pty", no_argument, NULL, OPT_PTY},
	{"pty-link", required_argument, NULL, OPT_PTY_LINK},
	{"devices", required_argument, NULL, OPT_DEVICES},
	{"scenario", required_argument, NULL, OPT_SCENARIO},
	{"inject", required_argument, NULL, OPT_INJECT},
	{"relief", required_argument, NULL, OPT_RELIEF},
	{"noise", required_argument, NULL, OPT_NOISE},
	{"seed", required_argument, NULL, OPT_SEED},
	{"reboot-ms", required_argument, NULL, OPT_REBOOT_MS},
	{"no-fc23", no_argument, NULL, OPT_NO_FC23},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Append one event (it takes ev->req) to rt->sched. */
static void add_sched(struct runtime *rt, const struct sim_event *ev,
		      const char *origin, int entry)
{
	struct sched *n;

	n = realloc(rt->sched, (size_t)(rt->nsched + 1) * sizeof(*n));
	if (n == NULL) {
		fputs("fascia-sim: out of memory\n", stderr);
		exit(1);
	}
	rt->sched = n;
	n[rt->nsched].ev = *ev;
	n[rt->nsched].origin = origin;
	n[rt->nsched].entry = entry;
	n[rt->nsched].seq = rt->nsched;
	rt->nsched++;
}

static void parse_args(int argc, char **argv, struct opts *o,
		       struct runtime *rt)
{
	struct sim_event ev;
	char err[512];
	int c;

	*o = (struct opts){
		.port = 1502,
		.unit = 1,
		.chambers = 8,
		.ndev = 1,
		.control = "tcp://127.0.0.1:7412",
		.listen = "127.0.0.1",
		.baud = 115200,
		.parity = 'N',
		.relief = 200,
	};
	opterr = 0; /* our own messages, prefixed like every other */
	while ((c = getopt_long(argc, argv, ":p:u:n:c:h", long_opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'p':
			o->port = (int)parse_long("-p", optarg, 0, 65535);
			o->port_set = true;
			break;
		case 'u':
			o->unit = (int)parse_long("-u", optarg, 1, 247);
			break;
		case 'n':
			o->chambers = (int)parse_long("-n", optarg, 1,
						      FASCIA_MAX_CHAMBERS);
			break;
		case 'c':
			if (*optarg == '\0')
				usage_error("-c: an endpoint is required, "
					    "e.g. tcp://127.0.0.1:7412");
			o->control = optarg;
			break;
		case OPT_LISTEN:
			if (*optarg == '\0')
				usage_error("--listen: an address is required");
			o->listen = optarg;
			o->listen_set = true;
			break;
		case OPT_RTU:
			if (*optarg == '\0')
				usage_error("--rtu: a device path is required");
			o->rtu = optarg;
			break;
		case OPT_BAUD:
			o->baud =
				(int)parse_long("--baud", optarg, 50, 4000000);
			o->baud_set = true;
			break;
		case OPT_PARITY:
			if (strlen(optarg) != 1 ||
			    strchr("NEOneo", optarg[0]) == NULL)
				usage_error("--parity: \"%s\" is not N, E or O",
					    optarg);
			o->parity = optarg[0] & ~0x20; /* upper case */
			o->parity_set = true;
			break;
		case OPT_PTY:
			o->pty = true;
			break;
		case OPT_PTY_LINK:
			if (*optarg == '\0')
				usage_error("--pty-link: a path is required");
			o->pty_link = optarg;
			break;
		case OPT_DEVICES:
			o->ndev = (int)parse_long("--devices", optarg, 1,
						  SIM_MAX_DEVICES);
			break;
		case OPT_SCENARIO:
			o->scenario = optarg;
			break;
		case OPT_INJECT:
			if (sim_inject_spec(optarg, &ev, err, sizeof(err)) != 0)
				usage_error("%s", err);
			add_sched(rt, &ev, optarg, 0);
			break;
		case OPT_RELIEF:
			o->relief = parse_double("--relief", optarg, 50, 300);
			break;
		case OPT_NOISE:
			o->noise = parse_double("--noise", optarg, 0, 50);
			o->noise_set = true;
			break;
		case OPT_SEED:
			if (*optarg == '-')
				usage_error("--seed: \"%s\" is not an integer "
					    ">= 0",
					    optarg);
			{
				char *end;

				errno = 0;
				o->seed = strtoull(optarg, &end, 0);
				if (*optarg == '\0' || *end != '\0' ||
				    errno != 0)
					usage_error("--seed: \"%s\" is not an "
						    "integer >= 0",
						    optarg);
			}
			o->seed_set = true;
			break;
		case OPT_REBOOT_MS:
			o->reboot_ms =
				parse_long("--reboot-ms", optarg, 0, 600000);
			o->reboot_set = true;
			break;
		case OPT_NO_FC23:
			o->no_fc23 = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			fputs(help_text, stdout);
			exit(0);
		case ':':
			usage_error("%s: requires an argument",
				    argv[optind - 1]);
		default:
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				usage_error("\"%s\": unknown option, or one "
					    "that takes no argument",
					    argv[optind - 1]);
			usage_error("unknown option \"-%c\"", optopt);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->rtu != NULL && o->pty)
		usage_error("--rtu and --pty: choose one");
	if ((o->baud_set || o->parity_set) && o->rtu == NULL)
		usage_error("--baud and --parity apply to --rtu only");
	if (o->pty_link != NULL && !o->pty)
		usage_error("--pty-link needs --pty");
	if (o->ndev > 1 && (o->rtu != NULL || o->pty))
		usage_error("--devices: more than one device needs TCP");
	if (o->port != 0 && o->port + o->ndev - 1 > 65535)
		usage_error("--devices: ports %d..%d do not fit below 65536",
			    o->port, o->port + o->ndev - 1);
}

/* ---- scheduled events ---- */

static int cmp_sched(const void *a, const void *b)
{
	const struct sched *x = a, *y = b;

	if (x->ev.at_ms != y->ev.at_ms)
		return x->ev.at_ms < y->ev.at_ms ? -1 : 1;
	return x->seq - y->seq; /* equal times: the order given */
}

static void describe(const struct sched *e, char *buf, size_t len)
{
	if (e->entry > 0)
		snprintf(buf, len, "scenario %s entry %d", e->origin, e->entry);
	else
		snprintf(buf, len, "--inject %s", e->origin);
}

/* Apply one event.  Returns 0, or -1 after saying why on stderr. */
static int apply_sched(struct sim *s, struct sched *e)
{
	const char *code = "internal";
	char msg[256] = "", where[300];
	json_t *r;

	r = sim_request(s, e->ev.req, &code, msg, sizeof(msg));
	if (r != NULL) {
		json_decref(r);
		return 0;
	}
	describe(e, where, sizeof(where));
	fprintf(stderr, "fascia-sim: %s: %s: %s\n", where, code, msg);
	return -1;
}

static void arm_sched(struct runtime *rt)
{
	uint64_t due, now;
	struct timeval tv;

	if (rt->next >= rt->nsched)
		return;
	due = rt->s.start_us + rt->sched[rt->next].ev.at_ms * 1000u;
	now = sim_now_us();
	due = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(due / 1000000u);
	tv.tv_usec = (suseconds_t)(due % 1000000u);
	event_add(rt->sched_ev, &tv);
}

/* One timer for every event, so that events due at the same time are
 * applied in the order given (libevent does not order equal timeouts). */
static void sched_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	uint64_t now = sim_now_us();

	(void)fd;
	(void)what;
	while (rt->next < rt->nsched &&
	       rt->s.start_us + rt->sched[rt->next].ev.at_ms * 1000u <= now)
		apply_sched(&rt->s, &rt->sched[rt->next++]);
	arm_sched(rt);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < s->ndev; i++)
		sim_device_advance(&s->dev[i]);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sim *s = arg;

	(void)what;
	fprintf(stderr, "fascia-sim: %s, stopping\n",
		sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopbreak(s->base);
}

/* ---- set up and tear down ---- */

static void cleanup(struct runtime *rt)
{
	struct sim *s = &rt->s;

	for (int i = 0; s->dev != NULL && i < s->ndev; i++)
		if (s->dev[i].server != NULL)
			sim_server_close(&s->dev[i]);
	sim_control_close(s);
	for (int i = 0; i < 2; i++)
		if (rt->sig[i] != NULL)
			event_free(rt->sig[i]);
	if (rt->sched_ev != NULL)
		event_free(rt->sched_ev);
	if (s->tick != NULL)
		event_free(s->tick);
	for (int i = 0; i < rt->nsched; i++)
		json_decref(rt->sched[i].ev.req);
	free(rt->sched);
	free(s->dev);
	if (s->base != NULL)
		event_base_free(s->base);
	libevent_global_shutdown();
}

static void init_devices(struct sim *s, const struct opts *o)
{
	struct sim_params p;

	s->dev = calloc((size_t)o->ndev, sizeof(*s->dev));
	if (s->dev == NULL) {
		fputs("fascia-sim: out of memory\n", stderr);
		exit(1);
	}
	s->ndev = o->ndev;
	s->unit = o->unit;
	s->no_fc23 = o->no_fc23;
	s->start_us = sim_now_us();
	for (int i = 0; i < s->ndev; i++) {
		struct sim_device *d = &s->dev[i];

		sim_params_default(&p);
		p.chambers = o->chambers;
		p.hw_relief_mmhg = o->relief;
		if (o->noise_set)
			p.noise_mmhg = o->noise;
		if (o->seed_set)
			p.seed = o->seed;
		p.seed += (uint64_t)i;
		if (o->reboot_set)
			p.reboot_ms = (uint32_t)o->reboot_ms;
		d->index = i;
		d->sim = s;
		d->link_mode = SIM_LINK_OK;
		sim_model_init(&d->model, &p, sim_now_us());
	}
}

static int open_servers(struct sim *s, const struct opts *o)
{
	for (int i = 0; i < s->ndev; i++) {
		struct sim_device *d = &s->dev[i];
		int r;

		if (o->rtu != NULL)
			r = sim_server_rtu(d, o->rtu, o->baud, o->parity);
		else if (o->pty)
			r = sim_server_pty(d, o->pty_link);
		else
			r = sim_server_tcp(d, o->listen,
					   o->port == 0 ? 0 : o->port + i);
		if (r != 0)
			return -1;
	}
	return 0;
}

/* The ready line: every device's link, then the control endpoint. */
static void print_ready(const struct sim *s, const char *bound)
{
	printf("ready modbus=");
	for (int i = 0; i < s->ndev; i++)
		printf("%s%s", i ? "," : "", s->dev[i].where);
	printf(" control=%s\n", bound);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static struct runtime rt; /* large: the models */
	struct sim *s = &rt.s;
	struct sim_event *evs = NULL;
	struct opts o;
	char err[512], where[300], bound[256] = "";
	const char *code;
	int n;

	parse_args(argc, argv, &o, &rt);
	if (o.scenario != NULL) {
		n = sim_scenario_load(o.scenario, &evs, err, sizeof(err));
		if (n < 0) {
			fprintf(stderr, "fascia-sim: scenario %s\n", err);
			cleanup(&rt);
			return EXIT_USAGE;
		}
		for (int i = 0; i < n; i++)
			add_sched(&rt, &evs[i], o.scenario, i + 1);
		free(evs);
	}

	signal(SIGPIPE, SIG_IGN);
	s->base = event_base_new();
	if (s->base == NULL) {
		fputs("fascia-sim: cannot create the event loop\n", stderr);
		return 1;
	}
	init_devices(s, &o);

	/* every scheduled request is checked before anything listens */
	for (int i = 0; i < rt.nsched; i++) {
		char msg[256] = "";

		if (sim_request_check(s, rt.sched[i].ev.req, &code, msg,
				      sizeof(msg)) != 0) {
			describe(&rt.sched[i], where, sizeof(where));
			fprintf(stderr, "fascia-sim: %s: %s: %s\n", where, code,
				msg);
			cleanup(&rt);
			return EXIT_USAGE;
		}
	}
	if (rt.nsched > 1)
		qsort(rt.sched, (size_t)rt.nsched, sizeof(*rt.sched),
		      cmp_sched);

	if (open_servers(s, &o) != 0 ||
	    sim_control_open(s, o.control, bound, sizeof(bound)) != 0) {
		cleanup(&rt);
		return 1;
	}

	rt.sig[0] = evsignal_new(s->base, SIGTERM, signal_cb, s);
	rt.sig[1] = evsignal_new(s->base, SIGINT, signal_cb, s);
	s->tick = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
	rt.sched_ev = evtimer_new(s->base, sched_cb, &rt);
	if (rt.sig[0] == NULL || rt.sig[1] == NULL || s->tick == NULL ||
	    rt.sched_ev == NULL || event_add(rt.sig[0], NULL) != 0 ||
	    event_add(rt.sig[1], NULL) != 0 ||
	    event_add(s->tick, &(struct timeval){0, TICK_MS * 1000}) != 0) {
		fputs("fascia-sim: cannot set up events\n", stderr);
		cleanup(&rt);
		return 1;
	}

	/* at_ms 0: in place before anyone is told we are ready */
	while (rt.next < rt.nsched && rt.sched[rt.next].ev.at_ms == 0) {
		if (apply_sched(s, &rt.sched[rt.next++]) != 0) {
			cleanup(&rt);
			return EXIT_USAGE;
		}
	}
	arm_sched(&rt);

	print_ready(s, bound);
	if (event_base_dispatch(s->base) < 0)
		fputs("fascia-sim: the event loop failed\n", stderr);
	cleanup(&rt);
	return 0;
}

/*
 * fasciad: the process.  Reads the configuration and the profiles, starts
 * the log's writer thread and the store's (disk work), opens the ZeroMQ
 * sockets, starts one control thread per device, and runs the main
 * libevent loop until SIGTERM or SIGINT, when it vents every device (for
 * at most SHUTDOWN_VENT_S) before it exits.  A refused profile file does
 * not stop it: the others load (profiles.c); only a configuration that
 * does not parse or a profile directory that cannot be read does.  SIGHUP
 * reloads the profiles by the same rule, keeping the old set only when
 * the directory cannot be read.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <zmq.h>

#include "fasciad.h"

#define SHUTDOWN_VENT_S 2.0
#define VERSION "0.1"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fasciad [-c FILE] [-n] [-f] [-v] [-B] [-h | --help]\n"
		"  -c FILE  configuration (default: built in, one device `sim`"
		" at 127.0.0.1:1502)\n"
		"  -n       check the configuration and the profiles, and "
		"exit\n"
		"  -f       stay in the foreground; print `ready control=... "
		"publish=...`\n"
		"           on stdout once listening\n"
		"  -v       log debug messages\n"
		"  -B       benchmarks only: tick as fast as the exchanges "
		"go, no deadlines\n"
		"  -h, --help  this help\n"
		"See fasciad(8) and fasciad.conf(5).\n");
}

/* "1 device", "2 devices". */
static const char *noun(int n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* Each error with the file's name and its line. */
static void print_errors(const char *path, const struct conf_errors *errs)
{
	for (int i = 0; i < errs->n; i++) {
		if (errs->e[i].line)
			fprintf(stderr, "%s:%d: %s\n", path, errs->e[i].line,
				errs->e[i].message);
		else
			fprintf(stderr, "%s: %s\n", path, errs->e[i].message);
	}
	if (errs->dropped)
		fprintf(stderr, "%s: and %d more errors\n", path,
			errs->dropped);
}

/* The file, then the certificates it names (curve = yes): -n and the
 * start refuse the same. */
static int load_conf(struct fd_daemon *d)
{
	struct conf_errors errs;

	if (d->conf_path == NULL) {
		conf_builtin(&d->conf);
		return 0;
	}
	if (conf_load(d->conf_path, &d->conf, &errs) == 0 &&
	    fd_certs_check(&d->conf, &errs) == 0)
		return 0;
	print_errors(d->conf_path, &errs);
	return -1;
}

/* The profile directory, loaded against what holds for every device. */
static int load_profiles(const struct fd_daemon *d, struct fd_profiles *out)
{
	struct fascia_profile_limits lim;

	fd_profiles_load_limits(&d->conf, &lim);
	return fd_profiles_load(d->conf.profiles, &lim, out);
}

/* Each loaded profile a device cannot run: start refuses it there. */
static void report_misfits(const struct fd_daemon *d)
{
	char why[256];

	for (int i = 0; i < d->profiles.n; i++)
		for (int j = 0; j < d->conf.ndev; j++)
			if (!fd_profiles_fits(&d->profiles.p[i],
					      &d->conf.dev[j], why,
					      sizeof(why)))
				log_warnx("profile %s does not fit device %s, "
					  "start refuses it there: %s",
					  d->profiles.p[i].name,
					  d->conf.dev[j].name, why);
}

/* SIGHUP: the profiles again.  A session keeps the copy it started
 * with, so a profile that goes away does not end one. */
static void reload(struct fd_daemon *d)
{
	struct fd_profiles *fresh = xcalloc(1, sizeof(*fresh));

	if (load_profiles(d, fresh) == -1) {
		log_warnx("SIGHUP: %s cannot be read; keeping the %d %s "
			  "loaded before",
			  d->conf.profiles, d->profiles.n,
			  noun(d->profiles.n, "profile", "profiles"));
		free(fresh);
		return;
	}
	for (int i = 0; i < d->profiles.n; i++)
		if (fd_profiles_find(fresh, d->profiles.p[i].name) == NULL)
			log_warnx("SIGHUP: profile %s is no longer served: "
				  "its file is gone or was refused",
				  d->profiles.p[i].name);
	d->profiles = *fresh;
	free(fresh);
	log_info("SIGHUP: %d %s loaded from %s, %d %s refused", d->profiles.n,
		 noun(d->profiles.n, "profile", "profiles"), d->conf.profiles,
		 d->profiles.nrefused,
		 noun(d->profiles.nrefused, "file", "files"));
	fd_record_daemon(d, "reload", "%d %s loaded from %s, %d %s refused",
			 d->profiles.n,
			 noun(d->profiles.n, "profile", "profiles"),
			 d->conf.profiles, d->profiles.nrefused,
			 noun(d->profiles.nrefused, "file", "files"));
	report_misfits(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fd_daemon *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		fd_notify_reloading(d, false);
		reload(d);
		fd_security_reload(d);
		fd_notify_reloading(d, true);
		return;
	}
	log_info("%s: venting and stopping", strsignal((int)sig));
	fd_notify_stopping(d);
	event_base_loopbreak(d->base);
}

/*
 * Keep every page once touched in RAM: no swap-in in a tick.  MCL_ONFAULT
 * does not fault in what was only reserved (libzmq's 8 MiB thread stacks),
 * so the resident size stays what the daemon uses.
 *
 * Then reserve the main thread's heap: HEAP_RESERVE bytes allocated,
 * touched and freed before any other thread starts, with trimming off, so
 * that they stay in the heap, resident.  The main thread's allocations
 * (requests, replies, messages) come from there: no page fault while it
 * serves, and a resident size that does not creep up with the heap's
 * high-water mark over hours (the fragmentation of variable-sized JSON;
 * about 340 KiB after 45 minutes of sessions, docs/performance.md).
 * Trimming off also fixes the mmap threshold at its 128 KiB default, so a
 * large request (a profile) is mapped and unmapped, not kept.
 */
#define HEAP_RESERVE (512 * 1024)
#define HEAP_PIECE (16 * 1024) /* well under the mmap threshold */

/* Whether the process has capability cap in its effective set (CapEff in
 * /proc/self/status). */
static bool has_capability(int cap)
{
	char line[128];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");
	bool found = false;

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	if (f != NULL)
		fclose(f);
	return found && (eff >> cap & 1);
}

/*
 * Lock every page, now and to come, where the process may: CAP_IPC_LOCK
 * lifts RLIMIT_MEMLOCK.  Without it, a finite limit counts each new
 * mapping whole (a thread's 8 MiB stack too): MCL_FUTURE would make a
 * later allocation or thread fail, so only what is mapped now is locked.
 * Which grant is missing is said once.
 */
static void lock_memory(void)
{
	struct rlimit rl;
	int flags = MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT;
	bool finite = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
		      rl.rlim_cur != RLIM_INFINITY;
	char limit[32] = "unlimited";

	if (finite)
		snprintf(limit, sizeof(limit), "%llu KiB",
			 (unsigned long long)rl.rlim_cur / 1024);
	if (finite && !has_capability(CAP_IPC_LOCK))
		flags &= ~MCL_FUTURE;
	if (mlockall(flags) == -1)
		log_warnx("memory not locked (%s): pages may be swapped out.  "
			  "Grant CAP_IPC_LOCK (AmbientCapabilities=; "
			  "RLIMIT_MEMLOCK is %s)",
			  strerror(errno), limit);
	else if (!(flags & MCL_FUTURE))
		log_warnx("memory locked as it is now, not as it grows: no "
			  "CAP_IPC_LOCK, and RLIMIT_MEMLOCK is %s.  Grant "
			  "CAP_IPC_LOCK (AmbientCapabilities=)",
			  limit);
}

static void prepare_memory(void)
{
	void *piece[HEAP_RESERVE / HEAP_PIECE];
	const int n = HEAP_RESERVE / HEAP_PIECE;

	lock_memory();
	if (mallopt(M_TRIM_THRESHOLD, -1) != 1)
		log_info("heap trimming left on; the RSS may follow the heap");
	for (int i = 0; i < n; i++) {
		piece[i] = xcalloc(1, HEAP_PIECE);
		/* touch: calloc may not */
		explicit_bzero(piece[i], HEAP_PIECE);
	}
	for (int i = n - 1; i >= 0; i--)
		free(piece[i]);
}

static void stop_devices(struct fd_daemon *d)
{
	/* Every device vents at once; then wait for each. */
	for (int i = 0; i < d->ndev; i++)
		fd_device_request_stop(&d->dev[i], SHUTDOWN_VENT_S);
	for (int i = 0; i < d->ndev; i++)
		fd_device_stop(&d->dev[i], SHUTDOWN_VENT_S);
}

/* -n: whether the journal can be written where the configuration says. */
static int check_journal(const struct fd_daemon *d)
{
	char why[300];

	if (strcmp(d->conf.journal, "off") == 0)
		return 0;
	if (fd_journal_check(d->conf.journal, why, sizeof(why)) == 0)
		return 0;
	fprintf(stderr, "%s: journal: %s\n",
		d->conf_path ? d->conf_path : "built-in", why);
	return -1;
}

int main(int argc, char **argv)
{
	static struct fd_daemon daemon_state;
	struct fd_daemon *d = &daemon_state;
	struct event *sigs[3];
	const int signos[3] = {SIGTERM, SIGINT, SIGHUP};
	bool check = false, foreground = false, verbose = false;
	bool unthrottled = false;
	int opt;

	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};

	while ((opt = getopt_long(argc, argv, "c:nfvBh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			d->conf_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'B':
			unthrottled = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (load_conf(d) == -1)
		return 1;
	d->conf.bench_unthrottled = unthrottled;
	log_init(!check, verbose);
	fd_profiles_limits(&d->conf, &d->limits); /* profile.put's */
	if (load_profiles(d, &d->profiles) == -1) {
		log_warnx("cannot start without the profile directory: point "
			  "`profiles =` in %s at a readable directory of "
			  "NAME.json files",
			  d->conf_path ? d->conf_path
				       : "a configuration file (-c)");
		return 1;
	}
	report_misfits(d);
	if (check && check_journal(d) == -1)
		return 1;
	if (check) {
		printf("%s: configuration OK, %d %s, %d %s",
		       d->conf_path ? d->conf_path : "built-in", d->conf.ndev,
		       noun(d->conf.ndev, "device", "devices"), d->profiles.n,
		       noun(d->profiles.n, "profile", "profiles"));
		if (d->profiles.nrefused > 0)
			printf("; %d profile %s refused", d->profiles.nrefused,
			       noun(d->profiles.nrefused, "file", "files"));
		printf("\n");
		return 0;
	}
	if (!foreground && daemon(0, 0) == -1)
		fatal("daemon");
	signal(SIGPIPE, SIG_IGN);
	prepare_memory();
	log_start();
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	d->store = fd_store_new(d->base);
	fd_record_open(d);
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d->base, signos[i], on_signal, d);
		if (sigs[i] == NULL || event_add(sigs[i], NULL) == -1)
			fatalx("cannot watch signal %d", signos[i]);
	}
	if (fd_server_open(d) == -1) {
		log_close();
		return 1;
	}
	d->ndev = d->conf.ndev;
	d->dev = xcalloc((size_t)d->ndev, sizeof(*d->dev));
	for (int i = 0; i < d->ndev; i++) {
		d->dev[i].conf = d->conf.dev[i];
		d->dev[i].daemon = d;
		if (fd_device_start(&d->dev[i]) == -1) {
			stop_devices(d);
			log_close();
			return 1;
		}
	}
	log_info("fasciad %s: %d %s, %d %s, %d Hz, control %s, publish %s",
		 VERSION, d->ndev, noun(d->ndev, "device", "devices"),
		 d->profiles.n, noun(d->profiles.n, "profile", "profiles"),
		 d->conf.tick_hz, d->control_bound, d->publish_bound);
	fd_record_daemon(
		d, "start", "fasciad %s: %d %s, %d %s, journal %s", VERSION,
		d->ndev, noun(d->ndev, "device", "devices"), d->profiles.n,
		noun(d->profiles.n, "profile", "profiles"), d->conf.journal);
	if (foreground) {
		printf("ready control=%s publish=%s%s%s\n", d->control_bound,
		       d->publish_bound, d->local_bound[0] ? " local=" : "",
		       d->local_bound);
		fflush(stdout);
	}
	fd_notify_ready(d);
	event_base_dispatch(d->base);
	stop_devices(d);
	fd_record_daemon(d, "stop", "stopped");
	fd_record_close(d);
	fd_store_destroy(&d->store); /* its answers go out before the close */
	fd_commands_close(d);
	fd_notify_close(d);
	fd_server_close(d);
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	free(d->dev);
	event_base_free(d->base);
	log_info("stopped");
	log_close();
	return 0;
}

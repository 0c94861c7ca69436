/*
 * fascia-web: the clinic console in a browser (docs/man/fascia-web.1).
 * This file reads the options, checks the configuration (-n) or adds a
 * user (--add-user), and otherwise opens everything in order, runs the
 * loop until SIGTERM or SIGINT, and closes everything in the reverse
 * order, answering what still waits.  SIGHUP reads the users file again;
 * everything else needs a restart.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "web.h"

#define TICK_MS 250

int64_t web_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t web_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		fatal("calloc");
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fascia-web -c FILE [-n] [-v]\n"
		"       fascia-web --add-user NAME --role ROLE "
		"(-u USERSFILE | -c FILE)\n"
		"  -c FILE   the configuration ([web], [room NAME])\n"
		"  -n        check the configuration and the files it names, "
		"and exit\n"
		"  -v        log debug messages\n"
		"  --add-user NAME --role observer|operator|admin\n"
		"            add or replace a user; the password is read from "
		"stdin\n"
		"  -u FILE   the users file (default: users = of -c FILE)\n"
		"  -h, --help  this help\n"
		"Runs in the foreground and prints `ready listen=URL` once "
		"listening.\n"
		"See fascia-web(1).\n");
}

static const char *noun(int n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The configuration, the files it names and its users: -n and the start
 * refuse the same. */
static int load(struct web *w)
{
	static struct web_errors errs;

	/* every error at once: the files of a file that has some too */
	conf_load(w->conf_path, &w->conf, &errs);
	conf_check_files(w->conf_path, &w->conf, &errs);
	w->no_users = !w->conf.users[0];
	if (!w->no_users)
		users_load(w->conf.users, &w->users, &errs);
	if (errs.n == 0 && !errs.dropped)
		return 0;
	conf_print_errors(&errs);
	return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct web *w = arg;
	struct web_users fresh;
	struct web_errors errs = {0};

	(void)what;
	if (sig != SIGHUP) {
		log_info("signal %d: stopping", (int)sig);
		event_base_loopexit(w->base, NULL);
		return;
	}
	if (w->no_users) {
		log_info("SIGHUP: no users file to read");
		return;
	}
	if (users_load(w->conf.users, &fresh, &errs) < 0) {
		log_warnx(
			"SIGHUP: %s:%d: %s; keeping the %zu users read before",
			errs.e[0].file, errs.e[0].line, errs.e[0].message,
			w->users.n);
		return;
	}
	users_free(&w->users);
	w->users = fresh;
	log_info("SIGHUP: %zu %s", w->users.n,
		 noun((int)w->users.n, "user", "users"));
	auth_users_changed(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rooms_tick(arg);
}

static void open_all(struct web *w)
{
	struct timeval tick = {0, TICK_MS * 1000};

	if ((w->static_fd = open(w->conf.static_dir,
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fatal("%s", w->conf.static_dir);
	if ((w->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	auth_open(w);
	verifier_start(w);
	sse_open(w);
	if (rooms_open(w) < 0)
		fatalx("cannot open the rooms");
	if ((w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w)) ==
		    NULL ||
	    event_add(w->tick, &tick) < 0)
		fatalx("out of memory");
}

/* In the reverse order, each answering what still waits on it while the
 * server can still send it. */
static void close_all(struct web *w)
{
	for (int i = 0; i < w->nrooms; i++)
		room_cancel_all(&w->rooms[i]);
	verifier_stop(w);
	sse_close(w);
	http_close(w);
	rooms_close(w);
	auth_close(w);
	event_free(w->tick);
	event_base_free(w->base);
	tls_free(w->tls);
	close(w->static_fd);
	users_free(&w->users);
}

static int run(struct web *w)
{
	static const int signos[3] = {SIGINT, SIGTERM, SIGHUP};
	struct event *sigs[3];
	char why[256];

	if (w->conf.tls_cert[0] &&
	    (w->tls = tls_context(w->conf.tls_cert, w->conf.tls_key, why,
				  sizeof(why))) == NULL)
		fatalx("%s", why);
	signal(SIGPIPE, SIG_IGN);
	log_start();
	open_all(w);
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(w->base, signos[i], on_signal, w);
		if (sigs[i] == NULL || event_add(sigs[i], NULL) < 0)
			fatalx("cannot watch signal %d", signos[i]);
	}
	if (http_open(w) < 0) {
		log_close();
		return 1;
	}
	log_info("fascia-web %s: %s, %d %s, %s", WEB_VERSION, w->listen_url,
		 w->nrooms, noun(w->nrooms, "room", "rooms"),
		 w->no_users ? "no users: every visitor is admin \"local\""
			     : "users from the users file");
	printf("ready listen=%s\n", w->listen_url);
	fflush(stdout);
	event_base_dispatch(w->base);
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	close_all(w);
	log_info("stopped");
	log_close();
	return 0;
}

struct options {
	const char *add_user, *role, *users;
	bool check, verbose;
};

static int parse_options(int argc, char **argv, struct web *w,
			 struct options *o)
{
	static const struct option longopts[] = {
		{"add-user", required_argument, NULL, 'A'},
		{"role", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:nvu:h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			w->conf_path = optarg;
			break;
		case 'n':
			o->check = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'u':
			o->users = optarg;
			break;
		case 'A':
			o->add_user = optarg;
			break;
		case 'R':
			o->role = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || (o->add_user != NULL) != (o->role != NULL) ||
	    (o->add_user == NULL && (w->conf_path == NULL || o->users)) ||
	    (o->add_user != NULL && (o->check || (!o->users && !w->conf_path))))
		return -1;
	return 0;
}

/* --add-user: to -u FILE, or to the users file -c FILE names. */
static int add_user(struct web *w, const struct options *o)
{
	static struct web_errors errs;

	if (o->users != NULL)
		return users_add(o->users, o->add_user, o->role);
	if (conf_load(w->conf_path, &w->conf, &errs) < 0 && !w->conf.users[0]) {
		conf_print_errors(&errs);
		return 1;
	}
	if (!w->conf.users[0]) {
		fprintf(stderr, "fascia-web: %s has no users = FILE in [web]\n",
			w->conf_path);
		return 1;
	}
	return users_add(w->conf.users, o->add_user, o->role);
}

int main(int argc, char **argv)
{
	static struct web w;
	struct options o = {0};

	w.static_fd = -1;
	if (parse_options(argc, argv, &w, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "fascia-web: libsodium cannot start\n");
		return 1;
	}
	log_init(o.verbose);
	if (o.add_user != NULL)
		return add_user(&w, &o);
	if (load(&w) < 0)
		return 1;
	if (o.check) {
		printf("%s: configuration OK, %d %s, ", w.conf_path,
		       w.conf.nrooms, noun(w.conf.nrooms, "room", "rooms"));
		if (w.no_users)
			printf("no users (every visitor is admin \"local\")\n");
		else
			printf("%zu %s\n", w.users.n,
			       noun((int)w.users.n, "user", "users"));
		users_free(&w.users);
		return 0;
	}
	return run(&w);
}

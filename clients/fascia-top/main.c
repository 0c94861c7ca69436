/*
 * fascia-top: a live terminal view of every device fasciad drives, with
 * the operator's pause/resume/stop/vent/ack keys.  This file reads the
 * options and the environment, connects to the daemon's control and
 * publish endpoints (over CURVE with --cert and --server-key), and runs
 * the curses view (ui.c) on a terminal or plain lines (plain.c) otherwise.
 *
 * Exit status: 0 on q (or --count lines printed), 1 on a runtime failure,
 * 2 on a usage error (an endpoint that is not one included, and a
 * certificate or key that is not one), 3 when the daemon is unreachable at
 * the start (plain mode).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "top.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fascia-top [-e ENDPOINT] [-P ENDPOINT] [-d DEVICE] "
		"[-n COUNT]\n"
		"                  [--cert FILE --server-key KEY] [-h]\n"
		"  -e, --endpoint ENDPOINT  control endpoint "
		"(FASCIA_CONTROL, default %s)\n"
		"  -P, --publish ENDPOINT   publish endpoint "
		"(FASCIA_PUBLISH, default %s)\n"
		"  -d, --device NAME        device selected at start\n"
		"  -n, --count N            without a terminal: stop after N "
		"lines\n"
		"      --cert FILE          CURVE: this client's secret\n"
		"                           certificate (FASCIA_CERT)\n"
		"      --server-key KEY     CURVE: the daemon's public key, "
		"or\n"
		"                           its file (FASCIA_SERVER_KEY)\n"
		"  -h, --help               this help\n"
		"keys: Tab/arrows select, p pause, r resume, s stop, v vent, "
		"a ack, q quit\n",
		FASCIA_CONTROL_DEFAULT, FASCIA_PUBLISH_DEFAULT);
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

static int parse_count(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < 1)
		return -1;
	*out = v;
	return 0;
}

enum { OPT_CERT = 256, OPT_SERVER_KEY };

/* Returns 0, or 2 (usage error) / -1 (--help). */
static int parse_args(int argc, char **argv, struct top *t, long *count)
{
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'},
		{"publish", required_argument, NULL, 'P'},
		{"device", required_argument, NULL, 'd'},
		{"count", required_argument, NULL, 'n'},
		{"cert", required_argument, NULL, OPT_CERT},
		{"server-key", required_argument, NULL, OPT_SERVER_KEY},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "e:P:d:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			t->control = optarg;
			break;
		case 'P':
			t->publish = optarg;
			break;
		case 'd':
			t->want_device = optarg;
			break;
		case OPT_CERT:
			t->security_given.cert = optarg;
			break;
		case OPT_SERVER_KEY:
			t->security_given.server_key = optarg;
			break;
		case 'n':
			if (parse_count(optarg, count) < 0) {
				fprintf(stderr,
					"fascia-top: --count wants a "
					"positive integer, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "fascia-top: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}

/* After a failed fascia_client_new or fascia_monitor_new: 2 for an
 * endpoint that is not one (the command line's mistake), else -1. */
static int endpoint_failed(const char *what, const char *endpoint)
{
	if (errno == EINVAL) {
		fprintf(stderr,
			"fascia-top: %s endpoint \"%s\" is not a ZeroMQ "
			"endpoint (such as %s)\n",
			what, endpoint, FASCIA_CONTROL_DEFAULT);
		usage(stderr);
		return 2;
	}
	fprintf(stderr, "fascia-top: %s %s: %s\n", what, endpoint,
		strerror(errno));
	return -1;
}

/* Why a query had no reply, as far as the client can tell. */
const char *top_no_reply_why(const struct top *t)
{
	if (t->refused)
		return "the daemon refused the certificate (it is not among "
		       "its clients)";
	return t->security != NULL
		       ? "the daemon is down, or the server key is wrong"
		       : "daemon unreachable";
}

/* The CURVE settings given (options over the environment): 0, or 2 after
 * a message for one without the other or a file or key that is not one. */
static int check_security(struct top *t)
{
	struct fascia_security *sec = &t->security_given;
	const char *bad;

	if (!sec->cert && !sec->server_key)
		return 0;
	if (!sec->cert || !sec->server_key) {
		fprintf(stderr, "fascia-top: %s needs %s (or %s)\n",
			sec->cert ? "--cert (FASCIA_CERT)"
				  : "--server-key (FASCIA_SERVER_KEY)",
			sec->cert ? "--server-key KEY" : "--cert FILE",
			sec->cert ? "FASCIA_SERVER_KEY" : "FASCIA_CERT");
		usage(stderr);
		return 2;
	}
	if (fascia_security_check(sec, &bad) < 0) {
		if (bad == sec->cert && errno == EINVAL)
			fprintf(stderr,
				"fascia-top: --cert: %s is not a CURVE secret "
				"certificate (NAME.key_secret)\n",
				bad);
		else if (bad != NULL && errno == EINVAL)
			fprintf(stderr,
				"fascia-top: --server-key: \"%s\" is neither "
				"a public key (40 characters of Z85) nor a "
				"certificate file\n",
				bad);
		else
			fprintf(stderr, "fascia-top: %s: %s\n",
				bad ? bad : "CURVE", strerror(errno));
		return 2;
	}
	t->security = sec;
	return 0;
}

/* Returns 0, 2 (a bad endpoint, certificate or key) or -1. */
static int connect_daemon(struct top *t)
{
	int rc;

	if ((rc = check_security(t)) != 0)
		return rc;
	t->client = fascia_client_new_secure(t->control, TOP_QUERY_TIMEOUT_MS,
					     t->security);
	if (!t->client)
		return endpoint_failed("control", t->control);
	t->monitor = fascia_monitor_new_secure(t->publish, "", t->security);
	if (!t->monitor)
		return endpoint_failed("publish", t->publish);
	return 0;
}

int main(int argc, char **argv)
{
	static struct top t; /* large: not on the stack */
	long count = -1;
	int rc;

	t.control = env_or("FASCIA_CONTROL", FASCIA_CONTROL_DEFAULT);
	t.publish = env_or("FASCIA_PUBLISH", FASCIA_PUBLISH_DEFAULT);
	t.security_given.cert = env_or("FASCIA_CERT", NULL);
	t.security_given.server_key = env_or("FASCIA_SERVER_KEY", NULL);
	rc = parse_args(argc, argv, &t, &count);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	t.started_ms = top_now_ms();
	rc = connect_daemon(&t);
	if (rc == 2) {
		/* a usage error */
	} else if (rc < 0) {
		rc = isatty(STDOUT_FILENO) ? 1 : 3;
	} else if (isatty(STDOUT_FILENO)) {
		rc = ui_run(&t);
	} else {
		rc = plain_run(&t, count);
	}
	fascia_monitor_destroy(&t.monitor);
	fascia_client_destroy(&t.client);
	return rc;
}

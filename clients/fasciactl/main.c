/*
 * fasciactl: the command line of fasciad.  Options anywhere on the line,
 * then a subcommand and its arguments; endpoints from the options, else
 * FASCIA_CONTROL / FASCIA_PUBLISH, else libfascia's defaults.  Exit codes
 * are in fasciactl.h and docs/man/fasciactl.1.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

struct subcommand {
	const char *name;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{"devices", cmd_devices},   {"status", cmd_status},
	{"profiles", cmd_profiles}, {"profile", cmd_profile},
	{"start", cmd_start},       {"pause", cmd_operator},
	{"resume", cmd_operator},   {"stop", cmd_operator},
	{"vent", cmd_operator},     {"ack", cmd_operator},
	{"history", cmd_history},   {"watch", cmd_watch},
};

static const char usage_text[] =
	"usage: fasciactl [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  devices                 the configured devices\n"
	"  status [DEVICE]         state, session, chambers, alarms, link\n"
	"  profiles                the stored profiles\n"
	"  profile show NAME       a stored profile's document\n"
	"  profile upload FILE     store a profile (the daemon validates it)\n"
	"  profile check FILE      validate a profile here, no daemon needed\n"
	"       [--chambers N] [--limit MMHG] [--max-session S]\n"
	"  start DEVICE PROFILE    start a session\n"
	"  pause|resume|stop|vent|ack [DEVICE]\n"
	"                          operator commands (DEVICE may be left out\n"
	"                          when the daemon has just one)\n"
	"  history [DEVICE]        the session journal\n"
	"  watch [--count N] [DEVICE]\n"
	"                          stream state, events and alarms\n"
	"\n"
	"options:\n"
	"  -e, --endpoint EP       control endpoint ($FASCIA_CONTROL, "
	"default " FASCIA_CONTROL_DEFAULT ")\n"
	"  -p, --publish EP        publish endpoint ($FASCIA_PUBLISH, "
	"default " FASCIA_PUBLISH_DEFAULT ")\n"
	"  -t, --timeout MS        wait at most MS for each reply (2000)\n"
	"  -j, --json              print replies as JSON, one per line\n"
	"  -h, --help              this text\n"
	"  -V, --version           the version\n"
	"\n"
	"exit: 0 done, 1 refused by the daemon or an invalid profile,\n"
	"      2 usage, 3 daemon unreachable.  See fasciactl(1).\n";

enum {
	OPT_COUNT = 256,
	OPT_CHAMBERS,
	OPT_LIMIT,
	OPT_MAX_SESSION,
};

static const struct option long_options[] = {
	{"endpoint", required_argument, NULL, 'e'},
	{"publish", required_argument, NULL, 'p'},
	{"timeout", required_argument, NULL, 't'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"count", required_argument, NULL, OPT_COUNT},
	{"chambers", required_argument, NULL, OPT_CHAMBERS},
	{"limit", required_argument, NULL, OPT_LIMIT},
	{"max-session", required_argument, NULL, OPT_MAX_SESSION},
	{NULL, 0, NULL, 0},
};

void ctl_usage_hint(const char *fmt, ...)
{
	va_list ap;

	fputs("fasciactl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'fasciactl --help'.\n", stderr);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out >= min &&
	       *out <= max;
}

static bool parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && isfinite(*out) &&
	       *out > 0;
}

/* One option; false (after a message) when its argument is bad. */
static bool take_option(struct ctl *ctl, int c, const char *arg)
{
	long v;

	switch (c) {
	case 'e':
		ctl->control = arg;
		ctl->control_src = "--endpoint";
		return true;
	case 'p':
		ctl->publish = arg;
		ctl->publish_src = "--publish";
		return true;
	case 't':
		if (!parse_long(arg, 1, 3600000, &v))
			break;
		ctl->timeout_ms = (int)v;
		return true;
	case 'j':
		ctl->json = true;
		return true;
	case OPT_COUNT:
		return parse_long(arg, 1, 1000000000L, &ctl->count) ||
		       (ctl_usage_hint("--count: \"%s\" is not 1 or more", arg),
			false);
	case OPT_CHAMBERS:
		if (!parse_long(arg, 1, FASCIA_MAX_CHAMBERS, &v))
			break;
		ctl->limits.device_chambers = (int)v;
		return true;
	case OPT_LIMIT:
		return parse_double(arg, &ctl->limits.device_limit_mmhg) ||
		       (ctl_usage_hint("--limit: \"%s\" is not a pressure",
				       arg),
			false);
	case OPT_MAX_SESSION:
		/* fasciad's own bounds of max_session_s: a maximum it would
		 * not start with is no device's */
		return (parse_double(arg, &ctl->limits.max_session_s) &&
			ctl->limits.max_session_s >= FASCIA_MIN_SESSION_S &&
			ctl->limits.max_session_s <= FASCIA_MAX_SESSION_S) ||
		       (ctl_usage_hint("--max-session: \"%s\" is not %g..%g "
				       "seconds (fasciad's max_session_s)",
				       arg, FASCIA_MIN_SESSION_S,
				       FASCIA_MAX_SESSION_S),
			false);
	}
	ctl_usage_hint("%s: \"%s\" is out of range",
		       c == 't' ? "--timeout" : "--chambers", arg);
	return false;
}

/* Options a subcommand does not take are a usage error. */
static bool options_fit(const char *cmd, const bool *seen)
{
	if (seen[0] && strcmp(cmd, "watch") != 0) {
		ctl_usage_hint("--count is an option of watch");
		return false;
	}
	if (seen[1] && strcmp(cmd, "profile") != 0) {
		ctl_usage_hint("--chambers, --limit and --max-session are "
			       "options of profile check");
		return false;
	}
	return true;
}

static int parse_options(struct ctl *ctl, int argc, char **argv)
{
	bool seen[2] = {false, false};
	int c;

	while ((c = getopt_long(argc, argv, "e:p:t:jhV", long_options, NULL)) !=
	       -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			exit(CTL_OK);
		}
		if (c == 'V') {
			printf("fasciactl %s (protocol 1)\n",
			       FASCIACTL_VERSION);
			exit(CTL_OK);
		}
		if (c == '?' || c == ':') {
			ctl_usage_hint("bad option");
			return -1;
		}
		if (!take_option(ctl, c, optarg))
			return -1;
		seen[0] |= c == OPT_COUNT;
		seen[1] |= c == OPT_CHAMBERS || c == OPT_LIMIT ||
			   c == OPT_MAX_SESSION;
	}
	if (optind >= argc) {
		ctl_usage_hint("no command");
		return -1;
	}
	return options_fit(argv[optind], seen) ? 0 : -1;
}

static void ctl_init(struct ctl *ctl)
{
	const char *env;

	memset(ctl, 0, sizeof(*ctl));
	env = getenv("FASCIA_CONTROL");
	ctl->control = env != NULL && *env ? env : FASCIA_CONTROL_DEFAULT;
	ctl->control_src = env != NULL && *env ? "FASCIA_CONTROL" : "default";
	env = getenv("FASCIA_PUBLISH");
	ctl->publish = env != NULL && *env ? env : FASCIA_PUBLISH_DEFAULT;
	ctl->publish_src = env != NULL && *env ? "FASCIA_PUBLISH" : "default";
	ctl->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	fascia_profile_limits_default(&ctl->limits);
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	const char *cmd;
	size_t i;
	int rc = -1;

	ctl_init(&ctl);
	opterr = 1;
	if (parse_options(&ctl, argc, argv) < 0)
		return CTL_USAGE;
	cmd = argv[optind];
	for (i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(subcommands[i].name, cmd) == 0) {
			rc = subcommands[i].run(&ctl, argc - optind - 1,
						argv + optind + 1);
			break;
		}
	}
	if (rc < 0) {
		ctl_usage_hint("unknown command \"%s\"", cmd);
		rc = CTL_USAGE;
	}
	fascia_client_destroy(&ctl.client);
	return rc;
}

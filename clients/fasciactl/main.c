/*
 * fasciactl: the command line of fasciad.  Options anywhere on the line,
 * then a subcommand and its arguments; endpoints from the options, else
 * FASCIA_CONTROL / FASCIA_PUBLISH, else libfascia's defaults; CURVE when
 * --cert and --server-key (or FASCIA_CERT and FASCIA_SERVER_KEY) are both
 * given.  Exit codes are in fasciactl.h and docs/man/fasciactl.1.
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
	{"history", cmd_history},   {"session", cmd_session},
	{"log", cmd_log},           {"export", cmd_export},
	{"watch", cmd_watch},       {"keygen", cmd_keygen},
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
	"  start DEVICE PROFILE [--patient REF] [--note TEXT]\n"
	"                          start a session\n"
	"  pause|resume|stop|vent|ack [DEVICE]\n"
	"                          operator commands (DEVICE may be left out\n"
	"                          when the daemon has just one)\n"
	"  history [DEVICE] [--patient REF] [--since T] [--until T]\n"
	"       [--limit N] [--before ID] [--csv]\n"
	"                          the recorded sessions, newest first\n"
	"  session ID [--trace] [--csv]\n"
	"                          one session: summary, dose, log, trace\n"
	"  log [DEVICE] [--kind K]... [--since T] [--until T] [--limit N]\n"
	"       [--before SEQ] [--csv]\n"
	"                          alarms, commands, states ..., newest first\n"
	"  export --fhir ID [-o FILE]\n"
	"                          a session as a FHIR R4 Bundle (JSON)\n"
	"  watch [--count N] [DEVICE]\n"
	"                          stream state, events and alarms\n"
	"  keygen NAME [--role ROLE] [-d DIR]\n"
	"                          a CURVE certificate: DIR/NAME.key (public,\n"
	"                          for the daemon) and DIR/NAME.key_secret\n"
	"                          (for --cert); ROLE observer (default),\n"
	"                          operator or admin\n"
	"\n"
	"  T is Unix ms or a local YYYY-MM-DD[THH:MM[:SS]]; N is 1..1000.\n"
	"\n"
	"options:\n"
	"  -e, --endpoint EP       control endpoint ($FASCIA_CONTROL, "
	"default " FASCIA_CONTROL_DEFAULT ")\n"
	"  -p, --publish EP        publish endpoint ($FASCIA_PUBLISH, "
	"default " FASCIA_PUBLISH_DEFAULT ")\n"
	"  -t, --timeout MS        wait at most MS for each reply (2000)\n"
	"      --cert FILE         CURVE: this client's secret certificate\n"
	"                          ($FASCIA_CERT; needs --server-key)\n"
	"      --server-key KEY    CURVE: the daemon's public key, 40\n"
	"                          characters of Z85 or its certificate file\n"
	"                          ($FASCIA_SERVER_KEY; needs --cert)\n"
	"  -j, --json              print replies as JSON, one per line\n"
	"                          (history, session, log: the result)\n"
	"      --csv               history, session, log: RFC 4180 CSV\n"
	"  -h, --help              this text\n"
	"  -V, --version           the version\n"
	"\n"
	"exit: 0 done, 1 refused by the daemon, an invalid profile or\n"
	"      keygen's files there already, 2 usage, 3 daemon unreachable.\n"
	"      See fasciactl(1).\n";

enum {
	OPT_COUNT = 256,
	OPT_CHAMBERS,
	OPT_LIMIT,
	OPT_MAX_SESSION,
	OPT_PATIENT,
	OPT_NOTE,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_BEFORE,
	OPT_KIND,
	OPT_TRACE,
	OPT_CSV,
	OPT_FHIR,
	OPT_CERT,
	OPT_SERVER_KEY,
	OPT_ROLE,
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
	{"patient", required_argument, NULL, OPT_PATIENT},
	{"note", required_argument, NULL, OPT_NOTE},
	{"since", required_argument, NULL, OPT_SINCE},
	{"until", required_argument, NULL, OPT_UNTIL},
	{"before", required_argument, NULL, OPT_BEFORE},
	{"kind", required_argument, NULL, OPT_KIND},
	{"trace", no_argument, NULL, OPT_TRACE},
	{"csv", no_argument, NULL, OPT_CSV},
	{"fhir", no_argument, NULL, OPT_FHIR},
	{"output", required_argument, NULL, 'o'},
	{"cert", required_argument, NULL, OPT_CERT},
	{"server-key", required_argument, NULL, OPT_SERVER_KEY},
	{"role", required_argument, NULL, OPT_ROLE},
	{"dir", required_argument, NULL, 'd'},
	{NULL, 0, NULL, 0},
};

/*
 * The options that belong to some commands: which ones (words of cmds),
 * and how the usage error says so.  Options may come anywhere on the line,
 * so they are all parsed first and checked against the command after.
 */
static const struct scope {
	int opt;
	const char *name;
	const char *cmds;
	const char *of;
} scopes[] = {
	{OPT_COUNT, "--count", "watch", "watch"},
	{OPT_CHAMBERS, "--chambers", "profile", "profile check"},
	{OPT_LIMIT, "--limit", "profile history log",
	 "profile check, history and log"},
	{OPT_MAX_SESSION, "--max-session", "profile", "profile check"},
	{OPT_PATIENT, "--patient", "start history", "start and history"},
	{OPT_NOTE, "--note", "start", "start"},
	{OPT_SINCE, "--since", "history log", "history and log"},
	{OPT_UNTIL, "--until", "history log", "history and log"},
	{OPT_BEFORE, "--before", "history log", "history and log"},
	{OPT_KIND, "--kind", "log", "log"},
	{OPT_TRACE, "--trace", "session", "session"},
	{OPT_CSV, "--csv", "history session log", "history, session and log"},
	{OPT_FHIR, "--fhir", "export", "export"},
	{'o', "--output", "export", "export"},
	{OPT_ROLE, "--role", "keygen", "keygen"},
	{'d', "--dir", "keygen", "keygen"},
};
#define NSCOPES (sizeof(scopes) / sizeof(scopes[0]))

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

/* --kind K: one kind, or several separated by commas. */
static bool take_kinds(struct ctl *ctl, const char *arg)
{
	char buf[256], *k, *save = NULL;

	if (strlen(arg) >= sizeof(buf) || arg[0] == '\0' ||
	    arg[strlen(arg) - 1] == ',' || strstr(arg, ",,") != NULL ||
	    arg[0] == ',') {
		ctl_usage_hint("--kind: \"%s\" is not a kind (alarm, command, "
			       "state, link, daemon, journal)",
			       arg);
		return false;
	}
	if (ctl->kinds == NULL)
		ctl->kinds = json_array();
	snprintf(buf, sizeof(buf), "%s", arg);
	for (k = strtok_r(buf, ",", &save); k != NULL;
	     k = strtok_r(NULL, ",", &save)) {
		json_t *v = json_string(k);

		if (v == NULL) {
			ctl_usage_hint("--kind: not valid UTF-8 text");
			return false;
		}
		json_array_append_new(ctl->kinds, v);
	}
	return true;
}

/* --cert FILE, --server-key KEY: over FASCIA_CERT, FASCIA_SERVER_KEY. */
static bool take_security(struct ctl *ctl, int c, const char *arg)
{
	const char *name = c == OPT_CERT ? "--cert" : "--server-key";

	if (*arg == '\0') {
		ctl_usage_hint("%s: empty", name);
		return false;
	}
	if (c == OPT_CERT) {
		ctl->cert = arg;
		ctl->cert_src = name;
	} else {
		ctl->server_key = arg;
		ctl->server_key_src = name;
	}
	return true;
}

/* One option; false (after a message) when its argument is bad.  The
 * arguments of start's and the queries' options are checked by the
 * command (--limit's meaning depends on it). */
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
		ctl->limit = arg;
		return true;
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
	case OPT_PATIENT:
		ctl->patient = arg;
		return true;
	case OPT_NOTE:
		ctl->note = arg;
		return true;
	case OPT_SINCE:
		ctl->since = arg;
		return true;
	case OPT_UNTIL:
		ctl->until = arg;
		return true;
	case OPT_BEFORE:
		ctl->before = arg;
		return true;
	case OPT_KIND:
		return take_kinds(ctl, arg);
	case OPT_TRACE:
		ctl->trace = true;
		return true;
	case OPT_CSV:
		ctl->csv = true;
		return true;
	case OPT_FHIR:
		ctl->fhir = true;
		return true;
	case 'o':
		ctl->output = arg;
		return true;
	case OPT_ROLE:
		ctl->role = arg;
		return true;
	case 'd':
		ctl->dir = arg;
		return true;
	case OPT_CERT:
	case OPT_SERVER_KEY:
		return take_security(ctl, c, arg);
	}
	ctl_usage_hint("%s: \"%s\" is out of range",
		       c == 't' ? "--timeout" : "--chambers", arg);
	return false;
}

/* Whether word is one of the space-separated words of list. */
static bool among(const char *word, const char *list)
{
	size_t n = strlen(word);

	for (const char *p = list; *p;) {
		size_t w = strcspn(p, " ");

		if (w == n && strncmp(p, word, n) == 0)
			return true;
		p += w;
		p += strspn(p, " ");
	}
	return false;
}

/* Options a subcommand does not take are a usage error. */
static bool options_fit(struct ctl *ctl, const char *cmd, const bool *seen)
{
	for (size_t i = 0; i < NSCOPES; i++) {
		if (seen[i] && !among(cmd, scopes[i].cmds)) {
			ctl_usage_hint("%s is an option of %s", scopes[i].name,
				       scopes[i].of);
			return false;
		}
	}
	if (ctl->json && ctl->csv) {
		ctl_usage_hint("--json or --csv: not both");
		return false;
	}
	if (ctl->json && strcmp(cmd, "export") == 0) {
		ctl_usage_hint("--json is no option of export (a FHIR Bundle "
			       "is JSON already)");
		return false;
	}
	/* profile check's --limit is a pressure */
	if (ctl->limit != NULL && strcmp(cmd, "profile") == 0 &&
	    !parse_double(ctl->limit, &ctl->limits.device_limit_mmhg)) {
		ctl_usage_hint("--limit: \"%s\" is not a pressure", ctl->limit);
		return false;
	}
	return true;
}

static int parse_options(struct ctl *ctl, int argc, char **argv)
{
	bool seen[NSCOPES] = {false};
	int c;

	while ((c = getopt_long(argc, argv, "e:p:t:jhVo:d:", long_options,
				NULL)) != -1) {
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
		for (size_t i = 0; i < NSCOPES; i++)
			seen[i] |= scopes[i].opt == c;
	}
	if (optind >= argc) {
		ctl_usage_hint("no command");
		return -1;
	}
	return options_fit(ctl, argv[optind], seen) ? 0 : -1;
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
	if ((env = getenv("FASCIA_CERT")) != NULL && *env) {
		ctl->cert = env;
		ctl->cert_src = "FASCIA_CERT";
	}
	if ((env = getenv("FASCIA_SERVER_KEY")) != NULL && *env) {
		ctl->server_key = env;
		ctl->server_key_src = "FASCIA_SERVER_KEY";
	}
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
	if (parse_options(&ctl, argc, argv) < 0) {
		json_decref(ctl.kinds);
		return CTL_USAGE;
	}
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
	json_decref(ctl.kinds);
	return rc;
}

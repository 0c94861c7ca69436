/*
 * fasciad's configuration: an INI file parsed with libinih into a fresh
 * struct.  Every error is reported with its line, and nothing is accepted
 * beyond the compiled-in bounds, so `fasciad -n` can tell an operator all
 * that is wrong with a file at once: a key given twice, a device that
 * shares another's address, a watchdog the tick cannot keep fed.  Without a
 * file the daemon runs the built-in default: one device `sim` at
 * 127.0.0.1:1502.  config.c reads the file, its values, [daemon] and
 * [security], and makes the checks of the whole; confdev.c the
 * [device NAME] sections, behind the two files' own header, config.h.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"

/*
 * The profiles directory without a `profiles` key.  The Makefile passes the
 * one `make install` fills, under its PREFIX, so that an installed fasciad
 * started without -c finds its profiles wherever it is started; a relative
 * default would depend on the current directory.  This fallback is the
 * Makefile's own default, for the tests that #include this file.
 */
#ifndef FASCIA_PROFILES_DIR
#define FASCIA_PROFILES_DIR "/usr/local/etc/fascia/profiles"
#endif

/* The names of config.h's DAK_ and SK_ keys. */
static const char *const daemon_keys[DAEMON_KEYS] = {
	"control",    "publish",         "profiles", "tick_hz",
	"publish_hz", "max_session_s",   "journal",  "journal_required",
	"trace_hz",   "trace_keep_days",
};

static const char *const security_keys[SK_COUNT] = {
	"curve", "server_cert", "clients", "local", "local_role",
};

static const char *const role_names[] = {
	[FD_ROLE_NONE] = "none",
	[FD_ROLE_OBSERVER] = "observer",
	[FD_ROLE_OPERATOR] = "operator",
	[FD_ROLE_ADMIN] = "admin",
};

const char *conf_role_name(enum fd_role r)
{
	return (unsigned)r <= FD_ROLE_ADMIN ? role_names[r] : "none";
}

int conf_role_parse(const char *s, enum fd_role *r)
{
	for (int i = FD_ROLE_OBSERVER; s != NULL && i <= FD_ROLE_ADMIN; i++)
		if (strcmp(s, role_names[i]) == 0) {
			*r = (enum fd_role)i;
			return 0;
		}
	return -1;
}

/* Where the journal is when `journal =` is not given: systemd's
 * StateDirectory= when it set one, else FD_JOURNAL_DEFAULT. */
static void journal_default(char *out, size_t len)
{
	const char *dir = getenv("STATE_DIRECTORY");

	/* StateDirectory= may list several, ':'-separated: the first */
	if (dir != NULL && dir[0] == '/')
		snprintf(out, len, "%.*s/journal.db", (int)strcspn(dir, ":"),
			 dir);
	else
		snprintf(out, len, "%s", FD_JOURNAL_DEFAULT);
}

void conf_error(struct conf_errors *errs, int line, const char *fmt, ...)
{
	struct conf_error *e;
	va_list ap;

	if (errs->n >= CONF_MAX_ERRORS) {
		errs->dropped++;
		return;
	}
	e = &errs->e[errs->n++];
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void conf_default(struct fd_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->control, sizeof(c->control), "tcp://127.0.0.1:7410");
	snprintf(c->publish, sizeof(c->publish), "tcp://127.0.0.1:7411");
	snprintf(c->profiles, sizeof(c->profiles), "%s", FASCIA_PROFILES_DIR);
	c->tick_hz = 50;
	c->publish_hz = 10;
	c->sec.local_role = FD_ROLE_OPERATOR;
	c->max_session_s = FASCIA_DEFAULT_SESSION_S;
	journal_default(c->journal, sizeof(c->journal));
	c->journal_required = true;
	c->trace_hz = 1;
	c->trace_keep_days = 365;
	ilk_config_default(&c->ilk);
}

/* The built-in default when no file is given. */
void conf_builtin(struct fd_conf *c)
{
	conf_default(c);
	c->ndev = 1;
	confdev_default(&c->dev[0]);
	snprintf(c->dev[0].name, sizeof(c->dev[0].name), "sim");
}

/* Numbers: the whole value must parse, and lie within [lo, hi]. */
int conf_get_long(struct parse *p, int line, const char *key, const char *v,
		  long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0') {
		conf_error(p->errs, line, "%s: '%s' is not a whole number", key,
			   v);
		return -1;
	}
	if (n < lo || n > hi) {
		conf_error(p->errs, line, "%s: %ld is outside %ld..%ld", key, n,
			   lo, hi);
		return -1;
	}
	*out = n;
	return 0;
}

int conf_get_int(struct parse *p, const char *key, const char *v, long lo,
		 long hi, int *out)
{
	long n;

	if (conf_get_long(p, p->line, key, v, lo, hi, &n) == -1)
		return -1;
	*out = (int)n;
	return 0;
}

int conf_get_double(struct parse *p, const char *key, const char *v, double lo,
		    double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end != '\0' || !isfinite(d)) {
		conf_error(p->errs, p->line, "%s: '%s' is not a number", key,
			   v);
		return -1;
	}
	if (d < lo || d > hi) {
		conf_error(p->errs, p->line, "%s: %g is outside %g..%g", key, d,
			   lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

int conf_get_string(struct parse *p, const char *key, const char *v, char *out,
		    size_t size)
{
	if (*v == '\0' || strlen(v) >= size) {
		conf_error(p->errs, p->line, "%s: must be 1..%zu characters",
			   key, size - 1);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int get_bool(struct parse *p, const char *key, const char *v, bool *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
		*out = v[0] == 'y';
		return 0;
	}
	conf_error(p->errs, p->line, "%s: '%s' is neither yes nor no", key, v);
	return -1;
}

static int get_endpoint(struct parse *p, const char *key, const char *v,
			char *out, size_t size)
{
	if (strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6) &&
	    strncmp(v, "inproc://", 9)) {
		conf_error(p->errs, p->line,
			   "%s: '%s' is not a ZeroMQ endpoint (tcp://, ipc://)",
			   key, v);
		return -1;
	}
	return conf_get_string(p, key, v, out, size);
}

/*
 * A key is given once in its section.  *line is where it was first given
 * (0: not yet); a second is refused, naming both lines, and its value is
 * not read: which of the two was meant is the operator's to say.  inih
 * hands an indented line on as more of the key above it, a second value
 * too, told apart because the fix differs.
 */
bool conf_given_once(struct parse *p, int *line, const char *key)
{
	char section[48];

	if (*line == 0) {
		*line = p->line;
		return true;
	}
	if (p->dev != NULL)
		snprintf(section, sizeof(section), "[device %s]", p->dev->name);
	else
		snprintf(section, sizeof(section),
			 p->in_security ? "[security]" : "[daemon]");
	if (p->indented)
		conf_error(p->errs, p->line,
			   "%s: an indented line is read as more of line %d: "
			   "start each key at the line's beginning",
			   key, *line);
	else
		conf_error(p->errs, p->line,
			   "%s: given twice in %s, first at line %d: keep "
			   "one",
			   key, section, *line);
	return false;
}

int conf_key_index(const char *const *keys, int n, const char *name)
{
	int i = 0;

	while (i < n && strcmp(name, keys[i]) != 0)
		i++;
	return i;
}

/* Interlock thresholds: the keys and bounds of the table's rows. */
static int interlock_key(struct parse *p, const char *name, const char *v)
{
	for (int i = 0; i < ILK_COUNT; i++)
		for (int j = 0; j < 2; j++) {
			const struct ilk_param *k = &ilk_rows[i].param[j];

			if (k->key == NULL || strcmp(k->key, name) != 0)
				continue;
			if (!conf_given_once(p, &p->ilk_line[i][j], name))
				return -1;
			return conf_get_double(p, name, v, k->lo, k->hi,
					       &p->conf->ilk.v[i][j]);
		}
	conf_error(p->errs, p->line, "unknown key '%s' in [daemon]", name);
	return -1;
}

static int daemon_key(struct parse *p, const char *name, const char *v)
{
	struct fd_conf *c = p->conf;
	int i = conf_key_index(daemon_keys, DAEMON_KEYS, name);

	if (i == DAEMON_KEYS)
		return interlock_key(p, name, v);
	if (!conf_given_once(p, &p->daemon_line[i], name))
		return -1;
	switch (i) {
	case DAK_CONTROL:
		return get_endpoint(p, name, v, c->control, sizeof(c->control));
	case DAK_PUBLISH:
		return get_endpoint(p, name, v, c->publish, sizeof(c->publish));
	case DAK_PROFILES:
		return conf_get_string(p, name, v, c->profiles,
				       sizeof(c->profiles));
	case DAK_TICK_HZ:
		return conf_get_int(p, name, v, 10, 200, &c->tick_hz);
	case DAK_PUBLISH_HZ:
		return conf_get_int(p, name, v, 1, 50, &c->publish_hz);
	case DAK_MAX_SESSION:
		return conf_get_double(p, name, v, FASCIA_MIN_SESSION_S,
				       FASCIA_MAX_SESSION_S, &c->max_session_s);
	case DAK_JOURNAL:
		if (v[0] != '/' && strcmp(v, "off") != 0) {
			conf_error(p->errs, p->line,
				   "journal: '%s' is neither an absolute path "
				   "nor off",
				   v);
			return -1;
		}
		return conf_get_string(p, name, v, c->journal,
				       sizeof(c->journal));
	case DAK_JOURNAL_REQUIRED:
		return get_bool(p, name, v, &c->journal_required);
	case DAK_TRACE_HZ:
		return conf_get_int(p, name, v, 0, 10, &c->trace_hz);
	default:
		return conf_get_int(p, name, v, 1, 36500, &c->trace_keep_days);
	}
}

static int security_key(struct parse *p, const char *name, const char *v)
{
	struct fd_security_conf *sc = &p->conf->sec;
	int k = conf_key_index(security_keys, SK_COUNT, name);

	if (k == SK_COUNT) {
		conf_error(p->errs, p->line, "unknown key '%s' in [security]",
			   name);
		return -1;
	}
	if (!conf_given_once(p, &p->sec_line[k], name))
		return -1;
	switch (k) {
	case SK_CURVE:
		return get_bool(p, name, v, &sc->curve);
	case SK_SERVER_CERT:
		sc->server_cert_line = p->line;
		return conf_get_string(p, name, v, sc->server_cert,
				       sizeof(sc->server_cert));
	case SK_CLIENTS:
		sc->clients_line = p->line;
		return conf_get_string(p, name, v, sc->clients,
				       sizeof(sc->clients));
	case SK_LOCAL:
		if (strncmp(v, "ipc://", 6) != 0 || v[6] != '/') {
			conf_error(p->errs, p->line,
				   "local: '%s' is not ipc:///PATH: the local "
				   "endpoint is plaintext, guarded by the "
				   "file's permissions",
				   v);
			return -1;
		}
		return conf_get_string(p, name, v, sc->local,
				       sizeof(sc->local));
	default:
		if (conf_role_parse(v, &sc->local_role) == 0)
			return 0;
		conf_error(p->errs, p->line,
			   "local_role: '%s' is not observer, operator or "
			   "admin",
			   v);
		return -1;
	}
}

/* A new section: [daemon], [security] or [device NAME]. */
static void new_section(struct parse *p, const char *section)
{
	confdev_end(p);
	p->in_security = strcmp(section, "security") == 0;
	if (strcmp(section, "daemon") == 0 || p->in_security)
		return;
	if (strncmp(section, "device ", 7) == 0)
		confdev_begin(p, section + 7);
	else
		conf_error(p->errs, p->line, "unknown section [%s]", section);
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parse *p = user;

	if (strcmp(section, "daemon") == 0)
		daemon_key(p, name, value);
	else if (strcmp(section, "security") == 0)
		security_key(p, name, value);
	else if (p->dev != NULL)
		confdev_key(p, name, value);
	else if (section[0] == '\0')
		conf_error(p->errs, p->line, "'%s' outside any section", name);
	return 1; /* go on: report every error, not just the first */
}

/*
 * Reads for inih, counting lines, and sees each [section] itself: inih
 * tells the handler nothing of a section without keys, and a [device NAME]
 * with none still defines a device with the defaults.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *s = fgets(str, num, p->fp), *start, *end;
	char section[64];

	if (s == NULL)
		return NULL;
	p->line++;
	p->indented = isspace((unsigned char)*s);
	for (start = s; isspace((unsigned char)*start); start++)
		;
	if (*start == '[' && (end = strchr(start, ']')) != NULL &&
	    (size_t)(end - start) < sizeof(section)) {
		memcpy(section, start + 1, (size_t)(end - start - 1));
		section[end - start - 1] = '\0';
		new_section(p, section);
	}
	return s;
}

/*
 * Whether a tcp:// endpoint's interface is the loopback one: 127.0.0.0/8,
 * [::1], localhost or lo.  Anything else (*, 0.0.0.0, an address or an
 * interface of the network) is reachable from off the box.
 */
static bool loopback(const char *v)
{
	const char *host = v + strlen("tcp://");
	size_t n = strcspn(host, ":");
	static const char *const names[] = {"localhost", "lo"};

	if (strncmp(host, "[::1]:", 6) == 0)
		return true;
	if (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == n)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncmp(host, names[i], n) == 0)
			return true;
	return false;
}

/*
 * Nothing listens off loopback in plaintext: whoever reaches the control
 * socket can inflate a garment, and the state messages name what is done
 * to whom.  With CURVE, any endpoint; its certificates are -n's to check
 * (security.c), as they are files.
 */
static void check_security(struct parse *p)
{
	const struct fd_conf *c = p->conf;
	const struct fd_security_conf *sc = &c->sec;
	const char *const ends[2] = {c->control, c->publish};
	const int keys[2] = {DAK_CONTROL, DAK_PUBLISH};

	for (int i = 0; i < 2 && !sc->curve; i++)
		if (strncmp(ends[i], "tcp://", 6) == 0 && !loopback(ends[i]))
			conf_error(p->errs, p->daemon_line[keys[i]],
				   "%s: '%s' would listen off loopback in "
				   "plaintext, where anyone on the network "
				   "could command the devices; give 127.0.0.1 "
				   "(or ipc://), or curve = yes in [security]",
				   daemon_keys[keys[i]], ends[i]);
	if (sc->curve && !sc->server_cert[0])
		conf_error(p->errs, p->sec_line[SK_CURVE],
			   "curve = yes needs server_cert = PATH: the "
			   "daemon's secret certificate");
	if (sc->curve && !sc->clients[0])
		conf_error(p->errs, p->sec_line[SK_CURVE],
			   "curve = yes needs clients = DIR: a directory of "
			   "the clients' public certificates");
	if (!sc->curve && (sc->server_cert[0] || sc->clients[0]))
		conf_error(p->errs,
			   p->sec_line[sc->server_cert[0] ? SK_SERVER_CERT
							  : SK_CLIENTS],
			   "%s is given but curve is not yes: the sockets "
			   "would be plaintext; set curve = yes, or remove "
			   "the line",
			   sc->server_cert[0] ? "server_cert" : "clients");
	if (p->sec_line[SK_LOCAL_ROLE] && !sc->local[0])
		conf_error(p->errs, p->sec_line[SK_LOCAL_ROLE],
			   "local_role is given without local = ipc:///PATH");
}

/* Checks that need the whole file. */
static void check_whole(struct parse *p)
{
	struct fd_conf *c = p->conf;

	check_security(p);
	confdev_check(p);
	/* "tcp://host:*" binds a fresh port each time: no clash. */
	if (strcmp(c->control, c->publish) == 0 && !strchr(c->control, '*'))
		conf_error(p->errs, 0, "control and publish are the same");
}

int conf_load_stream(FILE *fp, const char *name, struct fd_conf *c,
		     struct conf_errors *errs)
{
	struct parse p = {.conf = c, .errs = errs, .fp = fp};
	int rc;

	(void)name; /* the caller names the file in its messages */
	memset(errs, 0, sizeof(*errs));
	conf_default(c);
	rc = ini_parse_stream(reader, &p, handler, &p);
	confdev_end(&p);
	if (rc > 0)
		conf_error(errs, rc, "not a key = value line nor a [section]");
	else if (rc < 0)
		conf_error(errs, 0, "cannot parse: out of memory");
	if (ferror(fp))
		conf_error(errs, 0, "cannot read: %s", strerror(errno));
	check_whole(&p);
	return errs->n || errs->dropped ? -1 : 0;
}

int conf_load(const char *path, struct fd_conf *c, struct conf_errors *errs)
{
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "r")) == NULL) {
		memset(errs, 0, sizeof(*errs));
		conf_default(c);
		conf_error(errs, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	rc = conf_load_stream(fp, path, c, errs);
	fclose(fp);
	return rc;
}

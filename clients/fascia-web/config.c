/*
 * fascia-web's configuration: an INI file read with libinih into a fresh
 * struct, [web] and one [room NAME] per daemon, every error reported with
 * its line so that `fascia-web -n` tells all that is wrong at once, as
 * `fasciad -n` does.  The checks of the whole file come after it is read;
 * conf_check_files() then opens what the file names (the TLS pair, the
 * CURVE keys, the static directory), for -n and the start alike.
 *
 * The one rule that is about safety more than form: nothing serves plain
 * HTTP, nor runs without users, off the loopback interface.  A password or
 * a session cookie in clear on a clinic network is a session anyone can
 * take over; and without users every visitor is an admin.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include <fascia/client.h>

#include "web.h"

/*
 * The static files without a `static` key.  A fascia-web run from the
 * directory it was built in serves the source tree's pages
 * (FASCIA_WEB_TREE); anywhere else, the installed ones under PREFIX
 * (FASCIA_WEB_STATIC).  The Makefile passes all three; these fallbacks
 * are its defaults.
 */
#ifndef FASCIA_WEB_STATIC
#define FASCIA_WEB_STATIC "/usr/local/share/fascia/web"
#endif
#ifndef FASCIA_WEB_BUILD
#define FASCIA_WEB_BUILD ""
#endif
#ifndef FASCIA_WEB_TREE
#define FASCIA_WEB_TREE ""
#endif

enum {
	WK_LISTEN,
	WK_TLS_CERT,
	WK_TLS_KEY,
	WK_USERS,
	WK_CERT,
	WK_STATIC,
	WK_SSE_QUEUE,
	WK_N
};
enum { RK_CONTROL, RK_PUBLISH, RK_SERVER_KEY, RK_N };

static const char *const web_keys[WK_N] = {
	"listen", "tls_cert", "tls_key",      "users",
	"cert",   "static",   "sse_queue_kb",
};
static const char *const room_keys[RK_N] = {"control", "publish", "server_key"};

static const char *const role_names[] = {
	[WEB_ROLE_NONE] = "none",
	[WEB_ROLE_OBSERVER] = "observer",
	[WEB_ROLE_OPERATOR] = "operator",
	[WEB_ROLE_ADMIN] = "admin",
};

/* What the reader and the handler share while a file is read. */
struct parse {
	struct web_conf *c;
	struct web_errors *errs;
	const char *path;
	FILE *fp;
	int line;
	bool indented;
	enum { SEC_NONE, SEC_WEB, SEC_ROOM, SEC_BAD } section;
	struct web_room_conf *room; /* in [room NAME], NULL otherwise */
	int web_line[WK_N];
	int room_line[WEB_MAX_ROOMS][RK_N];
};

const char *conf_role_name(enum web_role r)
{
	return (unsigned)r <= WEB_ROLE_ADMIN ? role_names[r] : "none";
}

int conf_role_parse(const char *s, enum web_role *r)
{
	for (int i = WEB_ROLE_OBSERVER; s != NULL && i <= WEB_ROLE_ADMIN; i++)
		if (strcmp(s, role_names[i]) == 0) {
			*r = (enum web_role)i;
			return 0;
		}
	return -1;
}

bool conf_user_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= WEB_NAME_MAX && name[0] != ' ' &&
	       name[n - 1] != ' ' &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz"
			    "0123456789._@- ") == n;
}

bool conf_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= WEB_ROOM_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz"
			    "0123456789_-") == n;
}

void conf_error(struct web_errors *errs, const char *file, int line,
		const char *fmt, ...)
{
	struct web_error *e;
	va_list ap;

	if (errs->n >= WEB_ERRORS_MAX) {
		errs->dropped++;
		return;
	}
	e = &errs->e[errs->n++];
	e->file = file;
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void conf_print_errors(const struct web_errors *errs)
{
	for (int i = 0; i < errs->n; i++) {
		const struct web_error *e = &errs->e[i];

		if (e->line)
			fprintf(stderr, "%s:%d: %s\n", e->file, e->line,
				e->message);
		else
			fprintf(stderr, "%s: %s\n", e->file, e->message);
	}
	if (errs->dropped)
		fprintf(stderr, "and %d more errors\n", errs->dropped);
}

bool conf_loopback(const char *host)
{
	if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
		return true;
	return strncmp(host, "127.", 4) == 0 &&
	       strspn(host, "0123456789.") == strlen(host);
}

/* The static directory when none is given (see FASCIA_WEB_TREE). */
static void static_default(char *out, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	snprintf(out, len, "%s", FASCIA_WEB_STATIC);
	if (n <= 0 || !FASCIA_WEB_BUILD[0])
		return;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return;
	*slash = '\0';
	if (strcmp(exe, FASCIA_WEB_BUILD) == 0)
		snprintf(out, len, "%s", FASCIA_WEB_TREE);
}

static void conf_default(struct web_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->host, sizeof(c->host), "127.0.0.1");
	c->port = 8080;
	c->sse_queue_max = WEB_SSE_QUEUE_MAX;
	static_default(c->static_dir, sizeof(c->static_dir));
}

static int get_string(struct parse *p, const char *key, const char *v,
		      char *out, size_t size)
{
	if (*v == '\0' || strlen(v) >= size) {
		conf_error(p->errs, p->path, p->line,
			   "%s: must be 1..%zu characters", key, size - 1);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* A size in KiB, lo..hi, into *out in bytes. */
static int get_kib(struct parse *p, const char *key, const char *v, long lo,
		   long hi, size_t *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < lo || n > hi) {
		conf_error(p->errs, p->path, p->line,
			   "%s: '%s' is not a whole number of KiB, %ld..%ld",
			   key, v, lo, hi);
		return -1;
	}
	*out = (size_t)n * 1024;
	return 0;
}

/* HOST:PORT, [V6]:PORT; port 0 picks a free one. */
static int get_listen(struct parse *p, const char *v)
{
	struct web_conf *c = p->c;
	const char *colon, *host = v;
	size_t hlen;
	char *end;
	long port;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');

		colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
		host = v + 1;
		hlen = close != NULL ? (size_t)(close - host) : 0;
	} else {
		colon = strrchr(v, ':');
		hlen = colon != NULL ? (size_t)(colon - v) : 0;
	}
	if (colon == NULL || hlen == 0 || hlen >= sizeof(c->host) ||
	    (v[0] != '[' && memchr(v, ':', hlen) != NULL)) {
		conf_error(p->errs, p->path, p->line,
			   "listen: '%s' is not HOST:PORT (127.0.0.1:8080, "
			   "[::1]:8080, 0.0.0.0:8443)",
			   v);
		return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || port < 0 ||
	    port > 65535) {
		conf_error(p->errs, p->path, p->line,
			   "listen: port '%s' is not 0..65535", colon + 1);
		return -1;
	}
	memcpy(c->host, host, hlen);
	c->host[hlen] = '\0';
	c->port = (int)port;
	return 0;
}

static int get_endpoint(struct parse *p, const char *key, const char *v,
			char *out, size_t size)
{
	if (strncmp(v, "tcp://", 6) != 0 && strncmp(v, "ipc://", 6) != 0) {
		conf_error(p->errs, p->path, p->line,
			   "%s: '%s' is not a ZeroMQ endpoint (tcp://HOST:PORT "
			   "or ipc://PATH)",
			   key, v);
		return -1;
	}
	return get_string(p, key, v, out, size);
}

/* A key is given once in its section; a second names the first's line. */
static bool given_once(struct parse *p, int *line, const char *key)
{
	if (*line == 0) {
		*line = p->line;
		return true;
	}
	if (p->indented)
		conf_error(p->errs, p->path, p->line,
			   "%s: an indented line is read as more of line %d: "
			   "start each key at the line's beginning",
			   key, *line);
	else
		conf_error(p->errs, p->path, p->line,
			   "%s: given twice, first at line %d: keep one", key,
			   *line);
	return false;
}

static int key_index(const char *const *keys, int n, const char *name)
{
	int i = 0;

	while (i < n && strcmp(name, keys[i]) != 0)
		i++;
	return i;
}

static void web_key(struct parse *p, const char *name, const char *v)
{
	struct web_conf *c = p->c;
	int k = key_index(web_keys, WK_N, name);
	static const size_t path_len = WEB_PATH_MAX;

	if (k == WK_N) {
		conf_error(p->errs, p->path, p->line,
			   "unknown key '%s' in [web]", name);
		return;
	}
	if (!given_once(p, &p->web_line[k], name))
		return;
	switch (k) {
	case WK_LISTEN:
		c->listen_line = p->line;
		get_listen(p, v);
		break;
	case WK_TLS_CERT:
		c->tls_cert_line = p->line;
		get_string(p, name, v, c->tls_cert, path_len);
		break;
	case WK_TLS_KEY:
		c->tls_key_line = p->line;
		get_string(p, name, v, c->tls_key, path_len);
		break;
	case WK_USERS:
		c->users_line = p->line;
		get_string(p, name, v, c->users, path_len);
		break;
	case WK_CERT:
		c->cert_line = p->line;
		get_string(p, name, v, c->cert, path_len);
		break;
	case WK_STATIC:
		c->static_line = p->line;
		get_string(p, name, v, c->static_dir, path_len);
		break;
	default:
		get_kib(p, name, v, 16, 65536, &c->sse_queue_max);
		break;
	}
}

static void room_key(struct parse *p, const char *name, const char *v)
{
	struct web_room_conf *r = p->room;
	int k = key_index(room_keys, RK_N, name);
	int *lines = p->room_line[r - p->c->rooms];

	if (k == RK_N) {
		conf_error(p->errs, p->path, p->line,
			   "unknown key '%s' in [room %s]", name, r->name);
		return;
	}
	if (!given_once(p, &lines[k], name))
		return;
	switch (k) {
	case RK_CONTROL:
		r->control_line = p->line;
		get_endpoint(p, name, v, r->control, sizeof(r->control));
		break;
	case RK_PUBLISH:
		r->publish_line = p->line;
		get_endpoint(p, name, v, r->publish, sizeof(r->publish));
		break;
	default:
		r->server_key_line = p->line;
		get_string(p, name, v, r->server_key, sizeof(r->server_key));
		break;
	}
}

/* [web], [room NAME] or an error (whose keys are then not read). */
static void new_section(struct parse *p, const char *section)
{
	struct web_conf *c = p->c;
	const char *name = section + 5;

	p->room = NULL;
	p->section = SEC_BAD;
	if (strcmp(section, "web") == 0) {
		p->section = SEC_WEB;
		return;
	}
	if (strncmp(section, "room ", 5) != 0) {
		conf_error(p->errs, p->path, p->line,
			   "unknown section [%s]: [web] or [room NAME]",
			   section);
		return;
	}
	if (!conf_name_ok(name)) {
		conf_error(p->errs, p->path, p->line,
			   "room name '%s': use 1..%d letters, digits, - or _",
			   name, WEB_ROOM_NAME_MAX);
		return;
	}
	for (int i = 0; i < c->nrooms; i++)
		if (strcmp(c->rooms[i].name, name) == 0) {
			conf_error(p->errs, p->path, p->line,
				   "room '%s' is defined twice, first at line "
				   "%d",
				   name, c->rooms[i].line);
			return;
		}
	if (c->nrooms >= WEB_MAX_ROOMS) {
		conf_error(p->errs, p->path, p->line,
			   "more than %d rooms: run another console",
			   WEB_MAX_ROOMS);
		return;
	}
	p->room = &c->rooms[c->nrooms++];
	memcpy(p->room->name, name, strlen(name) + 1); /* conf_name_ok: fits */
	p->room->line = p->line;
	p->section = SEC_ROOM;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parse *p = user;

	(void)section; /* the reader saw it first, with its line */
	if (p->section == SEC_WEB)
		web_key(p, name, value);
	else if (p->section == SEC_ROOM)
		room_key(p, name, value);
	else if (p->section == SEC_NONE)
		conf_error(p->errs, p->path, p->line,
			   "'%s' outside any section", name);
	return 1; /* go on: every error, not just the first */
}

/* inih's reader: counts lines and sees each [section] with its line. */
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

/* Off loopback: only plaintext daemons that cannot exist are refused. */
static void check_room(struct parse *p, const struct web_room_conf *r)
{
	const struct web_conf *c = p->c;

	if (!r->control[0] || !r->publish[0])
		conf_error(p->errs, p->path, r->line,
			   "[room %s] needs control = and publish = (the "
			   "daemon's two endpoints)",
			   r->name);
	if (c->cert[0] && !r->server_key[0])
		conf_error(p->errs, p->path, r->line,
			   "[room %s] needs server_key = (the daemon's public "
			   "key or certificate): cert = in [web] makes every "
			   "room CURVE",
			   r->name);
	if (!c->cert[0] && r->server_key[0])
		conf_error(p->errs, p->path, r->server_key_line,
			   "server_key is given but [web] has no cert = (the "
			   "console's own secret certificate)");
	for (int i = 0; i < 2 && !c->cert[0]; i++) {
		const char *ep = i ? r->publish : r->control;
		char host[256];
		size_t n;

		if (strncmp(ep, "tcp://", 6) != 0)
			continue;
		n = strcspn(ep + 6, ":");
		snprintf(host, sizeof(host), "%.*s", (int)n, ep + 6);
		if (strncmp(ep + 6, "[::1]", 5) == 0 || conf_loopback(host))
			continue;
		conf_error(p->errs, p->path,
			   i ? r->publish_line : r->control_line,
			   "%s: '%s' is off loopback in plaintext, where "
			   "fasciad never listens: give cert = in [web] and "
			   "server_key = here",
			   i ? "publish" : "control", ep);
	}
}

static void check_whole(struct parse *p)
{
	const struct web_conf *c = p->c;
	bool loop = conf_loopback(c->host);

	if (!c->tls_cert[0] != !c->tls_key[0])
		conf_error(p->errs, p->path,
			   c->tls_cert[0] ? c->tls_cert_line : c->tls_key_line,
			   "tls_cert and tls_key go together: give both "
			   "(HTTPS) or neither");
	if (!loop && !c->tls_cert[0])
		conf_error(p->errs, p->path, c->listen_line,
			   "listen: %s is off loopback in plain HTTP, where "
			   "passwords and session cookies would cross the "
			   "network in clear: give tls_cert and tls_key, or "
			   "listen on 127.0.0.1",
			   c->host);
	if (!loop && !c->users[0])
		conf_error(p->errs, p->path, c->listen_line,
			   "listen: %s is off loopback without users = FILE, "
			   "where every visitor would be an admin: give "
			   "users (fascia-web --add-user), or listen on "
			   "127.0.0.1",
			   c->host);
	if (c->nrooms == 0)
		conf_error(p->errs, p->path, 0,
			   "no [room NAME] section: the console has nothing to "
			   "show");
	for (int i = 0; i < c->nrooms; i++)
		check_room(p, &c->rooms[i]);
}

int conf_load(const char *path, struct web_conf *c, struct web_errors *errs)
{
	struct parse *p = xcalloc(1, sizeof(*p));
	int rc;

	memset(errs, 0, sizeof(*errs));
	conf_default(c);
	if ((p->fp = fopen(path, "r")) == NULL) {
		conf_error(errs, path, 0, "cannot open: %s", strerror(errno));
		free(p);
		return -1;
	}
	p->c = c;
	p->errs = errs;
	p->path = path;
	rc = ini_parse_stream(reader, p, handler, p);
	if (rc > 0)
		conf_error(errs, path, rc,
			   "not a key = value line nor a [section]");
	else if (rc < 0)
		conf_error(errs, path, 0, "cannot parse: out of memory");
	if (ferror(p->fp))
		conf_error(errs, path, 0, "cannot read: %s", strerror(errno));
	fclose(p->fp);
	check_whole(p);
	free(p);
	return errs->n || errs->dropped ? -1 : 0;
}

/* Why fascia_security_check() refused what, in words. */
static const char *key_reason(int err, bool is_cert)
{
	if (err == EINVAL)
		return is_cert ? "not a CURVE secret certificate "
				 "(NAME.key_secret, as fasciactl keygen "
				 "writes it)"
			       : "neither 40 characters of Z85 nor a public "
				 "certificate file";
	if (err == ENOTSUP)
		return "libzmq was built without CURVE";
	return strerror(err);
}

static void check_keys(const char *path, const struct web_conf *c,
		       struct web_errors *errs)
{
	for (int i = 0; i < c->nrooms && c->cert[0]; i++) {
		const struct web_room_conf *r = &c->rooms[i];
		struct fascia_security sec = {.cert = c->cert,
					      .server_key = r->server_key};
		const char *bad = NULL;

		if (!r->server_key[0] || fascia_security_check(&sec, &bad) == 0)
			continue;
		if (bad == c->cert) {
			conf_error(errs, path, c->cert_line, "cert: %s: %s",
				   c->cert, key_reason(errno, true));
			return; /* one cert: one error */
		}
		conf_error(errs, path, r->server_key_line, "server_key: %s: %s",
			   r->server_key, key_reason(errno, false));
	}
}

static void check_static(const char *path, const struct web_conf *c,
			 struct web_errors *errs)
{
	int fd = open(c->static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		if (faccessat(fd, "index.html", R_OK, 0) < 0)
			conf_error(errs, path, c->static_line,
				   "static: %s has no readable index.html: "
				   "is it the console's pages?",
				   c->static_dir);
		close(fd);
		return;
	}
	conf_error(errs, path, c->static_line, "static: %s: %s%s",
		   c->static_dir, strerror(errno),
		   c->static_line ? ""
				  : " (the default: give static = DIR in "
				    "[web])");
}

int conf_check_files(const char *path, const struct web_conf *c,
		     struct web_errors *errs)
{
	int before = errs->n;
	char why[256];

	if (c->tls_cert[0] && access(c->tls_cert, R_OK) < 0)
		conf_error(errs, path, c->tls_cert_line, "tls_cert: %s: %s",
			   c->tls_cert, strerror(errno));
	else if (c->tls_key[0] && access(c->tls_key, R_OK) < 0)
		conf_error(errs, path, c->tls_key_line, "tls_key: %s: %s",
			   c->tls_key, strerror(errno));
	else if (c->tls_cert[0] && c->tls_key[0]) {
		struct ssl_ctx_st *ctx =
			tls_context(c->tls_cert, c->tls_key, why, sizeof(why));

		if (ctx == NULL)
			conf_error(errs, path, c->tls_cert_line,
				   "tls_cert, tls_key: %s", why);
		tls_free(ctx);
	}
	check_keys(path, c, errs);
	check_static(path, c, errs);
	return errs->n > before ? -1 : 0;
}

/*
 * The certificates of fasciad's CURVE security (docs/security.md): the
 * daemon's own secret certificate, and the directory of its clients'
 * public ones (every NAME.key in it), read with CZMQ's zcert.  Each
 * client's identity is in its certificate's metadata: role, name (else the
 * file's stem), gateway.  No threads, no sockets: `fasciad -n` and
 * security.c's watcher call it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "fasciad.h"

/* 1-64 of A-Z a-z 0-9 . _ @ - and space: a name in the record. */
bool fd_certs_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > FD_NAME_MAX || s[0] == ' ')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("._@- ", *s))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);

	return n > m && strcmp(s + n - m, end) == 0;
}

/* The next file of d that is a certificate's (NAME.key, NAME.key_secret),
 * its path in path; NULL at the end. */
static const char *next_file(DIR *d, const char *dir, char *path, size_t len)
{
	struct dirent *e;

	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' &&
		    (ends_with(e->d_name, ".key") ||
		     ends_with(e->d_name, ".key_secret"))) {
			snprintf(path, len, "%s/%s", dir, e->d_name);
			return e->d_name;
		}
	return NULL;
}

/* The stem of path: "alice" for DIR/alice.key. */
static void stem(const char *path, char *out, size_t len)
{
	const char *base = strrchr(path, '/');
	const char *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	snprintf(
		out, len, "%.*s",
		(int)(dot && dot != base ? (size_t)(dot - base) : strlen(base)),
		base);
}

/*
 * One client certificate: c filled, 0; or -1 with why.  A role that is
 * missing or unknown leaves c->who.role FD_ROLE_NONE and returns 1: the
 * ZAP handler admits the file all the same, so the daemon treats it as an
 * observer, the least a client may be, and says so.
 */
static int read_one(const char *path, struct fd_cert *c, char *why, size_t len)
{
	zcert_t *zc = zcert_load(path);
	const char *role, *name, *gw;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (zc == NULL) {
		snprintf(why, len, "%.120s: %s", path,
			 access(path, R_OK) < 0 ? strerror(errno)
						: "not a certificate (ZPL with "
						  "curve/public-key)");
		return -1;
	}
	snprintf(c->key, sizeof(c->key), "%s", zcert_public_txt(zc));
	snprintf(c->file, sizeof(c->file), "%.*s", (int)sizeof(c->file) - 1,
		 path);
	role = zcert_meta(zc, "role");
	name = zcert_meta(zc, "name");
	gw = zcert_meta(zc, "gateway");
	if (name == NULL || name[0] == '\0')
		stem(path, c->who.name, sizeof(c->who.name));
	else
		snprintf(c->who.name, sizeof(c->who.name), "%s", name);
	if (!fd_certs_name_ok(c->who.name)) {
		snprintf(why, len,
			 "%.120s: name \"%.64s\" is not 1-64 of A-Z a-z 0-9 . "
			 "_ @ "
			 "- and space",
			 path, c->who.name);
		rc = -1;
	} else if (gw != NULL && strcmp(gw, "yes") && strcmp(gw, "no")) {
		snprintf(why, len,
			 "%.120s: gateway \"%.32s\" is neither yes nor no",
			 path, gw);
		rc = -1;
	} else if (conf_role_parse(role, &c->who.role) < 0) {
		c->who.role = FD_ROLE_NONE;
		snprintf(why, len,
			 "%.120s: role %s%.32s%s is not observer, operator or "
			 "admin",
			 path, role ? "\"" : "", role ? role : "missing",
			 role ? "\"" : "");
		rc = 1;
	}
	c->who.gateway = gw != NULL && strcmp(gw, "yes") == 0;
	zcert_destroy(&zc);
	return rc;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct fd_cert *)a)->key,
		      ((const struct fd_cert *)b)->key);
}

int fd_certs_read(const char *dir, struct fd_certset *set,
		  struct conf_errors *errs, int line)
{
	char why[512], path[sizeof(set->c->file)];
	const char *name;
	struct fd_cert c;
	struct stat st;
	DIR *d;
	int rc;

	memset(set, 0, sizeof(*set));
	if ((d = opendir(dir)) == NULL) {
		conf_error(errs, line, "clients: %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((name = next_file(d, dir, path, sizeof(path))) != NULL) {
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (ends_with(name, "_secret")) {
			conf_error(errs, line,
				   "clients: %s is a secret certificate: "
				   "only public ones (NAME.key) belong here",
				   path);
			continue;
		}
		if ((rc = read_one(path, &c, why, sizeof(why))) != 0)
			conf_error(errs, line, "clients: %s", why);
		if (rc < 0)
			continue;
		set->c = realloc(set->c, (set->n + 1) * sizeof(*set->c));
		if (set->c == NULL)
			fatal("realloc");
		set->c[set->n++] = c;
	}
	closedir(d);
	if (set->n > 1)
		qsort(set->c, set->n, sizeof(*set->c), by_key);
	return 0;
}

void fd_certs_free(struct fd_certset *set)
{
	free(set->c);
	memset(set, 0, sizeof(*set));
}

const struct fd_cert *fd_certs_find(const struct fd_certset *set,
				    const char *key)
{
	struct fd_cert k;

	if (key == NULL || set->n == 0)
		return NULL;
	snprintf(k.key, sizeof(k.key), "%s", key);
	return bsearch(&k, set->c, set->n, sizeof(*set->c), by_key);
}

/* FNV-1a over n bytes. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 1099511628211ULL;
	return h;
}

uint64_t fd_certs_signature(const char *dir)
{
	uint64_t h = 14695981039346656037ULL;
	char path[sizeof(((struct fd_cert *)0)->file)];
	struct stat st;
	DIR *d = opendir(dir);

	/* the order of readdir() is the directory's, the same each time
	 * while nothing changes */
	while (d != NULL && next_file(d, dir, path, sizeof(path)) != NULL) {
		if (stat(path, &st) < 0)
			continue;
		h = fnv(h, path, strlen(path) + 1);
		h = fnv(h, &st.st_size, sizeof(st.st_size));
		h = fnv(h, &st.st_mtim, sizeof(st.st_mtim));
		h = fnv(h, &st.st_ino, sizeof(st.st_ino));
	}
	if (d != NULL)
		closedir(d);
	return h;
}

void *fd_certs_server(const char *path, char *why, size_t len)
{
	zcert_t *zc;
	static const char zeros[41] =
		"0000000000000000000000000000000000000000";

	if (access(path, R_OK) < 0) {
		snprintf(why, len, "server_cert: %s: %s", path,
			 strerror(errno));
		return NULL;
	}
	/* zcert_load() reads PATH_secret first: the path as given */
	if ((zc = zcert_load(path)) == NULL ||
	    strcmp(zcert_secret_txt(zc), zeros) == 0) {
		snprintf(why, len,
			 "server_cert: %s is not a secret certificate (ZPL "
			 "with curve/secret-key; fasciactl keygen writes one)",
			 path);
		zcert_destroy(&zc);
		return NULL;
	}
	return zc;
}

int fd_certs_check(const struct fd_conf *c, struct conf_errors *errs)
{
	const struct fd_security_conf *sc = &c->sec;
	struct fd_certset set;
	char why[512];
	zcert_t *zc;

	memset(errs, 0, sizeof(*errs));
	if (!sc->curve)
		return 0;
	if ((zc = fd_certs_server(sc->server_cert, why, sizeof(why))) == NULL)
		conf_error(errs, sc->server_cert_line, "%s", why);
	zcert_destroy(&zc);
	if (fd_certs_read(sc->clients, &set, errs, sc->clients_line) == 0 &&
	    set.n == 0 && errs->n == 0)
		conf_error(errs, sc->clients_line,
			   "clients: %s holds no certificate: no client could "
			   "connect (fasciactl keygen NAME -d DIR makes one)",
			   sc->clients);
	fd_certs_free(&set);
	return errs->n || errs->dropped ? -1 : 0;
}

/*
 * The console's users: a file of NAME:ROLE:HASH lines, the hash an
 * argon2id string from libsodium's crypto_pwhash_str (it carries its own
 * salt and costs), written by `fascia-web --add-user` and read at the
 * start and on SIGHUP.  Lines starting with # and blank lines are kept as
 * they are when a user is added or replaced.
 *
 * Checking a password costs about 50 ms and 64 MiB on purpose (libsodium's
 * INTERACTIVE limits), so it runs on a thread of its own, the checker,
 * one password at a time: the loop hands it a job and gets the verdict
 * back through a pipe.  A name that is no user is checked against a decoy
 * hash, so that the time of a refusal does not tell which names exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "web.h"

#define VERIFY_QUEUE_MAX 32
#define USERS_MAX 10000

/* ---- the file ---- */

/* One line (without its newline) into u; -1 with the reason in errs. */
static int parse_line(char *line, const char *path, int lineno,
		      struct web_user *u, struct web_errors *errs)
{
	char *role = strchr(line, ':'), *hash;

	if (role == NULL || (hash = strchr(role + 1, ':')) == NULL) {
		conf_error(errs, path, lineno,
			   "not NAME:ROLE:HASH (fascia-web --add-user writes "
			   "these lines)");
		return -1;
	}
	*role++ = '\0';
	*hash++ = '\0';
	if (!conf_user_name_ok(line)) {
		conf_error(errs, path, lineno,
			   "user name '%s': use 1..%d of A-Z a-z 0-9 . _ @ - "
			   "and inner spaces",
			   line, WEB_NAME_MAX);
		return -1;
	}
	if (conf_role_parse(role, &u->role) < 0) {
		conf_error(errs, path, lineno,
			   "user %s: role '%s' is not observer, operator or "
			   "admin",
			   line, role);
		return -1;
	}
	if (strncmp(hash, "$argon2id$", 10) != 0 ||
	    strlen(hash) >= sizeof(u->hash)) {
		conf_error(errs, path, lineno,
			   "user %s: the hash is not an argon2id string "
			   "(crypto_pwhash_str): set the password again with "
			   "--add-user",
			   line);
		return -1;
	}
	snprintf(u->name, sizeof(u->name), "%s", line);
	snprintf(u->hash, sizeof(u->hash), "%s", hash);
	return 0;
}

/* Hashes are secrets: refuse a file others may change. */
static int check_mode(FILE *fp, const char *path, struct web_errors *errs)
{
	struct stat st;

	if (fstat(fileno(fp), &st) < 0) {
		conf_error(errs, path, 0, "cannot stat: %s", strerror(errno));
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		conf_error(errs, path, 0,
			   "is writable by others (mode %04o): anyone could "
			   "make themselves an admin; chmod 600 it",
			   (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static void add_user(struct web_users *out, const struct web_user *u,
		     const char *path, int lineno, struct web_errors *errs)
{
	if (users_find(out, u->name) != NULL) {
		conf_error(errs, path, lineno, "user %s is listed twice",
			   u->name);
		return;
	}
	if (out->n >= USERS_MAX) {
		conf_error(errs, path, lineno, "more than %d users", USERS_MAX);
		return;
	}
	if (out->n % 64 == 0) {
		out->v = realloc(out->v, (out->n + 64) * sizeof(*out->v));
		if (out->v == NULL)
			fatal("users");
	}
	out->v[out->n++] = *u;
}

int users_load(const char *path, struct web_users *out, struct web_errors *errs)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, before = errs->n;
	FILE *fp = fopen(path, "r");
	struct web_user u;

	memset(out, 0, sizeof(*out));
	if (fp == NULL) {
		conf_error(errs, path, 0, "cannot open the users file: %s",
			   strerror(errno));
		return -1;
	}
	if (check_mode(fp, path, errs) == 0)
		while ((len = getline(&line, &cap, fp)) >= 0) {
			lineno++;
			while (len > 0 &&
			       (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len == 0 || line[0] == '#')
				continue;
			memset(&u, 0, sizeof(u));
			if (parse_line(line, path, lineno, &u, errs) == 0)
				add_user(out, &u, path, lineno, errs);
		}
	free(line);
	fclose(fp);
	sodium_memzero(&u, sizeof(u));
	if (errs->n > before || errs->dropped) {
		users_free(out);
		return -1;
	}
	return 0;
}

void users_free(struct web_users *u)
{
	if (u->v != NULL)
		sodium_memzero(u->v, u->n * sizeof(*u->v));
	free(u->v);
	u->v = NULL;
	u->n = 0;
}

const struct web_user *users_find(const struct web_users *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, name) == 0)
			return &u->v[i];
	return NULL;
}

/* ---- --add-user ---- */

/* One line from stdin, without echo on a terminal; -1 on none. */
static int read_password(const char *prompt, char *out, size_t size)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	size_t n;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(out, (int)size, stdin) == NULL)
		out[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return n > 0 ? 0 : -1;
}

/* The file's lines but name's, then name's new one; into a temporary
 * beside it, synced, then renamed over it.  -1 with errno. */
static int rewrite(const char *path, const char *name, const char *entry,
		   bool *replaced)
{
	char tmp[WEB_PATH_MAX + 16], dir[WEB_PATH_MAX], *line = NULL;
	size_t cap = 0, nlen = strlen(name);
	FILE *in = fopen(path, "r"), *out;
	int fd, rc = -1;

	*replaced = false;
	if (in == NULL && errno != ENOENT)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0 || fchmod(fd, 0600) < 0 ||
	    (out = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd), unlink(tmp);
		if (in)
			fclose(in);
		return -1;
	}
	while (in != NULL && getline(&line, &cap, in) >= 0) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
			*replaced = true;
			continue;
		}
		fputs(line, out);
		if (line[strlen(line) - 1] != '\n')
			fputc('\n', out);
	}
	fprintf(out, "%s\n", entry);
	if (fflush(out) == 0 && fsync(fd) == 0 && rename(tmp, path) == 0)
		rc = 0;
	fclose(out);
	if (in)
		fclose(in);
	if (rc < 0)
		unlink(tmp);
	free(line);
	snprintf(dir, sizeof(dir), "%s", path);
	if (rc == 0 && (fd = open(dirname(dir), O_RDONLY | O_DIRECTORY)) >= 0)
		fsync(fd), close(fd);
	return rc;
}

/* The password twice on a terminal, once from a pipe; -1 told. */
static int get_password(const char *name, char *pw, size_t size)
{
	char again[WEB_PASSWORD_MAX + 2], prompt[128];
	int rc = 0;

	snprintf(prompt, sizeof(prompt), "password for %s: ", name);
	if (read_password(prompt, pw, size) < 0) {
		fprintf(stderr, "fascia-web: --add-user: no password on "
				"stdin (one line)\n");
		return -1;
	}
	if (isatty(STDIN_FILENO) &&
	    (read_password("again: ", again, sizeof(again)) < 0 ||
	     strcmp(again, pw) != 0)) {
		fprintf(stderr, "fascia-web: the passwords differ\n");
		rc = -1;
	}
	sodium_memzero(again, sizeof(again));
	if (rc == 0 && strlen(pw) < 8)
		fprintf(stderr,
			"fascia-web: warning: a password of %zu "
			"characters is easily guessed\n",
			strlen(pw));
	return rc;
}

int users_add(const char *path, const char *name, const char *role)
{
	char pw[WEB_PASSWORD_MAX + 2], hash[crypto_pwhash_STRBYTES];
	char entry[WEB_NAME_MAX + 16 + crypto_pwhash_STRBYTES];
	enum web_role r;
	bool replaced;
	int rc;

	if (!conf_user_name_ok(name) || conf_role_parse(role, &r) < 0 ||
	    strlen(path) >= WEB_PATH_MAX) {
		fprintf(stderr,
			"fascia-web: --add-user NAME (1..%d of A-Z a-z 0-9 . "
			"_ @ - and inner spaces) --role "
			"observer|operator|admin -u USERSFILE\n",
			WEB_NAME_MAX);
		return 2;
	}
	if (get_password(name, pw, sizeof(pw)) < 0)
		return 1;
	rc = crypto_pwhash_str_alg(hash, pw, strlen(pw),
				   crypto_pwhash_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_MEMLIMIT_INTERACTIVE,
				   crypto_pwhash_ALG_ARGON2ID13);
	sodium_memzero(pw, sizeof(pw));
	if (rc != 0) {
		fprintf(stderr, "fascia-web: cannot hash: out of memory\n");
		return 1;
	}
	snprintf(entry, sizeof(entry), "%s:%s:%s", name, conf_role_name(r),
		 hash);
	if (rewrite(path, name, entry, &replaced) < 0) {
		fprintf(stderr, "fascia-web: %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("%s: %s %s (%s)\n", path, replaced ? "replaced" : "added", name,
	       conf_role_name(r));
	return 0;
}

/* ---- the checker thread ---- */

struct job {
	struct job *next;
	char *hash; /* NULL: the decoy */
	char password[WEB_PASSWORD_MAX + 1];
	bool ok;
	verify_fn fn;
	void *arg;
};

struct web_verifier {
	struct web *w;
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct job *todo, *done; /* todo in order; done in any */
	int queued;
	bool stopping;
	int pipe[2]; /* the checker writes a byte per verdict */
	struct event *ev;
	char decoy[crypto_pwhash_STRBYTES];
};

static bool check_one(struct web_verifier *v, struct job *j)
{
	size_t n = strlen(j->password);

	if (j->hash == NULL) { /* the same work, and a refusal whatever */
		int decoy = crypto_pwhash_str_verify(v->decoy, j->password, n);

		(void)decoy;
		return false;
	}
	return crypto_pwhash_str_verify(j->hash, j->password, n) == 0;
}

static void *checker(void *arg)
{
	struct web_verifier *v = arg;
	struct job *j;
	char rnd[32];

	randombytes_buf(rnd, sizeof(rnd));
	if (crypto_pwhash_str_alg(v->decoy, rnd, sizeof(rnd),
				  crypto_pwhash_OPSLIMIT_INTERACTIVE,
				  crypto_pwhash_MEMLIMIT_INTERACTIVE,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		v->decoy[0] = '\0';
	pthread_mutex_lock(&v->mtx);
	for (;;) {
		while (v->todo == NULL && !v->stopping)
			pthread_cond_wait(&v->cond, &v->mtx);
		if (v->stopping)
			break;
		j = v->todo;
		v->todo = j->next;
		pthread_mutex_unlock(&v->mtx);
		j->ok = check_one(v, j);
		sodium_memzero(j->password, sizeof(j->password));
		pthread_mutex_lock(&v->mtx);
		j->next = v->done;
		v->done = j;
		if (write(v->pipe[1], "", 1) < 0 && errno != EAGAIN)
			break; /* the loop has gone */
	}
	pthread_mutex_unlock(&v->mtx);
	return NULL;
}

static void free_job(struct job *j)
{
	sodium_memzero(j->password, sizeof(j->password));
	free(j->hash);
	free(j);
}

/* On the loop: hand each verdict to its caller. */
static void on_verdicts(evutil_socket_t fd, short what, void *arg)
{
	struct web_verifier *v = arg;
	struct job *list, *j;
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&v->mtx);
	list = v->done;
	v->done = NULL;
	for (j = list; j != NULL; j = j->next)
		v->queued--;
	pthread_mutex_unlock(&v->mtx);
	while ((j = list) != NULL) {
		list = j->next;
		j->fn(v->w, j->ok, j->arg);
		free_job(j);
	}
}

int verifier_start(struct web *w)
{
	struct web_verifier *v = xcalloc(1, sizeof(*v));

	v->w = w;
	pthread_mutex_init(&v->mtx, NULL);
	pthread_cond_init(&v->cond, NULL);
	if (pipe2(v->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("pipe");
	v->ev = event_new(w->base, v->pipe[0], EV_READ | EV_PERSIST,
			  on_verdicts, v);
	if (v->ev == NULL || event_add(v->ev, NULL) < 0)
		fatalx("cannot watch the password checker");
	if (pthread_create(&v->thread, NULL, checker, v) != 0)
		fatalx("cannot start the password checker");
	w->verifier = v;
	return 0;
}

int verifier_submit(struct web *w, const char *hash, const char *password,
		    verify_fn fn, void *arg)
{
	struct web_verifier *v = w->verifier;
	struct job *j, **tail;

	if (v->queued >= VERIFY_QUEUE_MAX ||
	    strlen(password) > WEB_PASSWORD_MAX)
		return -1;
	j = xcalloc(1, sizeof(*j));
	j->hash = hash != NULL ? xstrdup(hash) : NULL;
	snprintf(j->password, sizeof(j->password), "%s", password);
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&v->mtx);
	for (tail = &v->todo; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = j;
	v->queued++;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->mtx);
	return 0;
}

void verifier_stop(struct web *w)
{
	struct web_verifier *v = w->verifier;
	struct job *j;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mtx);
	v->stopping = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->mtx);
	pthread_join(v->thread, NULL);
	on_verdicts(v->pipe[0], EV_READ, v);
	while ((j = v->todo) != NULL) { /* never checked: refused */
		v->todo = j->next;
		j->fn(w, false, j->arg);
		free_job(j);
	}
	event_free(v->ev);
	close(v->pipe[0]);
	close(v->pipe[1]);
	sodium_memzero(v->decoy, sizeof(v->decoy));
	pthread_mutex_destroy(&v->mtx);
	pthread_cond_destroy(&v->cond);
	free(v);
	w->verifier = NULL;
}

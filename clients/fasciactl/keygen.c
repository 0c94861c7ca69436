/*
 * fasciactl keygen NAME: a CURVE certificate for one client of fasciad,
 * made with libczmq's zcert: DIR/NAME.key, the public half the daemon's
 * administrator puts in its clients directory, and DIR/NAME.key_secret,
 * the secret half --cert takes, mode 0600.  Both carry the metadata the
 * daemon reads: name = NAME, role = ROLE.
 *
 * Nothing is overwritten: a certificate replaced by mistake locks its
 * owner out, and the old secret cannot be had back.  Both files are
 * therefore created first with O_EXCL (with their modes, whatever the
 * umask asks), and only then filled by zcert_save.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "fasciactl.h"

#define KEYGEN_NAME_MAX 64
#define KEYGEN_USAGE "keygen NAME [--role ROLE] [-d DIR]"

static const char *const roles[] = {"observer", "operator", "admin"};

/* 1-64 of A-Z a-z 0-9 . _ - : a file name, and a name in the log. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= KEYGEN_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz"
			    "0123456789._-") == n;
}

static bool role_ok(const char *role)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(role, roles[i]) == 0)
			return true;
	return false;
}

/* Create path, which must not exist, with mode; -1 with errno. */
static int reserve(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* The secret file is 0600 whatever the umask and zcert did to it. */
static int make_private(const char *path)
{
	struct stat st;
	int fd, rc = 0, saved;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 ||
	    ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0))
		rc = -1;
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* A new certificate with name and role into pub and pub + "_secret";
 * *public_txt its public key.  -1 with errno (the files are left). */
static int write_cert(const char *name, const char *role, const char *pub,
		      const char *secret, char *public_txt)
{
	zcert_t *cert = zcert_new();
	int rc;

	if (cert == NULL) {
		errno = ENOMEM;
		return -1;
	}
	zcert_set_meta(cert, "name", "%s", name);
	zcert_set_meta(cert, "role", "%s", role);
	errno = 0;
	rc = zcert_save(cert, pub);
	if (rc == 0)
		rc = make_private(secret);
	else if (errno == 0)
		errno = EIO;
	snprintf(public_txt, 41, "%s", zcert_public_txt(cert));
	zcert_destroy(&cert);
	return rc;
}

/* Both files reserved, or neither (after a message); an exit code. */
static int reserve_both(const char *pub, const char *secret)
{
	const char *failed = pub;

	if (reserve(pub, 0644) == 0) {
		if (reserve(secret, 0600) == 0)
			return CTL_OK;
		failed = secret;
		unlink(pub);
	}
	if (errno == EEXIST)
		fprintf(stderr,
			"fasciactl: %s exists: not overwritten (a certificate "
			"in use would be lost); choose another NAME or DIR\n",
			failed);
	else
		fprintf(stderr, "fasciactl: %s: %s\n", failed, strerror(errno));
	return CTL_REFUSED;
}

static void print_made(const struct ctl *ctl, const char *name,
		       const char *role, const char *pub, const char *secret,
		       const char *key)
{
	json_t *o;

	if (ctl->json) {
		o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", name, "role",
			      role, "public", pub, "secret", secret,
			      "public_key", key);
		ctl_print_json(o);
		json_decref(o);
		return;
	}
	printf("public certificate: %s (for the daemon's clients "
	       "directory)\n"
	       "secret certificate: %s (mode 0600, for --cert: keep it "
	       "here)\n"
	       "public key: %s\n"
	       "name: %s, role: %s\n",
	       pub, secret, key, name, role);
}

int cmd_keygen(struct ctl *ctl, int argc, char **argv)
{
	const char *dir = ctl->dir != NULL ? ctl->dir : ".";
	const char *role = ctl->role != NULL ? ctl->role : "observer";
	char pub[PATH_MAX], secret[PATH_MAX], key[41];
	int n, rc;

	if (!ctl_nargs(argc, 1, 1, KEYGEN_USAGE))
		return CTL_USAGE;
	if (!name_ok(argv[0])) {
		ctl_usage_hint("keygen: NAME \"%s\" is not 1-64 of A-Z a-z 0-9 "
			       ". _ -",
			       argv[0]);
		return CTL_USAGE;
	}
	if (!role_ok(role)) {
		ctl_usage_hint("--role: \"%s\" is not a role (observer, "
			       "operator or admin)",
			       role);
		return CTL_USAGE;
	}
	n = snprintf(secret, sizeof(secret), "%s/%s.key_secret", dir, argv[0]);
	if (*dir == '\0' || n < 0 || (size_t)n >= sizeof(secret)) {
		ctl_usage_hint("-d: \"%s\" is not a directory's name", dir);
		return CTL_USAGE;
	}
	snprintf(pub, sizeof(pub), "%s/%s.key", dir, argv[0]);
	if ((rc = reserve_both(pub, secret)) != CTL_OK)
		return rc;
	if (write_cert(argv[0], role, pub, secret, key) < 0) {
		fprintf(stderr, "fasciactl: cannot write %s: %s\n", secret,
			strerror(errno));
		unlink(secret);
		unlink(pub);
		return CTL_REFUSED;
	}
	print_made(ctl, argv[0], role, pub, secret, key);
	return CTL_OK;
}

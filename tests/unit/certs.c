/*
 * The CURVE certificates as fasciad reads them (daemon/certs.c) and the
 * [security] section of fasciad.conf: each client's name, role and
 * gateway from its certificate's metadata (the name from the file's stem
 * when it has none), every refusal `fasciad -n` reports with its line (a
 * missing or unknown role, a secret among the public ones, a server
 * certificate that is not a secret one), and the directory's signature,
 * which the watcher compares, changing with an edit within the second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemon/certs.c"
#include "../../daemon/config.c"
#include "../../daemon/confdev.c"
#include "../../daemon/interlock.c"

#include "../czmq_leaks.h"
#include "../daemon_stubs.h"

static char dir[64];

/* A certificate pair NAME.key / NAME.key_secret in dir with metadata
 * (pairs of key, value; NULL ends them); its public key in pub. */
static void make(const char *name, char *pub, ...)
{
	char path[128];
	zcert_t *c = zcert_new();
	const char *k, *v;
	va_list ap;

	assert_non_null(c);
	va_start(ap, pub);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		zcert_set_meta(c, k, "%s", v);
	}
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	assert_int_equal(zcert_save_public(c, path), 0);
	if (pub != NULL)
		strcpy(pub, zcert_public_txt(c));
	zcert_destroy(&c);
}

static void rm(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/* Every file in dir. */
static void clear(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -f %s/*", dir);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-certs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static bool has_error(const struct conf_errors *errs, int line,
		      const char *what)
{
	for (int i = 0; i < errs->n; i++)
		if (errs->e[i].line == line && strstr(errs->e[i].message, what))
			return true;
	for (int i = 0; i < errs->n; i++)
		print_error("  line %d: %s\n", errs->e[i].line,
			    errs->e[i].message);
	return false;
}

static void test_identity_from_metadata(void **state)
{
	char alice[41], web[41], bob[41];
	struct fd_certset set;
	struct conf_errors errs = {0};
	const struct fd_cert *c;

	(void)state;
	make("alice", alice, "role", "operator", NULL);
	make("web", web, "role", "admin", "name", "fascia-web", "gateway",
	     "yes", NULL);
	make("bob", bob, "role", "observer", "name", "Bob @ desk 2", NULL);
	assert_int_equal(fd_certs_read(dir, &set, &errs, 7), 0);
	assert_int_equal(errs.n, 0);
	assert_int_equal(set.n, 3);
	c = fd_certs_find(&set, alice);
	assert_non_null(c);
	assert_string_equal(c->who.name, "alice"); /* the stem */
	assert_int_equal(c->who.role, FD_ROLE_OPERATOR);
	assert_false(c->who.gateway);
	c = fd_certs_find(&set, web);
	assert_non_null(c);
	assert_string_equal(c->who.name, "fascia-web");
	assert_int_equal(c->who.role, FD_ROLE_ADMIN);
	assert_true(c->who.gateway);
	assert_string_equal(fd_certs_find(&set, bob)->who.name, "Bob @ desk 2");
	assert_null(fd_certs_find(&set,
				  "0000000000000000000000000000000000000000"));
	assert_null(fd_certs_find(&set, NULL));
	fd_certs_free(&set);
	rm("alice.key");
	rm("web.key");
	rm("bob.key");
}

/* Kept with no role (the watcher leaves it out; the start refuses),
 * reported at the line given. */
static void test_bad_roles_are_reported(void **state)
{
	char none[41], typo[41];
	struct fd_certset set;
	struct conf_errors errs = {0};

	(void)state;
	make("none", none, NULL);
	make("typo", typo, "role", "superuser", NULL);
	assert_int_equal(fd_certs_read(dir, &set, &errs, 12), 0);
	assert_int_equal(set.n, 2);
	assert_int_equal(fd_certs_find(&set, none)->who.role, FD_ROLE_NONE);
	assert_int_equal(fd_certs_find(&set, typo)->who.role, FD_ROLE_NONE);
	assert_true(has_error(&errs, 12, "none.key: role missing"));
	assert_true(
		has_error(&errs, 12, "typo.key: role \"superuser\" is not"));
	fd_certs_free(&set);
	rm("none.key");
	rm("typo.key");
}

static void test_what_is_not_a_client_certificate(void **state)
{
	struct fd_certset set;
	struct conf_errors errs = {0};
	char path[128];
	FILE *f;

	(void)state;
	make("ok", NULL, "role", "observer", NULL);
	snprintf(path, sizeof(path), "%s/garbage.key", dir);
	f = fopen(path, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/leaked.key_secret", dir);
	f = fopen(path, "w");
	fputs("curve\n    secret-key = \"x\"\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/README", dir);
	f = fopen(path, "w");
	fputs("ignored\n", f);
	fclose(f);
	make("bad name", NULL, "role", "observer", "name", "a/b", NULL);
	CZMQ_LEAKS_BEGIN();
	assert_int_equal(fd_certs_read(dir, &set, &errs, 3), 0);
	CZMQ_LEAKS_END();
	assert_int_equal(set.n, 1); /* ok.key alone */
	assert_true(has_error(&errs, 3, "garbage.key: not a certificate"));
	assert_true(has_error(&errs, 3, "leaked.key_secret is a secret"));
	assert_true(has_error(&errs, 3, "name \"a/b\""));
	assert_int_equal(errs.n, 3); /* README is no certificate's name */
	fd_certs_free(&set);
	clear();
}

static void test_a_directory_that_cannot_be_read(void **state)
{
	struct fd_certset set;
	struct conf_errors errs = {0};

	(void)state;
	assert_int_equal(fd_certs_read("/nonexistent/clients", &set, &errs, 9),
			 -1);
	assert_true(has_error(&errs, 9, "No such file"));
	assert_int_equal(set.n, 0);
}

static void test_the_signature_sees_every_change(void **state)
{
	uint64_t a, b, c;
	char path[128];
	struct stat st;
	struct timespec times[2];

	(void)state;
	make("x", NULL, "role", "observer", NULL);
	a = fd_certs_signature(dir);
	assert_int_equal(fd_certs_signature(dir), a);
	/* rewritten with the same size and the same whole second */
	snprintf(path, sizeof(path), "%s/x.key", dir);
	assert_int_equal(stat(path, &st), 0);
	make("x", NULL, "role", "operator", NULL);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	times[1].tv_nsec = (times[1].tv_nsec + 1) % 1000000000;
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	b = fd_certs_signature(dir);
	assert_true(b != a);
	make("y", NULL, "role", "observer", NULL);
	c = fd_certs_signature(dir);
	assert_true(c != b);
	rm("y.key");
	rm("x.key");
	assert_true(fd_certs_signature(dir) != c);
}

static void test_the_server_certificate(void **state)
{
	char path[128], why[300];
	zcert_t *c = zcert_new(), *got;

	(void)state;
	snprintf(path, sizeof(path), "%s/server.key", dir);
	assert_int_equal(zcert_save(c, path), 0);
	/* the secret file as given */
	snprintf(path, sizeof(path), "%s/server.key_secret", dir);
	got = fd_certs_server(path, why, sizeof(why));
	assert_non_null(got);
	assert_string_equal(zcert_public_txt(got), zcert_public_txt(c));
	zcert_destroy(&got);
	/* a public one alone is not the daemon's */
	rm("server.key_secret");
	snprintf(path, sizeof(path), "%s/server.key", dir);
	assert_null(fd_certs_server(path, why, sizeof(why)));
	assert_non_null(strstr(why, "is not a secret certificate"));
	snprintf(path, sizeof(path), "%s/absent.key_secret", dir);
	assert_null(fd_certs_server(path, why, sizeof(why)));
	assert_non_null(strstr(why, "No such file"));
	rm("server.key");
	zcert_destroy(&c);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(fd_certs_name_ok("alice"));
	assert_true(fd_certs_name_ok("nurse jo@ward-3.b_2"));
	assert_false(fd_certs_name_ok(""));
	assert_false(fd_certs_name_ok(" lead"));
	assert_false(fd_certs_name_ok("a/b"));
	assert_false(fd_certs_name_ok("tab\there"));
	assert_true(fd_certs_name_ok("12345678901234567890123456789012345678901"
				     "23456789012345678901234"));
	assert_false(fd_certs_name_ok("1234567890123456789012345678901234567890"
				      "1234567890123456789012345"));
}

static void test_roles(void **state)
{
	enum fd_role r;

	(void)state;
	assert_int_equal(conf_role_parse("observer", &r), 0);
	assert_int_equal(r, FD_ROLE_OBSERVER);
	assert_int_equal(conf_role_parse("admin", &r), 0);
	assert_int_equal(r, FD_ROLE_ADMIN);
	assert_int_equal(conf_role_parse("none", &r), -1);
	assert_int_equal(conf_role_parse("Admin", &r), -1);
	assert_int_equal(conf_role_parse(NULL, &r), -1);
	assert_string_equal(conf_role_name(FD_ROLE_OPERATOR), "operator");
	assert_true(FD_ROLE_OBSERVER < FD_ROLE_OPERATOR &&
		    FD_ROLE_OPERATOR < FD_ROLE_ADMIN);
}

/* The [security] section through the whole check, as -n runs it. */
static int check_text(const char *text, struct fd_conf *c,
		      struct conf_errors *errs)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc = conf_load_stream(f, "test", c, errs);

	fclose(f);
	return rc == 0 ? fd_certs_check(c, errs) : rc;
}

static void test_check_names_each_line(void **state)
{
	static struct fd_conf c;
	struct conf_errors errs;
	char text[1024], secret[128];
	zcert_t *z = zcert_new();

	(void)state;
	/* beside the clients' directory, not in it */
	snprintf(secret, sizeof(secret), "%s.server.key", dir);
	zcert_save(z, secret);
	zcert_destroy(&z);
	snprintf(secret, sizeof(secret), "%s.server.key_secret", dir);
	/* an empty clients directory: nothing could connect */
	snprintf(text, sizeof(text),
		 "[daemon]\ncontrol = tcp://0.0.0.0:7410\n[security]\n"
		 "curve = yes\nserver_cert = %s\nclients = %s\n"
		 "[device sim]\n",
		 secret, dir);
	assert_int_equal(check_text(text, &c, &errs), -1);
	assert_true(has_error(&errs, 6, "holds no certificate"));
	make("typo", NULL, "role", "opertor", NULL);
	assert_int_equal(check_text(text, &c, &errs), -1);
	assert_true(has_error(&errs, 6, "typo.key: role \"opertor\""));
	rm("typo.key");
	make("alice", NULL, "role", "operator", NULL);
	assert_int_equal(check_text(text, &c, &errs), 0);
	assert_true(c.sec.curve);
	assert_int_equal(c.sec.local_role, FD_ROLE_OPERATOR);
	/* the public file is not the daemon's secret */
	snprintf(text, sizeof(text),
		 "[daemon]\n[security]\ncurve = yes\n"
		 "server_cert = %s/alice.key\nclients = %s\n[device sim]\n",
		 dir, dir);
	assert_int_equal(check_text(text, &c, &errs), -1);
	assert_true(has_error(&errs, 4, "is not a secret certificate"));
	/* plaintext off loopback; keys of CURVE without it */
	assert_int_equal(check_text("[daemon]\ncontrol = tcp://*:7410\n"
				    "[security]\nclients = /x\n"
				    "local = tcp://127.0.0.1:1\n"
				    "local_role = root\n[device sim]\n",
				    &c, &errs),
			 -1);
	assert_true(has_error(&errs, 2, "off loopback in plaintext"));
	assert_true(has_error(&errs, 4, "clients is given but curve is not"));
	assert_true(has_error(&errs, 5, "is not ipc:///PATH"));
	assert_true(has_error(&errs, 6, "'root' is not observer"));
	assert_int_equal(check_text("[security]\ncurve = yes\ncurve = no\n"
				    "[device sim]\n",
				    &c, &errs),
			 -1);
	assert_true(has_error(&errs, 2, "needs server_cert"));
	assert_true(has_error(&errs, 2, "needs clients"));
	assert_true(has_error(&errs, 3, "given twice in [security]"));
	clear();
	unlink(secret);
	secret[strlen(secret) - strlen("_secret")] = '\0';
	unlink(secret);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_from_metadata),
		cmocka_unit_test(test_bad_roles_are_reported),
		cmocka_unit_test(test_what_is_not_a_client_certificate),
		cmocka_unit_test(test_a_directory_that_cannot_be_read),
		cmocka_unit_test(test_the_signature_sees_every_change),
		cmocka_unit_test(test_the_server_certificate),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_check_names_each_line),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

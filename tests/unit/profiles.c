/*
 * The profile directory: a load takes every *.json sorted by name and
 * refuses a file alone (one that does not validate, one whose name
 * differs from its profile's), loading the others and naming each refused
 * one; only a directory that cannot be read fails it and keeps the old
 * set.  A load checks what holds for every device, so a profile wider than
 * a small device loads and fd_profiles_fits() says why it does not fit
 * there.  A put (check, text through the store, add) stores a file that
 * reloads to the profile and adds or replaces it in name order, checked
 * against the largest device.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>

#include "../../daemon/profiles.c"
#include "../../daemon/store.c"

#include "../daemon_stubs.h"

static char dir[64];
static struct fd_profiles *set;
static struct fascia_profile_limits lim;
static struct event_base *base;
static struct fd_store *store;

static const char *doc_fmt =
	"{\"name\":\"%s\",\"description\":\"test\",\"chambers\":2,"
	"\"max_pressure_mmhg\":%d,\"max_ramp_mmhg_s\":10,\"repeat\":1,"
	"\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":2}]}";

static void put_file(const char *file, const char *name, int maxp)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, doc_fmt, name, maxp);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-prof-XXXXXX");
	assert_non_null(mkdtemp(dir));
	set = xcalloc(1, sizeof(*set));
	fascia_profile_limits_default(&lim);
	stub_warnings = 0;
	assert_non_null(base = event_base_new());
	store = fd_store_new(base);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fd_store_destroy(&store);
	event_base_free(base);
	free(set);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_load_sorted(void **state)
{
	(void)state;
	put_file("b.json", "b", 40);
	put_file("a.json", "a", 40);
	put_file("notes.txt", "x", 40);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 2);
	assert_string_equal(set->p[0].name, "a");
	assert_string_equal(set->p[1].name, "b");
	assert_string_equal(set->dir, dir);
	assert_non_null(fd_profiles_find(set, "b"));
	assert_null(fd_profiles_find(set, "c"));
}

/* An 8-chamber profile whose maximum is maxp. */
static void put_wide(const char *file, const char *name, int maxp)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
		"{\"name\":\"%s\",\"chambers\":8,\"max_pressure_mmhg\":%d,"
		"\"max_ramp_mmhg_s\":10,\"steps\":[{\"set\":{\"8\":30},"
		"\"ramp_s\":3,\"hold_s\":2}]}",
		name, maxp);
	fclose(f);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && strcmp(s + n - m, tail) == 0;
}

static void test_a_bad_file_is_refused_alone(void **state)
{
	(void)state;
	put_file("a.json", "a", 40);
	put_file("b.json", "b", 500);
	put_file("c.json", "d", 40);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 1);
	assert_string_equal(set->p[0].name, "a");
	assert_int_equal(set->nrefused, 2);
	assert_true(ends_with(set->refused[0].file, "/b.json"));
	assert_string_equal(set->refused[0].field, "max_pressure_mmhg");
	assert_non_null(strstr(set->refused[0].message, "ceiling"));
	assert_true(ends_with(set->refused[1].file, "/c.json"));
	assert_string_equal(set->refused[1].field, "name");
	/* each refused file and the summary */
	assert_true(stub_warnings >= 3);
}

static void test_a_name_other_than_the_files_is_refused(void **state)
{
	(void)state;
	/* a copy of a.json left as copy.json: a second "a" */
	put_file("a.json", "a", 40);
	put_file("copy.json", "a", 45);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 1);
	assert_true(set->p[0].max_pressure_mmhg == 40);
	assert_int_equal(set->nrefused, 1);
	assert_true(ends_with(set->refused[0].file, "/copy.json"));
	assert_string_equal(set->refused[0].field, "name");
	assert_non_null(strstr(set->refused[0].message, "a.json"));
}

static void test_nothing_valid_is_an_empty_set(void **state)
{
	(void)state;
	put_file("a.json", "a", 40);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 1);
	put_file("a.json", "a", 500);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 0);
	assert_int_equal(set->nrefused, 1);
	assert_null(fd_profiles_find(set, "a"));
}

static void test_many_refused_are_counted(void **state)
{
	char file[32];

	(void)state;
	for (int i = 0; i < FD_MAX_REFUSED + 8; i++) {
		snprintf(file, sizeof(file), "bad%02d.json", i);
		put_file(file, "other", 40);
	}
	put_file("good.json", "good", 40);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, 1);
	assert_int_equal(set->nrefused, FD_MAX_REFUSED + 8);
	assert_true(ends_with(set->refused[FD_MAX_REFUSED - 1].file,
			      "/bad31.json"));
}

static void test_past_a_full_set_each_file_is_refused(void **state)
{
	char file[48], name[16];

	(void)state;
	for (int i = 0; i < FD_MAX_PROFILES + 2; i++) {
		snprintf(name, sizeof(name), "p%03d", i);
		snprintf(file, sizeof(file), "%s.json", name);
		put_file(file, name, 40);
	}
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(set->n, FD_MAX_PROFILES);
	assert_int_equal(set->nrefused, 2);
	assert_true(ends_with(set->refused[0].file, "/p128.json"));
	assert_non_null(strstr(set->refused[0].message, "more than"));
}

static void test_an_unreadable_directory_keeps_the_old_set(void **state)
{
	char file[128];

	(void)state;
	put_file("a.json", "a", 40);
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	assert_int_equal(fd_profiles_load("/nonexistent/x", &lim, set), -1);
	assert_int_equal(set->n, 1);
	snprintf(file, sizeof(file), "%s/a.json", dir);
	assert_int_equal(fd_profiles_load(file, &lim, set), -1);
	assert_int_equal(set->n, 1);
	assert_string_equal(set->dir, dir);
}

static void test_a_profile_wider_than_a_small_device_loads(void **state)
{
	struct fd_conf *c = xcalloc(1, sizeof(*c));
	struct fascia_profile_limits l;
	char why[256];

	(void)state;
	c->max_session_s = 1800;
	c->ndev = 1;
	snprintf(c->dev[0].name, sizeof(c->dev[0].name), "small");
	c->dev[0].chambers = 4;
	c->dev[0].limit_mmhg = 40;
	fd_profiles_load_limits(c, &l);
	put_wide("wide.json", "wide", 60);
	put_file("narrow.json", "narrow", 40);
	assert_int_equal(fd_profiles_load(dir, &l, set), 0);
	assert_int_equal(set->n, 2);
	assert_int_equal(set->nrefused, 0);
	assert_false(fd_profiles_fits(fd_profiles_find(set, "wide"), &c->dev[0],
				      why, sizeof(why)));
	assert_non_null(strstr(why, "8 chambers, the device 4"));
	assert_non_null(strstr(why, "60.0 mmHg is above the device limit "
				    "40.0 mmHg"));
	assert_true(fd_profiles_fits(fd_profiles_find(set, "narrow"),
				     &c->dev[0], why, sizeof(why)));
	assert_string_equal(why, "");
	/* still the build's ceiling and the session maximum */
	put_wide("high.json", "high", 90);
	assert_int_equal(fd_profiles_load(dir, &l, set), 0);
	assert_int_equal(set->n, 2);
	assert_int_equal(set->nrefused, 1);
	assert_string_equal(set->refused[0].field, "max_pressure_mmhg");
	free(c);
}

static void stored_cb(int err, void *arg)
{
	*(int *)arg = err;
}

/* What commands.c does for a profile.put: check, write the text through
 * the store, add once it is on disk.  0, or -1 with errno. */
static int put(const char *doc, struct fascia_profile_error *err)
{
	struct fascia_profile *p = xcalloc(1, sizeof(*p));
	char *text, file[80];
	int stored = -1, rc = -1;

	if (fd_profiles_check(set, doc, strlen(doc), &lim, p, err) < 0)
		goto out;
	text = fd_profiles_text(p);
	snprintf(file, sizeof(file), "%s.json", p->name);
	assert_int_equal(fd_store_write(store, set->dir, file, text,
					strlen(text), stored_cb, &stored),
			 0);
	free(text);
	while (stored == -1)
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	if (stored != 0) {
		errno = stored;
		goto out;
	}
	rc = fd_profiles_add(set, p);
out:
	free(p);
	return rc;
}

static void test_put(void **state)
{
	struct fascia_profile_error err;
	char doc[512];

	(void)state;
	assert_int_equal(fd_profiles_load(dir, &lim, set), 0);
	snprintf(doc, sizeof(doc), doc_fmt, "new", 40);
	assert_int_equal(put(doc, &err), 0);
	assert_int_equal(set->n, 1);
	snprintf(doc, sizeof(doc), doc_fmt, "new", 45);
	assert_int_equal(put(doc, &err), 0);
	assert_int_equal(set->n, 1);
	assert_true(fd_profiles_find(set, "new")->max_pressure_mmhg == 45);
	/* the file reloads to the same */
	{
		struct fd_profiles *again = xcalloc(1, sizeof(*again));

		assert_int_equal(fd_profiles_load(dir, &lim, again), 0);
		assert_int_equal(again->n, 1);
		assert_true(fascia_profile_equal(&again->p[0], &set->p[0]));
		free(again);
	}
	/* refused: nothing changes */
	snprintf(doc, sizeof(doc), doc_fmt, "new", 500);
	assert_int_equal(put(doc, &err), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(err.field, "max_pressure_mmhg");
	assert_true(fd_profiles_find(set, "new")->max_pressure_mmhg == 45);
	snprintf(doc, sizeof(doc), doc_fmt, "../evil", 40);
	assert_int_equal(put(doc, &err), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(err.field, "name");
	assert_int_equal(set->n, 1);
	/* an I/O failure: errno, not EINVAL */
	snprintf(set->dir, sizeof(set->dir), "%s/missing", dir);
	snprintf(doc, sizeof(doc), doc_fmt, "other", 40);
	assert_int_equal(put(doc, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(set->n, 1);
}

static void test_text(void **state)
{
	struct fascia_profile_error err;
	struct fascia_profile *p = xcalloc(1, sizeof(*p));
	struct fascia_profile *back = xcalloc(1, sizeof(*back));
	char doc[512], *text;
	size_t n;

	(void)state;
	snprintf(doc, sizeof(doc), doc_fmt, "t", 40);
	assert_int_equal(
		fd_profiles_check(set, doc, strlen(doc), &lim, p, &err), 0);
	text = fd_profiles_text(p);
	n = strlen(text);
	/* indented for an operator, one final newline */
	assert_non_null(strstr(text, "\n  \"name\": \"t\""));
	assert_true(n > 2 && text[n - 1] == '\n' && text[n - 2] != '\n');
	assert_int_equal(fascia_profile_parse(text, n, &lim, back, &err), 0);
	assert_true(fascia_profile_equal(p, back));
	free(text);
	free(back);
	free(p);
}

static void test_add_sorted(void **state)
{
	static const char *names[] = {"c", "a", "d", "b"};
	struct fascia_profile_error err;
	struct fascia_profile *p = xcalloc(1, sizeof(*p));
	char doc[512];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(doc, sizeof(doc), doc_fmt, names[i], 40 + i);
		assert_int_equal(
			fd_profiles_check(set, doc, strlen(doc), &lim, p, &err),
			0);
		assert_int_equal(fd_profiles_add(set, p), 0);
	}
	assert_int_equal(set->n, 4);
	assert_string_equal(set->p[0].name, "a");
	assert_string_equal(set->p[1].name, "b");
	assert_string_equal(set->p[2].name, "c");
	assert_string_equal(set->p[3].name, "d");
	assert_true(set->p[3].max_pressure_mmhg == 42);
	/* the same name replaces in place */
	snprintf(doc, sizeof(doc), doc_fmt, "c", 30);
	assert_int_equal(
		fd_profiles_check(set, doc, strlen(doc), &lim, p, &err), 0);
	assert_int_equal(fd_profiles_add(set, p), 0);
	assert_int_equal(set->n, 4);
	assert_true(set->p[2].max_pressure_mmhg == 30);
	free(p);
}

static void test_full(void **state)
{
	struct fascia_profile_error err;
	struct fascia_profile *early = xcalloc(1, sizeof(*early));
	struct fascia_profile *p = xcalloc(1, sizeof(*p));
	char doc[512], want[64];

	(void)state;
	/* checked while there was room, added after the set filled up */
	snprintf(doc, sizeof(doc), doc_fmt, "early", 40);
	assert_int_equal(
		fd_profiles_check(set, doc, strlen(doc), &lim, early, &err), 0);
	for (int i = 0; i < FD_MAX_PROFILES; i++)
		snprintf(set->p[i].name, sizeof(set->p[i].name), "p%03d", i);
	set->n = FD_MAX_PROFILES;
	snprintf(doc, sizeof(doc), doc_fmt, "zzz", 40);
	assert_int_equal(
		fd_profiles_check(set, doc, strlen(doc), &lim, p, &err), -1);
	assert_int_equal(errno, ENOSPC);
	assert_string_equal(err.field, "");
	snprintf(want, sizeof(want), "holds %d profiles", FD_MAX_PROFILES);
	assert_non_null(strstr(err.message, want));
	assert_int_equal(fd_profiles_add(set, early), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(set->n, FD_MAX_PROFILES);
	assert_null(fd_profiles_find(set, "early"));
	/* replacing one needs no room */
	snprintf(doc, sizeof(doc), doc_fmt, "p005", 40);
	assert_int_equal(
		fd_profiles_check(set, doc, strlen(doc), &lim, p, &err), 0);
	assert_int_equal(fd_profiles_add(set, p), 0);
	assert_int_equal(set->n, FD_MAX_PROFILES);
	assert_true(fd_profiles_find(set, "p005")->max_pressure_mmhg == 40);
	free(early);
	free(p);
}

static void test_limits(void **state)
{
	struct fd_conf *c = xcalloc(1, sizeof(*c));
	struct fascia_profile_limits l;

	(void)state;
	c->max_session_s = 1800;
	c->ndev = 2;
	c->dev[0].chambers = 4;
	c->dev[0].limit_mmhg = 60;
	c->dev[1].chambers = 8;
	c->dev[1].limit_mmhg = 50;
	/* a put: the largest device */
	fd_profiles_limits(c, &l);
	assert_int_equal(l.device_chambers, 8);
	assert_true(l.device_limit_mmhg == 60);
	assert_true(l.max_session_s == 1800);
	/* a load: every device */
	fd_profiles_load_limits(c, &l);
	assert_int_equal(l.device_chambers, FASCIA_MAX_CHAMBERS);
	assert_true(l.device_limit_mmhg == FASCIA_CEILING_MMHG);
	assert_true(l.max_session_s == 1800);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_sorted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_bad_file_is_refused_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_name_other_than_the_files_is_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_nothing_valid_is_an_empty_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_refused_are_counted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_past_a_full_set_each_file_is_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_an_unreadable_directory_keeps_the_old_set, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_profile_wider_than_a_small_device_loads, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_sorted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

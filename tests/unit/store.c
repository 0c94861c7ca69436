/*
 * The store: a write lands whole under its name, replaces the old file by
 * a rename, fails with the errno of the step and leaves no temporary; the
 * callbacks come in order, on the loop's thread, from the loop; the ring
 * refuses a write when full; destroy writes what is still queued.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define FD_STORE_TEST
#include "../../daemon/store.c"

#include "../daemon_stubs.h"

/* What one callback saw. */
struct rec {
	int err;
	intptr_t arg;
	pthread_t thread;
	bool in_loop; /* called from inside event_base_loop() */
};

static char dir[64];
static struct event_base *base;
static struct event *watchdog;
static bool timed_out;
static struct fd_store *s;
static struct rec recs[64];
static int nrecs;
static bool in_loop;

static void done_cb(int err, void *arg)
{
	assert_true(nrecs < (int)(sizeof(recs) / sizeof(recs[0])));
	recs[nrecs++] = (struct rec){
		.err = err,
		.arg = (intptr_t)arg,
		.thread = pthread_self(),
		.in_loop = in_loop,
	};
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = true;
}

/* Run the loop until n callbacks have come; the watchdog only turns a
 * hung worker into a failure instead of a hung test. */
static void run_until(int n)
{
	while (nrecs < n) {
		assert_false(timed_out);
		in_loop = true;
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
		in_loop = false;
	}
	assert_int_equal(nrecs, n);
}

static int setup(void **state)
{
	struct timeval tv = {10, 0};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fascia-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_non_null(base = event_base_new());
	assert_non_null(watchdog = evtimer_new(base, watchdog_cb, NULL));
	assert_int_equal(evtimer_add(watchdog, &tv), 0);
	timed_out = false;
	nrecs = 0;
	in_loop = false;
	store_test_hold = false;
	s = fd_store_new(base);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fd_store_destroy(&s);
	store_test_hold = false;
	event_free(watchdog);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* The entries of d but . and ..; the first one's name in first. */
static int entries(const char *d, char *first, size_t size)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	int n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0)
			snprintf(first, size, "%s", de->d_name);
	}
	closedir(dp);
	return n;
}

/* dir/name's contents into buf; their length, or -1 when it is absent. */
static ssize_t slurp(const char *name, char *buf, size_t size)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	n = read(fd, buf, size);
	close(fd);
	return n;
}

static void test_write_exact(void **state)
{
	/* a NUL inside, no final newline: nothing is added or cut */
	static const char data[] = {'a', '\0', 'b', '\n', 'c'};
	char buf[64], first[256], path[128];
	struct stat st;

	(void)state;
	assert_int_equal(fd_store_write(s, dir, "f.bin", data, sizeof(data),
					done_cb, (void *)7),
			 0);
	run_until(1);
	assert_int_equal(recs[0].err, 0);
	assert_int_equal(recs[0].arg, 7);
	assert_int_equal(slurp("f.bin", buf, sizeof(buf)), sizeof(data));
	assert_memory_equal(buf, data, sizeof(data));
	assert_int_equal(entries(dir, first, sizeof(first)), 1);
	assert_string_equal(first, "f.bin");
	snprintf(path, sizeof(path), "%s/f.bin", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_replace_atomic(void **state)
{
	char buf[64], first[256], path[128];
	struct stat before, after;
	int old;

	(void)state;
	assert_int_equal(
		fd_store_write(s, dir, "p.json", "old", 3, done_cb, NULL), 0);
	run_until(1);
	snprintf(path, sizeof(path), "%s/p.json", dir);
	assert_true((old = open(path, O_RDONLY)) >= 0);
	assert_int_equal(fstat(old, &before), 0);
	assert_int_equal(fd_store_write(s, dir, "p.json", "the new one", 11,
					done_cb, NULL),
			 0);
	run_until(2);
	assert_int_equal(recs[1].err, 0);
	assert_int_equal(slurp("p.json", buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "the new one", 11);
	/* A new file took the name: the old one was never opened for
	 * writing, so a reader holding it still reads it whole. */
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_ino != before.st_ino);
	assert_int_equal(pread(old, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "old", 3);
	close(old);
	assert_int_equal(entries(dir, first, sizeof(first)), 1);
}

static void test_order(void **state)
{
	char data[16], buf[16];

	(void)state;
	for (int i = 0; i < 10; i++) {
		snprintf(data, sizeof(data), "%d", i);
		assert_int_equal(fd_store_write(s, dir, "same", data, 1,
						done_cb, (void *)(intptr_t)i),
				 0);
	}
	run_until(10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(recs[i].arg, i);
		assert_int_equal(recs[i].err, 0);
	}
	/* written in that order too: the last one is what stays */
	assert_int_equal(slurp("same", buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '9');
}

static void test_missing_dir(void **state)
{
	struct pollfd pfd;
	char missing[128];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	assert_int_equal(
		fd_store_write(s, missing, "x.json", "x", 1, done_cb, NULL), 0);
	assert_int_equal(nrecs, 0);
	/* The worker has finished (the eventfd is readable), yet only the
	 * loop runs the callback. */
	pfd = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(nrecs, 0);
	run_until(1);
	assert_int_equal(recs[0].err, ENOENT);
	assert_true(recs[0].in_loop);
	assert_true(pthread_equal(recs[0].thread, pthread_self()));
	assert_false(pthread_equal(recs[0].thread, s->thread));
}

static void test_failure_leaves_no_temporary(void **state)
{
	char sub[128], first[256];

	(void)state;
	/* a directory where the file should go: the rename fails after the
	 * temporary was written */
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(fd_store_write(s, dir, "sub", "x", 1, done_cb, NULL),
			 0);
	run_until(1);
	assert_int_equal(recs[0].err, EISDIR);
	assert_int_equal(entries(dir, first, sizeof(first)), 1);
	assert_string_equal(first, "sub");
}

static void test_full_until_the_loop_runs(void **state)
{
	char name[32];

	(void)state;
	/* A job keeps its slot until its callback has run: with the loop
	 * not running, the ring fills however fast the worker is. */
	for (int i = 0; i < STORE_QUEUE; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(fd_store_write(s, dir, name, "x", 1, done_cb,
						(void *)(intptr_t)i),
				 0);
	}
	errno = 0;
	assert_int_equal(
		fd_store_write(s, dir, "late", "x", 1, done_cb, (void *)99),
		-1);
	assert_int_equal(errno, EAGAIN);
	run_until(STORE_QUEUE);
	assert_int_equal(
		fd_store_write(s, dir, "late", "x", 1, done_cb, (void *)99), 0);
	run_until(STORE_QUEUE + 1);
	for (int i = 0; i < STORE_QUEUE; i++)
		assert_int_equal(recs[i].arg, i);
	/* the refused write never called back */
	assert_int_equal(recs[STORE_QUEUE].arg, 99);
}

static void test_destroy_writes_pending(void **state)
{
	struct fd_store *none = NULL;
	char name[32], buf[32], first[256];

	(void)state;
	/* under the lock: the worker reads it */
	pthread_mutex_lock(&s->lock);
	store_test_hold = true;
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < STORE_QUEUE; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(buf, sizeof(buf), "data %d", i);
		assert_int_equal(fd_store_write(s, dir, name, buf, strlen(buf),
						done_cb, (void *)(intptr_t)i),
				 0);
	}
	assert_int_equal(fd_store_write(s, dir, "late", "x", 1, done_cb, NULL),
			 -1);
	assert_int_equal(errno, EAGAIN);
	/* nothing written yet */
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(nrecs, 0);
	assert_int_equal(entries(dir, first, sizeof(first)), 0);

	fd_store_destroy(&s);
	assert_null(s);
	assert_int_equal(nrecs, STORE_QUEUE);
	for (int i = 0; i < STORE_QUEUE; i++) {
		char want[32];

		snprintf(name, sizeof(name), "f%d", i);
		snprintf(want, sizeof(want), "data %d", i);
		assert_int_equal(recs[i].arg, i);
		assert_int_equal(recs[i].err, 0);
		assert_true(pthread_equal(recs[i].thread, pthread_self()));
		assert_int_equal(slurp(name, buf, sizeof(buf)), strlen(want));
		assert_memory_equal(buf, want, strlen(want));
	}
	fd_store_destroy(&none);
	assert_null(none);
}

/* A callback may queue the next write. */
static void chain_cb(int err, void *arg)
{
	done_cb(err, arg);
	assert_int_equal(
		fd_store_write(s, dir, "second", "2", 1, done_cb, (void *)2),
		0);
}

static void test_write_from_callback(void **state)
{
	char buf[4];

	(void)state;
	assert_int_equal(
		fd_store_write(s, dir, "first", "1", 1, chain_cb, (void *)1),
		0);
	run_until(2);
	assert_int_equal(recs[0].arg, 1);
	assert_int_equal(recs[1].arg, 2);
	assert_int_equal(recs[1].err, 0);
	assert_int_equal(slurp("second", buf, sizeof(buf)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_exact, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replace_atomic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_failure_leaves_no_temporary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_until_the_loop_runs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_writes_pending,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_from_callback, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

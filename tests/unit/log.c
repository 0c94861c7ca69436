/*
 * daemon/log.c: lines are written at once without the writer thread, and
 * queued with it; a queued line comes out whole and in order, log_close()
 * writes every queued line before it returns, a full ring drops lines and
 * says how many where they were lost, log_warn keeps the caller's errno,
 * and fatal writes while the writer is stuck.
 *
 * The lines go to a memory stream (log_out).  To hold the writer back, a
 * test locks that stream (flockfile): the writer then waits in its
 * fprintf with the line it took, and every later line stays in the ring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemon/log.c"

#define NTHREADS 8
#define NLINES 1000 /* per thread: more than the ring, so some may drop */

static char *out_buf;
static size_t out_len;

static int setup(void **state)
{
	(void)state;
	log_init(false, true);
	log_out = open_memstream(&out_buf, &out_len);
	return log_out ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	log_close();
	fclose(log_out);
	log_out = NULL;
	free(out_buf);
	out_buf = NULL;
	return 0;
}

/* What has been written so far (the stream's buffer, made current). */
static const char *written(void)
{
	fflush(log_out);
	return out_buf;
}

static unsigned queued(void)
{
	unsigned n;

	pthread_mutex_lock(&log_mtx);
	n = log_tail - log_head;
	pthread_mutex_unlock(&log_mtx);
	return n;
}

/* Wait, in short steps and for at most ~10 s, until the ring holds n. */
static void wait_queued(unsigned n)
{
	struct timespec ms = {0, 1000000};

	for (int i = 0; i < 10000 && queued() != n; i++)
		nanosleep(&ms, NULL);
	assert_int_equal(queued(), n);
}

/* Start the writer and hand it one line it cannot write: from here on,
 * until funlockfile(log_out), every line stays in the ring. */
static void start_held(void)
{
	log_start();
	flockfile(log_out);
	log_info("held");
	wait_queued(0);
}

/* The number of lines in s. */
static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void lines_are_written_at_once_without_the_writer(void **state)
{
	(void)state;
	log_info("before %d", 1);
	assert_string_equal(written(), "fasciad: before 1\n");
	log_start();
	log_close();
	log_warnx("after %s", "close");
	assert_string_equal(written(),
			    "fasciad: before 1\nfasciad: after close\n");
	log_close(); /* twice, and without log_start, is harmless */
	log_init(false, false);
	log_debug("not shown");
	log_init(false, true);
	log_debug("shown");
	assert_string_equal(
		written(),
		"fasciad: before 1\nfasciad: after close\nfasciad: shown\n");
}

static void *close_log(void *arg)
{
	(void)arg;
	log_close();
	return NULL;
}

static unsigned long dropped(void)
{
	unsigned long n;

	pthread_mutex_lock(&log_mtx);
	n = log_dropped;
	pthread_mutex_unlock(&log_mtx);
	return n;
}

static bool stopping(void)
{
	bool s;

	pthread_mutex_lock(&log_mtx);
	s = log_stopping;
	pthread_mutex_unlock(&log_mtx);
	return s;
}

static void close_writes_every_queued_line_before_it_returns(void **state)
{
	struct timespec ms = {0, 1000000};
	pthread_t closer;
	char want[64], *p;

	(void)state;
	start_held();
	for (int i = 0; i < 200; i++)
		log_info("line %d", i);
	assert_int_equal(queued(), 200);
	/* log_close() is asked while all 200 are still in the ring */
	assert_int_equal(pthread_create(&closer, NULL, close_log, NULL), 0);
	for (int i = 0; i < 10000 && !stopping(); i++)
		nanosleep(&ms, NULL);
	assert_true(stopping());
	assert_int_equal(queued(), 200);
	funlockfile(log_out);
	assert_int_equal(pthread_join(closer, NULL), 0);
	/* once it has returned, everything is out, in order */
	p = (char *)written();
	assert_int_equal(count_lines(p), 201);
	assert_memory_equal(p, "fasciad: held\n", 14);
	p += 14;
	for (int i = 0; i < 200; i++) {
		snprintf(want, sizeof(want), "fasciad: line %d\n", i);
		assert_memory_equal(p, want, strlen(want));
		p += strlen(want);
	}
	assert_int_equal(*p, '\0');
	/* and the callers write directly again */
	log_info("direct");
	assert_non_null(strstr(written(), "fasciad: direct\n"));
}

static void a_full_ring_drops_and_says_how_many_where(void **state)
{
	char want[64], *p;

	(void)state;
	start_held();
	for (int i = 0; i < LOG_RING; i++)
		log_info("q%d", i);
	assert_int_equal(queued(), LOG_RING);
	for (int i = 0; i < 7; i++)
		log_warnx("lost %d", i); /* returns at once, dropped */
	assert_int_equal(queued(), LOG_RING);
	assert_int_equal(dropped(), 7);
	funlockfile(log_out);
	wait_queued(0);
	log_info("after");
	log_close();
	assert_int_equal(dropped(), 0);
	p = (char *)written();
	assert_memory_equal(p, "fasciad: held\n", 14);
	p += 14;
	for (int i = 0; i < LOG_RING; i++) {
		snprintf(want, sizeof(want), "fasciad: q%d\n", i);
		assert_memory_equal(p, want, strlen(want));
		p += strlen(want);
	}
	assert_string_equal(p, "fasciad: 7 log messages dropped (the log "
			       "could not keep up)\n"
			       "fasciad: after\n");
}

static void a_loss_with_nothing_after_it_is_still_reported(void **state)
{
	(void)state;
	start_held();
	for (int i = 0; i < LOG_RING + 3; i++)
		log_info("q%d", i);
	funlockfile(log_out);
	log_close();
	assert_int_equal(count_lines(written()), 1 + LOG_RING + 1);
	assert_non_null(strstr(out_buf, "fasciad: q255\nfasciad: 3 log "
					"messages dropped (the log could not "
					"keep up)\n"));
}

static pthread_barrier_t go;

static void *log_lines(void *arg)
{
	int t = (int)(intptr_t)arg;

	pthread_barrier_wait(&go);
	for (int i = 0; i < NLINES; i++)
		log_info("t%d n%d %0400d end", t, i, i);
	return NULL;
}

/* Check one line of the threads' output; the number of lines it stands
 * for (a count of dropped ones, or 1). */
static long check_line(const char *line, size_t len, int *next)
{
	char body[600], want[600], tail[8];
	unsigned long lost;
	int t, n;

	assert_true(len < sizeof(body));
	memcpy(body, line, len);
	body[len] = '\0';
	if (sscanf(body,
		   "fasciad: %lu log messages dropped (the log could not "
		   "keep up%1[)]",
		   &lost, tail) == 2)
		return (long)lost;
	assert_int_equal(sscanf(body, "fasciad: t%d n%d ", &t, &n), 2);
	assert_true(t >= 0 && t < NTHREADS);
	snprintf(want, sizeof(want), "fasciad: t%d n%d %0400d end", t, n, n);
	assert_string_equal(body, want); /* whole, nothing of another */
	assert_true(n >= next[t]);       /* in order, maybe with a gap */
	next[t] = n + 1;
	return 1;
}

static void lines_from_many_threads_come_out_whole_and_in_order(void **state)
{
	pthread_t th[NTHREADS];
	int next[NTHREADS] = {0};
	long accounted = 0;
	const char *p, *nl;

	(void)state;
	log_start();
	pthread_barrier_init(&go, NULL, NTHREADS);
	for (int t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, log_lines,
						(void *)(intptr_t)t),
				 0);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&go);
	log_close();
	for (p = written(); *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		accounted += check_line(p, (size_t)(nl - p), next);
	}
	/* every line is either written or counted as dropped */
	assert_int_equal(accounted, (long)NTHREADS * NLINES);
}

static void log_warn_keeps_the_callers_errno(void **state)
{
	FILE *mem = log_out;
	char big[1000];
	const char *s;

	(void)state;
	errno = ENOENT;
	log_warn("open %s", "x");
	assert_int_equal(errno, ENOENT);
	assert_string_equal(written(),
			    "fasciad: open x: No such file or directory\n");
	/* nor does a write that fails */
	log_out = fopen("/dev/full", "w");
	assert_non_null(log_out);
	setvbuf(log_out, NULL, _IONBF, 0);
	errno = ENOENT;
	log_warn("full");
	assert_int_equal(errno, ENOENT);
	assert_true(ferror(log_out));
	fclose(log_out);
	log_out = mem;
	log_start();
	errno = EACCES;
	log_warn("bind");
	assert_int_equal(errno, EACCES);
	/* a message too long for a line keeps its error, cut short */
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errno = EPIPE;
	log_warn("%s", big);
	log_close();
	s = strstr(written(), "fasciad: bind: Permission denied\n");
	assert_non_null(s);
	s = strchr(s, '\n') + 1;
	assert_int_equal(strlen(s), strlen("fasciad: \n") + LOG_LINE - 1);
	assert_memory_equal(s + strlen(s) - strlen(": Broken pipe\n"),
			    ": Broken pipe\n", strlen(": Broken pipe\n"));
}

static void fatal_writes_while_the_writer_is_stuck(void **state)
{
	FILE *f = tmpfile();
	char buf[512];
	size_t n;
	pid_t pid;
	int status;

	(void)state;
	assert_non_null(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* no cmocka here: a failure must not run the other tests */
		fclose(log_out);
		free(out_buf);
		log_out = f;
		log_start();
		flockfile(f);
		log_info("held"); /* the writer takes it and waits on f */
		for (int i = 0; i < 10000 && queued() != 0; i++)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		if (queued() != 0)
			_exit(2);
		log_info("queued");
		errno = EIO;
		fatal("giving up");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, "fasciad: queued\n"
				 "fasciad: giving up: Input/output error\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			lines_are_written_at_once_without_the_writer, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			close_writes_every_queued_line_before_it_returns, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_full_ring_drops_and_says_how_many_where, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			a_loss_with_nothing_after_it_is_still_reported, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			lines_from_many_threads_come_out_whole_and_in_order,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			log_warn_keeps_the_callers_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(
			fatal_writes_while_the_writer_is_stuck, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The store: the daemon's disk writes, off the libevent loop.  An fsync
 * can take as long as the disk wants, and a libevent callback must never
 * block, so one worker thread takes the writes in the order they were
 * asked for and the loop hears of each one through an eventfd.
 *
 * A write is a job in a ring of STORE_QUEUE slots from fd_store_write()
 * until its callback has run on the loop: the ring bounds both the work
 * waiting for the disk and the answers waiting for the loop.  The worker
 * touches nothing but its job and the ring, under the lock; it neither
 * allocates nor logs, and hands every failure back as an errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "fasciad.h"

#define STORE_QUEUE 16

struct store_job {
	char *dir;  /* fsynced after the rename */
	char *path; /* dir/name */
	char *tmp;  /* path.tmp-XXXXXX, for mkstemp() */
	void *data;
	size_t len;
	fd_store_done done;
	void *arg;
	int err; /* the worker's result */
};

struct fd_store {
	int wake_fd; /* eventfd: the worker finished a job */
	struct event *wake_ev;
	pthread_t thread;

	/* Under lock.  ring[head] is the oldest job; of the n jobs from
	 * there, the first nwritten are done and wait for the loop. */
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stopping */
	struct store_job *ring[STORE_QUEUE];
	int head, n, nwritten;
	bool stopping;
};

#ifdef FD_STORE_TEST
/* Tests only: the worker takes no job until fd_store_destroy() begins, so
 * that a test can fill the ring, and destroy a store, with every job
 * still unwritten. */
static bool store_test_hold;
#endif

static int write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, s, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * The job's file as a state file: the data goes to a temporary name in the
 * same directory (rename() is atomic only within one file system) and is
 * fsynced before the rename, so the name holds the old bytes or the new,
 * never part of them; the directory's fsync makes the rename itself
 * survive a crash.  0, or the errno of the step that failed.
 */
static int write_file(struct store_job *j)
{
	int fd, e;

	if ((fd = mkstemp(j->tmp)) < 0)
		return errno;
	if (fchmod(fd, 0644) < 0 || write_all(fd, j->data, j->len) < 0 ||
	    fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlink(j->tmp);
		return e;
	}
	if (close(fd) < 0 || rename(j->tmp, j->path) < 0) {
		e = errno;
		unlink(j->tmp);
		return e;
	}
	if ((fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno;
	e = fsync(fd) < 0 ? errno : 0;
	close(fd);
	return e;
}

static void *worker(void *arg)
{
	struct fd_store *s = arg;
	struct store_job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->n == s->nwritten && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
#ifdef FD_STORE_TEST
		while (store_test_hold && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
#endif
		/* Stopping still writes what is queued: a caller was told
		 * its write was taken. */
		if (s->n == s->nwritten)
			break;
		j = s->ring[(s->head + s->nwritten) % STORE_QUEUE];
		pthread_mutex_unlock(&s->lock);
		j->err = write_file(j);
		pthread_mutex_lock(&s->lock);
		s->nwritten++;
		/* Only a counter at its maximum refuses this, and then the
		 * loop has a wake-up pending anyway. */
		(void)!write(s->wake_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void free_job(struct store_job *j)
{
	free(j->dir);
	free(j->path);
	free(j->tmp);
	free(j->data);
	free(j);
}

/* Run the callbacks of every finished job, oldest first.  They run with
 * the lock released, so that one may queue another write. */
static void deliver(struct fd_store *s)
{
	struct store_job *done[STORE_QUEUE];
	int k;

	pthread_mutex_lock(&s->lock);
	for (k = 0; k < s->nwritten; k++)
		done[k] = s->ring[(s->head + k) % STORE_QUEUE];
	s->head = (s->head + k) % STORE_QUEUE;
	s->n -= k;
	s->nwritten = 0;
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < k; i++) {
		done[i]->done(done[i]->err, done[i]->arg);
		free_job(done[i]);
	}
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	/* Read before taking the jobs: a job finished after the read writes
	 * the eventfd again, so none waits for a later wake-up. */
	(void)!read(fd, &n, sizeof(n));
	deliver(arg);
}

struct fd_store *fd_store_new(struct event_base *base)
{
	struct fd_store *s = xcalloc(1, sizeof(*s));
	sigset_t all, old;
	int err;

	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	if ((s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("store: eventfd");
	s->wake_ev =
		event_new(base, s->wake_fd, EV_READ | EV_PERSIST, wake_cb, s);
	if (s->wake_ev == NULL || event_add(s->wake_ev, NULL) == -1)
		fatalx("store: cannot watch its eventfd");
	/* The worker inherits a full mask: signals go to the loop's thread,
	 * and never interrupt a write. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&s->thread, NULL, worker, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		fatal("store: cannot start its thread");
	}
	return s;
}

void fd_store_destroy(struct fd_store **sp)
{
	struct fd_store *s = *sp;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	deliver(s);
	event_free(s->wake_ev);
	close(s->wake_fd);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s);
	*sp = NULL;
}

/* a, b and c end to end, allocated. */
static char *concat(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *r = xcalloc(1, la + lb + lc + 1);

	memcpy(r, a, la);
	memcpy(r + la, b, lb);
	memcpy(r + la + lb, c, lc);
	return r;
}

int fd_store_write(struct fd_store *s, const char *dir, const char *name,
		   const void *data, size_t len, fd_store_done done, void *arg)
{
	struct store_job *j = xcalloc(1, sizeof(*j));

	j->dir = concat(dir, "", "");
	j->path = concat(dir, "/", name);
	j->tmp = concat(j->path, ".tmp-XXXXXX", "");
	j->data = xcalloc(1, len ? len : 1);
	if (len > 0)
		memcpy(j->data, data, len);
	j->len = len;
	j->done = done;
	j->arg = arg;

	pthread_mutex_lock(&s->lock);
	/* While stopping (a callback run by fd_store_destroy()) the worker
	 * is gone: no room either. */
	if (s->n == STORE_QUEUE || s->stopping) {
		pthread_mutex_unlock(&s->lock);
		free_job(j);
		errno = EAGAIN;
		return -1;
	}
	s->ring[(s->head + s->n) % STORE_QUEUE] = j;
	s->n++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

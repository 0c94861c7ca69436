/*
 * history, session.get and log: the treatment record's queries
 * (docs/records.md, "The commands"), answered off the loop.  This file is
 * the reader thread and its queue; qargs.c checks the arguments and
 * qread.c runs the queries (query.h).
 *
 * fd_query_submit() checks a request's arguments at once, on the loop
 * (a pure function of the request: a bad one is answered there and then),
 * and queues the query for a reader thread with a read-only connection of
 * its own, so that a slow query delays its own answer only.  A job keeps
 * its slot in a ring of QUERY_QUEUE from submit until its done() has run
 * on the loop (store.c's pattern): a full ring is `busy`.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "query.h"

#define QUERY_QUEUE 16

struct fd_query {
	struct reader r;
	int wake_fd; /* eventfd: the reader answered a job */
	struct event *wake_ev;
	pthread_t thread;

	/* Under lock.  ring[head] is the oldest job; of the n from there,
	 * the first ndone are answered and wait for the loop. */
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct qjob *ring[QUERY_QUEUE];
	int head, n, ndone;
	bool stopping;
};

/* ---- the thread ---- */

static void *reader_main(void *arg)
{
	struct fd_query *q = arg;
	struct qjob *job;
	uint64_t one = 1;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->n == q->ndone && !q->stopping)
			pthread_cond_wait(&q->work, &q->lock);
		/* stopping still answers what is queued: done() was
		 * promised */
		if (q->n == q->ndone)
			break;
		job = q->ring[(q->head + q->ndone) % QUERY_QUEUE];
		pthread_mutex_unlock(&q->lock);
		qread_run(&q->r, job);
		pthread_mutex_lock(&q->lock);
		q->ndone++;
		(void)!write(q->wake_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&q->lock);
	qread_close(&q->r);
	return NULL;
}

/* Run the done() of every answered job, oldest first, with the lock
 * released (one may submit the next query). */
static void reader_deliver(struct fd_query *q)
{
	struct qjob *done[QUERY_QUEUE];
	int k;

	pthread_mutex_lock(&q->lock);
	for (k = 0; k < q->ndone; k++)
		done[k] = q->ring[(q->head + k) % QUERY_QUEUE];
	q->head = (q->head + k) % QUERY_QUEUE;
	q->n -= k;
	q->ndone = 0;
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; i < k; i++) {
		struct qjob *j = done[i];

		if (j->result != NULL)
			j->done(j->result, NULL, "", "", j->arg);
		else
			j->done(NULL, j->code, j->field, j->msg, j->arg);
		free(j);
	}
}

static void reader_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	/* read before taking the jobs: one answered after the read writes
	 * the eventfd again */
	(void)!read(fd, &n, sizeof(n));
	reader_deliver(arg);
}

struct fd_query *fd_query_new(struct event_base *base, const char *path)
{
	struct fd_query *q = xcalloc(1, sizeof(*q));
	size_t len = strlen(path);
	sigset_t all, old;
	int err;

	q->r.path = xcalloc(1, len + 1);
	memcpy(q->r.path, path, len);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	if ((q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("query: eventfd");
	q->wake_ev = event_new(base, q->wake_fd, EV_READ | EV_PERSIST,
			       reader_wake_cb, q);
	if (q->wake_ev == NULL || event_add(q->wake_ev, NULL) == -1)
		fatalx("query: cannot watch its eventfd");
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&q->thread, NULL, reader_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		fatal("query: cannot start its thread");
	}
	return q;
}

int fd_query_submit(struct fd_query *q, const char *cmd, json_t *req,
		    fd_query_done done, void *arg, json_t **reply)
{
	struct qjob *job = xcalloc(1, sizeof(*job));

	if (qargs_parse(cmd, req, &job->a, reply) < 0) {
		free(job);
		return -1;
	}
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&q->lock);
	/* while stopping (a done() run by fd_query_destroy()) the reader
	 * is gone: no room either */
	if (q->n == QUERY_QUEUE || q->stopping) {
		pthread_mutex_unlock(&q->lock);
		free(job);
		*reply = fd_server_error(json_object_get(req, "id"), "busy",
					 NULL,
					 "%d queries of the journal are "
					 "waiting already; try again",
					 QUERY_QUEUE);
		return -1;
	}
	q->ring[(q->head + q->n) % QUERY_QUEUE] = job;
	q->n++;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void fd_query_destroy(struct fd_query **qp)
{
	struct fd_query *q = *qp;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	reader_deliver(q);
	event_free(q->wake_ev);
	close(q->wake_fd);
	pthread_cond_destroy(&q->work);
	pthread_mutex_destroy(&q->lock);
	free(q->r.path);
	free(q);
	*qp = NULL;
}

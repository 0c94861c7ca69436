/*
 * libfascia's client side of fasciad's ZeroMQ protocol (docs/protocol.md):
 * a DEALER for requests, each waited for with a bound, and a SUB that
 * tracks every device's "seq" to count the messages it missed.  Either
 * may be a CURVE client, with the keys security.c loads.
 *
 * A DEALER keeps what it sent when a call times out, and the daemon may
 * still answer it later; that late reply then sits in front of the next
 * one.  Every request therefore carries an id of its own, and a reply
 * whose id is not the one awaited is read and thrown away.
 *
 * Except one with "id": null: the daemon's answer to a request it could
 * not parse, so could not read the id of.  It comes back over this
 * socket, so it is the answer to one of this client's requests: to the
 * call in progress when no earlier call is still unanswered, else
 * (counted as the oldest such call's) thrown away too.  A wrong guess
 * then costs a timeout, never another call's answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zmq.h>

#include <fascia/client.h>

#include "security.h"

/* Largest reply or published message accepted: a profile document is at
 * most 256 KiB, a status of every device a few KiB each. */
#define CLIENT_MSG_MAX (16 * 1024 * 1024)
/* Devices whose seq a monitor follows; more (a hostile publisher) are
 * simply not tracked. */
#define MONITOR_DEVICES_MAX 4096
#define MONITOR_NAME_MAX 128

struct fascia_client {
	void *ctx;
	void *sock;
	int timeout_ms;
	json_int_t next_id;
	/* calls that timed out and whose reply has not come since */
	unsigned long unanswered;
	/* CURVE: the socket's handshake events, and whether the daemon
	 * refused the certificate (a timeout is then EACCES) */
	void *handshakes;
	bool refused;
};

struct seq_track {
	char device[MONITOR_NAME_MAX];
	json_int_t last;
};

struct fascia_monitor {
	void *ctx;
	void *sock;
	struct seq_track *tracks;
	size_t ntracks;
	size_t tracks_cap;
	uint64_t gaps;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Close a socket and terminate its context, keeping errno. */
static void close_zmq(void **sock, void **ctx)
{
	int saved = errno;

	if (*sock != NULL)
		zmq_close(*sock);
	if (*ctx != NULL)
		zmq_ctx_term(*ctx);
	*sock = NULL;
	*ctx = NULL;
	errno = saved;
}

/* A fresh context and a socket of type with linger 0 and a size bound. */
static int open_zmq(int type, void **sock, void **ctx)
{
	int linger = 0;
	int64_t max = CLIENT_MSG_MAX;

	*sock = NULL;
	if ((*ctx = zmq_ctx_new()) == NULL)
		return -1;
	if ((*sock = zmq_socket(*ctx, type)) == NULL ||
	    zmq_setsockopt(*sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(*sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0) {
		close_zmq(sock, ctx);
		return -1;
	}
	return 0;
}

static void client_close(struct fascia_client *c)
{
	int saved = errno;

	if (c->handshakes != NULL)
		zmq_close(c->handshakes);
	c->handshakes = NULL;
	errno = saved;
	close_zmq(&c->sock, &c->ctx);
}

struct fascia_client *fascia_client_new(const char *endpoint, int timeout_ms)
{
	return fascia_client_new_secure(endpoint, timeout_ms, NULL);
}

struct fascia_client *
fascia_client_new_secure(const char *endpoint, int timeout_ms,
			 const struct fascia_security *sec)
{
	struct fascia_client *c;
	int one = 1;

	if (endpoint == NULL || timeout_ms < 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->timeout_ms = timeout_ms;
	c->next_id = 1;
	if (open_zmq(ZMQ_DEALER, &c->sock, &c->ctx) < 0)
		goto fail;
	/*
	 * Queue a request only on a completed connection, and give up after
	 * the timeout: a command must not sit in a queue and reach a daemon
	 * that comes up minutes later.
	 */
	if (zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &timeout_ms,
			   sizeof(timeout_ms)) < 0 ||
	    zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) < 0 ||
	    fascia_security_apply(c->sock, sec) < 0)
		goto fail;
	if (fascia_security_on(sec) &&
	    (c->handshakes = fascia_security_watch(c->ctx, c->sock)) == NULL)
		goto fail;
	if (zmq_connect(c->sock, endpoint) < 0) {
		/* one errno for "not an endpoint", whatever part is wrong */
		if (errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO)
			errno = EINVAL;
		goto fail;
	}
	return c;
fail:
	client_close(c);
	free(c);
	return NULL;
}

void fascia_client_destroy(struct fascia_client **c)
{
	if (c == NULL || *c == NULL)
		return;
	client_close(*c);
	free(*c);
	*c = NULL;
}

/*
 * Receive one whole message; its last frame into *payload (malloc'd,
 * NUL-terminated, *len bytes).  *nframes counts the frames.  Returns 0,
 * or -1 with errno (EAGAIN when nothing is there).
 */
static int recv_message(void *sock, char **payload, size_t *len, int *nframes)
{
	zmq_msg_t m;
	int more = 1;
	size_t sz;

	*payload = NULL;
	*nframes = 0;
	while (more) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, *nframes ? 0 : ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			free(*payload);
			*payload = NULL;
			return -1;
		}
		(*nframes)++;
		free(*payload);
		*len = zmq_msg_size(&m);
		if ((*payload = malloc(*len + 1)) != NULL) {
			memcpy(*payload, zmq_msg_data(&m), *len);
			(*payload)[*len] = '\0';
		}
		sz = sizeof(more);
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) < 0)
			more = 0;
		zmq_msg_close(&m);
		if (*payload == NULL) {
			/* out of memory: drop the rest of this message */
			while (more && zmq_msg_init(&m) == 0 &&
			       zmq_msg_recv(&m, sock, 0) >= 0) {
				zmq_msg_close(&m);
				sz = sizeof(more);
				if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more,
						   &sz) < 0)
					more = 0;
			}
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

/*
 * Whether a reply with id got is the answer to the call awaiting want; a
 * reply that is not counts against the calls left unanswered.
 */
static bool is_answer(struct fascia_client *c, const json_t *got,
		      const json_t *want)
{
	if (json_equal(got, want))
		return true;
	if (c->unanswered > 0) {
		c->unanswered--;
		return false;
	}
	/* nothing earlier is outstanding: a reply to a request the daemon
	 * could not parse is this call's */
	return json_is_null(got) || got == NULL;
}

/*
 * Wait until the deadline for the reply whose id equals id (or the answer
 * to a request the daemon could not parse, see is_answer()).  Returns the
 * reply or NULL with errno ETIMEDOUT, EPROTO, or libzmq's.
 */
static json_t *await_reply(struct fascia_client *c, const json_t *id,
			   int64_t deadline)
{
	zmq_pollitem_t item = {.socket = c->sock, .events = ZMQ_POLLIN};
	char *text;
	size_t len;
	int nframes, rc;
	json_t *reply;

	for (;;) {
		int64_t left = deadline - now_ms();

		if (left < 0)
			left = 0;
		if ((rc = zmq_poll(&item, 1, (long)left)) < 0)
			return NULL;
		if (rc == 0) {
			errno = ETIMEDOUT;
			return NULL;
		}
		if (recv_message(c->sock, &text, &len, &nframes) < 0) {
			if (errno == EAGAIN)
				continue;
			return NULL;
		}
		reply = nframes <= 2 ? json_loadb(text, len, 0, NULL) : NULL;
		free(text);
		if (!json_is_object(reply) ||
		    !json_is_boolean(json_object_get(reply, "ok"))) {
			json_decref(reply);
			errno = EPROTO;
			return NULL;
		}
		if (is_answer(c, json_object_get(reply, "id"), id))
			return reply;
		json_decref(reply); /* a late reply to an earlier call */
	}
}

/* Send the request as [empty delimiter][payload]. */
static int send_request(struct fascia_client *c, const char *text)
{
	if (zmq_send(c->sock, "", 0, ZMQ_SNDMORE) < 0 ||
	    zmq_send(c->sock, text, strlen(text), 0) < 0) {
		if (errno == EAGAIN)
			errno = ETIMEDOUT;
		return -1;
	}
	return 0;
}

json_t *fascia_client_call(struct fascia_client *c, json_t *request)
{
	int64_t deadline;
	json_t *req, *reply = NULL;
	char *text;
	int saved;

	if (c == NULL || !json_is_object(request)) {
		errno = EINVAL;
		return NULL;
	}
	deadline = now_ms() + c->timeout_ms;
	if ((req = json_copy(request)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (json_object_get(req, "v") == NULL)
		json_object_set_new(req, "v", json_integer(1));
	if (json_object_get(req, "id") == NULL)
		json_object_set_new(req, "id", json_integer(c->next_id++));
	if ((text = json_dumps(req, JSON_COMPACT)) == NULL) {
		json_decref(req);
		errno = ENOMEM;
		return NULL;
	}
	if (send_request(c, text) == 0) {
		reply = await_reply(c, json_object_get(req, "id"), deadline);
		/* unless what came was not the protocol's, its reply may
		 * still come */
		if (reply == NULL && errno != EPROTO)
			c->unanswered++;
	}
	if (reply == NULL && errno == ETIMEDOUT && c->handshakes != NULL &&
	    fascia_security_refused(c->handshakes, &c->refused))
		errno = EACCES;
	saved = errno;
	free(text);
	json_decref(req);
	errno = saved;
	return reply;
}

json_t *fascia_client_call_text(struct fascia_client *c, const char *text)
{
	json_t *req, *reply;
	int saved;

	if (text == NULL ||
	    (req = json_loads(text, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (!json_is_object(req)) {
		json_decref(req);
		errno = EINVAL;
		return NULL;
	}
	reply = fascia_client_call(c, req);
	saved = errno;
	json_decref(req);
	errno = saved;
	return reply;
}

struct fascia_monitor *fascia_monitor_new(const char *endpoint,
					  const char *prefix)
{
	return fascia_monitor_new_secure(endpoint, prefix, NULL);
}

struct fascia_monitor *
fascia_monitor_new_secure(const char *endpoint, const char *prefix,
			  const struct fascia_security *sec)
{
	struct fascia_monitor *m;

	if (endpoint == NULL || prefix == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if (open_zmq(ZMQ_SUB, &m->sock, &m->ctx) < 0 ||
	    zmq_setsockopt(m->sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix)) <
		    0 ||
	    fascia_security_apply(m->sock, sec) < 0 ||
	    zmq_connect(m->sock, endpoint) < 0) {
		if (errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO)
			errno = EINVAL;
		close_zmq(&m->sock, &m->ctx);
		free(m);
		return NULL;
	}
	return m;
}

void fascia_monitor_destroy(struct fascia_monitor **m)
{
	if (m == NULL || *m == NULL)
		return;
	close_zmq(&(*m)->sock, &(*m)->ctx);
	free((*m)->tracks);
	free(*m);
	*m = NULL;
}

/* Messages missed between last and seq: a restart (seq not above last)
 * and a repeat miss nothing. */
static uint64_t seq_missed(json_int_t last, json_int_t seq)
{
	if (seq <= last || seq - last <= 1)
		return 0;
	return (uint64_t)(seq - last - 1);
}

static struct seq_track *find_track(struct fascia_monitor *m,
				    const char *device)
{
	struct seq_track *t;
	size_t cap;

	for (size_t i = 0; i < m->ntracks; i++)
		if (strcmp(m->tracks[i].device, device) == 0)
			return &m->tracks[i];
	if (strlen(device) >= MONITOR_NAME_MAX ||
	    m->ntracks >= MONITOR_DEVICES_MAX)
		return NULL;
	if (m->ntracks == m->tracks_cap) {
		cap = m->tracks_cap ? m->tracks_cap * 2 : 8;
		if ((t = realloc(m->tracks, cap * sizeof(*t))) == NULL)
			return NULL;
		m->tracks = t;
		m->tracks_cap = cap;
	}
	t = &m->tracks[m->ntracks++];
	snprintf(t->device, sizeof(t->device), "%s", device);
	t->last = -1; /* nothing seen yet */
	return t;
}

/* Count the gap before seq on device's topics (the first one is none). */
static void note_seq(struct fascia_monitor *m, const char *device,
		     json_int_t seq)
{
	struct seq_track *t;

	if ((t = find_track(m, device)) == NULL)
		return;
	if (t->last >= 0)
		m->gaps += seq_missed(t->last, seq);
	t->last = seq;
}

static void note_message(struct fascia_monitor *m, const json_t *msg)
{
	const json_t *dev = json_object_get(msg, "device");
	const json_t *seq = json_object_get(msg, "seq");

	if (json_is_string(dev) && json_is_integer(seq) &&
	    json_integer_value(seq) >= 0)
		note_seq(m, json_string_value(dev), json_integer_value(seq));
}

/* The received frames as topic and object; -1 with EPROTO otherwise. */
static int take_message(struct fascia_monitor *m, char *topic, size_t topiclen,
			json_t **msg)
{
	zmq_msg_t f;
	int more = 0, nframes = 0;
	size_t sz = sizeof(more), len;
	char *text;

	zmq_msg_init(&f);
	if (zmq_msg_recv(&f, m->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&f);
		return -1;
	}
	if (topic != NULL && topiclen > 0) {
		len = zmq_msg_size(&f);
		if (len >= topiclen)
			len = topiclen - 1;
		memcpy(topic, zmq_msg_data(&f), len);
		topic[len] = '\0';
	}
	if (zmq_getsockopt(m->sock, ZMQ_RCVMORE, &more, &sz) < 0)
		more = 0;
	zmq_msg_close(&f);
	if (!more) {
		errno = EPROTO;
		return -1;
	}
	if (recv_message(m->sock, &text, &len, &nframes) < 0)
		return -1;
	*msg = nframes == 1 ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	if (!json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		errno = EPROTO;
		return -1;
	}
	note_message(m, *msg);
	return 1;
}

int fascia_monitor_next(struct fascia_monitor *m, int timeout_ms, char *topic,
			size_t topiclen, json_t **msg)
{
	zmq_pollitem_t item;
	int64_t deadline;
	int rc;

	if (m == NULL || msg == NULL) {
		errno = EINVAL;
		return -1;
	}
	*msg = NULL;
	item = (zmq_pollitem_t){.socket = m->sock, .events = ZMQ_POLLIN};
	deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		long left = -1;

		if (timeout_ms >= 0) {
			int64_t d = deadline - now_ms();
			left = d > 0 ? (long)d : 0;
		}
		if ((rc = zmq_poll(&item, 1, left)) < 0)
			return -1;
		if (rc == 0)
			return 0;
		rc = take_message(m, topic, topiclen, msg);
		if (rc < 0 && errno == EAGAIN)
			continue; /* the poll's event had gone by */
		return rc;
	}
}

uint64_t fascia_monitor_gaps(const struct fascia_monitor *m)
{
	return m != NULL ? m->gaps : 0;
}

int fascia_monitor_fd(const struct fascia_monitor *m)
{
	int fd = -1;
	size_t sz = sizeof(fd);

	if (m == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (zmq_getsockopt(m->sock, ZMQ_FD, &fd, &sz) < 0)
		return -1;
	return fd;
}

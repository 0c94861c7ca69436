/*
 * fascia-sim's Modbus links: TCP (many clients per device) here, RTU (a
 * serial line or a pseudo-terminal) in rtu.c, served from the libevent loop.
 *
 * Both transports frame requests themselves (MBAP for TCP, address + PDU +
 * CRC for RTU) and hand the PDU to one dispatcher, which checks the whole
 * request before the model sees it.  The link faults of the device (silent,
 * slow, garbage, exception, disconnect) and a reboot are applied here.
 *
 * A TCP connection is a raw non-blocking socket with fixed input and output
 * buffers: one read() serves every complete frame it brought, and their
 * replies leave in one write().  Nothing is allocated per request except
 * replies held back by the SLOW fault.  A client that stops reading its
 * replies is paused (its requests stay in the kernel), never the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.h"

/* ---- TCP connections ---- */

static void conn_free(struct conn *c)
{
	struct sim_server *sv = c->sv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		sv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (sv->dev->clients > 0)
		sv->dev->clients--;
	dq_clear(&c->dq);
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->stall != NULL)
		event_free(c->stall);
	close(c->fd);
	free(c);
}

/* Close now, or once the callback that is using c returns. */
static void conn_close(struct conn *c)
{
	if (c->busy)
		c->dead = true;
	else
		conn_free(c);
}

/* Write what is pending; -1 when the peer is gone. */
static int conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		/* MSG_NOSIGNAL: a peer gone is an error, not SIGPIPE */
		ssize_t w = send(c->fd, c->out + c->outoff,
				 c->outlen - c->outoff, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	return 0;
}

static bool out_room(const struct conn *c)
{
	/* compact lazily: only when the tail has no room for one reply */
	return OUT_SIZE - c->outlen >= MAX_ADU ||
	       OUT_SIZE - (c->outlen - c->outoff) >= MAX_ADU;
}

static void out_append(struct conn *c, const uint8_t *buf, size_t len)
{
	if (OUT_SIZE - c->outlen < len) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	memcpy(c->out + c->outlen, buf, len);
	c->outlen += len;
}

/* A reply ready in adu[len]: now, or later for SLOW.  -1: no room. */
static int conn_emit(struct conn *c, const uint8_t *adu, size_t len)
{
	struct sim_device *d = c->sv->dev;

	if (d->link_mode == SIM_LINK_SLOW || c->dq.head != NULL)
		return dq_push(&c->dq, adu, len,
			       d->link_mode == SIM_LINK_SLOW ? d->link_delay_ms
							     : 0);
	out_append(c, adu, len);
	return 0;
}

/*
 * One MBAP frame at the start of p[avail]: returns the bytes it takes, 0 if
 * it is not complete yet, -1 to drop the connection.
 */
static ssize_t conn_frame(struct conn *c, const uint8_t *p, size_t avail)
{
	struct sim_server *sv = c->sv;
	uint8_t adu[MAX_ADU];
	size_t len;
	bool garble = false;
	int unit, n;

	if (avail < MBAP_LEN)
		return 0;
	len = be16(p + 4);
	if (be16(p + 2) != 0 || len < 2 || len > 254)
		return -1;
	if (avail < 6 + len)
		return 0;
	unit = p[6];
	n = pdu_serve(sv,
		      unit == sv->dev->sim->unit || unit == 0xFF || unit == 0,
		      p + MBAP_LEN, len - 1, adu + MBAP_LEN, &garble);
	if (n < 0)
		return -1;
	if (n == 0)
		return (ssize_t)(6 + len);
	memcpy(adu, p, 2); /* transaction id */
	adu[2] = adu[3] = 0;
	adu[4] = (uint8_t)((n + 1) >> 8);
	adu[5] = (uint8_t)(n + 1);
	adu[6] = (uint8_t)unit;
	if (garble) {
		/* well framed, so the client stays in step, but the wrong
		 * transaction and function and junk data: to be rejected */
		adu[0] ^= 0x5A;
		adu[1] ^= 0xA5;
		pdu_junk(sv, adu + MBAP_LEN + 1, (size_t)n - 1);
		adu[MBAP_LEN] ^= 0x40;
	}
	if (conn_emit(c, adu, MBAP_LEN + (size_t)n) != 0)
		return -1; /* only on out of memory: pump keeps room */
	return (ssize_t)(6 + len);
}

static void stall_arm(struct conn *c)
{
	struct timeval tv = {.tv_sec = STALL_S};

	evtimer_add(c->stall, &tv);
}

/*
 * Move due delayed replies out, serve every complete frame there is room
 * to answer, write, and choose what to wait for.  Returns -1 when c must
 * be closed.
 */
static int pump(struct conn *c)
{
	struct pending *p;
	size_t off = 0;
	bool progress = false, want_read;
	uint64_t now = 0;

	while (c->dq.head != NULL && out_room(c)) {
		if (now == 0)
			now = sim_now_us();
		if ((p = dq_pop_due(&c->dq, now)) == NULL)
			break;
		out_append(c, p->buf, p->len);
		free(p);
	}
	while (!c->dead && out_room(c) && c->dq.n < MAX_DELAYED) {
		ssize_t used = conn_frame(c, c->in + off, c->inlen - off);

		if (used < 0)
			return -1;
		if (used == 0)
			break;
		off += (size_t)used;
		progress = true;
	}
	if (c->dead)
		return -1;
	if (off > 0) {
		c->inlen -= off;
		if (c->inlen > 0)
			memmove(c->in, c->in + off, c->inlen);
	}
	if (c->outlen > 0) {
		size_t before = c->outoff;

		if (conn_flush(c) != 0)
			return -1;
		if (c->outoff != before || c->outlen == 0)
			progress = true;
	}

	/* wait for the socket to drain only when something is left */
	if ((c->outlen > 0) != c->writing) {
		c->writing = c->outlen > 0;
		if (c->writing)
			event_add(c->wev, NULL);
		else
			event_del(c->wev);
	}
	/* a paused client's requests wait in the kernel */
	want_read = out_room(c) && c->dq.n < MAX_DELAYED && c->inlen < IN_SIZE;
	if (want_read != c->reading) {
		c->reading = want_read;
		if (want_read)
			event_add(c->rev, NULL);
		else
			event_del(c->rev);
	}
	/* waiting on the peer: the rest of a frame, or room for replies */
	if (c->inlen == 0 && c->outlen == 0) {
		if (evtimer_pending(c->stall, NULL))
			evtimer_del(c->stall);
	} else if (progress || !evtimer_pending(c->stall, NULL)) {
		stall_arm(c);
	}
	return 0;
}

static void run_pump(struct conn *c)
{
	c->busy = true;
	if (pump(c) != 0)
		c->dead = true;
	c->busy = false;
	if (c->dead)
		conn_free(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t r;

	(void)what;
	r = read(fd, c->in + c->inlen, IN_SIZE - c->inlen);
	if (r < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) {
		conn_free(c);
		return;
	}
	c->inlen += (size_t)r;
	run_pump(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_pump(arg);
}

static void conn_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_pump(arg);
}

static void conn_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_free(arg);
}

static bool device_down(struct sim_device *d)
{
	return sim_model_booting(&d->model) ||
	       d->link_mode == SIM_LINK_DISCONNECT;
}

static void conn_new(struct sim_server *sv, int fd)
{
	struct event_base *base = sv->dev->sim->base;
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sv = sv;
	c->fd = fd;
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->stall = evtimer_new(base, conn_stall_cb, c);
	c->dq.ev = evtimer_new(base, conn_delay_cb, c);
	c->next = sv->conns;
	if (sv->conns != NULL)
		sv->conns->prev = c;
	sv->conns = c;
	sv->dev->clients++;
	if (c->rev == NULL || c->wev == NULL || c->stall == NULL ||
	    c->dq.ev == NULL || event_add(c->rev, NULL) != 0) {
		conn_free(c);
		return;
	}
	c->reading = true;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_server *sv = arg;

	(void)fd;
	(void)what;
	event_add(sv->accept_ev, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct sim_server *sv = arg;
	struct sim_device *d = sv->dev;

	(void)what;
	/* a reboot may just have ended */
	sim_device_advance(d);
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: the listener would
				 * fire again at once; pause it a little */
				struct timeval tv = {0, 100000};

				event_del(sv->accept_ev);
				evtimer_add(sv->backoff_ev, &tv);
			}
			return;
		}
		if (device_down(d))
			close(fd);
		else
			conn_new(sv, fd);
	}
}

static void close_conns(struct sim_server *sv)
{
	struct conn *c = sv->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
}

/* ---- set up and tear down ---- */

static int listen_on(const char *addr, int port, int *bound)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[16];
	int fd = -1, one = 1, err = 0, gai;

	snprintf(service, sizeof(service), "%d", port);
	gai = getaddrinfo(addr, service, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "fascia-sim: cannot listen on %s:%d: %s\n",
			addr, port, gai_strerror(gai));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "fascia-sim: cannot listen on %s:%d: %s%s\n",
			addr, port, strerror(err),
			err == EADDRINUSE ? " (another fascia-sim? give each "
					    "one its own port with -p)"
					  : "");
		return -1;
	}
	*bound = port;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
}

int sim_server_tcp(struct sim_device *d, const char *addr, int port)
{
	struct event_base *base = d->sim->base;
	struct sim_server *sv;
	int bound;

	if (addr == NULL)
		addr = "127.0.0.1";
	if ((sv = link_new(d)) == NULL)
		return -1;
	sv->lfd = listen_on(addr, port, &bound);
	if (sv->lfd < 0) {
		sim_server_close(d);
		return -1;
	}
	sv->accept_ev =
		event_new(base, sv->lfd, EV_READ | EV_PERSIST, accept_cb, sv);
	sv->backoff_ev = evtimer_new(base, backoff_cb, sv);
	if (sv->accept_ev == NULL || sv->backoff_ev == NULL ||
	    event_add(sv->accept_ev, NULL) != 0) {
		fputs("fascia-sim: cannot watch the Modbus listener\n", stderr);
		sim_server_close(d);
		return -1;
	}
	snprintf(d->where, sizeof(d->where), "tcp:%s:%d", addr, bound);
	return 0;
}

/* ---- state changes and teardown ---- */

void sim_server_link_changed(struct sim_device *d)
{
	struct sim_server *sv = d->server;

	if (sv == NULL)
		return;
	if (device_down(d)) {
		close_conns(sv);
		/* a half request from before does not complete a new one */
		sv->rtu_len = 0;
	}
	/* SLOW ended or changed: held replies keep their order and times */
}

void sim_server_close(struct sim_device *d)
{
	struct sim_server *sv = d->server;

	if (sv == NULL)
		return;
	while (sv->conns != NULL)
		conn_free(sv->conns);
	if (sv->accept_ev != NULL)
		event_free(sv->accept_ev);
	if (sv->backoff_ev != NULL)
		event_free(sv->backoff_ev);
	if (sv->lfd >= 0)
		close(sv->lfd);
	dq_clear(&sv->rtu_dq);
	if (sv->rtu_ev != NULL)
		event_free(sv->rtu_ev);
	if (sv->gap_ev != NULL)
		event_free(sv->gap_ev);
	if (sv->rtu_fd >= 0)
		close(sv->rtu_fd);
	if (sv->pty_slave >= 0)
		close(sv->pty_slave);
	if (sv->link_path != NULL) {
		unlink(sv->link_path);
		free(sv->link_path);
	}
	free(sv);
	d->server = NULL;
	d->clients = 0;
}

/*
 * fascia-sim's Modbus links: TCP (many clients per device) and RTU (a serial
 * line or a pseudo-terminal), served from the libevent loop.
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
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "sim.h"

#define MBAP_LEN 7
#define MAX_PDU 253
#define MAX_ADU 260  /* MBAP 7 + PDU 253; RTU needs 256 */
#define IN_SIZE 4096 /* room for several pipelined frames */
#define OUT_SIZE 8192
#define MAX_DELAYED 256 /* replies held back by SLOW, per link */
#define STALL_S 5       /* a half frame or a blocked reply, then drop */
#define RTU_BUF 512
#define RTU_MIN_GAP_US 5000 /* also the gap on a pty, which has no baud */
#define ACCEPT_BURST 32

#define EX_ILLEGAL_FUNCTION 1
#define EX_ILLEGAL_ADDRESS 2
#define EX_ILLEGAL_VALUE 3
#define EX_DEVICE_FAILURE 4
#define EX_GATEWAY_TARGET 0x0B

/* A reply held back by SLOW, in order. */
struct pending {
	struct pending *next;
	uint64_t due_us;
	size_t len;
	uint8_t buf[MAX_ADU];
};

struct delayq {
	struct pending *head, *tail;
	unsigned n;
	struct event *ev; /* fires when the head is due */
};

struct conn {
	struct sim_server *sv;
	struct conn *prev, *next;
	int fd;
	struct event *rev, *wev, *stall;
	struct delayq dq;
	bool busy;    /* inside pump(): free later */
	bool dead;    /* to be freed once not busy */
	bool reading; /* rev is added */
	bool writing; /* wev is added */
	size_t inlen;
	size_t outoff, outlen;
	uint8_t in[IN_SIZE];
	uint8_t out[OUT_SIZE];
};

struct sim_server {
	struct sim_device *dev;
	uint64_t rng; /* junk for GARBAGE */

	/* TCP */
	int lfd;
	struct event *accept_ev;
	struct event *backoff_ev; /* accept paused after EMFILE */
	struct conn *conns;

	/* RTU */
	int rtu_fd;
	int pty_slave;   /* held open: no EIO on the master */
	char *link_path; /* our symlink, removed on close */
	struct event *rtu_ev;
	struct event *gap_ev; /* end of a frame by silence */
	struct timeval gap;
	struct delayq rtu_dq;
	size_t rtu_len;
	uint8_t rtu_buf[RTU_BUF];
};

/* ---- the PDU: shared by TCP and RTU ---- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int exception(uint8_t *rsp, uint8_t fc, int code)
{
	rsp[0] = fc | 0x80;
	rsp[1] = (uint8_t)code;
	return 2;
}

static bool in_block_w(int addr, int n)
{
	return addr >= FASCIA_BLOCK_W_ADDR &&
	       addr + n <= FASCIA_BLOCK_W_ADDR + FASCIA_BLOCK_W_LEN;
}

static bool in_block_r(int addr, int n)
{
	return addr >= FASCIA_BLOCK_R_ADDR &&
	       addr + n <= FASCIA_BLOCK_R_ADDR + FASCIA_BLOCK_R_LEN;
}

/* The model answers 2 or 3; anything else would be a bug there. */
static int model_exception(uint8_t *rsp, uint8_t fc, int ex)
{
	return exception(rsp, fc, ex >= 1 && ex <= 4 ? ex : EX_DEVICE_FAILURE);
}

static int read_reply(struct sim_model *m, uint8_t fc, int addr, int n,
                      uint8_t *rsp, bool *read_r)
{
	uint16_t v[125];
	int ex = sim_model_read(m, addr, n, v);

	if (ex)
		return model_exception(rsp, fc, ex);
	rsp[0] = fc;
	rsp[1] = (uint8_t)(2 * n);
	for (int i = 0; i < n; i++) {
		rsp[2 + 2 * i] = (uint8_t)(v[i] >> 8);
		rsp[3 + 2 * i] = (uint8_t)v[i];
	}
	*read_r = in_block_r(addr, n);
	return 2 + 2 * n;
}

static int write_regs(struct sim_model *m, int addr, int n, const uint8_t *p)
{
	uint16_t v[123];

	for (int i = 0; i < n; i++)
		v[i] = be16(p + 2 * i);
	return sim_model_write(m, addr, n, v);
}

/*
 * One request PDU q[len] (len >= 1) to its reply PDU in rsp (room for
 * MAX_PDU); returns the reply's length.  The order of the checks is the
 * specification's: function (01), then the shape of the request (03), then
 * addresses (02), then the values, which the model checks (03).
 * libmodbus's modbus_reply trusts the byte count of FC16/FC23; we do not.
 */
static int dispatch(struct sim_model *m, const uint8_t *q, size_t len,
                    uint8_t *rsp, bool *read_r)
{
	uint8_t fc = q[0];
	int addr, n, waddr, wn, ex;
	uint16_t v;

	switch (fc) {
	case 0x03:
	case 0x04:
		if (len != 5)
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		addr = be16(q + 1);
		n = be16(q + 3);
		if (n < 1 || n > 125)
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		if (fc == 0x04 ? !in_block_r(addr, n)
		               : !in_block_w(addr, n) && !in_block_r(addr, n))
			return exception(rsp, fc, EX_ILLEGAL_ADDRESS);
		return read_reply(m, fc, addr, n, rsp, read_r);
	case 0x06:
		if (len != 5)
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		addr = be16(q + 1);
		v = be16(q + 3);
		if (!in_block_w(addr, 1))
			return exception(rsp, fc, EX_ILLEGAL_ADDRESS);
		ex = sim_model_write(m, addr, 1, &v);
		if (ex)
			return model_exception(rsp, fc, ex);
		memcpy(rsp, q, 5); /* the echo */
		return 5;
	case 0x10:
		if (len < 6)
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		addr = be16(q + 1);
		n = be16(q + 3);
		if (n < 1 || n > 123 || q[5] != 2 * n || len != 6u + q[5])
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		if (!in_block_w(addr, n))
			return exception(rsp, fc, EX_ILLEGAL_ADDRESS);
		ex = write_regs(m, addr, n, q + 6);
		if (ex)
			return model_exception(rsp, fc, ex);
		memcpy(rsp, q, 5); /* function, address, quantity */
		return 5;
	case 0x17:
		if (len < 10)
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		addr = be16(q + 1);
		n = be16(q + 3);
		waddr = be16(q + 5);
		wn = be16(q + 7);
		if (n < 1 || n > 125 || wn < 1 || wn > 121 || q[9] != 2 * wn ||
		    len != 10u + q[9])
			return exception(rsp, fc, EX_ILLEGAL_VALUE);
		if (!in_block_w(waddr, wn) ||
		    (!in_block_w(addr, n) && !in_block_r(addr, n)))
			return exception(rsp, fc, EX_ILLEGAL_ADDRESS);
		/* the specification: the write is done before the read */
		ex = write_regs(m, waddr, wn, q + 10);
		if (ex)
			return model_exception(rsp, fc, ex);
		return read_reply(m, fc, addr, n, rsp, read_r);
	default:
		return exception(rsp, fc, EX_ILLEGAL_FUNCTION);
	}
}

/*
 * One request through the device's state and link mode.  unit_ok false (a
 * TCP request for another unit) gets exception 0B.  Returns the reply PDU's
 * length, 0 for no reply (SILENT), or -1: the device is down (rebooting or
 * DISCONNECT), drop the link.  *garble asks for a corrupted reply.
 */
static int serve(struct sim_server *sv, bool unit_ok, const uint8_t *q,
                 size_t len, uint8_t *rsp, bool *garble)
{
	struct sim_device *d = sv->dev;
	bool read_r = false;
	int n;

	sim_device_advance(d);
	if (sim_model_booting(&d->model) || d->link_mode == SIM_LINK_DISCONNECT)
		return -1;
	if (d->link_mode == SIM_LINK_SILENT)
		return 0;
	*garble = d->link_mode == SIM_LINK_GARBAGE;
	/* the 0B and 04 below are not the device serving: no exchange */
	if (!unit_ok)
		return exception(rsp, q[0], EX_GATEWAY_TARGET);
	if (d->link_mode == SIM_LINK_EXCEPTION)
		return exception(rsp, q[0], EX_DEVICE_FAILURE);
	n = dispatch(&d->model, q, len, rsp, &read_r);
	/* a garbled reply showed the client nothing of block R */
	sim_model_note_exchange(&d->model, read_r && !*garble);
	return n;
}

static uint64_t rng_next(struct sim_server *sv)
{
	/* xorshift64: junk, not secrets */
	sv->rng ^= sv->rng << 13;
	sv->rng ^= sv->rng >> 7;
	sv->rng ^= sv->rng << 17;
	return sv->rng;
}

static void junk(struct sim_server *sv, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng_next(sv);
}

/* ---- replies held back by SLOW ---- */

static void dq_arm(struct delayq *q)
{
	uint64_t now = sim_now_us();
	uint64_t wait = q->head->due_us > now ? q->head->due_us - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(wait / 1000000u),
	                     .tv_usec = (suseconds_t)(wait % 1000000u)};

	evtimer_add(q->ev, &tv);
}

/*
 * Queue a reply.  Once anything is queued, later replies queue behind it
 * (due no earlier) so that the order holds when the delay changes or the
 * fault is cleared.  Returns -1 when the queue is full.
 */
static int dq_push(struct delayq *q, const uint8_t *buf, size_t len,
                   unsigned delay_ms)
{
	struct pending *p;
	uint64_t due = sim_now_us() + (uint64_t)delay_ms * 1000u;

	if (q->n >= MAX_DELAYED || (p = malloc(sizeof(*p))) == NULL)
		return -1;
	if (q->tail != NULL && q->tail->due_us > due)
		due = q->tail->due_us;
	p->next = NULL;
	p->due_us = due;
	p->len = len;
	memcpy(p->buf, buf, len);
	if (q->tail != NULL)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	if (q->n++ == 0)
		dq_arm(q);
	return 0;
}

/* The head if it is due (the caller frees it), else NULL and the timer is
 * armed for it. */
static struct pending *dq_pop_due(struct delayq *q, uint64_t now)
{
	struct pending *p = q->head;

	if (p == NULL)
		return NULL;
	if (p->due_us > now) {
		if (!evtimer_pending(q->ev, NULL))
			dq_arm(q);
		return NULL;
	}
	q->head = p->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->n--;
	return p;
}

static void dq_clear(struct delayq *q)
{
	struct pending *p;

	while ((p = q->head) != NULL) {
		q->head = p->next;
		free(p);
	}
	q->tail = NULL;
	q->n = 0;
	if (q->ev != NULL) {
		event_free(q->ev);
		q->ev = NULL;
	}
}

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
	n = serve(sv, unit == sv->dev->sim->unit || unit == 0xFF || unit == 0,
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
		junk(sv, adu + MBAP_LEN + 1, (size_t)n - 1);
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

static struct sim_server *server_new(struct sim_device *d)
{
	struct sim_server *sv;

	if (d->server != NULL) {
		fputs("fascia-sim: device already has a Modbus link\n", stderr);
		return NULL;
	}
	sv = calloc(1, sizeof(*sv));
	if (sv == NULL) {
		fputs("fascia-sim: out of memory\n", stderr);
		return NULL;
	}
	sv->dev = d;
	sv->lfd = sv->rtu_fd = sv->pty_slave = -1;
	sv->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)d->index ^ sim_now_us();
	if (sv->rng == 0)
		sv->rng = 1;
	d->server = sv;
	return sv;
}

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
		fprintf(stderr, "fascia-sim: cannot listen on %s:%d: %s\n",
		        addr, port, strerror(err));
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
	if ((sv = server_new(d)) == NULL)
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

/* ---- RTU ---- */

static uint16_t crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;

	while (n-- > 0) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = crc & 1 ? (uint16_t)((crc >> 1) ^ 0xA001)
			              : (uint16_t)(crc >> 1);
	}
	return crc;
}

/* The CRC ends the frame, low byte first. */
static bool crc_ok(const uint8_t *p, size_t n)
{
	uint16_t crc;

	if (n < 4)
		return false;
	crc = crc16(p, n - 2);
	return p[n - 2] == (uint8_t)crc && p[n - 1] == (uint8_t)(crc >> 8);
}

/* A request's length from its head, so that a frame is served as soon as
 * it is in without waiting for the silence after it; 0: unknown (yet). */
static size_t rtu_expected(const uint8_t *b, size_t len)
{
	if (len < 2)
		return 0;
	switch (b[1]) {
	case 0x03:
	case 0x04:
	case 0x06:
		return 8;
	case 0x10:
		return len >= 7 ? 9u + b[6] : 0;
	case 0x17:
		return len >= 11 ? 13u + b[10] : 0;
	default:
		return 0;
	}
}

static void rtu_write(struct sim_server *sv, const uint8_t *p, size_t n)
{
	/* a reply nobody reads (a pty without a client) is lost, as on a
	 * bus; a partial write would only garble the next one */
	if (write(sv->rtu_fd, p, n) < 0 && errno != EAGAIN)
		fprintf(stderr, "fascia-sim: %s: write: %s\n", sv->dev->where,
		        strerror(errno));
}

/* One frame with a good CRC. */
static void rtu_frame(struct sim_server *sv, const uint8_t *b, size_t n)
{
	struct sim_device *d = sv->dev;
	uint8_t adu[MAX_ADU];
	bool garble = false;
	uint16_t crc;
	int unit = b[0], r;

	/* other units' traffic is not ours: silence */
	if ((unit != d->sim->unit && unit != 0) || n < 4)
		return;
	r = serve(sv, true, b + 1, n - 3, adu + 1, &garble);
	if (r <= 0 || unit == 0) /* a broadcast is never answered */
		return;
	adu[0] = (uint8_t)unit;
	if (garble)
		junk(sv, adu + 2, (size_t)r - 1);
	crc = crc16(adu, (size_t)r + 1);
	if (garble)
		crc ^= 0xFFFF; /* and a CRC that does not match */
	adu[r + 1] = (uint8_t)crc;
	adu[r + 2] = (uint8_t)(crc >> 8);
	if (d->link_mode == SIM_LINK_SLOW || sv->rtu_dq.head != NULL) {
		dq_push(&sv->rtu_dq, adu, (size_t)r + 3,
		        d->link_mode == SIM_LINK_SLOW ? d->link_delay_ms : 0);
		return;
	}
	rtu_write(sv, adu, (size_t)r + 3);
}

static void rtu_consume(struct sim_server *sv, size_t n)
{
	sv->rtu_len -= n;
	memmove(sv->rtu_buf, sv->rtu_buf + n, sv->rtu_len);
}

static void rtu_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_server *sv = arg;
	size_t exp;
	ssize_t r;

	(void)what;
	if (sv->rtu_len == RTU_BUF)
		sv->rtu_len = 0; /* no request is that long: junk */
	r = read(fd, sv->rtu_buf + sv->rtu_len, RTU_BUF - sv->rtu_len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		fprintf(stderr, "fascia-sim: %s: %s, RTU stopped\n",
		        sv->dev->where,
		        r == 0 ? "end of file" : strerror(errno));
		event_del(sv->rtu_ev);
		return;
	}
	sv->rtu_len += (size_t)r;
	while ((exp = rtu_expected(sv->rtu_buf, sv->rtu_len)) != 0 &&
	       exp <= sv->rtu_len && crc_ok(sv->rtu_buf, exp)) {
		rtu_frame(sv, sv->rtu_buf, exp);
		rtu_consume(sv, exp);
	}
	/* anything left ends with the silence after it */
	if (sv->rtu_len > 0)
		evtimer_add(sv->gap_ev, &sv->gap);
	else
		evtimer_del(sv->gap_ev);
}

/* Silence: what is buffered is one frame (an unknown function, a request
 * whose length does not match its head) or noise. */
static void rtu_gap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_server *sv = arg;

	(void)fd;
	(void)what;
	if (crc_ok(sv->rtu_buf, sv->rtu_len))
		rtu_frame(sv, sv->rtu_buf, sv->rtu_len);
	sv->rtu_len = 0;
}

static void rtu_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_server *sv = arg;
	struct pending *p;
	uint64_t now = sim_now_us();

	(void)fd;
	(void)what;
	while ((p = dq_pop_due(&sv->rtu_dq, now)) != NULL) {
		rtu_write(sv, p->buf, p->len);
		free(p);
	}
}

static int rtu_start(struct sim_server *sv, int fd, long gap_us)
{
	struct event_base *base = sv->dev->sim->base;

	sv->rtu_fd = fd;
	if (gap_us < RTU_MIN_GAP_US)
		gap_us = RTU_MIN_GAP_US;
	sv->gap.tv_sec = gap_us / 1000000;
	sv->gap.tv_usec = gap_us % 1000000;
	sv->rtu_ev = event_new(base, fd, EV_READ | EV_PERSIST, rtu_read_cb, sv);
	sv->gap_ev = evtimer_new(base, rtu_gap_cb, sv);
	sv->rtu_dq.ev = evtimer_new(base, rtu_delay_cb, sv);
	if (sv->rtu_ev == NULL || sv->gap_ev == NULL || sv->rtu_dq.ev == NULL ||
	    event_add(sv->rtu_ev, NULL) != 0) {
		fputs("fascia-sim: cannot watch the RTU line\n", stderr);
		return -1;
	}
	return 0;
}

static speed_t baud_speed(int baud)
{
	static const struct {
		int baud;
		speed_t speed;
	} t[] = {{1200, B1200},     {2400, B2400},     {4800, B4800},
	         {9600, B9600},     {19200, B19200},   {38400, B38400},
	         {57600, B57600},   {115200, B115200}, {230400, B230400},
	         {460800, B460800}, {921600, B921600}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].baud == baud)
			return t[i].speed;
	return B0;
}

int sim_server_rtu(struct sim_device *d, const char *path, int baud,
                   char parity)
{
	struct sim_server *sv;
	struct termios tio;
	speed_t speed = baud_speed(baud);
	int fd, bits;

	if (speed == B0) {
		fprintf(stderr, "fascia-sim: %s: unsupported speed %d\n", path,
		        baud);
		return -1;
	}
	if (parity != 'N' && parity != 'E' && parity != 'O') {
		fprintf(stderr, "fascia-sim: %s: parity %c is not N, E or O\n",
		        path, parity);
		return -1;
	}
	if ((sv = server_new(d)) == NULL)
		return -1;
	snprintf(d->where, sizeof(d->where), "rtu:%s", path);
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "fascia-sim: cannot open %s: %s\n", path,
		        strerror(errno));
		sim_server_close(d);
		return -1;
	}
	sv->rtu_fd = fd;
	if (tcgetattr(fd, &tio) != 0) {
		fprintf(stderr, "fascia-sim: %s is not a serial line: %s\n",
		        path, strerror(errno));
		sim_server_close(d);
		return -1;
	}
	cfmakeraw(&tio);
	cfsetispeed(&tio, speed);
	cfsetospeed(&tio, speed);
	tio.c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	tio.c_cflag |= CS8 | CLOCAL | CREAD;
	if (parity != 'N')
		tio.c_cflag |= PARENB | (parity == 'O' ? PARODD : 0);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &tio) != 0) {
		fprintf(stderr, "fascia-sim: cannot set up %s: %s\n", path,
		        strerror(errno));
		sim_server_close(d);
		return -1;
	}
	tcflush(fd, TCIOFLUSH);
	/* 3.5 characters of silence end a frame: 11 bits each */
	bits = 11;
	if (rtu_start(sv, fd, (long)(3.5 * bits * 1000000.0 / baud)) != 0) {
		sim_server_close(d);
		return -1;
	}
	return 0;
}

static int make_link(const char *link_path, const char *target)
{
	struct stat st;

	/* replace our own kind of link, never a real file */
	if (lstat(link_path, &st) == 0) {
		if (!S_ISLNK(st.st_mode)) {
			fprintf(stderr,
			        "fascia-sim: %s exists and is not a symbolic "
			        "link\n",
			        link_path);
			return -1;
		}
		if (unlink(link_path) != 0) {
			fprintf(stderr, "fascia-sim: cannot remove %s: %s\n",
			        link_path, strerror(errno));
			return -1;
		}
	}
	if (symlink(target, link_path) != 0) {
		fprintf(stderr, "fascia-sim: cannot link %s to %s: %s\n",
		        link_path, target, strerror(errno));
		return -1;
	}
	return 0;
}

int sim_server_pty(struct sim_device *d, const char *link_path)
{
	struct sim_server *sv;
	struct termios tio;
	char name[128];
	int master, slave, fl;

	if ((sv = server_new(d)) == NULL)
		return -1;
	if (openpty(&master, &slave, NULL, NULL, NULL) != 0) {
		fprintf(stderr,
		        "fascia-sim: cannot open a pseudo-terminal: "
		        "%s\n",
		        strerror(errno));
		sim_server_close(d);
		return -1;
	}
	sv->rtu_fd = master;
	sv->pty_slave = slave;
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	fl = fcntl(master, F_GETFL);
	if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    ptsname_r(master, name, sizeof(name)) != 0) {
		fprintf(stderr,
		        "fascia-sim: cannot set up the "
		        "pseudo-terminal: %s\n",
		        strerror(errno));
		sim_server_close(d);
		return -1;
	}
	/* raw both ways: no echo, no CR/LF translation of binary frames */
	if (tcgetattr(slave, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(slave, TCSANOW, &tio);
	}
	if (tcgetattr(master, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(master, TCSANOW, &tio);
	}
	snprintf(d->where, sizeof(d->where), "rtu:%s", name);
	if (link_path != NULL) {
		if (make_link(link_path, name) != 0) {
			sim_server_close(d);
			return -1;
		}
		sv->link_path = strdup(link_path);
	}
	if (rtu_start(sv, master, RTU_MIN_GAP_US) != 0) {
		sim_server_close(d);
		return -1;
	}
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

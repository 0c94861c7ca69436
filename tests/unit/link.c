/*
 * A device's Modbus link (daemon/link.c) against real TCP peers on
 * 127.0.0.1, each a thread of the test that follows a script, one step per
 * request: a device that resets the connection is dropped at once and the
 * reason names the reset; a silent one times out, counted as timeouts, and
 * is dropped at the third in a row; an exception reply is counted as one
 * and does not drop the link, even when the peer resets right after it; a
 * device without FC23 gets FC16 + FC03.  No fixed sleeps: every wait is on
 * a socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* link.c calls no log function: the real clock is all it needs. */
#include "../../daemon/clock.c"
#include "../../daemon/link.c"

#define TIMEOUT_S 0.05 /* the response timeout: three of them in a test */
#define CHAMBERS 2     /* configured; the peer's block R says 4 */

/* What the peer does with one request. */
enum act {
	SILENT,          /* nothing: the client times out */
	ANSWER,          /* a good reply to FC23, FC16 or FC03 */
	EXCEPTION,       /* function | 0x80 and the step's code */
	RESET,           /* close with SO_LINGER {1, 0}: the client sees RST */
	EXCEPTION_RESET, /* the exception, then the reset */
};

struct step {
	enum act act;
	uint8_t code;
};

#define MAX_STEPS 8

struct peer {
	int lfd; /* listening on 127.0.0.1, port 0 */
	pthread_t thread;
	bool running;
	struct step script[MAX_STEPS]; /* past the end: SILENT */
	/* Written by the peer, read by the test after the join. */
	uint8_t fc[MAX_STEPS]; /* the requests' function codes, in order */
	int nreq;
};

struct rig {
	struct peer p;
	struct fd_device_conf conf;
	struct fd_link l;
	struct fd_link_stats st;
	struct fascia_block_w w;
	struct fascia_block_r r;
};

/* ---- the peer: a Modbus TCP server just big enough ---- */

static bool read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t rc = recv(fd, buf + got, n - got, 0);

		if (rc == -1 && errno == EINTR)
			continue;
		if (rc <= 0)
			return false;
		got += (size_t)rc;
	}
	return true;
}

struct req {
	uint8_t mbap[7]; /* transaction, protocol, length, unit */
	uint8_t pdu[256];
	size_t len;
};

/* One request, its length checked; false at EOF or on garbage. */
static bool read_request(int fd, struct req *q)
{
	size_t len;

	if (!read_full(fd, q->mbap, sizeof(q->mbap)))
		return false;
	len = (size_t)(q->mbap[4] << 8 | q->mbap[5]);
	if (len < 2 || len - 1 > sizeof(q->pdu))
		return false;
	q->len = len - 1;
	return read_full(fd, q->pdu, q->len);
}

static void reply(int fd, const struct req *q, const uint8_t *pdu, size_t n)
{
	uint8_t adu[7 + 256];

	memcpy(adu, q->mbap, 4); /* the same transaction and protocol */
	adu[4] = (uint8_t)((n + 1) >> 8);
	adu[5] = (uint8_t)(n + 1);
	adu[6] = q->mbap[6];
	memcpy(adu + 7, pdu, n);
	/* A short send shows in the client as a timeout the test does not
	 * expect. */
	(void)send(fd, adu, 7 + n, MSG_NOSIGNAL);
}

/* A block R the link accepts: map 0x0100, 4 chambers, chamber 1 at
 * 12.5 mmHg. */
static void block_r(uint8_t *out)
{
	struct fascia_block_r r = {.map_version = FASCIA_MAP_VERSION,
				   .chambers = 4,
				   .status = FASCIA_ST_READY};
	uint16_t regs[FASCIA_BLOCK_R_LEN];

	r.pressure_mmhg[0] = 12.5;
	if (fascia_block_r_pack(&r, regs) == -1)
		abort();
	for (int i = 0; i < FASCIA_BLOCK_R_LEN; i++) {
		out[2 * i] = (uint8_t)(regs[i] >> 8);
		out[2 * i + 1] = (uint8_t)regs[i];
	}
}

static void answer(int fd, const struct req *q)
{
	uint8_t pdu[2 + 2 * FASCIA_BLOCK_R_LEN];

	switch (q->pdu[0]) {
	case MODBUS_FC_WRITE_MULTIPLE_REGISTERS: /* address and quantity */
		reply(fd, q, q->pdu, 5);
		break;
	case MODBUS_FC_WRITE_AND_READ_REGISTERS:
	case MODBUS_FC_READ_HOLDING_REGISTERS:
		pdu[0] = q->pdu[0];
		pdu[1] = 2 * FASCIA_BLOCK_R_LEN;
		block_r(pdu + 2);
		reply(fd, q, pdu, sizeof(pdu));
		break;
	default:
		break; /* silence: the test sees a timeout */
	}
}

static void reset(int fd)
{
	struct linger lg = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct req q;
	int fd = accept(p->lfd, NULL, NULL);

	if (fd == -1)
		return NULL;
	/* Until the client closes: the link's close ends the peer. */
	while (read_request(fd, &q)) {
		struct step s = {SILENT, 0};
		uint8_t exc[2] = {(uint8_t)(q.pdu[0] | 0x80), 0};

		if (p->nreq < MAX_STEPS) {
			s = p->script[p->nreq];
			p->fc[p->nreq] = q.pdu[0];
		}
		p->nreq++;
		exc[1] = s.code;
		switch (s.act) {
		case SILENT:
			break;
		case ANSWER:
			answer(fd, &q);
			break;
		case EXCEPTION:
			reply(fd, &q, exc, sizeof(exc));
			break;
		case RESET:
			reset(fd);
			return NULL;
		case EXCEPTION_RESET:
			reply(fd, &q, exc, sizeof(exc));
			reset(fd);
			return NULL;
		}
	}
	close(fd);
	return NULL;
}

/* Start the peer with its script and connect the link to it. */
static void start(struct rig *g, const struct step *script, int n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	assert_true(n <= MAX_STEPS);
	memcpy(g->p.script, script, (size_t)n * sizeof(*script));
	g->p.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_not_equal(g->p.lfd, -1);
	assert_int_equal(bind(g->p.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(g->p.lfd, 1), 0);
	assert_int_equal(getsockname(g->p.lfd, (struct sockaddr *)&sa, &len),
			 0);
	g->conf.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&g->p.thread, NULL, peer_main, &g->p),
			 0);
	g->p.running = true;

	fd_link_init(&g->l, &g->conf, TIMEOUT_S);
	fd_link_connect(&g->l, &g->st, fd_clock_mono_s());
	assert_true(g->l.connected);
}

static int exchange(struct rig *g)
{
	return fd_link_exchange(&g->l, &g->st, &g->w, CHAMBERS, &g->r);
}

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return -1;
	g->p.lfd = -1;
	snprintf(g->conf.name, sizeof(g->conf.name), "dev");
	g->conf.transport = TRANSPORT_TCP;
	snprintf(g->conf.host, sizeof(g->conf.host), "127.0.0.1");
	g->conf.unit = 1;
	g->conf.chambers = CHAMBERS;
	g->conf.limit_mmhg = 60;
	g->conf.watchdog_ms = 500;
	g->w.heartbeat = 1;
	g->w.command = FASCIA_CMD_IDLE;
	g->w.watchdog_ms = 500;
	g->w.limit_mmhg = 60;
	*state = g;
	return 0;
}

/* The link's close ends the peer's loop; shutdown() wakes an accept()
 * that never got its client. */
static int teardown(void **state)
{
	struct rig *g = *state;

	fd_link_free(&g->l);
	if (g->p.lfd != -1) {
		shutdown(g->p.lfd, SHUT_RDWR);
		if (g->p.running)
			pthread_join(g->p.thread, NULL);
		close(g->p.lfd);
	}
	free(g);
	return 0;
}

/* Stop the peer (after the link's close) to read what it saw. */
static void join(struct rig *g)
{
	fd_link_free(&g->l);
	pthread_join(g->p.thread, NULL);
	g->p.running = false;
}

/* ---- the tests ---- */

/* A device that resets the connection in the middle of an exchange is
 * dropped at the first failure, not after three, and the reason says it
 * was reset. */
static void test_reset_drops_the_link_at_once(void **state)
{
	struct rig *g = *state;
	const struct step script[] = {{ANSWER, 0}, {RESET, 0}};

	start(g, script, 2);
	assert_int_equal(exchange(g), 0);
	assert_true(g->st.up);

	assert_int_equal(exchange(g), -1);
	assert_false(g->l.connected);
	assert_false(g->st.up);
	assert_int_equal(g->st.errors, 1);
	assert_int_equal(g->st.timeouts, 0);
	assert_int_equal(g->st.exceptions, 0);
	assert_string_equal(g->st.last_error,
			    "exchange: Connection reset by peer");
	/* Not connected: nothing more is tried or counted. */
	assert_int_equal(exchange(g), -1);
	assert_int_equal(g->st.errors, 1);
}

/* A device that accepts and never answers: each exchange gives up after
 * the response timeout and is counted as a timeout; the link stays up for
 * two and is dropped at the third in a row. */
static void test_silence_times_out_and_drops_at_the_third(void **state)
{
	struct rig *g = *state;
	const struct step script[] = {{ANSWER, 0}}; /* then silence */
	double t0, t;

	start(g, script, 1);
	assert_int_equal(exchange(g), 0);
	for (int i = 1; i <= 3; i++) {
		t0 = fd_clock_mono_s();
		assert_int_equal(exchange(g), -1);
		t = fd_clock_mono_s() - t0;
		assert_true(t >= TIMEOUT_S * 0.9);
		assert_true(t < 1.0);
		assert_int_equal(g->st.timeouts, i);
		assert_int_equal(g->st.errors, 0);
		assert_int_equal(g->st.exceptions, 0);
		assert_string_equal(g->st.last_error,
				    "exchange: Connection timed out");
		assert_true(g->l.connected == (i < 3));
		assert_true(g->st.up == (i < 3));
	}
}

/* A device that answers with an exception: counted as an exception, the
 * reason names it, and one does not drop the link. */
static void test_exception_is_counted_as_one(void **state)
{
	struct rig *g = *state;
	const struct step script[] = {
		{ANSWER, 0},
		{EXCEPTION, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE}};

	start(g, script, 2);
	assert_int_equal(exchange(g), 0);
	assert_int_equal(exchange(g), -1);
	assert_int_equal(g->st.exceptions, 1);
	assert_int_equal(g->st.errors, 0);
	assert_int_equal(g->st.timeouts, 0);
	assert_string_equal(g->st.last_error,
			    "exchange: Slave device or server failure");
	assert_true(g->l.connected);
	assert_true(g->st.up);
	assert_true(g->st.fc23);
}

/*
 * A device that answers an exception and then resets the connection: the
 * exchange is judged by its own failure, the exception, which does not
 * drop the link; the next exchange meets the broken socket and drops it,
 * with that as the reason.  Judged instead by the errno the flush after
 * the exception left (the reset), the link went down with an exception as
 * its reason.  The client's socket wakes only once the reset is in too
 * (SO_RCVLOWAT above the reply's 9 bytes), so the reset is there before
 * the reply is read, whichever thread runs first.
 */
static void test_exception_then_reset_is_judged_by_the_exception(void **state)
{
	struct rig *g = *state;
	const struct step script[] = {
		{ANSWER, 0},
		{EXCEPTION_RESET, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE}};
	int lowat = 64;

	start(g, script, 2);
	assert_int_equal(exchange(g), 0);
	assert_int_equal(setsockopt(modbus_get_socket(g->l.mb), SOL_SOCKET,
				    SO_RCVLOWAT, &lowat, sizeof(lowat)),
			 0);

	assert_int_equal(exchange(g), -1);
	assert_int_equal(g->st.exceptions, 1);
	assert_int_equal(g->st.errors, 0);
	assert_string_equal(g->st.last_error,
			    "exchange: Slave device or server failure");
	assert_true(g->l.connected);
	assert_true(g->st.up);

	assert_int_equal(exchange(g), -1);
	assert_false(g->l.connected);
	assert_false(g->st.up);
	assert_int_equal(g->st.errors, 1);
	assert_int_equal(g->st.exceptions, 1);
	assert_string_equal(g->st.last_error, "exchange: Broken pipe");
}

/* A device without FC23 (exception 01, illegal function) gets FC16 + FC03
 * in the same exchange, which succeeds, and FC16 + FC03 from then on. */
static void test_no_fc23_falls_back_to_fc16_fc03(void **state)
{
	struct rig *g = *state;
	const struct step script[] = {
		{EXCEPTION, MODBUS_EXCEPTION_ILLEGAL_FUNCTION},
		{ANSWER, 0},
		{ANSWER, 0},
		{ANSWER, 0},
		{ANSWER, 0}};
	const uint8_t want[] = {MODBUS_FC_WRITE_AND_READ_REGISTERS,
				MODBUS_FC_WRITE_MULTIPLE_REGISTERS,
				MODBUS_FC_READ_HOLDING_REGISTERS,
				MODBUS_FC_WRITE_MULTIPLE_REGISTERS,
				MODBUS_FC_READ_HOLDING_REGISTERS};

	start(g, script, 5);
	assert_int_equal(exchange(g), 0);
	assert_false(g->st.fc23);
	assert_int_equal(g->st.exchanges, 1);
	assert_int_equal(g->st.exceptions, 0);
	assert_int_equal(g->st.errors, 0);
	assert_true(g->st.up);
	assert_int_equal(g->r.chambers, 4);
	assert_true(g->r.pressure_mmhg[0] == 12.5);

	assert_int_equal(exchange(g), 0);
	assert_int_equal(g->st.exchanges, 2);
	join(g);
	assert_int_equal(g->p.nreq, 5);
	assert_memory_equal(g->p.fc, want, sizeof(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_reset_drops_the_link_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_silence_times_out_and_drops_at_the_third, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_exception_is_counted_as_one, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_exception_then_reset_is_judged_by_the_exception,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_no_fc23_falls_back_to_fc16_fc03, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

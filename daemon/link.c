/*
 * A device's Modbus link, owned by its control thread: the connection
 * with its backoff, one exchange (FC23, or FC16 + FC03 for a device
 * without FC23) and the link's statistics.  libmodbus blocks, which is why
 * only the control thread calls it, and nothing here logs: what went wrong
 * is kept in the statistics (last_error), and the main thread reports it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h>

#include "fasciad.h"

#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 2.0
#define FAILS_TO_RECONNECT 3

/* What went wrong, with the errno of the failed call (err), not of
 * whatever ran after it. */
static void link_error(struct fd_link_stats *st, const char *what, int err)
{
	snprintf(st->last_error, sizeof(st->last_error), "%s: %s", what,
		 modbus_strerror(err));
}

static void link_down(struct fd_link *l, struct fd_link_stats *st, double now)
{
	if (l->connected)
		modbus_close(l->mb);
	l->connected = false;
	st->up = false;
	l->next_attempt_s = now + l->backoff_s;
	l->backoff_s = fmin(l->backoff_s * 2, BACKOFF_MAX_S);
}

static modbus_t *link_new(const struct fd_device_conf *d, double timeout_s)
{
	modbus_t *mb;
	uint32_t sec = (uint32_t)timeout_s;
	uint32_t usec = (uint32_t)((timeout_s - sec) * 1e6);

	if (d->transport == TRANSPORT_TCP) {
		char port[16];

		snprintf(port, sizeof(port), "%d", d->port);
		mb = modbus_new_tcp_pi(d->host, port);
	} else {
		mb = modbus_new_rtu(d->path, d->baud, d->parity, 8, 1);
	}
	if (mb == NULL)
		return NULL;
	modbus_set_slave(mb, d->unit);
	/* Recovery is ours: libmodbus's would sleep in the tick. */
	modbus_set_error_recovery(mb, MODBUS_ERROR_RECOVERY_NONE);
	modbus_set_response_timeout(mb, sec, usec);
	modbus_set_byte_timeout(mb, sec, usec);
	return mb;
}

void fd_link_init(struct fd_link *l, const struct fd_device_conf *conf,
		  double timeout_s)
{
	memset(l, 0, sizeof(*l));
	l->conf = conf;
	l->timeout_s = timeout_s;
	l->backoff_s = BACKOFF_MIN_S;
}

void fd_link_connect(struct fd_link *l, struct fd_link_stats *st, double now)
{
	if (l->connected || now < l->next_attempt_s)
		return;
	if (l->mb == NULL &&
	    (l->mb = link_new(l->conf, l->timeout_s)) == NULL) {
		link_error(st, "cannot create the Modbus context", errno);
		link_down(l, st, now);
		return;
	}
	if (modbus_connect(l->mb) == -1) {
		link_error(st, "connect", errno);
		modbus_close(l->mb);
		link_down(l, st, now);
		return;
	}
	if (l->ever_connected)
		st->reconnects++;
	l->ever_connected = true;
	l->connected = true;
	l->fails = 0;
	l->fc23 = true;
}

static void count_rtt(struct fd_link_stats *st, double rtt_s)
{
	uint32_t us = (uint32_t)(rtt_s * 1e6);
	int b = 0;

	st->rtt_us = us;
	while (b < FD_RTT_BUCKETS - 1 && us >= (64u << b))
		b++;
	st->rtt_hist[b]++;
}

static int transfer(struct fd_link *l, const uint16_t *w, uint16_t *r)
{
	int rc;

	if (l->fc23)
		return modbus_write_and_read_registers(
			l->mb, FASCIA_BLOCK_W_ADDR, FASCIA_BLOCK_W_LEN, w,
			FASCIA_BLOCK_R_ADDR, FASCIA_BLOCK_R_LEN, r);
	rc = modbus_write_registers(l->mb, FASCIA_BLOCK_W_ADDR,
				    FASCIA_BLOCK_W_LEN, w);
	if (rc != FASCIA_BLOCK_W_LEN)
		return -1;
	return modbus_read_registers(l->mb, FASCIA_BLOCK_R_ADDR,
				     FASCIA_BLOCK_R_LEN, r);
}

/* Block W as registers; a block the session should never ask for is
 * replaced by a VENT rather than guessed at. */
static void pack(const struct fd_link *l, const struct fascia_block_w *w,
		 uint16_t *wr)
{
	if (fascia_block_w_pack(w, wr) == 0)
		return;
	memset(wr, 0, FASCIA_BLOCK_W_LEN * sizeof(*wr));
	wr[FASCIA_REG_HEARTBEAT] = w->heartbeat;
	wr[FASCIA_REG_COMMAND] = FASCIA_CMD_VENT;
	wr[FASCIA_REG_WATCHDOG_MS] = w->watchdog_ms;
	fascia_mmhg_to_reg(l->conf->limit_mmhg, &wr[FASCIA_REG_LIMIT]);
	wr[FASCIA_REG_PUMP] = 1;
}

int fd_link_exchange(struct fd_link *l, struct fd_link_stats *st,
		     const struct fascia_block_w *w, int chambers,
		     struct fascia_block_r *r)
{
	uint16_t wr[FASCIA_BLOCK_W_LEN], rd[FASCIA_BLOCK_R_LEN];
	double t0, now;
	int rc, err;

	if (!l->connected)
		return -1;
	pack(l, w, wr);
	t0 = fd_clock_mono_s();
	rc = transfer(l, wr, rd);
	if (rc == -1 && errno == EMBXILFUN && l->fc23) {
		l->fc23 = false; /* the main thread logs it with the link */
		rc = transfer(l, wr, rd);
	}
	err = errno;
	now = fd_clock_mono_s();
	st->fc23 = l->fc23;
	if (rc == FASCIA_BLOCK_R_LEN && fascia_block_r_unpack(rd, r) == 0 &&
	    r->chambers >= chambers) {
		count_rtt(st, now - t0);
		st->t_read_us = (uint64_t)(now * 1e6);
		st->exchanges++;
		l->fails = 0;
		/* Only a good exchange resets the backoff: a device that
		 * accepts and drops every connection is not hammered. */
		l->backoff_s = BACKOFF_MIN_S;
		if (!st->up) /* up again: the last outage's reason is over */
			st->last_error[0] = '\0';
		st->up = true;
		return 0;
	}
	if (rc == FASCIA_BLOCK_R_LEN) {
		err = errno; /* fascia_block_r_unpack()'s */
		st->errors++;
		snprintf(st->last_error, sizeof(st->last_error),
			 "block R refused: %s",
			 err >= FASCIA_ENOBASE ? fascia_strerror(err)
					       : "fewer chambers than "
						 "configured");
	} else {
		if (err == ETIMEDOUT)
			st->timeouts++;
		else if (err >= EMBXILFUN && err <= EMBXGTAR)
			st->exceptions++;
		else
			st->errors++;
		link_error(st, "exchange", err);
		modbus_flush(l->mb); /* changes errno: err is kept */
	}
	if (++l->fails >= FAILS_TO_RECONNECT || err == ECONNRESET ||
	    err == EPIPE || err == EBADF || err == ENOTCONN)
		link_down(l, st, now);
	return -1;
}

void fd_link_free(struct fd_link *l)
{
	if (l->mb == NULL)
		return;
	modbus_close(l->mb);
	modbus_free(l->mb);
	l->mb = NULL;
	l->connected = false;
}

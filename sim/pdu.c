/*
 * What fascia-sim's TCP and RTU links share: the PDU dispatcher, which
 * checks a whole request before the model sees it, the device's link
 * faults, and the queue of replies held back by the SLOW fault.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"

/* ---- the PDU: shared by TCP and RTU ---- */

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

int pdu_serve(struct sim_server *sv, bool unit_ok, const uint8_t *q, size_t len,
	      uint8_t *rsp, bool *garble)
{
	struct sim_device *d = sv->dev;
	bool read_r = false;
	int n;

	sim_device_advance(d);
	d->model.io_us = sim_now_us();
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
	if (d->sim->no_fc23 && q[0] == 23)
		n = exception(rsp, q[0], EX_ILLEGAL_FUNCTION);
	else
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

void pdu_junk(struct sim_server *sv, uint8_t *p, size_t n)
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
int dq_push(struct delayq *q, const uint8_t *buf, size_t len, unsigned delay_ms)
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
struct pending *dq_pop_due(struct delayq *q, uint64_t now)
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

void dq_clear(struct delayq *q)
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

struct sim_server *link_new(struct sim_device *d)
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

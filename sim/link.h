/*
 * fascia-sim's Modbus links, private to server.c (TCP), rtu.c (RTU) and
 * pdu.c (what both share: the request dispatcher, the link faults, and the
 * queue of replies held back by SLOW).
 */
#ifndef FASCIA_SIM_LINK_H
#define FASCIA_SIM_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

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

/* A big-endian 16-bit field of a frame. */
static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* pdu.c */

/*
 * One request through the device's state and link mode.  unit_ok false (a
 * TCP request for another unit) gets exception 0B.  Returns the reply PDU's
 * length, 0 for no reply (SILENT), or -1: the device is down (rebooting or
 * DISCONNECT), drop the link.  *garble asks for a corrupted reply.
 */
int pdu_serve(struct sim_server *sv, bool unit_ok, const uint8_t *q, size_t len,
              uint8_t *rsp, bool *garble);
/* n bytes of junk, for GARBAGE. */
void pdu_junk(struct sim_server *sv, uint8_t *p, size_t n);
/* Queue a reply held back by SLOW; -1 when the queue is full. */
int dq_push(struct delayq *q, const uint8_t *buf, size_t len,
            unsigned delay_ms);
/* The head if due (the caller frees it), else NULL with the timer armed. */
struct pending *dq_pop_due(struct delayq *q, uint64_t now);
void dq_clear(struct delayq *q);
/* A new link for d (d->server), or NULL with a message on stderr. */
struct sim_server *link_new(struct sim_device *d);

#endif

/*
 * fascia-sim's Modbus RTU link on a serial line or a pseudo-terminal: our
 * own framer (address + PDU + CRC, a frame ends when its length and CRC
 * check out, or after RTU_MIN_GAP_US of silence), the PDU served by pdu.c.
 * Requests for another unit get no reply; unit 0 is applied, not answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "link.h"

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
	r = pdu_serve(sv, true, b + 1, n - 3, adu + 1, &garble);
	if (r <= 0 || unit == 0) /* a broadcast is never answered */
		return;
	adu[0] = (uint8_t)unit;
	if (garble)
		pdu_junk(sv, adu + 2, (size_t)r - 1);
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
	if ((sv = link_new(d)) == NULL)
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

	if ((sv = link_new(d)) == NULL)
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

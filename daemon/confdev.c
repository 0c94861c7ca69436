/*
 * The [device NAME] sections of fasciad's configuration (config.c reads
 * the file and hands them here): each device's keys, its address read for
 * its transport once the section ends, whichever line gave the transport,
 * and the checks that need the whole file: a watchdog the tick cannot keep
 * fed, two devices at one address.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"

/*
 * The firmware's watchdog (watchdog_ms) must outlast the comms interlock
 * (comms_ticks missed exchanges) by this many tick periods: one for a tick
 * that runs late, one for the exchange that times out.  With fewer, the
 * firmware, not the daemon, is the first to see a link that drops, and a
 * watchdog of a tick or two trips on a healthy link's jitter (at tick_hz
 * 10, watchdog_ms 50 faults the device after every ack).
 */
#define WATCHDOG_SPARE_TICKS 2

static const char *const device_keys[DK_COUNT] = {
	"transport", "address",  "baud",       "parity",
	"unit",      "chambers", "limit_mmhg", "watchdog_ms",
};

static const long bauds[] = {1200,  2400,  4800,   9600,   19200,
			     38400, 57600, 115200, 230400, 460800};

void confdev_default(struct fd_device_conf *d)
{
	memset(d, 0, sizeof(*d));
	d->transport = TRANSPORT_TCP;
	snprintf(d->host, sizeof(d->host), "127.0.0.1");
	d->port = 1502;
	d->baud = 115200;
	d->parity = 'N';
	d->unit = 1;
	d->chambers = 8;
	d->limit_mmhg = 80.0;
	d->watchdog_ms = FASCIA_WATCHDOG_MS_DEFAULT;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(((struct fd_device_conf *)0)->name))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

void confdev_begin(struct parse *p, const char *name)
{
	struct fd_conf *c = p->conf;

	if (!valid_name(name)) {
		conf_error(
			p->errs, p->line,
			"device name '%s': use 1..31 letters, digits, - or _",
			name);
		return;
	}
	for (int i = 0; i < c->ndev; i++)
		if (strcmp(c->dev[i].name, name) == 0) {
			conf_error(p->errs, p->line,
				   "device '%s' is defined twice", name);
			return;
		}
	if (c->ndev == FD_MAX_DEVICES) {
		conf_error(p->errs, p->line, "more than %d devices",
			   FD_MAX_DEVICES);
		return;
	}
	p->dev = &c->dev[c->ndev++];
	confdev_default(p->dev);
	memcpy(p->dev->name, name, strlen(name) + 1); /* valid_name: fits */
	p->dev->line = p->line;
}

static int get_baud(struct parse *p, const char *v, int *out)
{
	long n;

	if (conf_get_long(p, p->line, "baud", v, 1, 4000000, &n) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++)
		if (bauds[i] == n) {
			*out = (int)n;
			return 0;
		}
	conf_error(p->errs, p->line, "baud: %ld is not a standard rate", n);
	return -1;
}

int confdev_key(struct parse *p, const char *key, const char *v)
{
	struct fd_device_conf *d = p->dev;
	int k = conf_key_index(device_keys, DK_COUNT, key);

	if (k == DK_COUNT) {
		conf_error(p->errs, p->line, "unknown key '%s' in [device %s]",
			   key, d->name);
		return -1;
	}
	if (!conf_given_once(p, &p->dev_line[d - p->conf->dev][k], key))
		return -1;
	switch (k) {
	case DK_TRANSPORT:
		if (strcmp(v, "tcp") == 0)
			d->transport = TRANSPORT_TCP;
		else if (strcmp(v, "rtu") == 0)
			d->transport = TRANSPORT_RTU;
		else {
			conf_error(p->errs, p->line,
				   "transport: '%s' is neither tcp nor rtu", v);
			return -1;
		}
		return 0;
	case DK_ADDRESS:
		return conf_get_string(p, key, v, p->address,
				       sizeof(p->address));
	case DK_BAUD:
		return get_baud(p, v, &d->baud);
	case DK_PARITY:
		if (strlen(v) != 1 || strchr("NEO", toupper(*v)) == NULL) {
			conf_error(p->errs, p->line,
				   "parity: '%s' is not N, E or O", v);
			return -1;
		}
		d->parity = (char)toupper(*v);
		return 0;
	case DK_UNIT:
		return conf_get_int(p, key, v, 1, 247, &d->unit);
	case DK_CHAMBERS:
		return conf_get_int(p, key, v, 1, FASCIA_MAX_CHAMBERS,
				    &d->chambers);
	case DK_LIMIT:
		return conf_get_double(p, key, v, 10, FASCIA_CEILING_MMHG,
				       &d->limit_mmhg);
	default:
		return conf_get_int(p, key, v, FASCIA_WATCHDOG_MS_MIN,
				    FASCIA_WATCHDOG_MS_MAX, &d->watchdog_ms);
	}
}

/*
 * A tcp device's address v, HOST:PORT, given at line.  A path is the
 * address of an rtu device, and saying so tells the operator which of the
 * two lines is wrong.  Refused, the host is cleared: check_shared()
 * compares only the addresses that parsed.
 */
static void tcp_address(struct parse *p, struct fd_device_conf *d,
			const char *v, int line)
{
	const char *colon = strrchr(v, ':');
	size_t hlen;
	long port;

	d->host[0] = '\0';
	if (v[0] == '/') {
		conf_error(p->errs, line,
			   "address: '%s' is a serial device, but device %s "
			   "is tcp: give HOST:PORT, or transport = rtu",
			   v, d->name);
		return;
	}
	if (colon == NULL || colon == v) {
		conf_error(p->errs, line, "address: '%s' is not HOST:PORT", v);
		return;
	}
	hlen = (size_t)(colon - v);
	if (hlen >= sizeof(d->host)) {
		conf_error(p->errs, line,
			   "address: host too long (%zu at most)",
			   sizeof(d->host) - 1);
		return;
	}
	if (conf_get_long(p, line, "address port", colon + 1, 1, 65535,
			  &port) == -1)
		return;
	d->port = (int)port;
	memcpy(d->host, v, hlen);
	d->host[hlen] = '\0';
}

/* An rtu device's address v: the path of its serial device. */
static void rtu_address(struct parse *p, struct fd_device_conf *d,
			const char *v, int line)
{
	d->path[0] = '\0';
	if (v[0] != '/') {
		conf_error(p->errs, line,
			   "address: '%s' is not a serial device, but device "
			   "%s is rtu: give its path (/dev/ttyUSB0), or "
			   "transport = tcp",
			   v, d->name);
		return;
	}
	if (strlen(v) >= sizeof(d->path)) {
		conf_error(p->errs, line,
			   "address: path too long (%zu at most)",
			   sizeof(d->path) - 1);
		return;
	}
	memcpy(d->path, v, strlen(v) + 1);
}

/*
 * The serial line's keys are refused on a tcp device, where they would be
 * ignored; tcp has a default address (the simulator's), rtu none.
 */
void confdev_end(struct parse *p)
{
	struct fd_device_conf *d = p->dev;
	const int *at;

	if (d == NULL)
		return;
	at = p->dev_line[d - p->conf->dev];
	if (d->transport == TRANSPORT_TCP)
		for (int k = DK_BAUD; k <= DK_PARITY; k++)
			if (at[k])
				conf_error(p->errs, at[k],
					   "%s: device %s is tcp; baud and "
					   "parity are for rtu: remove the "
					   "line, or transport = rtu",
					   device_keys[k], d->name);
	if (at[DK_ADDRESS] == 0) {
		if (d->transport == TRANSPORT_RTU)
			conf_error(p->errs, d->line,
				   "device %s: rtu needs address = /dev/...",
				   d->name);
	} else if (p->address[0] == '\0') {
		/* Refused as it was read: compare it with no other. */
		d->host[0] = '\0';
	} else if (d->transport == TRANSPORT_TCP)
		tcp_address(p, d, p->address, at[DK_ADDRESS]);
	else
		rtu_address(p, d, p->address, at[DK_ADDRESS]);
	p->address[0] = '\0';
	p->dev = NULL;
}

/* Where device i's key k was given, else where its section starts. */
static int key_line(const struct parse *p, int i, int k)
{
	return p->dev_line[i][k] ? p->dev_line[i][k] : p->conf->dev[i].line;
}

/*
 * The watchdog against the tick, which [daemon] may set after the devices:
 * at least comms_ticks + WATCHDOG_SPARE_TICKS tick periods.
 */
static void check_watchdog(struct parse *p, int i)
{
	const struct fd_conf *c = p->conf;
	const struct fd_device_conf *d = &c->dev[i];
	double ticks = c->ilk.v[ILK_COMMS][0] + WATCHDOG_SPARE_TICKS;
	double min_ms = ceil(ticks * 1000.0 / c->tick_hz);

	if (d->watchdog_ms < min_ms)
		conf_error(p->errs, key_line(p, i, DK_WATCHDOG),
			   "watchdog_ms: %d is under %g ticks at tick_hz %d "
			   "(comms_ticks + %d): give %.0f or more, or raise "
			   "tick_hz",
			   d->watchdog_ms, ticks, c->tick_hz,
			   WATCHDOG_SPARE_TICKS, min_ms);
}

/*
 * Two devices at one address would be one controller driven by two
 * control threads.  tcp: the same host (as written) and port and unit;
 * other units behind one gateway are other controllers.  rtu: the same
 * path, whatever the units, since each device's thread opens the port
 * itself (link.c) and two masters' frames would interleave on the bus.
 */
static void check_shared(struct parse *p, int i)
{
	const struct fd_conf *c = p->conf;
	const struct fd_device_conf *d = &c->dev[i], *o;

	for (int j = 0; j < i; j++) {
		o = &c->dev[j];
		if (o->transport != d->transport)
			continue;
		if (d->transport == TRANSPORT_TCP && d->host[0] != '\0' &&
		    strcasecmp(d->host, o->host) == 0 && d->port == o->port &&
		    d->unit == o->unit) {
			conf_error(p->errs, key_line(p, i, DK_ADDRESS),
				   "device %s: %s:%d unit %d is device %s's "
				   "(line %d): give each its own address or "
				   "unit",
				   d->name, d->host, d->port, d->unit, o->name,
				   o->line);
			return;
		}
		if (d->transport == TRANSPORT_RTU && d->path[0] != '\0' &&
		    strcmp(d->path, o->path) == 0) {
			conf_error(p->errs, key_line(p, i, DK_ADDRESS),
				   "device %s: %s is device %s's (line %d): "
				   "one device a serial port, even with "
				   "other units",
				   d->name, d->path, o->name, o->line);
			return;
		}
	}
}

void confdev_check(struct parse *p)
{
	const struct fd_conf *c = p->conf;

	if (c->ndev == 0)
		conf_error(p->errs, 0, "no [device NAME] section");
	for (int i = 0; i < c->ndev; i++) {
		check_watchdog(p, i);
		check_shared(p, i);
	}
}

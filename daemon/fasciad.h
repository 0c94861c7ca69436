/*
 * fasciad: the daemon's internal interfaces.
 */
#ifndef FASCIAD_H
#define FASCIAD_H

#include <stdbool.h>
#include <stddef.h>

#include <fascia/limits.h>
#include <fascia/regmap.h>

#include "safety.h"

/* ---- config.c: the INI file ---- */

#define FD_MAX_DEVICES 256
#define CONF_MAX_ERRORS 32

enum transport { TRANSPORT_TCP, TRANSPORT_RTU };

struct fd_device_conf {
	char name[32];
	enum transport transport;
	char host[64]; /* tcp */
	int port;
	char path[128]; /* rtu */
	int baud;
	char parity; /* 'N', 'E' or 'O' */
	int unit;
	int chambers;
	double limit_mmhg;
	int watchdog_ms;
	int line; /* where its section starts */
};

struct fd_conf {
	char control[256];
	char publish[256];
	char profiles[512];
	int tick_hz;
	int publish_hz;
	double max_session_s;
	struct ilk_config ilk;
	struct fd_device_conf dev[FD_MAX_DEVICES];
	int ndev;
};

struct conf_error {
	int line; /* 0: the file as a whole */
	char message[160];
};

struct conf_errors {
	struct conf_error e[CONF_MAX_ERRORS];
	int n;
	int dropped; /* errors past CONF_MAX_ERRORS */
};

/* The [daemon] defaults, no device. */
void conf_default(struct fd_conf *c);
/* The built-in configuration: the defaults and one device `sim` at
 * 127.0.0.1:1502. */
void conf_builtin(struct fd_conf *c);
/* Load path into c; 0, or -1 with every error (and its line) in errs. */
int conf_load(const char *path, struct fd_conf *c, struct conf_errors *errs);
void conf_error(struct conf_errors *errs, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif

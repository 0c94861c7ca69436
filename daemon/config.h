/*
 * The configuration's own header: what its two files share, and no other
 * file of the daemon sees (they call conf_*, fasciad.h).  config.c reads
 * the file: inih's reader and handler, [daemon] and [security], the
 * readers of a value, and the checks of the whole file; confdev.c reads
 * the [device NAME] sections and checks each device against the tick and
 * against the others.  config.c calls confdev.c, and confdev.c calls back
 * only the readers of a value.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "fasciad.h"

/* [daemon] keys, in the order of struct parse's daemon_line. */
enum {
	DAK_CONTROL,
	DAK_PUBLISH,
	DAK_PROFILES,
	DAK_TICK_HZ,
	DAK_PUBLISH_HZ,
	DAK_MAX_SESSION,
	DAK_JOURNAL,
	DAK_JOURNAL_REQUIRED,
	DAK_TRACE_HZ,
	DAK_TRACE_KEEP,
	DAEMON_KEYS
};

/* [security] keys, in the order of struct parse's sec_line. */
enum {
	SK_CURVE,
	SK_SERVER_CERT,
	SK_CLIENTS,
	SK_LOCAL,
	SK_LOCAL_ROLE,
	SK_COUNT
};

/* [device NAME] keys, in the order of struct parse's dev_line[i]. */
enum {
	DK_TRANSPORT,
	DK_ADDRESS,
	DK_BAUD,
	DK_PARITY,
	DK_UNIT,
	DK_CHAMBERS,
	DK_LIMIT,
	DK_WATCHDOG,
	DK_COUNT
};

/*
 * Counts lines for the handler (inih does not pass them in this build) and
 * keeps the line of each key given, 0 for one not given: a key given twice
 * names the first, and the checks of the whole file name the line of the
 * key they refuse.
 */
struct parse {
	struct fd_conf *conf;
	struct conf_errors *errs;
	FILE *fp;
	int line;
	bool indented;    /* the line starts with a blank */
	bool in_security; /* in [security] */
	int daemon_line[DAEMON_KEYS];
	int sec_line[SK_COUNT];
	int ilk_line[ILK_COUNT][2];
	/* confdev.c's: the [device NAME] being read, NULL outside one, and
	 * its address, read once its section ends: transport may follow it. */
	struct fd_device_conf *dev;
	char address[256];
	int dev_line[FD_MAX_DEVICES][DK_COUNT];
};

/* ---- config.c: the readers of a value ---- */

/*
 * Each reads v, the value of key, into *out and returns 0; or records why
 * it cannot (at line for conf_get_long, else at the line being read) and
 * returns -1, leaving *out as it was.  A number must parse whole and lie
 * within [lo, hi]; a string must be 1..size - 1 characters.
 */
int conf_get_long(struct parse *p, int line, const char *key, const char *v,
		  long lo, long hi, long *out);
int conf_get_int(struct parse *p, const char *key, const char *v, long lo,
		 long hi, int *out);
int conf_get_double(struct parse *p, const char *key, const char *v, double lo,
		    double hi, double *out);
int conf_get_string(struct parse *p, const char *key, const char *v, char *out,
		    size_t size);
/* Whether key, whose first line is *line (0: not yet given), may be read
 * now: the first time it is (and *line becomes this line); a second is
 * refused, naming both lines. */
bool conf_given_once(struct parse *p, int *line, const char *key);
/* name's place in a section's table of n keys, or n when it is not there. */
int conf_key_index(const char *const *keys, int n, const char *name);

/* ---- confdev.c: the [device NAME] sections ---- */

/* A device's defaults: tcp to the simulator, 127.0.0.1:1502. */
void confdev_default(struct fd_device_conf *d);
/* [device NAME] begins: a new device with the defaults, or an error (a
 * bad or taken name, too many devices) and p->dev stays NULL. */
void confdev_begin(struct parse *p, const char *name);
/* key = v in the device being read, p->dev. */
int confdev_key(struct parse *p, const char *key, const char *v);
/* The device being read ends, if one is: its address is read for its
 * transport, now known, and p->dev is NULL again. */
void confdev_end(struct parse *p);
/* The devices once the whole file is read: one at least, watchdogs the
 * tick can feed, no two at one address. */
void confdev_check(struct parse *p);

#endif

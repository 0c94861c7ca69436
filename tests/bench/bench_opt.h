/*
 * The options of the helpers pubsub and load, anywhere on the command
 * line, taken out of argv before a helper reads its positional arguments.
 *
 * --pair ENDPOINT2: a second, plaintext fasciad measured beside the first
 * (load.c, pubsub.c say how).
 *
 * --cert FILE --server-key KEY: CURVE.  Both or neither, as fasciactl's:
 * FILE is the client's secret certificate (NAME.key_secret), KEY the
 * daemon's public key (40 characters of Z85, or its public certificate
 * file).  Every socket the helper connects to fasciad then gets the keys
 * through libfascia's fascia_security_apply(), the function behind
 * fascia_client_new_secure() and fascia_monitor_new_secure(): the
 * helper's sockets, loop and measurement stay the same, CURVE or
 * plaintext, so the difference between two runs is the security alone.  No environment variable turns it on
 * (FASCIA_CERT and FASCIA_SERVER_KEY are the clients'): a plaintext
 * figure cannot become a CURVE one by accident.
 */
#ifndef FASCIA_BENCH_OPT_H
#define FASCIA_BENCH_OPT_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <fascia/client.h>

/* fascia_security_apply()'s declaration while it is libfascia's private
 * one (harmless once <fascia/client.h> has it) */
#include "../../protocol/security.h"

/* Take "flag VALUE" out of argv (*argc shrinks): VALUE, NULL when absent,
 * "" when it has no value. */
static inline const char *bench_opt_value(int *argc, char **argv,
					  const char *flag)
{
	const char *v = NULL;
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) != 0)
			argv[out++] = argv[i];
		else
			v = i + 1 < *argc ? argv[++i] : "";
	}
	*argc = out;
	argv[out] = NULL;
	return v;
}

/*
 * Take --cert and --server-key out of argv (*argc shrinks) into *sec
 * (members NULL when not given), and check the keys.  Returns 0, or -1
 * after a message on stderr naming what is wrong.
 */
static inline int curve_opt_take(const char *prog, int *argc, char **argv,
				 struct fascia_security *sec)
{
	const char *bad;
	int out = 1;

	sec->cert = sec->server_key = NULL;
	for (int i = 1; i < *argc; i++) {
		const char **to = NULL;

		if (strcmp(argv[i], "--cert") == 0)
			to = &sec->cert;
		else if (strcmp(argv[i], "--server-key") == 0)
			to = &sec->server_key;
		if (to == NULL) {
			argv[out++] = argv[i];
			continue;
		}
		if (i + 1 >= *argc) {
			fprintf(stderr, "%s: %s needs a value\n", prog,
				argv[i]);
			return -1;
		}
		*to = argv[++i];
	}
	*argc = out;
	argv[out] = NULL;
	if ((sec->cert == NULL) != (sec->server_key == NULL)) {
		fprintf(stderr, "%s: %s needs %s as well\n", prog,
			sec->cert ? "--cert" : "--server-key",
			sec->cert ? "--server-key" : "--cert");
		return -1;
	}
	if (fascia_security_check(sec, &bad) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, bad ? bad : "CURVE",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether the helper runs with CURVE. */
static inline bool curve_opt_on(const struct fascia_security *sec)
{
	return sec->cert != NULL;
}

/* sec's keys on sock, before it connects; -1 after a message. */
static inline int curve_opt_apply(const char *prog, void *sock,
				  const struct fascia_security *sec)
{
	if (fascia_security_apply(sock, sec) == 0)
		return 0;
	fprintf(stderr, "%s: CURVE keys: %s\n", prog, strerror(errno));
	return -1;
}

#endif

/*
 * Fuzz fasciad's INI configuration parser (daemon/config.c, and
 * confdev.c for the [device NAME] sections) through conf_load_stream() on
 * an fmemopen() stream.  Invariants: the return is 0 exactly when no error
 * was recorded, and whatever the parse kept — the defaults or an accepted
 * value — lies within the bounds the two files document, even when the
 * file as a whole is refused; and an accepted file listens off loopback
 * only with CURVE and its certificates named.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/config.c"
#include "../../daemon/confdev.c"
#include "../../daemon/interlock.c"

#include "check.h"

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static bool endpoint_ok(const char *s)
{
	return strncmp(s, "tcp://", 6) == 0 || strncmp(s, "ipc://", 6) == 0 ||
	       strncmp(s, "inproc://", 9) == 0;
}

static bool baud_ok(int b)
{
	for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++)
		if (bauds[i] == b)
			return true;
	return false;
}

static void check_device(const struct fd_device_conf *d, bool accepted)
{
	CHECK(terminated(d->name, sizeof(d->name)));
	CHECK(valid_name(d->name));
	CHECK(terminated(d->host, sizeof(d->host)));
	CHECK(terminated(d->path, sizeof(d->path)));
	CHECK(d->transport == TRANSPORT_TCP || d->transport == TRANSPORT_RTU);
	CHECK(d->port >= 1 && d->port <= 65535);
	CHECK(baud_ok(d->baud));
	CHECK(d->parity == 'N' || d->parity == 'E' || d->parity == 'O');
	CHECK(d->unit >= 1 && d->unit <= 247);
	CHECK(d->chambers >= 1 && d->chambers <= FASCIA_MAX_CHAMBERS);
	CHECK(d->limit_mmhg >= 10 && d->limit_mmhg <= FASCIA_CEILING_MMHG);
	CHECK(d->watchdog_ms >= FASCIA_WATCHDOG_MS_MIN &&
	      d->watchdog_ms <= FASCIA_WATCHDOG_MS_MAX);
	CHECK(d->line >= 1);
	if (accepted && d->transport == TRANSPORT_RTU)
		CHECK(d->path[0] != '\0');
}

/* [security]: nothing listens off loopback in plaintext; CURVE has its
 * certificates; the local endpoint is ipc://. */
static void check_sec_conf(const struct fd_conf *c, bool accepted)
{
	const struct fd_security_conf *sc = &c->sec;

	CHECK(terminated(sc->server_cert, sizeof(sc->server_cert)));
	CHECK(terminated(sc->clients, sizeof(sc->clients)));
	CHECK(terminated(sc->local, sizeof(sc->local)));
	CHECK(sc->local_role >= FD_ROLE_OBSERVER &&
	      sc->local_role <= FD_ROLE_ADMIN);
	CHECK(sc->local[0] == '\0' || strncmp(sc->local, "ipc:///", 7) == 0);
	if (!accepted)
		return;
	if (sc->curve) {
		CHECK(sc->server_cert[0] != '\0' && sc->clients[0] != '\0');
		return;
	}
	CHECK(sc->server_cert[0] == '\0' && sc->clients[0] == '\0');
	CHECK(strncmp(c->control, "tcp://", 6) != 0 || loopback(c->control));
	CHECK(strncmp(c->publish, "tcp://", 6) != 0 || loopback(c->publish));
}

static void check_conf(const struct fd_conf *c, bool accepted)
{
	CHECK(terminated(c->control, sizeof(c->control)));
	CHECK(terminated(c->publish, sizeof(c->publish)));
	CHECK(terminated(c->profiles, sizeof(c->profiles)));
	CHECK(endpoint_ok(c->control) && endpoint_ok(c->publish));
	CHECK(c->profiles[0] != '\0');
	CHECK(c->tick_hz >= 10 && c->tick_hz <= 200);
	CHECK(c->publish_hz >= 1 && c->publish_hz <= 50);
	CHECK(c->max_session_s >= 60 &&
	      c->max_session_s <= FASCIA_MAX_SESSION_S);
	for (int i = 0; i < ILK_COUNT; i++)
		for (int j = 0; j < 2; j++) {
			const struct ilk_param *k = &ilk_rows[i].param[j];

			if (k->key != NULL)
				CHECK(c->ilk.v[i][j] >= k->lo &&
				      c->ilk.v[i][j] <= k->hi);
		}
	check_sec_conf(c, accepted);
	CHECK(c->ndev >= 0 && c->ndev <= FD_MAX_DEVICES);
	if (accepted) {
		CHECK(c->ndev >= 1);
		CHECK(strcmp(c->control, c->publish) != 0 ||
		      strchr(c->control, '*') != NULL);
	}
	for (int i = 0; i < c->ndev; i++) {
		check_device(&c->dev[i], accepted);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(c->dev[i].name, c->dev[j].name) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fd_conf conf; /* 50 KB: not on the stack */
	static struct conf_errors errs;
	FILE *fp;
	int rc;

	if (size == 0 || size > 64 * 1024)
		return 0;
	/* fmemopen on the fuzzer's own (read-only) buffer would do, but a
	 * copy lets ASan see a read past the end of the text */
	char *text = malloc(size);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	if ((fp = fmemopen(text, size, "r")) == NULL) {
		free(text);
		return 0;
	}
	rc = conf_load_stream(fp, "fuzz.conf", &conf, &errs);
	fclose(fp);
	free(text);

	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == (errs.n == 0 && errs.dropped == 0));
	CHECK(errs.n >= 0 && errs.n <= CONF_MAX_ERRORS);
	CHECK(errs.dropped == 0 || errs.n == CONF_MAX_ERRORS);
	for (int i = 0; i < errs.n; i++) {
		CHECK(errs.e[i].line >= 0);
		CHECK(terminated(errs.e[i].message, sizeof(errs.e[i].message)));
		CHECK(errs.e[i].message[0] != '\0');
	}
	check_conf(&conf, rc == 0);
	return 0;
}

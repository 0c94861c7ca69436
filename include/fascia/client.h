/*
 * libfascia's client side of fasciad's ZeroMQ protocol (docs/protocol.md),
 * shared by fasciactl and fascia-top: requests with a bounded wait, and a
 * subscriber that notices gaps in the per-device sequence numbers.
 *
 * Errors: -1 or NULL with errno set: ETIMEDOUT (no reply within the
 * timeout: the daemon is unreachable, or with CURVE a wrong server key, as
 * the two look the same), EACCES (with CURVE: the daemon refused this
 * client's certificate, not among its clients), EPROTO (a reply that is
 * not the protocol's),
 * EINVAL (a bad argument, an endpoint ZeroMQ cannot parse among them), or
 * an errno of libzmq.
 *
 * CURVE (fasciad.conf(5), [security]): a client or monitor made with a struct
 * fascia_security that names both a certificate and a server key encrypts
 * and authenticates its connection; NULL (or neither named) is plaintext.
 */
#ifndef FASCIA_CLIENT_H
#define FASCIA_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define FASCIA_CONTROL_DEFAULT "tcp://127.0.0.1:7410"
#define FASCIA_PUBLISH_DEFAULT "tcp://127.0.0.1:7411"

struct fascia_client;
struct fascia_monitor;

/*
 * What a CURVE client needs; both members NULL (or a NULL pointer) for
 * plaintext.  The strings are read when a client or monitor is made, not
 * kept.
 */
struct fascia_security {
	/* the client's secret certificate file, as zcert_save or fasciactl
	 * keygen writes it (NAME.key_secret) */
	const char *cert;
	/* the daemon's public key: 40 characters of Z85, or the path of its
	 * public certificate file (server.key); a name that exists as a file
	 * is taken as one */
	const char *server_key;
};

/*
 * Load and check sec's certificate and server key without connecting.
 * Returns 0 (also for plaintext: sec NULL or both members NULL), or -1
 * with errno, and *bad (when bad is not NULL) set to the member at fault
 * (sec->cert or sec->server_key; NULL when only one of them is given):
 *   EINVAL   only one of the two given; a certificate file that is not a
 *            CURVE secret certificate (a public one among them); a server
 *            key that is neither 40 characters of Z85 nor a certificate
 *   ENOENT, EACCES, EISDIR ...  a file that cannot be read (a server
 *            key is taken for a missing file when it ends in .key or
 *            .key_secret)
 *   ENOTSUP  libzmq was built without CURVE
 */
int fascia_security_check(const struct fascia_security *sec, const char **bad);

/*
 * Set sec's keys on a libzmq socket of the caller's own, before it
 * connects, for a program that serves its sockets from its own event loop
 * (fascia-web): nothing for plaintext (sec NULL or naming neither).
 * Returns 0, or -1 with the errno of fascia_security_check() or of
 * zmq_setsockopt().
 */
int fascia_security_apply(void *sock, const struct fascia_security *sec);

/*
 * A client of the control endpoint (a DEALER socket).  timeout_ms bounds
 * every call.  Returns NULL with errno on failure: EINVAL for an endpoint
 * that is not one ("bogus", "tcp://host" without a port, an unknown
 * transport).
 */
struct fascia_client *fascia_client_new(const char *endpoint, int timeout_ms);
/*
 * The same over CURVE with sec's keys (plaintext when sec is NULL or names
 * neither).  Also NULL with fascia_security_check()'s errors; call that
 * first to learn which member was at fault, as EINVAL is also a bad
 * endpoint's.
 */
struct fascia_client *
fascia_client_new_secure(const char *endpoint, int timeout_ms,
			 const struct fascia_security *sec);
/* NULL-safe; clears *c. */
void fascia_client_destroy(struct fascia_client **c);

/*
 * Send request (a JSON object with "cmd" and its arguments; "v" and "id"
 * are filled in when absent) and wait for the reply with the same id.
 * Returns the whole reply object ({"v","id","ok",...}, a new reference),
 * or NULL with errno ETIMEDOUT, EACCES (CURVE: the certificate was
 * refused) or EPROTO.  A late reply to an earlier call
 * that timed out is skipped, never taken for this one.  A reply with
 * "id": null (the daemon could not parse a request, so could not read its
 * id) is this call's when no earlier call is still unanswered, and is
 * skipped otherwise.
 */
json_t *fascia_client_call(struct fascia_client *c, json_t *request);

/* The same, from JSON text; NULL with EINVAL when text is not an object. */
json_t *fascia_client_call_text(struct fascia_client *c, const char *text);

/*
 * A subscriber to the publish endpoint.  prefix selects topics ("" for
 * all, "state.", "alarm.sim" ...).  Returns NULL with errno on failure
 * (EINVAL for an endpoint that is not one).
 */
struct fascia_monitor *fascia_monitor_new(const char *endpoint,
					  const char *prefix);
/* The same over CURVE, as fascia_client_new_secure(). */
struct fascia_monitor *
fascia_monitor_new_secure(const char *endpoint, const char *prefix,
			  const struct fascia_security *sec);
/* NULL-safe; clears *m. */
void fascia_monitor_destroy(struct fascia_monitor **m);

/*
 * The next message within timeout_ms: returns 1 with topic (NUL-terminated,
 * truncated to topiclen) and *msg (a new reference), 0 on timeout, -1 with
 * errno (EPROTO: a message that is not two frames of topic and JSON
 * object).
 */
int fascia_monitor_next(struct fascia_monitor *m, int timeout_ms, char *topic,
			size_t topiclen, json_t **msg);

/* Messages missed so far, from gaps in each device's "seq". */
uint64_t fascia_monitor_gaps(const struct fascia_monitor *m);

/* The ZeroMQ socket's file descriptor, for poll() in a UI loop
 * (edge-triggered: call fascia_monitor_next until it returns 0). */
int fascia_monitor_fd(const struct fascia_monitor *m);

#endif

/*
 * libfascia's client side of fasciad's ZeroMQ protocol (docs/protocol.md),
 * shared by fasciactl and fascia-top: requests with a bounded wait, and a
 * subscriber that notices gaps in the per-device sequence numbers.
 *
 * Errors: -1 or NULL with errno set: ETIMEDOUT (no reply within the
 * timeout: the daemon is unreachable), EPROTO (a reply that is not the
 * protocol's), EINVAL (a bad argument, an endpoint ZeroMQ cannot parse
 * among them), or an errno of libzmq.
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
 * A client of the control endpoint (a DEALER socket).  timeout_ms bounds
 * every call.  Returns NULL with errno on failure: EINVAL for an endpoint
 * that is not one ("bogus", "tcp://host" without a port, an unknown
 * transport).
 */
struct fascia_client *fascia_client_new(const char *endpoint, int timeout_ms);
/* NULL-safe; clears *c. */
void fascia_client_destroy(struct fascia_client **c);

/*
 * Send request (a JSON object with "cmd" and its arguments; "v" and "id"
 * are filled in when absent) and wait for the reply with the same id.
 * Returns the whole reply object ({"v","id","ok",...}, a new reference),
 * or NULL with errno ETIMEDOUT or EPROTO.  A late reply to an earlier call
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

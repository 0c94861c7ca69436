/*
 * libfascia's client (protocol/client.c): the monitor's gap counting from
 * "seq" per device, and both halves against hand-driven ZeroMQ peers on
 * loopback TCP: a late reply is skipped, a silent daemon times out in
 * time, a publisher's bad message is EPROTO.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../protocol/client.c"

static void seq_missed_counts_only_forward_jumps(void **state)
{
	(void)state;
	assert_int_equal(seq_missed(1, 2), 0);
	assert_int_equal(seq_missed(1, 5), 3);
	assert_int_equal(seq_missed(10, 10), 0);  /* a repeat */
	assert_int_equal(seq_missed(4000, 1), 0); /* daemon restarted */
}

static void gaps_are_counted_per_device(void **state)
{
	struct fascia_monitor m;

	(void)state;
	memset(&m, 0, sizeof(m));
	note_seq(&m, "a", 7); /* the first message is never a gap */
	note_seq(&m, "b", 100);
	note_seq(&m, "a", 8);
	note_seq(&m, "b", 101);
	assert_int_equal(fascia_monitor_gaps(&m), 0);
	note_seq(&m, "a", 11); /* 9 and 10 lost */
	assert_int_equal(fascia_monitor_gaps(&m), 2);
	note_seq(&m, "b", 102);
	assert_int_equal(fascia_monitor_gaps(&m), 2);
	note_seq(&m, "a", 1); /* restart: no gap, and it counts from 1 */
	note_seq(&m, "a", 3);
	assert_int_equal(fascia_monitor_gaps(&m), 3);
	free(m.tracks);
}

static void note_message_ignores_messages_without_seq(void **state)
{
	struct fascia_monitor m;
	json_t *a = json_pack("{s:s,s:i}", "device", "x", "seq", 1);
	json_t *b = json_pack("{s:s,s:s}", "device", "x", "seq", "9");
	json_t *c = json_pack("{s:i,s:i}", "device", 3, "seq", 9);
	json_t *d = json_pack("{s:s,s:i}", "device", "x", "seq", 4);

	(void)state;
	memset(&m, 0, sizeof(m));
	note_message(&m, a);
	note_message(&m, b);
	note_message(&m, c);
	note_message(&m, d);
	assert_int_equal(fascia_monitor_gaps(&m), 2);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
	free(m.tracks);
}

/* A socket of type bound to a free loopback port; its endpoint in ep. */
static void *bind_any(void *ctx, int type, char *ep, size_t eplen)
{
	void *s = zmq_socket(ctx, type);
	int linger = 0;

	assert_non_null(s);
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	return s;
}

/* Read one request on a ROUTER: identity, delimiter, payload. */
static json_t *router_read(void *r, char *ident, size_t *identlen)
{
	char buf[1024];
	int n;

	n = zmq_recv(r, ident, *identlen, 0);
	assert_true(n > 0);
	*identlen = (size_t)n;
	assert_int_equal(zmq_recv(r, buf, sizeof(buf), 0), 0);
	n = zmq_recv(r, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	return json_loadb(buf, (size_t)n, 0, NULL);
}

static void router_reply(void *r, const char *ident, size_t identlen,
			 const char *id, const char *result)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
		 "{\"v\":1,\"id\":%s,\"ok\":true,\"result\":%s}", id, result);
	zmq_send(r, ident, identlen, ZMQ_SNDMORE);
	zmq_send(r, "", 0, ZMQ_SNDMORE);
	zmq_send(r, buf, strlen(buf), 0);
}

static void a_late_reply_is_skipped_and_a_timeout_is_bounded(void **state)
{
	void *ctx = zmq_ctx_new();
	char ep[256], ident[256], id[32];
	size_t identlen = sizeof(ident);
	void *r = bind_any(ctx, ZMQ_ROUTER, ep, sizeof(ep));
	struct fascia_client *c = fascia_client_new(ep, 300);
	json_t *req, *rep;
	json_int_t first;
	int64_t t0;

	(void)state;
	assert_non_null(c);
	/* first call: nobody answers in time */
	t0 = now_ms();
	assert_null(fascia_client_call_text(c, "{\"cmd\":\"hello\"}"));
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(now_ms() - t0 >= 290 && now_ms() - t0 < 1000);
	req = router_read(r, ident, &identlen);
	assert_int_equal(json_integer_value(json_object_get(req, "v")), 1);
	first = json_integer_value(json_object_get(req, "id"));
	json_decref(req);
	/* its reply comes late, ahead of the next call's (ids count up) */
	snprintf(id, sizeof(id), "%lld", (long long)first);
	router_reply(r, ident, identlen, id, "{\"late\":true}");
	snprintf(id, sizeof(id), "%lld", (long long)first + 1);
	router_reply(r, ident, identlen, id, "{\"late\":false}");
	rep = fascia_client_call_text(c, "{\"cmd\":\"devices\"}");
	assert_non_null(rep);
	assert_true(json_is_false(
		json_object_get(json_object_get(rep, "result"), "late")));
	json_decref(rep);
	/* the caller's own id is kept and matched */
	router_reply(r, ident, identlen, "\"mine\"", "{}");
	req = json_pack("{s:s,s:s}", "cmd", "hello", "id", "mine");
	rep = fascia_client_call(c, req);
	assert_non_null(rep);
	assert_string_equal(json_string_value(json_object_get(rep, "id")),
			    "mine");
	json_decref(rep);
	json_decref(req);
	/* a reply that is not the protocol's */
	zmq_send(r, ident, identlen, ZMQ_SNDMORE);
	zmq_send(r, "", 0, ZMQ_SNDMORE);
	zmq_send(r, "nonsense", 8, 0);
	assert_null(fascia_client_call_text(c, "{\"cmd\":\"hello\"}"));
	assert_int_equal(errno, EPROTO);
	fascia_client_destroy(&c);
	assert_null(c);
	fascia_client_destroy(&c);
	zmq_close(r);
	zmq_ctx_term(ctx);
}

static void monitor_reads_topics_and_refuses_bad_messages(void **state)
{
	void *ctx = zmq_ctx_new();
	char ep[256], topic[8];
	void *pub = bind_any(ctx, ZMQ_PUB, ep, sizeof(ep));
	struct fascia_monitor *m = fascia_monitor_new(ep, "state.");
	json_t *msg = NULL;
	const char *good = "{\"v\":1,\"device\":\"sim\",\"seq\":1}";
	const char *gap = "{\"v\":1,\"device\":\"sim\",\"seq\":4}";
	int rc = 0;

	(void)state;
	assert_non_null(m);
	assert_true(fascia_monitor_fd(m) >= 0);
	/* the subscription is asynchronous: publish until one arrives */
	for (int i = 0; i < 200 && rc == 0; i++) {
		zmq_send(pub, "state.sim", 9, ZMQ_SNDMORE);
		zmq_send(pub, good, strlen(good), 0);
		rc = fascia_monitor_next(m, 20, topic, sizeof(topic), &msg);
	}
	assert_int_equal(rc, 1);
	assert_string_equal(topic, "state.s"); /* truncated to 8 bytes */
	json_decref(msg);
	while (fascia_monitor_next(m, 50, topic, sizeof(topic), &msg) == 1)
		json_decref(msg);
	zmq_send(pub, "event.sim", 9, ZMQ_SNDMORE); /* not subscribed */
	zmq_send(pub, gap, strlen(gap), 0);
	zmq_send(pub, "state.sim", 9, ZMQ_SNDMORE);
	zmq_send(pub, gap, strlen(gap), 0);
	assert_int_equal(
		fascia_monitor_next(m, 1000, topic, sizeof(topic), &msg), 1);
	json_decref(msg);
	assert_int_equal(fascia_monitor_gaps(m), 2);
	zmq_send(pub, "state.x", 7, ZMQ_SNDMORE);
	zmq_send(pub, "[1]", 3, 0);
	assert_int_equal(fascia_monitor_next(m, 1000, NULL, 0, &msg), -1);
	assert_int_equal(errno, EPROTO);
	assert_null(msg);
	zmq_send(pub, "state.x", 7, 0); /* one frame only */
	assert_int_equal(fascia_monitor_next(m, 1000, NULL, 0, &msg), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(fascia_monitor_next(m, 0, NULL, 0, &msg), 0);
	fascia_monitor_destroy(&m);
	assert_null(m);
	zmq_close(pub);
	zmq_ctx_term(ctx);
}

static void bad_arguments_are_einval(void **state)
{
	struct fascia_client *c;

	(void)state;
	assert_null(fascia_client_new(NULL, 100));
	assert_int_equal(errno, EINVAL);
	assert_null(fascia_monitor_new("tcp://127.0.0.1:1", NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(fascia_client_new("not an endpoint", 100));
	c = fascia_client_new("tcp://127.0.0.1:1", 100);
	assert_non_null(c);
	assert_null(fascia_client_call_text(c, "[1]"));
	assert_int_equal(errno, EINVAL);
	assert_null(fascia_client_call_text(c, "{"));
	assert_int_equal(errno, EINVAL);
	assert_null(fascia_client_call(c, NULL));
	assert_int_equal(errno, EINVAL);
	fascia_client_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seq_missed_counts_only_forward_jumps),
		cmocka_unit_test(gaps_are_counted_per_device),
		cmocka_unit_test(note_message_ignores_messages_without_seq),
		cmocka_unit_test(
			a_late_reply_is_skipped_and_a_timeout_is_bounded),
		cmocka_unit_test(monitor_reads_topics_and_refuses_bad_messages),
		cmocka_unit_test(bad_arguments_are_einval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

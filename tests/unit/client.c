/*
 * libfascia's client (protocol/client.c): the monitor's gap counting from
 * "seq" per device, and both halves against hand-driven ZeroMQ peers on
 * loopback TCP: a late reply is skipped, a silent daemon times out in
 * time, a publisher's bad message is EPROTO.  CURVE: certificates made with
 * zcert in a temporary directory are loaded and checked (a public one, a
 * damaged one, bad key text refused with the member named), and both
 * halves talk to CURVE servers (a wrong server key gets no reply, a
 * certificate the server's ZAP handler refuses is EACCES).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "../../protocol/client.c"

#include "../czmq_leaks.h"

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

/* Certificates made with zcert in a temporary directory. */
struct certs {
	char dir[64];
	zcert_t *client; /* client.key, client.key_secret */
	zcert_t *server; /* server.key, server.key_secret */
	zcert_t *other;  /* other.key only: a public certificate alone */
};

static const char *const cert_files[] = {
	"client.key",        "client.key_secret", "server.key",
	"server.key_secret", "other.key",         "garbage",
	"mixed.key_secret",
};

static void cert_path(const struct certs *k, const char *name, char *buf,
		      size_t len)
{
	snprintf(buf, len, "%s/%s", k->dir, name);
}

static zcert_t *make_cert(const struct certs *k, const char *name)
{
	char path[128];
	zcert_t *cert = zcert_new();

	assert_non_null(cert);
	zcert_set_meta(cert, "role", "%s", "observer");
	cert_path(k, name, path, sizeof(path));
	assert_int_equal(zcert_save(cert, path), 0);
	return cert;
}

static int certs_setup(void **state)
{
	struct certs *k = calloc(1, sizeof(*k));
	char path[128];
	FILE *f;

	assert_non_null(k);
	snprintf(k->dir, sizeof(k->dir), "/tmp/fascia-unit-client-XXXXXX");
	assert_non_null(mkdtemp(k->dir));
	k->client = make_cert(k, "client.key");
	k->server = make_cert(k, "server.key");
	k->other = make_cert(k, "other.key");
	cert_path(k, "other.key_secret", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	cert_path(k, "garbage", path, sizeof(path));
	assert_non_null(f = fopen(path, "w"));
	fputs("this is not a certificate\n", f);
	fclose(f);
	*state = k;
	return 0;
}

static int certs_teardown(void **state)
{
	struct certs *k = *state;
	char path[128];

	for (size_t i = 0; i < sizeof(cert_files) / sizeof(cert_files[0]);
	     i++) {
		cert_path(k, cert_files[i], path, sizeof(path));
		unlink(path);
	}
	rmdir(k->dir);
	zcert_destroy(&k->client);
	zcert_destroy(&k->server);
	zcert_destroy(&k->other);
	free(k);
	return 0;
}

/* fascia_security_check() of cert and key (file names in the directory,
 * or key as text when it is 40 characters); *bad: 0 for the cert, 1 for
 * the key, -1 for neither. */
static int check(const struct certs *k, const char *cert, const char *key,
		 int *bad)
{
	char cpath[128], kpath[128];
	struct fascia_security sec = {NULL, NULL};
	const char *at = "unset";
	int rc;

	if (cert != NULL) {
		cert_path(k, cert, cpath, sizeof(cpath));
		sec.cert = cpath;
	}
	if (key != NULL && strlen(key) == 40) {
		sec.server_key = key;
	} else if (key != NULL) {
		cert_path(k, key, kpath, sizeof(kpath));
		sec.server_key = kpath;
	}
	rc = fascia_security_check(&sec, &at);
	*bad = at == NULL             ? -1
	       : at == sec.cert       ? 0
	       : at == sec.server_key ? 1
				      : 9;
	return rc;
}

static void
a_zcert_certificate_loads_with_the_key_as_text_or_a_file(void **state)
{
	struct certs *k = *state;
	struct fascia_security none = {NULL, NULL};
	int bad;

	assert_int_equal(fascia_security_check(NULL, NULL), 0);
	assert_int_equal(fascia_security_check(&none, NULL), 0);
	assert_int_equal(check(k, "client.key_secret",
			       zcert_public_txt(k->server), &bad),
			 0);
	assert_int_equal(bad, -1);
	assert_int_equal(check(k, "client.key_secret", "server.key", &bad), 0);
	/* a public certificate with its secret one beside it: zcert_load
	 * reads the secret one */
	assert_int_equal(check(k, "client.key", "other.key", &bad), 0);
}

static void bad_certificates_are_refused_naming_the_cert(void **state)
{
	struct certs *k = *state;
	const char *key = zcert_public_txt(k->server);
	char path[128];
	zcert_t *mixed;
	int bad, rc;

	assert_int_equal(check(k, "absent.key_secret", key, &bad), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(bad, 0);
	assert_int_equal(check(k, "other.key", key, &bad), -1); /* public */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, 0);
	CZMQ_LEAKS_BEGIN();
	rc = check(k, "garbage", key, &bad);
	CZMQ_LEAKS_END();
	assert_int_equal(rc, -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, 0);
	assert_int_equal(check(k, "", key, &bad), -1); /* the directory */
	assert_int_equal(errno, EISDIR);
	assert_int_equal(bad, 0);
	/* a secret key with another certificate's public key */
	mixed = zcert_new_from(zcert_public_key(k->other),
			       zcert_secret_key(k->client));
	cert_path(k, "mixed.key_secret", path, sizeof(path));
	assert_int_equal(zcert_save_secret(mixed, path), 0);
	zcert_destroy(&mixed);
	assert_int_equal(check(k, "mixed.key_secret", key, &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, 0);
}

static void bad_server_keys_are_refused_naming_the_key(void **state)
{
	struct certs *k = *state;
	struct fascia_security sec = {NULL, NULL};
	char cert[128], key39[40];
	const char *at = "unset";
	int bad, rc;

	/* 40 characters, '~' is no Z85 */
	assert_int_equal(check(k, "client.key_secret",
			       "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~",
			       &bad),
			 -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, 1);
	snprintf(key39, sizeof(key39), "%s", zcert_public_txt(k->server));
	sec.cert = cert;
	cert_path(k, "client.key_secret", cert, sizeof(cert));
	sec.server_key = key39;
	assert_int_equal(fascia_security_check(&sec, &at), -1);
	assert_int_equal(errno, EINVAL);
	assert_ptr_equal(at, sec.server_key);
	sec.server_key = "nonsense";
	assert_int_equal(fascia_security_check(&sec, &at), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(check(k, "client.key_secret", "absent.key", &bad), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(bad, 1);
	CZMQ_LEAKS_BEGIN();
	rc = check(k, "client.key_secret", "garbage", &bad);
	CZMQ_LEAKS_END();
	assert_int_equal(rc, -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, 1);
	/* one without the other */
	assert_int_equal(check(k, "client.key_secret", NULL, &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, -1);
	assert_int_equal(check(k, NULL, "server.key", &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(bad, -1);
	/* and neither half is made with them */
	sec.server_key = "nonsense";
	assert_null(fascia_client_new_secure("tcp://127.0.0.1:1", 100, &sec));
	assert_int_equal(errno, EINVAL);
	sec.cert = "/nonexistent/client.key_secret";
	assert_null(fascia_monitor_new_secure("tcp://127.0.0.1:1", "", &sec));
	assert_int_equal(errno, ENOENT);
}

/* A CURVE server socket of type with the server certificate's keys. */
static void *curve_bind(void *ctx, int type, const struct certs *k, char *ep,
			size_t eplen)
{
	void *s = zmq_socket(ctx, type);
	int one = 1, linger = 0;

	assert_non_null(s);
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)),
			 0);
	assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY,
					zcert_secret_key(k->server), 32),
			 0);
	assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	return s;
}

/* One request served on a ROUTER by a thread: the reply is the request's
 * id with "result": {"curve": true}. */
static void *serve_one(void *router)
{
	char ident[256], id[64];
	size_t identlen = sizeof(ident);
	int wait_ms = 10000;
	json_t *req;

	zmq_setsockopt(router, ZMQ_RCVTIMEO, &wait_ms, sizeof(wait_ms));
	req = router_read(router, ident, &identlen);
	snprintf(id, sizeof(id), "%lld",
		 (long long)json_integer_value(json_object_get(req, "id")));
	json_decref(req);
	router_reply(router, ident, identlen, id, "{\"curve\":true}");
	return NULL;
}

static void
a_curve_client_is_answered_and_a_wrong_server_key_is_not(void **state)
{
	struct certs *k = *state;
	void *ctx = zmq_ctx_new();
	char ep[256], cert[128], key[128];
	void *r = curve_bind(ctx, ZMQ_ROUTER, k, ep, sizeof(ep));
	struct fascia_security sec = {cert, zcert_public_txt(k->other)};
	struct fascia_client *c;
	pthread_t server;
	json_t *rep;

	cert_path(k, "client.key_secret", cert, sizeof(cert));
	/* a wrong key: the handshake never completes, nothing is sent */
	assert_non_null(c = fascia_client_new_secure(ep, 300, &sec));
	assert_null(fascia_client_call_text(c, "{\"cmd\":\"hello\"}"));
	assert_int_equal(errno, ETIMEDOUT);
	fascia_client_destroy(&c);
	/* the right key, from the server's public certificate */
	assert_int_equal(pthread_create(&server, NULL, serve_one, r), 0);
	cert_path(k, "server.key", key, sizeof(key));
	sec.server_key = key;
	assert_non_null(c = fascia_client_new_secure(ep, 10000, &sec));
	rep = fascia_client_call_text(c, "{\"cmd\":\"hello\"}");
	assert_non_null(rep);
	assert_true(json_is_true(
		json_object_get(json_object_get(rep, "result"), "curve")));
	json_decref(rep);
	pthread_join(server, NULL);
	fascia_client_destroy(&c);
	zmq_close(r);
	zmq_ctx_term(ctx);
}

/* A ZAP handler that says no to one handshake: "400", as zauth says to a
 * key that is not among the daemon's clients. */
static void *deny_one(void *zap)
{
	char frame[256], reqid[64];
	int more = 1, n = 0, reqlen = 0, len;
	size_t sz = sizeof(more);

	while (more) {
		len = zmq_recv(zap, frame, sizeof(frame), 0);
		assert_true(len >= 0);
		if (n++ == 1) { /* version, request id, domain, ... */
			reqlen = len < (int)sizeof(reqid) ? len : 0;
			memcpy(reqid, frame, (size_t)reqlen);
		}
		zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &sz);
	}
	zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(zap, reqid, (size_t)reqlen, ZMQ_SNDMORE);
	zmq_send(zap, "400", 3, ZMQ_SNDMORE);
	zmq_send(zap, "unknown key", 11, ZMQ_SNDMORE);
	zmq_send(zap, "", 0, ZMQ_SNDMORE);
	zmq_send(zap, "", 0, 0);
	return NULL;
}

static void a_certificate_the_server_refuses_is_eacces(void **state)
{
	struct certs *k = *state;
	void *ctx = zmq_ctx_new();
	void *zap = zmq_socket(ctx, ZMQ_REP);
	char ep[256], cert[128];
	struct fascia_security sec = {cert, zcert_public_txt(k->server)};
	struct fascia_client *c;
	pthread_t handler;
	void *r;

	assert_int_equal(zmq_bind(zap, "inproc://zeromq.zap.01"), 0);
	r = curve_bind(ctx, ZMQ_ROUTER, k, ep, sizeof(ep));
	assert_int_equal(pthread_create(&handler, NULL, deny_one, zap), 0);
	cert_path(k, "client.key_secret", cert, sizeof(cert));
	assert_non_null(c = fascia_client_new_secure(ep, 2000, &sec));
	assert_null(fascia_client_call_text(c, "{\"cmd\":\"hello\"}"));
	assert_int_equal(errno, EACCES);
	pthread_join(handler, NULL);
	fascia_client_destroy(&c);
	zmq_close(r);
	zmq_close(zap);
	zmq_ctx_term(ctx);
}

static void a_curve_monitor_hears_a_curve_publisher(void **state)
{
	struct certs *k = *state;
	void *ctx = zmq_ctx_new();
	char ep[256], cert[128], topic[32];
	void *pub = curve_bind(ctx, ZMQ_PUB, k, ep, sizeof(ep));
	struct fascia_security good = {cert, zcert_public_txt(k->server)};
	struct fascia_monitor *m;
	const char *msg = "{\"v\":1,\"device\":\"sim\",\"seq\":1}";
	json_t *got = NULL;
	int rc = 0;

	cert_path(k, "client.key_secret", cert, sizeof(cert));
	assert_non_null(m = fascia_monitor_new_secure(ep, "state.", &good));
	/* the subscription is asynchronous: publish until one arrives */
	for (int i = 0; i < 500 && rc == 0; i++) {
		zmq_send(pub, "state.sim", 9, ZMQ_SNDMORE);
		zmq_send(pub, msg, strlen(msg), 0);
		rc = fascia_monitor_next(m, 20, topic, sizeof(topic), &got);
	}
	assert_int_equal(rc, 1);
	assert_string_equal(topic, "state.sim");
	json_decref(got);
	fascia_monitor_destroy(&m);
	zmq_close(pub);
	zmq_ctx_term(ctx);
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
		cmocka_unit_test_setup_teardown(
			a_zcert_certificate_loads_with_the_key_as_text_or_a_file,
			certs_setup, certs_teardown),
		cmocka_unit_test_setup_teardown(
			bad_certificates_are_refused_naming_the_cert,
			certs_setup, certs_teardown),
		cmocka_unit_test_setup_teardown(
			bad_server_keys_are_refused_naming_the_key, certs_setup,
			certs_teardown),
		cmocka_unit_test_setup_teardown(
			a_curve_client_is_answered_and_a_wrong_server_key_is_not,
			certs_setup, certs_teardown),
		cmocka_unit_test_setup_teardown(
			a_certificate_the_server_refuses_is_eacces, certs_setup,
			certs_teardown),
		cmocka_unit_test_setup_teardown(
			a_curve_monitor_hears_a_curve_publisher, certs_setup,
			certs_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

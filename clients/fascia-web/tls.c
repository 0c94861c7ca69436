/*
 * HTTPS for fascia-web: OpenSSL's server context from tls_cert and
 * tls_key, and the bufferevent_openssl that evhttp gets for each
 * connection (evhttp_set_bevcb), so that every byte the console serves,
 * its login form first, goes encrypted.
 *
 * TLS 1.2 at least; OpenSSL's default ciphers otherwise.  The key is read
 * once, at the start: a renewed certificate needs a restart
 * (fascia-web(1)).
 */
#include <stdio.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "web.h"

/* OpenSSL's last reason, or what. */
static void reason(char *why, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char text[200];

	if (e == 0) {
		snprintf(why, len, "%s", what);
	} else {
		ERR_error_string_n(e, text, sizeof(text));
		snprintf(why, len, "%s: %s", what, text);
	}
	ERR_clear_error();
}

SSL_CTX *tls_context(const char *cert, const char *key, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		reason(why, len, "cannot make a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		reason(why, len, "cannot require TLS 1.2");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		reason(why, len, "tls_cert is not a readable PEM certificate");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		reason(why, len, "tls_key is not a readable PEM private key");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		reason(why, len, "tls_key does not belong to tls_cert");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx); /* NULL-safe */
}

/*
 * A NULL here would make evhttp serve the connection in plaintext on the
 * HTTPS port: out of memory is fatal instead.
 */
struct bufferevent *tls_bufferevent(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	if (ssl == NULL)
		fatalx("SSL_new: out of memory");
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
					     BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("bufferevent_openssl_socket_new: out of memory");
	/* a browser that goes away without close_notify is not an error */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

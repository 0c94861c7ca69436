/*
 * libfascia's CURVE keys for a client or monitor socket: the client's
 * secret certificate, read with libczmq's zcert_load (a ZPL file as
 * zcert_save and pyzmq's create_certificates write it), and the daemon's
 * public key, given as Z85 text or as its public certificate file.
 *
 * Everything is checked before a socket sees it: libzmq takes any 32
 * bytes as a key, and a wrong one only shows as a handshake that never
 * completes, which the client reports as "no reply" (ETIMEDOUT).  A
 * mistake in a file name or a key should rather be named at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>
#include <zmq.h>

#include <fascia/client.h>

#include "security.h"

#define KEY_BYTES 32
#define KEY_Z85_LEN 40

struct curve_keys {
	uint8_t public_key[KEY_BYTES];
	uint8_t secret_key[KEY_BYTES];
	uint8_t server_key[KEY_BYTES];
};

static bool given(const char *s)
{
	return s != NULL && *s != '\0';
}

bool fascia_security_on(const struct fascia_security *sec)
{
	return sec != NULL && (given(sec->cert) || given(sec->server_key));
}

/*
 * Whether path can be read as a regular file: 0, or -1 with open()'s
 * errno, EISDIR for a directory, EINVAL for anything else that is not a
 * file (zcert_load says only "no", and a FIFO would block it).
 */
static int readable_file(const char *path)
{
	struct stat st;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static zcert_t *load_cert(const char *path)
{
	zcert_t *cert;

	if (readable_file(path) < 0)
		return NULL;
	if ((cert = zcert_load(path)) == NULL)
		errno = EINVAL; /* not ZPL, or no curve/public-key */
	return cert;
}

/*
 * The client's keys from its secret certificate.  A public certificate
 * loads with a secret key of zeros, and a damaged one with keys that do
 * not belong together: the secret key must give the public one.
 */
static int load_client_keys(const char *path, struct curve_keys *k)
{
	char derived[KEY_Z85_LEN + 1], secret_txt[KEY_Z85_LEN + 1];
	static const uint8_t zero[KEY_BYTES];
	zcert_t *cert;
	int rc = -1;

	if ((cert = load_cert(path)) == NULL)
		return -1;
	memcpy(k->public_key, zcert_public_key(cert), KEY_BYTES);
	memcpy(k->secret_key, zcert_secret_key(cert), KEY_BYTES);
	if (memcmp(k->secret_key, zero, KEY_BYTES) == 0 ||
	    zmq_z85_encode(secret_txt, k->secret_key, KEY_BYTES) == NULL ||
	    zmq_curve_public(derived, secret_txt) != 0 ||
	    strcmp(derived, zcert_public_txt(cert)) != 0)
		errno = EINVAL;
	else
		rc = 0;
	zcert_destroy(&cert);
	explicit_bzero(secret_txt, sizeof(secret_txt));
	return rc;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

/*
 * Whether text can only have been meant as a certificate's file name.  Not
 * "has a slash": Z85 has one, and a key cut short would be told "no such
 * file" rather than what a key should be.
 */
static bool path_like(const char *text)
{
	return strlen(text) != KEY_Z85_LEN &&
	       (ends_with(text, ".key") || ends_with(text, ".key_secret"));
}

/*
 * The daemon's public key: a file that exists is its certificate; else 40
 * characters must be Z85; else a name of a certificate file (NAME.key) is
 * a missing one (stat's errno), and anything else a bad key (EINVAL).
 */
static int load_server_key(const char *text, uint8_t key[KEY_BYTES])
{
	struct stat st;
	zcert_t *cert;
	int stat_errno;

	if (stat(text, &st) == 0) {
		if ((cert = load_cert(text)) == NULL)
			return -1;
		memcpy(key, zcert_public_key(cert), KEY_BYTES);
		zcert_destroy(&cert);
		return 0;
	}
	stat_errno = errno;
	if (strlen(text) == KEY_Z85_LEN && zmq_z85_decode(key, text) != NULL)
		return 0;
	errno = path_like(text) ? stat_errno : EINVAL;
	return -1;
}

/* Both keys of sec into k; -1 with errno and *bad as documented for
 * fascia_security_check(). */
static int load_keys(const struct fascia_security *sec, struct curve_keys *k,
		     const char **bad)
{
	*bad = NULL;
	if (!given(sec->cert) || !given(sec->server_key)) {
		errno = EINVAL;
		return -1;
	}
	if (!zmq_has("curve")) {
		errno = ENOTSUP;
		return -1;
	}
	*bad = sec->cert;
	if (load_client_keys(sec->cert, k) < 0)
		return -1;
	*bad = sec->server_key;
	if (load_server_key(sec->server_key, k->server_key) < 0)
		return -1;
	*bad = NULL;
	return 0;
}

int fascia_security_check(const struct fascia_security *sec, const char **bad)
{
	struct curve_keys k;
	const char *at;
	int rc = 0;

	if (bad == NULL)
		bad = &at;
	*bad = NULL;
	if (fascia_security_on(sec))
		rc = load_keys(sec, &k, bad);
	explicit_bzero(&k, sizeof(k));
	return rc;
}

int fascia_security_apply(void *sock, const struct fascia_security *sec)
{
	struct curve_keys k;
	const char *bad;
	int rc = 0, saved;

	if (!fascia_security_on(sec))
		return 0;
	if (load_keys(sec, &k, &bad) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k.server_key, KEY_BYTES) <
		    0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k.public_key, KEY_BYTES) <
		    0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k.secret_key, KEY_BYTES) <
		    0)
		rc = -1;
	saved = errno;
	explicit_bzero(&k, sizeof(k));
	errno = saved;
	return rc;
}

void *fascia_security_watch(void *ctx, void *sock)
{
	char ep[64];
	void *pair;
	int linger = 0;

	snprintf(ep, sizeof(ep), "inproc://fascia-handshakes-%p", sock);
	if (zmq_socket_monitor(sock, ep,
			       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
				       ZMQ_EVENT_HANDSHAKE_SUCCEEDED) < 0 ||
	    (pair = zmq_socket(ctx, ZMQ_PAIR)) == NULL)
		return NULL;
	if (zmq_setsockopt(pair, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_connect(pair, ep) < 0) {
		int saved = errno;

		zmq_close(pair);
		errno = saved;
		return NULL;
	}
	return pair;
}

/*
 * Keeps errno.  A monitor's event is two frames: 6 bytes (the event, 16 bits,
 * and its value, 32, in host order), then the peer's address.
 */
bool fascia_security_refused(void *watch, bool *refused)
{
	uint8_t head[6];
	uint16_t event;
	uint32_t value;
	int n, more, saved = errno;
	size_t sz;

	while ((n = zmq_recv(watch, head, sizeof(head), ZMQ_DONTWAIT)) >= 0) {
		sz = sizeof(more);
		while (zmq_getsockopt(watch, ZMQ_RCVMORE, &more, &sz) == 0 &&
		       more && zmq_recv(watch, NULL, 0, 0) >= 0)
			sz = sizeof(more);
		if (n != (int)sizeof(head))
			continue;
		memcpy(&event, head, sizeof(event));
		memcpy(&value, head + sizeof(event), sizeof(value));
		if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
			*refused = false;
		else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH &&
			 value == 400)
			*refused = true; /* ZAP's "denied" */
	}
	errno = saved;
	return *refused;
}

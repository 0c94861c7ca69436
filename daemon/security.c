/*
 * fasciad's CURVE security at run time (docs/security.md).  CZMQ's zauth
 * actor is the ZAP handler: it admits a connection only with a key the
 * daemon has read and found good.  A watcher thread re-reads the clients
 * directory when it changes (polled every second) and on SIGHUP; it swaps
 * the certificates the main thread looks requests up in, then gives zauth
 * a private directory of the good ones alone (a certificate with no valid
 * role is admitted by neither).  The main thread learns from each
 * request's User-Id (ZAP's answer, read with zmq_msg_gets) who sent it:
 * its name and role; a key no longer known gets no reply.  Failed
 * handshakes are counted from socket monitors, and logged at most once a
 * second.  The loop never reads the disk: the watcher does.
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <czmq.h>
#include <event2/event.h>
#include <jansson.h>

#include "fasciad.h"

/* libzmq 4.3 takes it, though zmq.h names it only in its draft API:
 * without it a CURVE socket whose ZAP handler cannot be reached admits
 * every key (the "Stonehouse" fallback). */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define WATCH_MS 1000 /* how often the watcher looks at the directory */
#define MONITORS 2    /* control and publish */
#define PEERS 64      /* connections whose address a monitor keeps */

/* One socket's connection events, on an inproc PAIR. */
struct monitor {
	struct security *s;
	void *pair;
	struct event *ev;
	const char *what;
	struct {
		int fd;
		char addr[80];
	} peer[PEERS]; /* accepted, by fd (a ring) */
	int npeer;
	bool pending; /* a failure waits for its connection's close */
};

struct security {
	struct fd_daemon *d;
	zactor_t *auth; /* its pipe: the watcher's once it runs */
	zcert_t *server;
	char zap_dir[PATH_MAX]; /* what zauth reads: the good ones */
	pthread_mutex_t lock;   /* held for a lookup or a swap, no more */
	struct fd_certset set;  /* under lock */
	bool stop, force;       /* under lock */
	pthread_t thread;
	bool started;
	int wake_fd; /* main -> watcher */
	/* the main thread's */
	struct monitor mon[MONITORS];
	int nmon;
	uint64_t failed;
	int64_t last_ms;
	char last_peer[80];
	char last_reason[96];
	double logged_s;
	uint64_t unlogged;
	double dropped_logged_s;
};

static struct security *sec_of(struct fd_daemon *d)
{
	return d->security;
}

/* ---- the watcher ---- */

static void eventfd_poke(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* a counter at its maximum: a wake-up is pending anyway */
	}
}

static void eventfd_drain(int fd)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* nothing was there (EAGAIN) */
	}
}

static void remove_zap_dir(const char *dir)
{
	char path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	if (d != NULL)
		closedir(d);
	if (rmdir(dir) < 0)
		log_warn("security: cannot remove %s", dir);
}

/* Where zauth's private directories go: systemd's RuntimeDirectory=,
 * else $TMPDIR, else /tmp. */
static const char *runtime_base(void)
{
	const char *d = getenv("RUNTIME_DIRECTORY");

	if (d == NULL || d[0] != '/')
		d = getenv("TMPDIR");
	return d != NULL && d[0] == '/' ? d : "/tmp";
}

/* A fresh directory of set's public certificates for zauth, which then
 * reads it instead of the last; the last is removed.  0, or -1 logged
 * (zauth keeps what it had). */
static int give_zauth(struct security *s, const struct fd_certset *set)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], old[PATH_MAX];
	byte key[32], zero[32] = {0};
	int n = (int)strcspn(runtime_base(), ":");

	snprintf(dir, sizeof(dir), "%.*s/fasciad-clients-XXXXXX", n,
		 runtime_base());
	if (mkdtemp(dir) == NULL) {
		log_warn("security: cannot make a directory in %.*s", n,
			 runtime_base());
		return -1;
	}
	for (int i = 0; i < set->n; i++) {
		zcert_t *zc;

		zmq_z85_decode(key, set->c[i].key);
		zc = zcert_new_from(key, zero);
		zcert_set_meta(zc, "name", "%s", set->c[i].who.name);
		zcert_set_meta(zc, "role", "%s",
			       conf_role_name(set->c[i].who.role));
		snprintf(path, sizeof(path), "%s/%d.key", dir, i);
		if (zcert_save_public(zc, path) < 0)
			log_warn("security: cannot write %s", path);
		zcert_destroy(&zc);
	}
	zstr_sendx(s->auth, "CURVE", dir, NULL);
	zsock_wait(s->auth);
	snprintf(old, sizeof(old), "%s", s->zap_dir);
	snprintf(s->zap_dir, sizeof(s->zap_dir), "%s", dir);
	if (old[0])
		remove_zap_dir(old);
	return 0;
}

/* The good certificates in dir (those with a role), each problem
 * logged. */
static void read_good(const char *dir, struct fd_certset *set)
{
	struct conf_errors errs;
	int n = 0;

	memset(&errs, 0, sizeof(errs));
	fd_certs_read(dir, set, &errs, 0);
	for (int i = 0; i < errs.n; i++)
		log_warnx("security: %s%s", errs.e[i].message,
			  strstr(errs.e[i].message, " role ") ? ": not admitted"
							      : "");
	for (int i = 0; i < set->n; i++)
		if (set->c[i].who.role != FD_ROLE_NONE)
			set->c[n++] = set->c[i];
	set->n = n;
}

/* Whether a and b admit the same keys as the same clients. */
static bool same_certs(const struct fd_certset *a, const struct fd_certset *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->c[i].key, b->c[i].key) != 0 ||
		    strcmp(a->c[i].who.name, b->c[i].who.name) != 0 ||
		    a->c[i].who.role != b->c[i].who.role ||
		    a->c[i].who.gateway != b->c[i].who.gateway)
			return false;
	return true;
}

/* Read the directory; swap the set the requests are looked up in, then
 * zauth's: a key removed gets no reply before it is refused a new
 * connection, and one added is known before it is admitted. */
static void reread(struct security *s)
{
	struct fd_certset set, old;

	read_good(s->d->conf.sec.clients, &set);
	pthread_mutex_lock(&s->lock);
	old = s->set;
	s->set = set;
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < old.n; i++)
		if (fd_certs_find(&set, old.c[i].key) == NULL)
			log_info("security: %s (%s) is gone: no new "
				 "connection, no reply on one made before",
				 old.c[i].who.name, old.c[i].file);
	give_zauth(s, &set);
	if (!same_certs(&old, &set))
		log_info("security: %d client %s in %s", set.n,
			 set.n == 1 ? "certificate" : "certificates",
			 s->d->conf.sec.clients);
	fd_certs_free(&old);
}

static void *watcher(void *arg)
{
	struct security *s = arg;
	uint64_t sig = fd_certs_signature(s->d->conf.sec.clients), now;
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};
	bool stop, force;

	for (;;) {
		if (poll(&p, 1, WATCH_MS) > 0)
			eventfd_drain(s->wake_fd);
		pthread_mutex_lock(&s->lock);
		stop = s->stop;
		force = s->force;
		s->force = false;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			return NULL;
		now = fd_certs_signature(s->d->conf.sec.clients);
		if (force || now != sig) {
			sig = now;
			reread(s);
		}
	}
}

void fd_security_reload(struct fd_daemon *d)
{
	struct security *s = sec_of(d);

	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->force = true;
	pthread_mutex_unlock(&s->lock);
	eventfd_poke(s->wake_fd);
}

/* ---- failed handshakes ---- */

static const char *failure_reason(uint16_t event, uint32_t value, char *buf,
				  size_t len)
{
	if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		snprintf(buf, len, "%s",
			 value == 400 ? "its key is not admitted"
				      : "refused by the ZAP handler");
	else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
		snprintf(buf, len, "no CURVE: a client without a certificate");
	else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
		snprintf(buf, len, "cannot decrypt: a wrong server key");
	else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
		snprintf(buf, len, "protocol error 0x%x", value);
	else
		snprintf(buf, len, "closed during the handshake (%s)",
			 strerror((int)value));
	return buf;
}

/* The peer of a connection just accepted, while its fd is open (the
 * monitor's events carry the listening address alone). */
static void note_peer(struct monitor *m, int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0, i = m->npeer++ % PEERS;

	m->peer[i].fd = fd;
	snprintf(m->peer[i].addr, sizeof(m->peer[i].addr), "unknown");
	if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0)
		return;
	if (sa.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	} else {
		return;
	}
	snprintf(m->peer[i].addr, sizeof(m->peer[i].addr),
		 sa.ss_family == AF_INET6 ? "tcp://[%s]:%d" : "tcp://%s:%d",
		 host, port);
}

static const char *peer_of(struct monitor *m, int fd)
{
	for (int k = 1; k <= PEERS && k <= m->npeer; k++) {
		int i = (m->npeer - k) % PEERS;

		if (m->peer[i].fd == fd)
			return m->peer[i].addr;
	}
	return "unknown";
}

/* A failure is logged with its peer, known once the connection closes. */
static void log_failure(struct monitor *m)
{
	struct security *s = m->s;
	double now = fd_clock_mono_s();

	m->pending = false;
	if (s->logged_s != 0 && now - s->logged_s < 1.0) {
		s->unlogged++;
		return;
	}
	if (s->unlogged)
		log_warnx("%s: handshake from %s failed: %s (and %llu more "
			  "since the last line)",
			  m->what, s->last_peer, s->last_reason,
			  (unsigned long long)s->unlogged);
	else
		log_warnx("%s: handshake from %s failed: %s", m->what,
			  s->last_peer, s->last_reason);
	s->logged_s = now;
	s->unlogged = 0;
}

static void on_event(struct monitor *m, uint16_t event, uint32_t value)
{
	struct security *s = m->s;

	switch (event) {
	case ZMQ_EVENT_ACCEPTED:
		note_peer(m, (int)value);
		return;
	case ZMQ_EVENT_DISCONNECTED:
		if (!m->pending)
			return;
		snprintf(s->last_peer, sizeof(s->last_peer), "%s",
			 peer_of(m, (int)value));
		log_failure(m);
		return;
	default: /* a handshake failed; its connection closes next */
		if (m->pending)
			log_failure(m);
		s->failed++;
		s->last_ms = fd_clock_unix_ms();
		/* the latest accepted, until its close names the right one */
		snprintf(s->last_peer, sizeof(s->last_peer), "%s",
			 m->npeer ? m->peer[(m->npeer - 1) % PEERS].addr
				  : "unknown");
		failure_reason(event, value, s->last_reason,
			       sizeof(s->last_reason));
		m->pending = true;
	}
}

/* Each event: [u16 event, u32 value][endpoint]. */
static void monitor_cb(evutil_socket_t fd, short what, void *arg)
{
	struct monitor *m = arg;
	zmq_msg_t f[2];
	uint16_t event;
	uint32_t value;
	int ev;
	size_t sz;

	(void)fd;
	(void)what;
	for (;;) {
		sz = sizeof(ev);
		if (zmq_getsockopt(m->pair, ZMQ_EVENTS, &ev, &sz) < 0 ||
		    !(ev & ZMQ_POLLIN))
			return;
		zmq_msg_init(&f[0]);
		zmq_msg_init(&f[1]);
		if (zmq_msg_recv(&f[0], m->pair, ZMQ_DONTWAIT) >= 0 &&
		    zmq_msg_more(&f[0]) &&
		    zmq_msg_recv(&f[1], m->pair, ZMQ_DONTWAIT) >= 0 &&
		    zmq_msg_size(&f[0]) == 6) {
			memcpy(&event, zmq_msg_data(&f[0]), 2);
			memcpy(&value, (char *)zmq_msg_data(&f[0]) + 2, 4);
			on_event(m, event, value);
		}
		zmq_msg_close(&f[0]);
		zmq_msg_close(&f[1]);
	}
}

static int add_monitor(struct security *s, void *sock, const char *what)
{
	struct monitor *m = &s->mon[s->nmon];
	char ep[64];
	int fd;
	size_t sz = sizeof(fd);

	if (s->nmon == MONITORS)
		fatalx("security: more sockets than monitors");
	snprintf(ep, sizeof(ep), "inproc://fasciad-monitor-%s", what);
	m->s = s;
	m->what = what;
	if (zmq_socket_monitor(sock, ep,
			       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
				       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
	    (m->pair = zmq_socket(s->d->zmq, ZMQ_PAIR)) == NULL ||
	    zmq_connect(m->pair, ep) < 0 ||
	    zmq_getsockopt(m->pair, ZMQ_FD, &fd, &sz) < 0) {
		log_warnx("%s: cannot watch its handshakes: %s", what,
			  zmq_strerror(zmq_errno()));
		return -1;
	}
	s->nmon++;
	m->ev = event_new(s->d->base, fd, EV_READ | EV_PERSIST, monitor_cb, m);
	if (m->ev == NULL || event_add(m->ev, NULL) < 0)
		fatalx("libevent: cannot watch the handshakes");
	/* ZMQ_FD signals a change only once ZMQ_EVENTS has seen the pipe
	 * empty: look now */
	event_active(m->ev, EV_READ, 0);
	return 0;
}

/* ---- the sockets ---- */

int fd_security_socket(struct fd_daemon *d, void *sock, const char *what)
{
	struct security *s = sec_of(d);
	int one = 1;

	if (s == NULL)
		return 0;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY,
			   zcert_secret_key(s->server), 32) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY,
			   zcert_public_key(s->server), 32) < 0 ||
	    /* ZAP required: were zauth ever away, a handshake would fail
	     * rather than pass unchecked */
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "fascia", 6) < 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) <
		    0) {
		log_warnx("%s: cannot set CURVE: %s", what,
			  zmq_strerror(zmq_errno()));
		return -1;
	}
	return add_monitor(s, sock, what);
}

bool fd_security_who(struct fd_daemon *d, int socket, zmq_msg_t *m,
		     struct fd_who *who)
{
	struct security *s = sec_of(d);
	const struct fd_cert *c;
	const char *key;
	bool known;

	memset(who, 0, sizeof(*who));
	if (socket == FD_SOCK_LOCAL) {
		who->role = d->conf.sec.local_role;
		snprintf(who->name, sizeof(who->name), "local");
		return true;
	}
	if (s == NULL) { /* curve = no: loopback only, a development mode */
		who->role = FD_ROLE_ADMIN;
		return true;
	}
	key = m != NULL ? zmq_msg_gets(m, "User-Id") : NULL;
	pthread_mutex_lock(&s->lock);
	if ((known = (c = fd_certs_find(&s->set, key)) != NULL))
		*who = c->who;
	pthread_mutex_unlock(&s->lock);
	if (!known && fd_clock_mono_s() - s->dropped_logged_s >= 1.0) {
		if (key != NULL)
			log_warnx("control: a request from key %.8s..., no "
				  "longer in clients, is dropped",
				  key);
		else
			log_warnx("control: a request without a User-Id (%s) "
				  "is dropped",
				  m == NULL ? "no frame after the routing id"
					    : "no ZAP answer");
		s->dropped_logged_s = fd_clock_mono_s();
	}
	return known;
}

json_t *fd_security_status(struct fd_daemon *d)
{
	struct security *s = sec_of(d);
	int n;

	if (s == NULL)
		return fd_must(json_pack("{s:b, s:i, s:I, s:n}", "curve", 0,
					 "clients", 0, "handshakes_failed",
					 (json_int_t)0, "last_failure"));
	pthread_mutex_lock(&s->lock);
	n = s->set.n;
	pthread_mutex_unlock(&s->lock);
	return fd_must(json_pack(
		"{s:b, s:i, s:I, s:o}", "curve", 1, "clients", n,
		"handshakes_failed", (json_int_t)s->failed, "last_failure",
		s->failed == 0 ? json_null()
			       : fd_must(json_pack("{s:I, s:s, s:s}", "time",
						   (json_int_t)s->last_ms,
						   "peer", s->last_peer,
						   "reason", s->last_reason))));
}

/* ---- life ---- */

int fd_security_open(struct fd_daemon *d)
{
	const struct fd_security_conf *sc = &d->conf.sec;
	struct security *s;
	char why[200];

	if (!sc->curve)
		return 0;
	s = xcalloc(1, sizeof(*s));
	s->d = d;
	d->security = s;
	pthread_mutex_init(&s->lock, NULL);
	if ((s->server = fd_certs_server(sc->server_cert, why, sizeof(why))) ==
	    NULL) {
		log_warnx("%s", why);
		return -1;
	}
	if ((s->auth = zactor_new(zauth, NULL)) == NULL)
		fatalx("cannot start zauth");
	read_good(sc->clients, &s->set);
	if (give_zauth(s, &s->set) < 0)
		return -1;
	if ((s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		fatal("eventfd");
	if (pthread_create(&s->thread, NULL, watcher, s) != 0)
		fatalx("cannot start the certificates' watcher");
	s->started = true;
	log_info("CURVE on: %d client %s in %s", s->set.n,
		 s->set.n == 1 ? "certificate" : "certificates", sc->clients);
	return 0;
}

void fd_security_close(struct fd_daemon *d)
{
	struct security *s = sec_of(d);

	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_mutex_unlock(&s->lock);
		eventfd_poke(s->wake_fd);
		pthread_join(s->thread, NULL);
		close(s->wake_fd);
	}
	for (int i = 0; i < s->nmon; i++) {
		event_free(s->mon[i].ev);
		zmq_close(s->mon[i].pair);
	}
	zactor_destroy(&s->auth);
	if (s->zap_dir[0])
		remove_zap_dir(s->zap_dir);
	zcert_destroy(&s->server);
	fd_certs_free(&s->set);
	pthread_mutex_destroy(&s->lock);
	free(s);
	d->security = NULL;
}

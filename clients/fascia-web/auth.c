/*
 * Who is at the browser: logins, the sessions they open, and the CSRF token
 * of each.
 *
 * A session is 32 random bytes (libsodium's randombytes) in a cookie that
 * scripts cannot read (HttpOnly), that no other site's page sends
 * (SameSite=Strict), and that crosses only TLS when the console serves it
 * (Secure).  Every POST must also carry the session's CSRF token, which a
 * page of the console reads from /api/me and another site's cannot.
 * Sessions live in memory: a restart logs everyone out.  One unused for
 * WEB_SESSION_IDLE_MS ends; an open event stream counts as use.
 *
 * Logins are rate-limited per user name and per client address: after
 * LIMIT_FREE failures, each further attempt is refused (429, Retry-After)
 * until a wait has passed that doubles from 1 s to 60 s with each failure;
 * a success clears both.  Attempts still being checked count, so that a
 * burst sent at once cannot slip past the limit.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "web.h"

#define SESSIONS_MAX 1024
#define WEB_SESSION_IDLE_MS (12LL * 3600 * 1000)
#define COOKIE "fascia_session"
#define LIMITS_MAX 4096
#define LIMIT_FREE 3        /* failures before the waits begin */
#define LIMIT_WAIT_MAX_S 60 /* the longest wait */
#define LIMIT_FORGET_MS (15LL * 60 * 1000)
#define LOCAL_USER "local"

struct limit {
	char key[WEB_NAME_MAX + 72]; /* "u:NAME" or "a:ADDRESS"; "" free */
	int failures, inflight;
	int64_t last_ms, until_ms; /* monotonic */
};

struct web_auth {
	struct web_session sessions[SESSIONS_MAX];
	struct web_session local; /* without users */
	struct limit limits[LIMITS_MAX];
	int64_t refusal_log_ms; /* the refusals' log, once a second */
	unsigned long refusals_unlogged;
};

/* A login waiting for the password checker. */
struct attempt {
	struct evhttp_request *req;
	char name[WEB_NAME_MAX + 1];
	char peer[64];
	bool json;
};

static void new_token(char out[WEB_TOKEN_HEX + 1])
{
	unsigned char raw[WEB_TOKEN_HEX / 2];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, WEB_TOKEN_HEX + 1, raw, sizeof(raw));
}

static bool token_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strlen(a) == WEB_TOKEN_HEX &&
	       strlen(b) == WEB_TOKEN_HEX &&
	       sodium_memcmp(a, b, WEB_TOKEN_HEX) == 0;
}

int auth_open(struct web *w)
{
	w->auth = xcalloc(1, sizeof(*w->auth));
	if (w->no_users) {
		struct web_session *s = &w->auth->local;

		new_token(s->id);
		new_token(s->csrf);
		snprintf(s->user, sizeof(s->user), LOCAL_USER);
		s->role = WEB_ROLE_ADMIN;
	}
	return 0;
}

void auth_close(struct web *w)
{
	if (w->auth != NULL)
		sodium_memzero(w->auth, sizeof(*w->auth));
	free(w->auth);
	w->auth = NULL;
}

/* The value of the cookie name, copied into out; false when absent. */
static bool cookie_value(struct evhttp_request *req, const char *name,
			 char *out, size_t size)
{
	const char *h = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Cookie");
	size_t nlen = strlen(name), vlen;

	while (h != NULL && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		vlen = strcspn(h, ";");
		if (vlen > nlen && strncmp(h, name, nlen) == 0 &&
		    h[nlen] == '=') {
			vlen -= nlen + 1;
			if (vlen >= size)
				return false;
			memcpy(out, h + nlen + 1, vlen);
			out[vlen] = '\0';
			return true;
		}
		h += vlen;
	}
	return false;
}

static void set_cookie(struct web *w, struct evhttp_request *req,
		       const char *value, bool clear)
{
	char h[256];

	snprintf(h, sizeof(h),
		 COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/%s%s", value,
		 clear ? "; Max-Age=0" : "", w->tls ? "; Secure" : "");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
			  h);
}

static void drop_session(struct web *w, struct web_session *s)
{
	char id[WEB_TOKEN_HEX + 1];

	snprintf(id, sizeof(id), "%s", s->id);
	sodium_memzero(s, sizeof(*s));
	sse_end_session(w, id);
}

struct web_session *auth_find(struct web *w, const char *id)
{
	int64_t now = web_mono_ms();

	if (w->no_users)
		return token_eq(id, w->auth->local.id) ? &w->auth->local : NULL;
	for (int i = 0; i < SESSIONS_MAX; i++) {
		struct web_session *s = &w->auth->sessions[i];

		if (!s->id[0] || !token_eq(s->id, id))
			continue;
		if (now - s->used_ms > WEB_SESSION_IDLE_MS)
			return NULL; /* expired: auth_sweep() ends it */
		s->used_ms = now;
		return s;
	}
	return NULL;
}

/*
 * Whether the request names the console by a loopback name.  Without users
 * any page that reaches the port is an admin's, so a page of another site
 * whose name was made to resolve to 127.0.0.1 (DNS rebinding) must not be
 * served: it would send "Host: its.name".
 */
static bool loopback_host(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Host");
	char host[64];
	size_t n;

	if (h == NULL)
		return false;
	n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":");
	if (n >= sizeof(host) || (h[n] != '\0' && h[n] != ':'))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	return conf_loopback(host) || strcmp(host, "[::1]") == 0;
}

struct web_session *auth_session(struct web *w, struct evhttp_request *req)
{
	char id[WEB_TOKEN_HEX + 2];
	bool has = cookie_value(req, COOKIE, id, sizeof(id));

	if (w->no_users) {
		if (!loopback_host(req))
			return NULL;
		if (!has || !token_eq(id, w->auth->local.id))
			set_cookie(w, req, w->auth->local.id, false);
		return &w->auth->local;
	}
	return has ? auth_find(w, id) : NULL;
}

/* The token, and the cookie of the same session: without users, a request
 * without the cookie is given the local session, but is not its page's. */
bool auth_csrf_ok(const struct web_session *s, struct evhttp_request *req,
		  const char *form_token)
{
	const char *h = evhttp_find_header(
		evhttp_request_get_input_headers(req), "X-CSRF-Token");
	char id[WEB_TOKEN_HEX + 2];

	return cookie_value(req, COOKIE, id, sizeof(id)) &&
	       token_eq(id, s->id) &&
	       token_eq(h != NULL ? h : form_token, s->csrf);
}

void auth_sweep(struct web *w)
{
	int64_t now = web_mono_ms();

	for (int i = 0; i < SESSIONS_MAX && !w->no_users; i++) {
		struct web_session *s = &w->auth->sessions[i];

		if (s->id[0] && now - s->used_ms > WEB_SESSION_IDLE_MS) {
			log_info("session of %s ended: unused for %lld h",
				 s->user, WEB_SESSION_IDLE_MS / 3600000);
			drop_session(w, s);
		}
	}
}

void auth_users_changed(struct web *w)
{
	for (int i = 0; i < SESSIONS_MAX; i++) {
		struct web_session *s = &w->auth->sessions[i];
		const struct web_user *u;

		if (!s->id[0])
			continue;
		if ((u = users_find(&w->users, s->user)) == NULL) {
			log_info("session of %s ended: no longer a user",
				 s->user);
			drop_session(w, s);
		} else if (u->role != s->role) {
			log_info("%s is now %s", s->user,
				 conf_role_name(u->role));
			s->role = u->role;
		}
	}
}

/* A free slot, else the least recently used session's (ended). */
static struct web_session *new_session(struct web *w, const struct web_user *u)
{
	struct web_session *s = NULL;

	for (int i = 0; i < SESSIONS_MAX; i++) {
		struct web_session *t = &w->auth->sessions[i];

		if (!t->id[0]) {
			s = t;
			break;
		}
		if (s == NULL || t->used_ms < s->used_ms)
			s = t;
	}
	if (s->id[0]) {
		log_info("session of %s ended: %d sessions are open", s->user,
			 SESSIONS_MAX);
		drop_session(w, s);
	}
	new_token(s->id);
	new_token(s->csrf);
	snprintf(s->user, sizeof(s->user), "%s", u->name);
	s->role = u->role;
	s->created_ms = s->used_ms = web_mono_ms();
	return s;
}

/* ---- the rate limit ---- */

static struct limit *limit_get(struct web_auth *a, const char *kind,
			       const char *what)
{
	char key[sizeof(a->limits[0].key)];
	struct limit *l, *free_slot = NULL, *oldest = NULL;
	int64_t now = web_mono_ms();

	snprintf(key, sizeof(key), "%s%s", kind, what);
	for (int i = 0; i < LIMITS_MAX; i++) {
		l = &a->limits[i];
		if (l->key[0] && l->inflight == 0 &&
		    now - l->last_ms > LIMIT_FORGET_MS)
			memset(l, 0, sizeof(*l)); /* forgotten */
		if (l->key[0] && strcmp(l->key, key) == 0)
			return l;
		if (!l->key[0]) {
			if (free_slot == NULL)
				free_slot = l;
		} else if (l->inflight == 0 &&
			   (oldest == NULL || l->last_ms < oldest->last_ms)) {
			oldest = l;
		}
	}
	if ((l = free_slot != NULL ? free_slot : oldest) == NULL)
		return NULL; /* every slot has a login being checked */
	memset(l, 0, sizeof(*l));
	snprintf(l->key, sizeof(l->key), "%s", key);
	l->last_ms = now;
	return l;
}

/* Seconds to wait before l may try again; 0: now. */
static int limit_wait(const struct limit *l, int64_t now)
{
	if (l == NULL)
		return 1; /* the table is full of logins in progress */
	if (now < l->until_ms)
		return (int)((l->until_ms - now + 999) / 1000);
	if (l->inflight > 0 && l->failures + l->inflight >= LIMIT_FREE)
		return 1;
	return 0;
}

static void limit_end(struct limit *l, bool ok)
{
	int64_t now = web_mono_ms();
	int over;

	if (l == NULL)
		return;
	if (l->inflight > 0)
		l->inflight--;
	l->last_ms = now;
	if (ok) {
		l->failures = 0;
		l->until_ms = 0;
		return;
	}
	if (++l->failures < LIMIT_FREE)
		return;
	over = l->failures - LIMIT_FREE;
	l->until_ms = now + 1000LL * (over >= 6 ? LIMIT_WAIT_MAX_S : 1 << over);
}

/* ---- the replies of /login ---- */

static bool wants_json(struct evhttp_request *req)
{
	const char *acc = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Accept");

	return acc != NULL && strstr(acc, "application/json") != NULL;
}

/*
 * The refusal: JSON for a page's script, else the login page itself with
 * the message in its <div id="message">, so the page says so without a
 * script too.
 */
static void login_refused(struct web *w, struct evhttp_request *req, bool json,
			  int code, const char *ecode, const char *message)
{
	json_t *body;

	if (json) {
		body = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code",
				 ecode, "message", message);
		http_json(w, req, code, body);
		return;
	}
	http_static(w, req, "login.html", code, message);
}

static void log_refusal(struct web_auth *a, const char *name, const char *peer,
			int wait)
{
	int64_t now = web_mono_ms();

	if (now - a->refusal_log_ms < 1000) {
		a->refusals_unlogged++;
		return;
	}
	log_warnx("login as %s from %s refused: too many failures, retry in "
		  "%d s%s",
		  name, peer, wait, a->refusals_unlogged ? " (and more)" : "");
	a->refusal_log_ms = now;
	a->refusals_unlogged = 0;
}

static void on_verdict(struct web *w, bool ok, void *arg)
{
	struct attempt *at = arg;
	struct web_auth *a = w->auth;
	const struct web_user *u = users_find(&w->users, at->name);
	struct web_session *s;

	ok = ok && u != NULL;
	limit_end(limit_get(a, "u:", at->name), ok);
	limit_end(limit_get(a, "a:", at->peer), ok);
	if (!ok) {
		w->stats.logins_failed++;
		log_warnx("login as %s from %s refused: wrong name or password",
			  at->name, at->peer);
		login_refused(w, at->req, at->json, 401, "bad_login",
			      "Wrong name or password.");
		free(at);
		return;
	}
	w->stats.logins_ok++;
	s = new_session(w, u);
	log_info("login: %s (%s) from %s", u->name, conf_role_name(u->role),
		 at->peer);
	set_cookie(w, at->req, s->id, false);
	if (at->json)
		http_json(w, at->req, 200,
			  json_pack("{s:b,s:s,s:s}", "ok", 1, "name", u->name,
				    "role", conf_role_name(u->role)));
	else
		http_redirect(w, at->req, "/");
	free(at);
}

/* name and password from the form; refuses and returns -1 otherwise. */
static int login_form(struct web *w, struct evhttp_request *req,
		      struct attempt *at, char **password)
{
	struct evkeyvalq form;
	char *body = http_body(req);
	const char *name, *pw;
	int rc = -1;

	TAILQ_INIT(&form);
	if (body != NULL && evhttp_parse_query_str(body, &form) == 0 &&
	    (name = evhttp_find_header(&form, "name")) != NULL &&
	    (pw = evhttp_find_header(&form, "password")) != NULL && *pw &&
	    strlen(pw) <= WEB_PASSWORD_MAX && conf_user_name_ok(name)) {
		snprintf(at->name, sizeof(at->name), "%s", name);
		*password = xstrdup(pw);
		rc = 0;
	} else {
		login_refused(w, req, at->json, 400, "bad_request",
			      "Give your name and your password.");
	}
	if (body != NULL) {
		sodium_memzero(body, strlen(body));
		free(body);
	}
	evhttp_clear_headers(&form);
	return rc;
}

static void retry_after(struct evhttp_request *req, int wait)
{
	char s[16];

	snprintf(s, sizeof(s), "%d", wait);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
			  s);
}

void auth_login_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	const struct web_user *user;
	struct attempt *at;
	struct limit *lu, *la;
	char *pw = NULL, msg[160];
	int64_t now = web_mono_ms();
	int wait;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || w->no_users) {
		http_redirect(w, req, w->no_users ? "/" : "/login.html");
		return;
	}
	at = xcalloc(1, sizeof(*at));
	at->req = req;
	at->json = wants_json(req);
	snprintf(at->peer, sizeof(at->peer), "%s", http_peer(req));
	if (login_form(w, req, at, &pw) < 0) {
		free(at);
		return;
	}
	user = users_find(&w->users, at->name); /* NULL: checked on a decoy */
	lu = limit_get(w->auth, "u:", at->name);
	la = limit_get(w->auth, "a:", at->peer);
	wait = limit_wait(lu, now);
	if (limit_wait(la, now) > wait)
		wait = limit_wait(la, now);
	if (wait > 0) {
		w->stats.logins_limited++;
		log_refusal(w->auth, at->name, at->peer, wait);
		retry_after(req, wait);
		snprintf(msg, sizeof(msg),
			 "Too many failed logins: try again in %d s.", wait);
		login_refused(w, req, at->json, 429, "rate_limited", msg);
	} else if (verifier_submit(w, user != NULL ? user->hash : NULL, pw,
				   on_verdict, at) < 0) {
		retry_after(req, 1);
		login_refused(w, req, at->json, 503, "busy",
			      "Too many logins at once: try again.");
	} else {
		lu->inflight++;
		la->inflight++;
		at = NULL; /* on_verdict's */
	}
	sodium_memzero(pw, strlen(pw));
	free(pw);
	free(at);
}

void auth_logout_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	struct web_session *s;
	struct evkeyvalq form;
	char *body;
	bool ok;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		http_error(w, req, 405, "method", "POST /logout");
		return;
	}
	if ((s = auth_session(w, req)) == NULL || w->no_users) {
		http_redirect(w, req, w->no_users ? "/" : "/login.html");
		return;
	}
	TAILQ_INIT(&form);
	body = http_body(req);
	if (body != NULL)
		evhttp_parse_query_str(body, &form);
	ok = auth_csrf_ok(s, req, evhttp_find_header(&form, "csrf"));
	evhttp_clear_headers(&form);
	free(body);
	if (!ok) {
		w->stats.csrf_refused++;
		http_error(w, req, 403, "csrf",
			   "the request lacks this session's CSRF token");
		return;
	}
	log_info("logout: %s", s->user);
	drop_session(w, s);
	set_cookie(w, req, "", true);
	http_redirect(w, req, "/login.html");
}

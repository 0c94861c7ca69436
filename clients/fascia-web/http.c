/*
 * The HTTP side of fascia-web: libevent's evhttp with one callback per
 * route (the exact paths below, and a general one for /api/ROOM/... and
 * the static files), HTTPS through bufferevent_openssl when tls_cert is
 * given (tls.c), and what every reply shares: its security headers, JSON
 * bodies, redirects.
 *
 * The static files are the pages, scripts and styles of
 * clients/fascia-web/static, served from the static directory only: a
 * path's characters are those of the files' names, no part of it starts
 * with a dot (so never "..") and the last one is opened with O_NOFOLLOW
 * below the directory's descriptor.  The pages (.html) need a session, as
 * every /api/ route does, except the login page; scripts, styles and
 * images do not, since the login page uses them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "web.h"

#define STATIC_FILE_MAX (16 * 1024 * 1024)
#define STATIC_PATH_MAX 256
#define IDLE_TIMEOUT_S 60

/* Scripts only from the console itself (no inline script, no eval): a
 * name or a message that reached a page as markup could not run. */
#define CSP                                                                    \
	"default-src 'self'; script-src 'self'; style-src 'self' "             \
	"'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "          \
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

static const struct {
	const char *ext, *type;
} types[] = {
	{".html", "text/html; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".mjs", "text/javascript; charset=utf-8"},
	{".json", "application/json"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".jpg", "image/jpeg"},
	{".jpeg", "image/jpeg"},
	{".webp", "image/webp"},
	{".ico", "image/x-icon"},
	{".woff2", "font/woff2"},
	{".txt", "text/plain; charset=utf-8"},
	{".map", "application/json"},
};

static const char *reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 303:
		return "See Other";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

static const char *content_type(const char *path)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (ends_with(path, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

void http_headers(struct web *w, struct evhttp_request *req,
		  const char *content_type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Content-Security-Policy", CSP);
	if (w->tls != NULL)
		evhttp_add_header(h, "Strict-Transport-Security",
				  "max-age=31536000");
}

void http_json_text(struct web *w, struct evhttp_request *req, int code,
		    const char *text, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || evbuffer_add(b, text, len) < 0)
		fatalx("out of memory");
	http_headers(w, req, "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason(code), b);
	evbuffer_free(b);
}

void http_json(struct web *w, struct evhttp_request *req, int code,
	       json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	if (text == NULL)
		fatalx("out of memory");
	json_decref(body);
	http_json_text(w, req, code, text, strlen(text));
	free(text);
}

void http_error(struct web *w, struct evhttp_request *req, int code,
		const char *ecode, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_json(w, req, code,
		  json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code",
			    ecode, "message", msg));
}

void http_text(struct web *w, struct evhttp_request *req, int code,
	       const char *content_type, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || evbuffer_add(b, text, strlen(text)) < 0)
		fatalx("out of memory");
	http_headers(w, req, content_type);
	evhttp_send_reply(req, code, reason(code), b);
	evbuffer_free(b);
}

void http_redirect(struct web *w, struct evhttp_request *req, const char *to)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
			  to);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-store");
	http_text(w, req, 303, "text/plain; charset=utf-8", to);
}

const char *http_peer(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port;

	if (evcon == NULL)
		return "unknown";
	evhttp_connection_get_peer(evcon, &addr, &port);
	return addr != NULL ? addr : "unknown";
}

char *http_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *s;

	if (len == 0 || len > WEB_BODY_MAX)
		return NULL;
	s = malloc(len + 1);
	if (s == NULL || evbuffer_copyout(in, s, len) != (ev_ssize_t)len)
		fatalx("out of memory");
	s[len] = '\0';
	return s;
}

/* ---- the static files ---- */

/* Whether rel names a file below the static directory and nothing else. */
static bool safe_path(const char *rel)
{
	size_t n = strlen(rel);

	if (n == 0 || n >= STATIC_PATH_MAX || rel[0] == '/' ||
	    rel[n - 1] == '/' ||
	    strspn(rel, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789._-/") != n)
		return false;
	for (const char *p = rel; p != NULL; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (*p == '.' || *p == '/' || *p == '\0')
			return false; /* "..", ".hidden", "//" */
	}
	return true;
}

/* The page with message as the text of its id="message" element. */
static void add_with_message(struct evbuffer *b, int fd, size_t size,
			     const char *message)
{
	char *text = malloc(size + 1), *at, *gt;
	ssize_t got = text != NULL ? read(fd, text, size) : -1;

	close(fd);
	if (got < 0) {
		free(text);
		return;
	}
	text[got] = '\0';
	at = strstr(text, "id=\"message\"");
	gt = at != NULL ? strchr(at, '>') : NULL;
	if (gt == NULL) {
		evbuffer_add(b, text, (size_t)got);
	} else {
		evbuffer_add(b, text, (size_t)(gt + 1 - text));
		for (const char *m = message; *m; m++) /* escaped */
			if (*m == '<' || *m == '>' || *m == '&' || *m == '"')
				evbuffer_add_printf(b, "&#%d;", *m);
			else
				evbuffer_add(b, m, 1);
		evbuffer_add(b, gt + 1, strlen(gt + 1));
	}
	free(text);
}

void http_static(struct web *w, struct evhttp_request *req, const char *rel,
		 int code, const char *message)
{
	struct evbuffer *b;
	struct stat st;
	int fd = -1;

	if (safe_path(rel))
		fd = openat(w->static_fd, rel,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
			st.st_size > STATIC_FILE_MAX)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		http_text(w, req, code == 200 ? 404 : code,
			  "text/plain; charset=utf-8",
			  message != NULL ? message : "not found\n");
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	if (message != NULL && ends_with(rel, ".html"))
		add_with_message(b, fd, (size_t)st.st_size, message);
	else if (st.st_size == 0)
		close(fd);
	else if (evbuffer_add_file(b, fd, 0, st.st_size) < 0)
		log_warnx("cannot serve %s", rel); /* the fd is closed */
	http_headers(w, req, content_type(rel));
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-cache");
	evhttp_send_reply(req, code, reason(code), b);
	evbuffer_free(b);
}

/* Every path without a callback of its own: /api/ROOM/..., the files. */
static void general_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	const char *path =
		evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	size_t len = 0;
	char *decoded;
	const char *rel;

	if (path == NULL || path[0] != '/') {
		http_text(w, req, 400, "text/plain; charset=utf-8",
			  "bad path\n");
		return;
	}
	if (strncmp(path, "/api/", 5) == 0) {
		api_route(w, req, path);
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		http_text(w, req, 405, "text/plain; charset=utf-8",
			  "GET the pages; POST only to /login, /logout and "
			  "/api/\n");
		return;
	}
	if ((decoded = evhttp_uridecode(path, 0, &len)) == NULL)
		fatalx("out of memory");
	rel = strcmp(decoded, "/") == 0 ? "index.html" : decoded + 1;
	if (strlen(decoded) != len || !safe_path(rel)) {
		http_text(w, req, 404, "text/plain; charset=utf-8",
			  "not found\n");
	} else if (ends_with(rel, ".html") && strcmp(rel, "login.html") != 0 &&
		   auth_session(w, req) == NULL) {
		http_redirect(w, req, "/login.html");
	} else {
		http_static(w, req, rel, 200, NULL);
	}
	free(decoded);
}

/* The address bound, as the ready line gives it. */
static void bound_url(struct web *w, struct evhttp_bound_socket *h)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int port = w->conf.port;
	bool v6 = strchr(w->conf.host, ':') != NULL;

	if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss,
			&sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(w->listen_url, sizeof(w->listen_url), "%s://%s%s%s:%d",
		 w->tls ? "https" : "http", v6 ? "[" : "", w->conf.host,
		 v6 ? "]" : "", port);
}

int http_open(struct web *w)
{
	struct evhttp_bound_socket *h;

	if ((w->http = evhttp_new(w->base)) == NULL)
		fatalx("evhttp_new");
	evhttp_set_max_body_size(w->http, WEB_BODY_MAX);
	evhttp_set_max_headers_size(w->http, WEB_HEADERS_MAX);
	evhttp_set_timeout(w->http, IDLE_TIMEOUT_S);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						    EVHTTP_REQ_HEAD);
	if (w->tls != NULL)
		evhttp_set_bevcb(w->http, tls_bufferevent, w->tls);
	evhttp_set_cb(w->http, "/login", auth_login_cb, w);
	evhttp_set_cb(w->http, "/logout", auth_logout_cb, w);
	evhttp_set_cb(w->http, "/api/me", api_me_cb, w);
	evhttp_set_cb(w->http, "/api/state", api_state_cb, w);
	evhttp_set_cb(w->http, "/api/events", sse_cb, w);
	evhttp_set_cb(w->http, "/metrics", metrics_cb, w);
	evhttp_set_cb(w->http, "/healthz", healthz_cb, w);
	evhttp_set_gencb(w->http, general_cb, w);
	h = evhttp_bind_socket_with_handle(w->http, w->conf.host,
					   (ev_uint16_t)w->conf.port);
	if (h == NULL) {
		log_warn("cannot listen on %s port %d", w->conf.host,
			 w->conf.port);
		return -1;
	}
	bound_url(w, h);
	return 0;
}

void http_close(struct web *w)
{
	if (w->http != NULL)
		evhttp_free(w->http);
	w->http = NULL;
}

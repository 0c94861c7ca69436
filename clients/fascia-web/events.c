/*
 * GET /api/events: Server-Sent Events, the browsers' live view.  A stream
 * opens with `event: snapshot` (every room and the latest state of every
 * device, /api/state's body) and then carries every state message, alarm
 * and change of a room's liveness as it comes, each with an `id:`; a
 * `: keepalive` comment every WEB_KEEPALIVE_S keeps proxies from closing
 * it.  The browser's EventSource reconnects by itself, and a reconnect
 * gets the snapshot again, so nothing is replayed.
 *
 * A reply is streamed with evhttp_send_reply_start/_chunk.  Each event is
 * formatted once and copied to every stream.  A browser that does not
 * read (a tablet asleep, a wedged tab) would make its stream's output grow
 * without end: one whose unsent output passes sse_queue_kb (1 MiB) is
 * dropped, its connection closed, and counted
 * (fascia_web_sse_dropped_total); its EventSource comes back with a
 * fresh snapshot once it reads again.
 *
 * A stream is tied to its session: it ends at logout, when its user is
 * removed, or when the session expires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "web.h"

#define SSE_CLIENTS_MAX 1000
#define SSE_WRITE_TIMEOUT_S 60
#define SSE_RETRY_MS 2000 /* how soon an EventSource reconnects */
/* The kernel's share of a stream's unsent output: fixed, so that the
 * limit counts (autotuning would let a stream hold megabytes there), and
 * ample for events at a few hundred KiB/s over a clinic's Wi-Fi. */
#define SSE_SNDBUF (64 * 1024)

struct sse_client {
	LIST_ENTRY(sse_client) entry;
	struct web *w;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	char session[WEB_TOKEN_HEX + 1];
	char user[WEB_NAME_MAX + 1];
	char peer[64];
};

struct web_sse {
	LIST_HEAD(sse_list, sse_client) clients;
	size_t n;
	uint64_t next_id;
	struct evbuffer *chunk;
	int64_t keepalive_mono;
	struct event *keepalive;
};

static void on_keepalive(evutil_socket_t fd, short what, void *arg);

int sse_open(struct web *w)
{
	struct web_sse *s = xcalloc(1, sizeof(*s));
	struct timeval tv = {WEB_KEEPALIVE_S, 0};

	LIST_INIT(&s->clients);
	s->chunk = evbuffer_new();
	s->keepalive = event_new(w->base, -1, EV_PERSIST, on_keepalive, w);
	if (s->chunk == NULL || s->keepalive == NULL ||
	    event_add(s->keepalive, &tv) < 0)
		fatalx("out of memory");
	w->sse = s;
	return 0;
}

static void unlink_client(struct web *w, struct sse_client *c)
{
	LIST_REMOVE(c, entry);
	w->sse->n--;
	evhttp_connection_set_closecb(c->evcon, NULL, NULL);
}

/* The end of a stream the console chose: the last chunk, then free. */
static void end_stream(struct web *w, struct sse_client *c)
{
	unlink_client(w, c);
	evhttp_send_reply_end(c->req);
	free(c);
}

void sse_close(struct web *w)
{
	struct sse_client *c;

	if (w->sse == NULL)
		return;
	while ((c = LIST_FIRST(&w->sse->clients)) != NULL)
		end_stream(w, c);
	evbuffer_free(w->sse->chunk);
	event_free(w->sse->keepalive);
	free(w->sse);
	w->sse = NULL;
}

size_t sse_clients(const struct web *w)
{
	return w->sse != NULL ? w->sse->n : 0;
}

/*
 * The browser went away.  evhttp has already let go of the request
 * (it is ours to free, with a reply_end that has no connection left), unless
 * the connection is freed for another reason, which frees it too.
 */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct sse_client *c = arg;

	(void)evcon;
	log_debug("event stream of %s from %s closed", c->user, c->peer);
	unlink_client(c->w, c);
	if (evhttp_request_get_connection(c->req) == NULL)
		evhttp_send_reply_end(c->req);
	free(c);
}

/* Close a stream that does not keep up. */
static void drop(struct web *w, struct sse_client *c, size_t queued)
{
	w->stats.sse_dropped++;
	log_warnx("event stream of %s from %s dropped: %zu bytes unread",
		  c->user, c->peer, queued);
	unlink_client(w, c);
	evhttp_connection_free(c->evcon); /* and the request with it */
	free(c);
}

/* Queue text on c's stream; false when c was dropped instead. */
static bool send_to(struct web *w, struct sse_client *c, const char *text,
		    size_t len)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
	size_t queued = evbuffer_get_length(bufferevent_get_output(bev));

	if (queued > w->conf.sse_queue_max) {
		drop(w, c, queued);
		return false;
	}
	evbuffer_add(w->sse->chunk, text, len);
	evhttp_send_reply_chunk(c->req, w->sse->chunk);
	evbuffer_drain(w->sse->chunk, evbuffer_get_length(w->sse->chunk));
	return true;
}

/* "id: N\nevent: NAME\ndata: JSON\n\n" (data stolen); NULL on no memory. */
static char *format_event(struct web *w, const char *event, json_t *data,
			  size_t *len)
{
	char *json = json_dumps(data, JSON_COMPACT), *text = NULL;
	int n;

	json_decref(data);
	if (json == NULL)
		return NULL;
	/* compact JSON is one line: a newline in a string is "\n" */
	n = asprintf(&text, "id: %llu\nevent: %s\ndata: %s\n\n",
		     (unsigned long long)++w->sse->next_id, event, json);
	free(json);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return text;
}

void sse_broadcast(struct web *w, const char *event, json_t *data)
{
	struct sse_client *c, *next;
	size_t len;
	char *text;

	if (w->sse == NULL || LIST_EMPTY(&w->sse->clients)) {
		json_decref(data);
		return;
	}
	if ((text = format_event(w, event, data, &len)) == NULL)
		fatalx("out of memory");
	for (c = LIST_FIRST(&w->sse->clients); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		send_to(w, c, text, len);
	}
	w->stats.sse_events++;
	free(text);
}

void sse_end_session(struct web *w, const char *session_id)
{
	struct sse_client *c, *next;

	if (w->sse == NULL)
		return;
	for (c = LIST_FIRST(&w->sse->clients); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (strcmp(c->session, session_id) == 0)
			end_stream(w, c);
	}
}

/* Each stream's session still there (and kept alive by it), a comment. */
static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	static const char line[] = ": keepalive\n\n";
	struct web *w = arg;
	struct sse_client *c, *next;

	(void)fd;
	(void)what;
	auth_sweep(w); /* ends the streams of the sessions it ends */
	for (c = LIST_FIRST(&w->sse->clients); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (auth_find(w, c->session) == NULL)
			end_stream(w, c);
		else
			send_to(w, c, line, sizeof(line) - 1);
	}
}

static void start_stream(struct web *w, struct evhttp_request *req,
			 const struct web_session *s)
{
	struct sse_client *c = xcalloc(1, sizeof(*c));
	struct timeval wtv = {SSE_WRITE_TIMEOUT_S, 0};
	struct bufferevent *bev;
	int sndbuf = SSE_SNDBUF, one = 1;
	char head[32], *text;
	size_t len;

	c->w = w;
	c->req = req;
	c->evcon = evhttp_request_get_connection(req);
	snprintf(c->session, sizeof(c->session), "%s", s->id);
	snprintf(c->user, sizeof(c->user), "%s", s->user);
	snprintf(c->peer, sizeof(c->peer), "%s", http_peer(req));
	http_headers(w, req, "text/event-stream; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Cache-Control", "no-store");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "X-Accel-Buffering", "no");
	evhttp_send_reply_start(req, 200, "OK");
	/* no read timeout: a stream's browser sends nothing more */
	bev = evhttp_connection_get_bufferevent(c->evcon);
	bufferevent_set_timeouts(bev, NULL, &wtv);
	if (setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sndbuf,
		       sizeof(sndbuf)) < 0)
		log_warn("event stream: SO_SNDBUF");
	/* an event goes at once: Nagle would hold a small one (an alarm)
	 * until the browser's delayed ACK, up to 40 ms */
	if (setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
		       sizeof(one)) < 0)
		log_warn("event stream: TCP_NODELAY");
	evhttp_connection_set_closecb(c->evcon, on_close, c);
	LIST_INSERT_HEAD(&w->sse->clients, c, entry);
	w->sse->n++;
	len = (size_t)snprintf(head, sizeof(head), "retry: %d\n\n",
			       SSE_RETRY_MS);
	if (!send_to(w, c, head, len))
		return;
	if ((text = format_event(w, "snapshot", rooms_state_json(w), &len)) ==
	    NULL)
		fatalx("out of memory");
	send_to(w, c, text, len);
	free(text);
}

void sse_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	struct web_session *s;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		http_error(w, req, 405, "method", "GET /api/events");
		return;
	}
	if ((s = auth_session(w, req)) == NULL) {
		http_error(w, req, 401, "unauthenticated", "log in first");
		return;
	}
	if (w->sse->n >= SSE_CLIENTS_MAX) {
		http_error(w, req, 503, "busy", "%d event streams are open",
			   SSE_CLIENTS_MAX);
		return;
	}
	log_debug("event stream of %s from %s", s->user, http_peer(req));
	start_stream(w, req, s);
}

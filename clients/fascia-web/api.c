/*
 * The /api/ routes: who is logged in, the state of every room, and what a
 * browser asks a room's daemon, forwarded as the console's own request
 * with `"as": USER`, the person it acts for, so that the daemon's journal
 * names both the console (its certificate, `by`) and the person (`as`).
 *
 * What a user may ask is decided here, before anything is sent, by one
 * table, `routes`: each row names the daemon's command, the role it
 * needs, and the members of the browser's body or query it passes on (no
 * other member reaches the daemon).  The daemon checks the console's own
 * role again, and checks every argument: its reply, refusals included,
 * goes back to the browser as it came.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "web.h"

#define ARGS_MAX 7

enum route_kind {
	ROUTE_COMMAND, /* POST /api/ROOM/DEVICE/NAME, JSON body */
	ROUTE_READ,    /* GET /api/ROOM/NAME?query */
};

/* How a query parameter becomes a JSON member. */
enum arg_kind { ARG_STRING, ARG_INTEGER, ARG_BOOL };

struct arg {
	const char *name;
	enum arg_kind kind;
};

struct route {
	const char *name; /* the URL's last part */
	enum route_kind kind;
	const char *cmd; /* the daemon's */
	enum web_role role;
	struct arg args[ARGS_MAX + 1];
};

/* The role table: lowering pressure (vent) is every user's, as it is every
 * client's of the daemon (docs/security.md). */
static const struct route routes[] = {
	{"start",
	 ROUTE_COMMAND,
	 "start",
	 WEB_ROLE_OPERATOR,
	 {{"profile", ARG_STRING},
	  {"patient", ARG_STRING},
	  {"note", ARG_STRING}}},
	{"pause", ROUTE_COMMAND, "pause", WEB_ROLE_OPERATOR, {{NULL}}},
	{"resume", ROUTE_COMMAND, "resume", WEB_ROLE_OPERATOR, {{NULL}}},
	{"stop", ROUTE_COMMAND, "stop", WEB_ROLE_OPERATOR, {{NULL}}},
	{"ack", ROUTE_COMMAND, "ack", WEB_ROLE_OPERATOR, {{NULL}}},
	{"vent", ROUTE_COMMAND, "vent", WEB_ROLE_OBSERVER, {{NULL}}},
	{"profiles", ROUTE_READ, "profiles", WEB_ROLE_OBSERVER, {{NULL}}},
	{"history",
	 ROUTE_READ,
	 "history",
	 WEB_ROLE_OBSERVER,
	 {{"device", ARG_STRING},
	  {"patient", ARG_STRING},
	  {"since", ARG_INTEGER},
	  {"until", ARG_INTEGER},
	  {"limit", ARG_INTEGER},
	  {"before", ARG_STRING}}},
	{"session",
	 ROUTE_READ,
	 "session.get",
	 WEB_ROLE_OBSERVER,
	 {{"session", ARG_STRING}, {"trace", ARG_BOOL}}},
};

/* A call on its way to a daemon. */
struct forward {
	struct web *w;
	struct evhttp_request *req;
	const struct route *route;
	char user[WEB_NAME_MAX + 1];
	enum web_role role;
	char device[WEB_DEVICE_NAME_MAX + 1];
};

static const struct route *route_find(const char *name, enum route_kind kind)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].kind == kind && strcmp(routes[i].name, name) == 0)
			return &routes[i];
	return NULL;
}

void api_me_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	struct web_session *s = auth_session(w, req);

	if (s == NULL) {
		http_error(w, req, 401, "unauthenticated", "log in first");
		return;
	}
	http_json(w, req, 200,
		  json_pack("{s:s,s:s,s:s}", "name", s->user, "role",
			    conf_role_name(s->role), "csrf", s->csrf));
}

void api_state_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;

	if (auth_session(w, req) == NULL) {
		http_error(w, req, 401, "unauthenticated", "log in first");
		return;
	}
	http_json(w, req, 200, rooms_state_json(w));
}

static void on_reply(struct web_room *r, const char *text, size_t len,
		     json_t *reply, void *arg)
{
	struct forward *f = arg;
	struct web *w = f->w;
	const char *outcome = "ok";

	if (reply == NULL) {
		w->stats.forward_timeouts++;
		outcome = "no reply";
		http_error(w, f->req, 504, "unreachable",
			   "no reply from %s: the daemon is down, or the "
			   "server key is wrong",
			   r->name);
	} else {
		if (!json_is_true(json_object_get(reply, "ok")))
			outcome = json_string_value(json_object_get(
					  json_object_get(reply, "error"),
					  "code"))
					  ?: "refused";
		http_json_text(w, f->req, 200, text, len);
	}
	if (f->route->kind == ROUTE_COMMAND)
		log_info("%s (%s): %s %s/%s: %s", f->user,
			 conf_role_name(f->role), f->route->cmd, r->name,
			 f->device, outcome);
	free(f);
}

static void forward(struct web *w, struct evhttp_request *req,
		    struct web_room *r, const struct route *rt,
		    const struct web_session *s, const char *device,
		    json_t *request)
{
	struct forward *f = xcalloc(1, sizeof(*f));

	f->w = w;
	f->req = req;
	f->route = rt;
	f->role = s->role;
	snprintf(f->user, sizeof(f->user), "%s", s->user);
	snprintf(f->device, sizeof(f->device), "%s", device ? device : "");
	json_object_set_new(request, "cmd", json_string(rt->cmd));
	if (device != NULL)
		json_object_set_new(request, "device", json_string(device));
	json_object_set_new(request, "as", json_string(s->user));
	w->stats.forwarded++;
	room_request(r, request, on_reply, f);
	json_decref(request);
}

/* The role's refusal, as the daemon words its own. */
static bool role_allows(struct web *w, struct evhttp_request *req,
			const struct route *rt, const struct web_session *s,
			const char *where)
{
	char msg[256];
	json_t *body;

	if (s->role >= rt->role)
		return true;
	w->stats.role_refused++;
	snprintf(msg, sizeof(msg), "%s needs the %s role; %s has %s", rt->cmd,
		 conf_role_name(rt->role), s->user, conf_role_name(s->role));
	log_warnx("%s (%s): %s %s: refused: %s", s->user,
		  conf_role_name(s->role), rt->cmd, where, msg);
	body = json_pack("{s:b,s:{s:s,s:s,s:s}}", "ok", 0, "error", "code",
			 "forbidden", "role", conf_role_name(rt->role),
			 "message", msg);
	http_json(w, req, 403, body);
	return false;
}

/* The body's members the route passes on; NULL (refused) when the body
 * is not a JSON object.  An empty body is {}. */
static json_t *command_args(struct web *w, struct evhttp_request *req,
			    const struct route *rt)
{
	char *body = http_body(req);
	json_error_t jerr;
	json_t *in, *out;

	in = body == NULL || body[strspn(body, " \t\r\n")] == '\0'
		     ? json_object()
		     : json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
	free(body);
	if (!json_is_object(in)) {
		json_decref(in);
		http_error(w, req, 400, "bad_request",
			   "the body must be a JSON object");
		return NULL;
	}
	out = json_object();
	for (const struct arg *a = rt->args; a->name != NULL; a++)
		if (json_object_get(in, a->name) != NULL)
			json_object_set(out, a->name,
					json_object_get(in, a->name));
	json_decref(in);
	return out;
}

static void command(struct web *w, struct evhttp_request *req,
		    const struct web_session *s, char **part)
{
	struct web_room *r = room_find(w, part[0]);
	const struct route *rt = route_find(part[2], ROUTE_COMMAND);
	char where[80];
	json_t *args;

	if (!auth_csrf_ok(s, req, NULL)) {
		w->stats.csrf_refused++;
		log_warnx("%s: POST %s/%s/%s from %s refused: no CSRF token",
			  s->user, part[0], part[1], part[2], http_peer(req));
		http_error(w, req, 403, "csrf",
			   "the request lacks this session's CSRF token "
			   "(X-CSRF-Token, from /api/me)");
		return;
	}
	if (r == NULL) {
		http_error(w, req, 404, "unknown_room", "no room %s", part[0]);
		return;
	}
	if (rt == NULL || !conf_name_ok(part[1])) {
		http_error(w, req, 404, "not_found",
			   "no such command: start, pause, resume, stop, vent "
			   "or ack");
		return;
	}
	snprintf(where, sizeof(where), "%s/%s", part[0], part[1]);
	if (!role_allows(w, req, rt, s, where))
		return;
	if ((args = command_args(w, req, rt)) != NULL)
		forward(w, req, r, rt, s, part[1], args);
}

/* A query parameter as the JSON the daemon wants; a string when it does
 * not parse, so the daemon's own error names it. */
static json_t *arg_value(const struct arg *a, const char *v)
{
	char *end;
	long long n;

	if (a->kind == ARG_INTEGER) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (!errno && end != v && *end == '\0')
			return json_integer(n);
	} else if (a->kind == ARG_BOOL) {
		if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
			return json_true();
		if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
			return json_false();
	}
	return json_string(v);
}

static void read_route(struct web *w, struct evhttp_request *req,
		       const struct web_session *s, char **part)
{
	struct web_room *r = room_find(w, part[0]);
	const struct route *rt = route_find(part[1], ROUTE_READ);
	const char *query =
		evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	json_t *request;

	if (r == NULL) {
		http_error(w, req, 404, "unknown_room", "no room %s", part[0]);
		return;
	}
	if (rt == NULL) {
		http_error(w, req, 404, "not_found",
			   "no such read: profiles, history or session");
		return;
	}
	if (!role_allows(w, req, rt, s, part[0]))
		return;
	TAILQ_INIT(&params);
	if (query != NULL && evhttp_parse_query_str(query, &params) < 0) {
		http_error(w, req, 400, "bad_request", "a malformed query");
		return;
	}
	request = json_object();
	for (const struct arg *a = rt->args; a->name != NULL; a++) {
		const char *v = evhttp_find_header(&params, a->name);

		if (v != NULL)
			json_object_set_new(request, a->name, arg_value(a, v));
	}
	evhttp_clear_headers(&params);
	forward(w, req, r, rt, s, NULL, request);
}

/* Split "ROOM/X[/Y]" into at most 3 parts; their count, or -1. */
static int split(char *rest, char **part)
{
	int n = 0;
	char *p;

	while (rest != NULL && n < 4) {
		p = strchr(rest, '/');
		if (p != NULL)
			*p++ = '\0';
		if (*rest == '\0' || n == 3)
			return -1;
		part[n++] = rest;
		rest = p;
	}
	return n;
}

void api_route(struct web *w, struct evhttp_request *req, const char *path)
{
	struct web_session *s = auth_session(w, req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char buf[512], *part[3];
	int n;

	if (s == NULL) {
		http_error(w, req, 401, "unauthenticated", "log in first");
		return;
	}
	if (strlen(path) >= sizeof(buf)) {
		http_error(w, req, 404, "not_found", "no such route");
		return;
	}
	snprintf(buf, sizeof(buf), "%s", path + strlen("/api/"));
	n = split(buf, part);
	if (n == 3 && method == EVHTTP_REQ_POST)
		command(w, req, s, part);
	else if (n == 2 &&
		 (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD))
		read_route(w, req, s, part);
	else if (n == 2 || n == 3)
		http_error(w, req, 405, "method",
			   "commands are POST /api/ROOM/DEVICE/ACTION, reads "
			   "GET /api/ROOM/profiles|history|session");
	else
		http_error(w, req, 404, "not_found", "no such route");
}

/*
 * Faults at given times: --inject specs ("leak,chamber=2,mmhg_s=5@1500")
 * and scenario files (a JSON array of control requests, each with
 * "at_ms").  Both become struct sim_event, which main.c schedules and
 * applies through sim_request(), so a scheduled fault behaves exactly like
 * one sent over the control socket.  Nothing here knows the devices: the
 * requests are checked against them by sim_request_check() at start.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Later than any test or rig would wait, and far from overflowing µs. */
#define AT_MS_MAX 1000000000000LL

/* Fully a number: an integer where it is one, a real otherwise. */
static json_t *spec_value(const char *text)
{
	char *end;
	long long i;
	double d;

	if (*text == '\0')
		return json_string(text);
	errno = 0;
	i = strtoll(text, &end, 10);
	if (*end == '\0' && errno == 0)
		return json_integer(i);
	errno = 0;
	d = strtod(text, &end);
	if (*end == '\0' && errno == 0 && isfinite(d))
		return json_real(d);
	return json_string(text);
}

/* "@MS" at the end of spec: 0 if absent.  Returns 0, or -1. */
static int spec_at(const char *spec, const char *at, uint64_t *ms, char *err,
		   size_t errlen)
{
	char *end;
	long long v;

	*ms = 0;
	if (at == NULL)
		return 0;
	errno = 0;
	v = strtoll(at + 1, &end, 10);
	if (at[1] == '\0' || *end != '\0' || errno != 0 || v < 0 ||
	    v > AT_MS_MAX) {
		snprintf(err, errlen,
			 "--inject %s: expected @MS, whole milliseconds from "
			 "the start",
			 spec);
		return -1;
	}
	*ms = (uint64_t)v;
	return 0;
}

int sim_inject_spec(const char *spec, struct sim_event *ev, char *err,
		    size_t errlen)
{
	char *copy, *at, *item, *save = NULL, *eq;
	json_t *req = NULL, *val;
	bool first = true;

	ev->req = NULL;
	ev->at_ms = 0;
	copy = strdup(spec);
	if (copy == NULL) {
		snprintf(err, errlen, "--inject %s: out of memory", spec);
		return -1;
	}
	at = strrchr(copy, '@');
	if (spec_at(spec, at, &ev->at_ms, err, errlen) != 0)
		goto fail;
	if (at != NULL)
		*at = '\0';
	if (copy[0] == '\0' || copy[0] == ',') {
		snprintf(err, errlen,
			 "--inject %s: expected a fault name first", spec);
		goto fail;
	}
	req = json_object();
	json_object_set_new(req, "cmd", json_string("inject"));
	for (item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		if (first) {
			val = json_string(item);
			if (val == NULL || strchr(item, '=') != NULL) {
				json_decref(val);
				snprintf(err, errlen,
					 "--inject %s: expected a fault name "
					 "first",
					 spec);
				goto fail;
			}
			json_object_set_new(req, "fault", val);
			first = false;
			continue;
		}
		eq = strchr(item, '=');
		if (eq == NULL || eq == item || eq[1] == '\0') {
			snprintf(err, errlen,
				 "--inject %.*s: expected key=value",
				 (int)(item - copy + strlen(item)), spec);
			goto fail;
		}
		*eq = '\0';
		if (strcmp(item, "cmd") == 0 || strcmp(item, "fault") == 0 ||
		    json_object_get(req, item) != NULL) {
			snprintf(err, errlen,
				 "--inject %s: \"%s\" given twice or not an "
				 "argument",
				 spec, item);
			goto fail;
		}
		val = spec_value(eq + 1);
		if (val == NULL || json_object_set_new(req, item, val) != 0) {
			snprintf(err, errlen, "--inject %s: \"%s\" is not text",
				 spec, item);
			goto fail;
		}
	}
	free(copy);
	ev->req = req;
	return 0;

fail:
	json_decref(req);
	free(copy);
	return -1;
}

static void free_events(struct sim_event *evs, int n)
{
	for (int i = 0; i < n; i++)
		json_decref(evs[i].req);
	free(evs);
}

/* One entry of a scenario into ev.  Returns 0, or -1 with err filled. */
static int load_entry(const char *path, size_t i, json_t *entry,
		      struct sim_event *ev, char *err, size_t errlen)
{
	json_t *at, *cmd;

	if (!json_is_object(entry)) {
		snprintf(err, errlen,
			 "%s: entry %zu: expected an object {\"at_ms\":..., "
			 "\"cmd\":...}",
			 path, i + 1);
		return -1;
	}
	at = json_object_get(entry, "at_ms");
	if (at == NULL || !json_is_integer(at) || json_integer_value(at) < 0 ||
	    json_integer_value(at) > AT_MS_MAX) {
		snprintf(err, errlen,
			 "%s: entry %zu: at_ms: %s whole milliseconds from "
			 "the start (0..%lld)",
			 path, i + 1, at == NULL ? "required," : "expected",
			 AT_MS_MAX);
		return -1;
	}
	cmd = json_object_get(entry, "cmd");
	if (cmd != NULL && !json_is_string(cmd)) {
		snprintf(err, errlen, "%s: entry %zu: cmd: expected a string",
			 path, i + 1);
		return -1;
	}
	ev->at_ms = (uint64_t)json_integer_value(at);
	ev->req = json_deep_copy(entry);
	if (ev->req == NULL) {
		snprintf(err, errlen, "%s: entry %zu: out of memory", path,
			 i + 1);
		return -1;
	}
	json_object_del(ev->req, "at_ms");
	if (cmd == NULL)
		json_object_set_new(ev->req, "cmd", json_string("inject"));
	return 0;
}

int sim_scenario_load(const char *path, struct sim_event **evs, char *err,
		      size_t errlen)
{
	json_error_t jerr;
	json_t *root, *entry;
	struct sim_event *out = NULL;
	size_t i, n;

	*evs = NULL;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (jerr.line > 0)
			snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line,
				 jerr.column, jerr.text);
		else
			snprintf(err, errlen, "%s: %s", path, jerr.text);
		return -1;
	}
	if (!json_is_array(root)) {
		snprintf(err, errlen,
			 "%s: expected a JSON array of requests, each with "
			 "\"at_ms\"",
			 path);
		json_decref(root);
		return -1;
	}
	n = json_array_size(root);
	if (n > 100000) {
		snprintf(err, errlen, "%s: %zu entries, at most 100000", path,
			 n);
		json_decref(root);
		return -1;
	}
	if (n > 0) {
		out = calloc(n, sizeof(*out));
		if (out == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			json_decref(root);
			return -1;
		}
	}
	json_array_foreach(root, i, entry)
	{
		if (load_entry(path, i, entry, &out[i], err, errlen) != 0) {
			free_events(out, (int)i);
			json_decref(root);
			return -1;
		}
	}
	json_decref(root);
	*evs = out;
	return (int)n;
}

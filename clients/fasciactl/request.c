/*
 * fasciactl's requests to fasciad: one client per run, opened on the first
 * call; every wait bounded by --timeout; the daemon's refusals turned into
 * a message on stderr and exit code 1, with the known devices listed when
 * the device was unknown and the field named when a profile was invalid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

void ctl_print_json(const json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15));

	if (text != NULL) {
		puts(text);
		free(text);
	}
}

void ctl_list_devices(FILE *f, const json_t *names)
{
	size_t i;
	json_t *n;

	fputs("fasciactl: known devices:", f);
	if (json_array_size(names) == 0)
		fputs(" none", f);
	json_array_foreach(names, i, n)
	{
		fprintf(f, "%s %s", i ? "," : "", json_string_value(n));
	}
	fputc('\n', f);
}

/*
 * Send req (stolen) and return the reply in *reply, printing nothing but
 * a failure to get one.  Returns CTL_OK (the reply may still say ok:false)
 * or CTL_UNREACHABLE.
 */
int ctl_call_quiet(struct ctl *ctl, json_t *req, json_t **reply)
{
	*reply = NULL;
	if (req == NULL) {
		fprintf(stderr, "fasciactl: out of memory\n");
		return CTL_UNREACHABLE;
	}
	if (ctl->client == NULL &&
	    (ctl->client = fascia_client_new(ctl->control, ctl->timeout_ms)) ==
		    NULL) {
		json_decref(req);
		return ctl_endpoint_error(ctl->control, ctl->control_src);
	}
	*reply = fascia_client_call(ctl->client, req);
	json_decref(req);
	if (*reply != NULL)
		return CTL_OK;
	if (errno == ETIMEDOUT)
		fprintf(stderr,
			"fasciactl: no reply from %s within %d ms "
			"(is fasciad running?)\n",
			ctl->control, ctl->timeout_ms);
	else if (errno == EPROTO)
		fprintf(stderr,
			"fasciactl: %s: the reply is not fascia's protocol\n",
			ctl->control);
	else
		fprintf(stderr, "fasciactl: %s: %s\n", ctl->control,
			strerror(errno));
	return CTL_UNREACHABLE;
}

/*
 * After fascia_client_new() or fascia_monitor_new() failed on endpoint
 * (given by src): an endpoint ZeroMQ cannot parse is the command line's
 * mistake, a usage error; anything else is a failure to reach the daemon.
 */
int ctl_endpoint_error(const char *endpoint, const char *src)
{
	if (errno == EINVAL) {
		ctl_usage_hint("%s: \"%s\" is not a ZeroMQ endpoint (such as "
			       "%s)",
			       src, endpoint, FASCIA_CONTROL_DEFAULT);
		return CTL_USAGE;
	}
	fprintf(stderr, "fasciactl: %s: %s\n", endpoint, strerror(errno));
	return CTL_UNREACHABLE;
}

/* The configured devices' names as a JSON array (a new reference). */
int ctl_device_names(struct ctl *ctl, json_t **names)
{
	json_t *reply, *devs, *d;
	size_t i;
	int rc;

	*names = NULL;
	rc = ctl_call_quiet(ctl, json_pack("{s:s}", "cmd", "devices"), &reply);
	if (rc != CTL_OK)
		return rc;
	devs = json_object_get(json_object_get(reply, "result"), "devices");
	*names = json_array();
	json_array_foreach(devs, i, d)
	{
		const char *n = json_string_value(json_object_get(d, "name"));

		if (n != NULL)
			json_array_append_new(*names, json_string(n));
	}
	json_decref(reply);
	return CTL_OK;
}

static void explain_error(struct ctl *ctl, const json_t *err)
{
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *field = json_string_value(json_object_get(err, "field"));
	json_t *names;

	fprintf(stderr, "fasciactl: %s: %s\n", code ? code : "error",
		msg ? msg : "(no message)");
	if (field != NULL && *field != '\0')
		fprintf(stderr, "fasciactl: field: %s\n", field);
	if (code != NULL && strcmp(code, "unknown_device") == 0 &&
	    ctl_device_names(ctl, &names) == CTL_OK) {
		ctl_list_devices(stderr, names);
		json_decref(names);
	}
}

/* A reply in hand: its result in *result (a new reference, an empty
 * object when it has none), or its error explained; an exit code. */
static int take_reply(struct ctl *ctl, json_t *reply, json_t **result)
{
	if (!json_is_true(json_object_get(reply, "ok"))) {
		explain_error(ctl, json_object_get(reply, "error"));
		json_decref(reply);
		return CTL_REFUSED;
	}
	if (result != NULL) {
		*result = json_object_get(reply, "result");
		if (!json_is_object(*result))
			*result = json_object();
		else
			json_incref(*result);
	}
	json_decref(reply);
	return CTL_OK;
}

/*
 * Send req (stolen).  With --json the reply is printed as it came.  On
 * success *result is the reply's "result" (a new reference; result may be
 * NULL).  Returns an exit code.
 */
int ctl_call(struct ctl *ctl, json_t *req, json_t **result)
{
	json_t *reply;
	int rc;

	if (result != NULL)
		*result = NULL;
	if ((rc = ctl_call_quiet(ctl, req, &reply)) != CTL_OK)
		return rc;
	if (ctl->json)
		ctl_print_json(reply);
	return take_reply(ctl, reply, result);
}

/*
 * ctl_call() that prints no reply, for the commands whose --json output
 * is the result object alone (history, session, log) or no reply at all
 * (export): a refusal is explained on stderr, as always.
 */
int ctl_query(struct ctl *ctl, json_t *req, json_t **result)
{
	json_t *reply;
	int rc;

	if (result != NULL)
		*result = NULL;
	if ((rc = ctl_call_quiet(ctl, req, &reply)) != CTL_OK)
		return rc;
	return take_reply(ctl, reply, result);
}

/*
 * The device to use when the command line names none: the only one the
 * daemon has.  *keep holds the name's storage (json_decref it).
 */
int ctl_default_device(struct ctl *ctl, const char **device, json_t **keep)
{
	int rc;

	*device = NULL;
	if ((rc = ctl_device_names(ctl, keep)) != CTL_OK)
		return rc;
	if (json_array_size(*keep) == 1) {
		*device = json_string_value(json_array_get(*keep, 0));
		return CTL_OK;
	}
	fprintf(stderr, "fasciactl: name a DEVICE: the daemon has %zu\n",
		json_array_size(*keep));
	ctl_list_devices(stderr, *keep);
	json_decref(*keep);
	*keep = NULL;
	return CTL_USAGE;
}

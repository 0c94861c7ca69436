/*
 * fasciactl's requests to fasciad: one client per run, opened on the first
 * call (over CURVE when --cert and --server-key say so); every wait bounded
 * by --timeout; the daemon's refusals turned into a message on stderr and
 * exit code 1, with the known devices listed when the device was unknown,
 * the field named when a profile was invalid, and the role needed when
 * the certificate's was not enough.
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

/* The one client of the run, opened on first use; an exit code. */
static int open_client(struct ctl *ctl)
{
	const struct fascia_security *sec;
	int rc;

	if (ctl->client != NULL)
		return CTL_OK;
	if ((rc = ctl_security(ctl, &sec)) != CTL_OK)
		return rc;
	ctl->client =
		fascia_client_new_secure(ctl->control, ctl->timeout_ms, sec);
	if (ctl->client == NULL)
		return ctl_endpoint_error(ctl->control, ctl->control_src);
	return CTL_OK;
}

/* fascia_client_call() returned NULL: why, on stderr; an exit code. */
static int call_failed(const struct ctl *ctl)
{
	switch (errno) {
	case ETIMEDOUT:
		ctl_no_reply(ctl, ctl->control);
		break;
	case EACCES:
		/* the daemon's ZAP handler said no: it was reached */
		fprintf(stderr,
			"fasciactl: %s refused the certificate %s: it is not "
			"among the daemon's clients (its NAME.key is not in "
			"the "
			"clients directory)\n",
			ctl->control, ctl->cert);
		return CTL_REFUSED;
	case EPROTO:
		fprintf(stderr,
			"fasciactl: %s: the reply is not fascia's protocol\n",
			ctl->control);
		break;
	default:
		fprintf(stderr, "fasciactl: %s: %s\n", ctl->control,
			strerror(errno));
	}
	return CTL_UNREACHABLE;
}

/*
 * Send req (stolen) and return the reply in *reply, printing nothing but
 * a failure to get one.  Returns CTL_OK (the reply may still say ok:false)
 * or the exit code of the failure: CTL_UNREACHABLE, CTL_USAGE (an endpoint,
 * certificate or key that is not one), CTL_REFUSED (the certificate).
 */
int ctl_call_quiet(struct ctl *ctl, json_t *req, json_t **reply)
{
	int rc;

	*reply = NULL;
	if (req == NULL) {
		fprintf(stderr, "fasciactl: out of memory\n");
		return CTL_UNREACHABLE;
	}
	if ((rc = open_client(ctl)) != CTL_OK) {
		json_decref(req);
		return rc;
	}
	*reply = fascia_client_call(ctl->client, req);
	json_decref(req);
	return *reply != NULL ? CTL_OK : call_failed(ctl);
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

/*
 * What no reply within the timeout means.  Over CURVE a wrong server key
 * looks the same as a daemon that is not there: the handshake never
 * completes (and the daemon cannot say which key it expected).
 */
void ctl_no_reply(const struct ctl *ctl, const char *endpoint)
{
	if (ctl->cert != NULL)
		fprintf(stderr,
			"fasciactl: no reply from %s within %d ms: the daemon "
			"is down, or the server key is wrong\n",
			endpoint, ctl->timeout_ms);
	else
		fprintf(stderr,
			"fasciactl: no reply from %s within %d ms "
			"(is fasciad running?)\n",
			endpoint, ctl->timeout_ms);
}

/* After fascia_security_check() failed on bad (one of ctl's two, or
 * neither): a message; the exit code. */
static int security_error(const struct ctl *ctl, const char *bad)
{
	bool cert = bad == ctl->cert;

	if (errno == ENOTSUP) {
		fprintf(stderr,
			"fasciactl: this libzmq was built without "
			"CURVE: no %s\n",
			ctl->cert_src);
		return CTL_UNREACHABLE;
	}
	if (bad == NULL)
		ctl_usage_hint("%s: %s", ctl->cert_src, strerror(errno));
	else if (errno != EINVAL)
		ctl_usage_hint("%s: %s: %s",
			       cert ? ctl->cert_src : ctl->server_key_src, bad,
			       strerror(errno));
	else if (cert)
		ctl_usage_hint("%s: %s is not a CURVE secret certificate (the "
			       "NAME.key_secret of fasciactl keygen)",
			       ctl->cert_src, bad);
	else
		ctl_usage_hint("%s: \"%s\" is neither the daemon's public "
			       "key (40 characters of Z85) nor its certificate "
			       "file",
			       ctl->server_key_src, bad);
	return CTL_USAGE;
}

/*
 * The CURVE settings of the command line and the environment, checked
 * once: *sec NULL for plaintext.  Returns an exit code: CTL_USAGE (after a
 * message) for one without the other, or a file or key that is not one.
 */
int ctl_security(struct ctl *ctl, const struct fascia_security **sec)
{
	const char *bad;

	*sec = NULL;
	if (ctl->cert == NULL && ctl->server_key == NULL)
		return CTL_OK;
	if (ctl->server_key == NULL) {
		ctl_usage_hint("%s needs --server-key KEY (or "
			       "FASCIA_SERVER_KEY): the daemon's public key",
			       ctl->cert_src);
		return CTL_USAGE;
	}
	if (ctl->cert == NULL) {
		ctl_usage_hint("%s needs --cert FILE (or FASCIA_CERT): this "
			       "client's secret certificate",
			       ctl->server_key_src);
		return CTL_USAGE;
	}
	ctl->security.cert = ctl->cert;
	ctl->security.server_key = ctl->server_key;
	if (!ctl->security_checked &&
	    fascia_security_check(&ctl->security, &bad) < 0)
		return security_error(ctl, bad);
	ctl->security_checked = true;
	*sec = &ctl->security;
	return CTL_OK;
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

/* A refusal for the certificate's role: which role would do, and how to
 * get a certificate of it (the daemon's message names the command and the
 * role this one has). */
static void explain_role(const char *role)
{
	fprintf(stderr,
		"fasciactl: needs the %s role%s: use a certificate of it "
		"(--cert, FASCIA_CERT); 'fasciactl keygen NAME --role %s' "
		"makes one for the daemon's administrator to admit\n",
		role, strcmp(role, "admin") == 0 ? "" : " or above", role);
}

static void explain_error(struct ctl *ctl, const json_t *err)
{
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *field = json_string_value(json_object_get(err, "field"));
	const char *role = json_string_value(json_object_get(err, "role"));
	json_t *names;

	fprintf(stderr, "fasciactl: %s: %s\n", code ? code : "error",
		msg ? msg : "(no message)");
	if (field != NULL && *field != '\0')
		fprintf(stderr, "fasciactl: field: %s\n", field);
	if (code != NULL && strcmp(code, "forbidden") == 0 && role != NULL)
		explain_role(role);
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

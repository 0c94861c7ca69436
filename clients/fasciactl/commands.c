/*
 * fasciactl's subcommands that ask the daemon once and print the answer:
 * lists, status, profiles (show, upload, and an offline check that needs
 * no daemon), and the operator's commands.  The treatment record's
 * queries are in records.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

/* Exactly min..max positional arguments, else a usage error. */
bool ctl_nargs(int argc, int min, int max, const char *usage)
{
	if (argc >= min && argc <= max)
		return true;
	ctl_usage_hint("usage: fasciactl %s", usage);
	return false;
}

int cmd_devices(struct ctl *ctl, int argc, char **argv)
{
	json_t *res;
	int rc;

	(void)argv;
	if (!ctl_nargs(argc, 0, 0, "devices"))
		return CTL_USAGE;
	rc = ctl_call(ctl, json_pack("{s:s}", "cmd", "devices"), &res);
	if (rc == CTL_OK && !ctl->json)
		print_devices(res);
	json_decref(res);
	return rc;
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *res, *st;
	size_t i;
	int rc;

	if (!ctl_nargs(argc, 0, 1, "status [DEVICE]"))
		return CTL_USAGE;
	req = json_pack("{s:s}", "cmd", "status");
	if (argc == 1)
		json_object_set_new(req, "device", json_string(argv[0]));
	rc = ctl_call(ctl, req, &res);
	if (rc == CTL_OK && !ctl->json) {
		if (argc == 1) {
			print_status(res);
		} else {
			json_array_foreach(json_object_get(res, "devices"), i,
					   st)
			{
				if (i > 0)
					putchar('\n');
				print_status(st);
			}
		}
	}
	json_decref(res);
	return rc;
}

int cmd_profiles(struct ctl *ctl, int argc, char **argv)
{
	json_t *res;
	int rc;

	(void)argv;
	if (!ctl_nargs(argc, 0, 0, "profiles"))
		return CTL_USAGE;
	rc = ctl_call(ctl, json_pack("{s:s}", "cmd", "profiles"), &res);
	if (rc == CTL_OK && !ctl->json)
		print_profiles(res);
	json_decref(res);
	return rc;
}

static int profile_show(struct ctl *ctl, const char *name)
{
	json_t *res;
	char *text;
	int rc;

	rc = ctl_call(
		ctl, json_pack("{s:s,s:s}", "cmd", "profile.get", "name", name),
		&res);
	if (rc == CTL_OK && !ctl->json) {
		text = json_dumps(json_object_get(res, "profile"),
				  JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text != NULL)
			puts(text);
		free(text);
	}
	json_decref(res);
	return rc;
}

/*
 * The file as a JSON object, or NULL with the reason printed.  libfascia
 * reads it first, as profile check does, so that a file that cannot be
 * read, is too large, is not JSON or not an object is refused in the same
 * words (a parse error with its line and column); whether the profile is
 * valid is the daemon's to say, against its own devices.
 */
static json_t *read_profile_json(const char *path)
{
	static struct fascia_profile p; /* ~8 KiB: not on the stack */
	struct fascia_profile_limits widest = {
		.device_chambers = FASCIA_MAX_CHAMBERS,
		.device_limit_mmhg = FASCIA_CEILING_MMHG,
		.max_session_s = FASCIA_MAX_SESSION_S,
	};
	struct fascia_profile_error err;
	json_error_t jerr;
	char buf[768];
	json_t *doc;

	memset(&err, 0, sizeof(err));
	if (fascia_profile_load_file(path, &widest, &p, &err) < 0 &&
	    err.field[0] == '\0') {
		fprintf(stderr, "fasciactl: %s\n",
			fascia_profile_error_format(&err, buf, sizeof(buf)));
		return NULL;
	}
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		fprintf(stderr, "fasciactl: %s: changed while it was read\n",
			path);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static int profile_upload(struct ctl *ctl, const char *path)
{
	json_t *doc, *res;
	int rc;

	if ((doc = read_profile_json(path)) == NULL)
		return CTL_REFUSED;
	rc = ctl_call(
		ctl,
		json_pack("{s:s,s:o}", "cmd", "profile.put", "profile", doc),
		&res);
	if (rc == CTL_OK && !ctl->json)
		printf("stored %s\n",
		       json_string_value(json_object_get(res, "name")));
	json_decref(res);
	return rc;
}

/* Offline: libfascia's own validation, against --chambers/--limit/... */
static int profile_check(struct ctl *ctl, const char *path)
{
	static struct fascia_profile p; /* ~8 KiB: not on the stack */
	struct fascia_profile_error err;
	char buf[768];

	memset(&err, 0, sizeof(err));
	if (fascia_profile_load_file(path, &ctl->limits, &p, &err) < 0) {
		if (ctl->json) {
			json_t *o = json_pack("{s:b,s:s,s:s,s:s}", "ok", 0,
					      "file", path, "field", err.field,
					      "message", err.message);
			ctl_print_json(o);
			json_decref(o);
		}
		fprintf(stderr, "fasciactl: %s\n",
			fascia_profile_error_format(&err, buf, sizeof(buf)));
		return CTL_REFUSED;
	}
	if (ctl->json) {
		json_t *o =
			json_pack("{s:b,s:s,s:s,s:i,s:f}", "ok", 1, "file",
				  path, "name", p.name, "chambers", p.chambers,
				  "duration_s", fascia_profile_duration_s(&p));
		ctl_print_json(o);
		json_decref(o);
	} else {
		printf("%s: ok: %s, %d chambers, max %.1f mmHg, %.1f s\n", path,
		       p.name, p.chambers, p.max_pressure_mmhg,
		       fascia_profile_duration_s(&p));
	}
	return CTL_OK;
}

int cmd_profile(struct ctl *ctl, int argc, char **argv)
{
	const char *usage = "profile show NAME | upload FILE | check FILE";

	if (!ctl_nargs(argc, 2, 2, usage))
		return CTL_USAGE;
	if (strcmp(argv[0], "show") == 0)
		return profile_show(ctl, argv[1]);
	if (strcmp(argv[0], "upload") == 0)
		return profile_upload(ctl, argv[1]);
	if (strcmp(argv[0], "check") == 0)
		return profile_check(ctl, argv[1]);
	ctl_usage_hint("unknown profile subcommand \"%s\"; usage: fasciactl %s",
		       argv[0], usage);
	return CTL_USAGE;
}

static void print_verdict(const json_t *res)
{
	printf("%s: %s\n", json_string_value(json_object_get(res, "device")),
	       json_string_value(json_object_get(res, "state")));
}

/* Characters of UTF-8 text (the code points: continuation bytes not
 * counted). */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* start's --patient and --note, checked as the daemon checks them
 * (docs/records.md, "start"); false after a usage message. */
static bool start_options(struct ctl *ctl, json_t *req)
{
	json_t *v;

	if (!ctl_add_patient(ctl, req))
		return false;
	if (ctl->note == NULL)
		return true;
	if ((v = json_string(ctl->note)) == NULL) {
		ctl_usage_hint("--note: not valid UTF-8 text");
		return false;
	}
	if (utf8_chars(ctl->note) > CTL_NOTE_MAX) {
		json_decref(v);
		ctl_usage_hint("--note: %zu characters, more than %d",
			       utf8_chars(ctl->note), CTL_NOTE_MAX);
		return false;
	}
	json_object_set_new(req, "note", v);
	return true;
}

int cmd_start(struct ctl *ctl, int argc, char **argv)
{
	json_t *req, *res;
	int rc;

	if (!ctl_nargs(argc, 2, 2,
		       "start DEVICE PROFILE [--patient REF] [--note TEXT]"))
		return CTL_USAGE;
	req = json_pack("{s:s,s:s,s:s}", "cmd", "start", "device", argv[0],
			"profile", argv[1]);
	if (req != NULL && !start_options(ctl, req)) {
		json_decref(req);
		return CTL_USAGE;
	}
	rc = ctl_call(ctl, req, &res);
	if (rc == CTL_OK && !ctl->json)
		print_verdict(res);
	json_decref(res);
	return rc;
}

/* pause, resume, stop, vent, ack [DEVICE]: argv[-1] is the command. */
int cmd_operator(struct ctl *ctl, int argc, char **argv)
{
	const char *cmd = argv[-1], *device;
	json_t *keep = NULL, *res;
	char usage[64];
	int rc;

	snprintf(usage, sizeof(usage), "%s [DEVICE]", cmd);
	if (!ctl_nargs(argc, 0, 1, usage))
		return CTL_USAGE;
	if (argc == 1)
		device = argv[0];
	else if ((rc = ctl_default_device(ctl, &device, &keep)) != CTL_OK)
		return rc;
	rc = ctl_call(ctl, json_pack("{s:s,s:s}", "cmd", cmd, "device", device),
		      &res);
	json_decref(keep);
	if (rc == CTL_OK && !ctl->json)
		print_verdict(res);
	json_decref(res);
	return rc;
}

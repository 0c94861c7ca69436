/*
 * fasciactl export --fhir: one recorded session as a FHIR R4 Bundle of
 * type "collection", for a hospital's record.  The Bundle holds
 *
 *   - a Procedure: the session (its id as identifier, the period it ran,
 *     how it ended as status and statusReason, the profile and its sha256
 *     in a note, the patient as a bare identifier: fasciad knows no name);
 *   - an Observation per chamber: its dose as four components in UCUM
 *     (mm[Hg], mm[Hg].s, s), partOf the Procedure;
 *   - an Observation per alarm raised during the session (its log's alarm
 *     entries of event "raised"): when, which interlock, its priority,
 *     chamber and message, partOf the Procedure.
 *
 * Entries refer to each other by fullUrl "urn:uuid:<v4 uuid>", made up
 * here; apart from those and the Bundle's timestamp (when it was made) the
 * Bundle is a function of the session.  Times are ISO 8601 with the local
 * offset.  Values the journal has as null (a dose never measured) are
 * left out with a dataAbsentReason, never written as 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/random.h>

#include "fasciactl.h"

#define UCUM "http://unitsofmeasure.org"
#define DATA_ABSENT "http://terminology.hl7.org/CodeSystem/data-absent-reason"
#define DATA_ABSENT_EXT                                                        \
	"http://hl7.org/fhir/StructureDefinition/data-absent-reason"
/* fascia's own identifier systems and codes. */
#define SYS_SESSION "urn:fascia:session"
#define SYS_DOSE "urn:fascia:dose"
#define SYS_ALARM "urn:fascia:alarm"
#define SYS_LOG "urn:fascia:log"
#define SYS_DEVICE "urn:fascia:device"

/* "urn:uuid:" and a random (version 4) UUID. */
static void urn_uuid(char *buf, size_t len)
{
	unsigned char b[16];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(b)) {
		n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fputs("fasciactl: no random bytes for a uuid\n",
			      stderr);
			exit(CTL_REFUSED);
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
	snprintf(buf, len,
		 "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A string member, or dflt. */
static const char *sval(const json_t *o, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : dflt;
}

static json_t *iso_time(const json_t *ms_value)
{
	char buf[64];
	int64_t ms;

	if (!ctl_json_ms(ms_value, &ms))
		return NULL;
	ctl_time_iso(buf, sizeof(buf), ms);
	return json_string(buf);
}

static json_t *reference(const char *url)
{
	return json_pack("{s:s}", "reference", url);
}

/* The patient: the reference given at start as a bare identifier (no name
 * is known), or, without one, a subject marked as not recorded. */
static json_t *subject(const json_t *s)
{
	const json_t *p = json_object_get(s, "patient");

	if (json_is_string(p) && json_string_length(p) > 0)
		return json_pack("{s:s,s:{s:s}}", "type", "Patient",
				 "identifier", "value", json_string_value(p));
	return json_pack("{s:[{s:s,s:s}],s:s}", "extension", "url",
			 DATA_ABSENT_EXT, "valueCode", "unknown", "display",
			 "patient not recorded");
}

static json_t *period(const json_t *s)
{
	json_t *o = json_object(), *v;

	if ((v = iso_time(json_object_get(s, "started"))) != NULL)
		json_object_set_new(o, "start", v);
	if ((v = iso_time(json_object_get(s, "ended"))) != NULL)
		json_object_set_new(o, "end", v);
	return o;
}

/*
 * Procedure.status from the session's end_reason, and the words of its
 * statusReason (NULL: none).  A session ended before anything was
 * delivered was not done; one that ended early, stopped.
 */
static const char *procedure_status(const json_t *s, char *why, size_t len)
{
	const char *end = json_string_value(json_object_get(s, "end_reason"));
	const char *alarm = json_string_value(json_object_get(s, "alarm"));
	bool delivered =
		json_number_value(json_object_get(s, "delivered_s")) > 0;
	const char *status = delivered ? "stopped" : "not-done";

	why[0] = '\0';
	if (end == NULL)
		end = "";
	if (strcmp(end, "completed") == 0)
		return "completed";
	if (strcmp(end, "running") == 0)
		return "in-progress";
	if (strcmp(end, "stopped") == 0)
		snprintf(why, len, "stopped by the operator");
	else if (strcmp(end, "vented") == 0)
		snprintf(why, len, "vented by the operator");
	else if (strcmp(end, "fault") == 0)
		snprintf(why, len, "ended by the alarm %s",
			 alarm != NULL ? alarm : "(not named)");
	else if (strcmp(end, "shutdown") == 0)
		snprintf(why, len, "fasciad was shut down during the session");
	else if (strcmp(end, "interrupted") == 0)
		snprintf(why, len,
			 "interrupted: fasciad ended without closing the "
			 "session; the dose is as last recorded");
	else {
		snprintf(why, len, "end_reason \"%s\"", end);
		return "unknown";
	}
	return status;
}

static json_t *procedure(const json_t *s)
{
	const json_t *note = json_object_get(s, "note");
	char why[160], text[256], a[32], b[32], c[32];
	const char *status = procedure_status(s, why, sizeof(why));
	json_t *p, *notes;

	p = json_pack("{s:s,s:[{s:s,s:s}],s:s}", "resourceType", "Procedure",
		      "identifier", "system", SYS_SESSION, "value",
		      sval(s, "id", ""), "status", status);
	if (why[0] != '\0')
		json_object_set_new(p, "statusReason",
				    json_pack("{s:s}", "text", why));
	json_object_set_new(p, "code",
			    json_pack("{s:s}", "text",
				      "Pneumatic compression "
				      "therapy"));
	json_object_set_new(p, "subject", subject(s));
	json_object_set_new(p, "performedPeriod", period(s));
	if (json_is_string(json_object_get(s, "operator")))
		json_object_set_new(p, "performer",
				    json_pack("[{s:{s:s}}]", "actor", "display",
					      sval(s, "operator", "")));
	if (json_is_string(json_object_get(s, "device")))
		json_object_set_new(
			p, "usedReference",
			json_pack("[{s:{s:s,s:s},s:s}]", "identifier", "system",
				  SYS_DEVICE, "value", sval(s, "device", ""),
				  "display", sval(s, "device", "")));
	notes = json_array();
	snprintf(text, sizeof(text), "profile %s, sha256 %s",
		 sval(s, "profile", "-"), sval(s, "profile_sha256", "-"));
	json_array_append_new(notes, json_pack("{s:s}", "text", text));
	ctl_json_text(json_object_get(s, "planned_s"), a, sizeof(a));
	ctl_json_text(json_object_get(s, "delivered_s"), b, sizeof(b));
	ctl_json_text(json_object_get(s, "paused_s"), c, sizeof(c));
	snprintf(text, sizeof(text),
		 "planned %s s, delivered %s s, paused %s s", a[0] ? a : "-",
		 b[0] ? b : "-", c[0] ? c : "-");
	json_array_append_new(notes, json_pack("{s:s}", "text", text));
	if (json_is_string(note) && json_string_length(note) > 0)
		json_array_append_new(notes, json_pack("{s:O}", "text", note));
	json_object_set_new(p, "note", notes);
	return p;
}

/* A coded concept of fascia's system, with its words. */
static json_t *concept(const char *system, const char *code, const char *text)
{
	return json_pack("{s:[{s:s,s:s}],s:s}", "coding", "system", system,
			 "code", code, "text", text);
}

/* One dose component: valueQuantity in UCUM, or absent when null. */
static json_t *dose_component(const json_t *c, const char *key,
			      const char *text, const char *unit)
{
	const json_t *v = json_object_get(c, key);
	json_t *o = json_pack("{s:o}", "code", concept(SYS_DOSE, key, text));

	if (json_is_number(v))
		json_object_set_new(o, "valueQuantity",
				    json_pack("{s:O,s:s,s:s,s:s}", "value", v,
					      "unit", unit, "system", UCUM,
					      "code", unit));
	else
		json_object_set_new(o, "dataAbsentReason",
				    json_pack("{s:[{s:s,s:s}]}", "coding",
					      "system", DATA_ABSENT, "code",
					      "unknown"));
	return o;
}

static json_t *dose_observation(const json_t *s, const json_t *c,
				const char *proc_url)
{
	json_int_t n = json_integer_value(json_object_get(c, "chamber"));
	bool running = strcmp(sval(s, "end_reason", ""), "running") == 0;
	char text[64], id[192];
	json_t *o;

	snprintf(text, sizeof(text), "Compression dose, chamber %lld",
		 (long long)n);
	snprintf(id, sizeof(id), "%s/chamber/%lld", sval(s, "id", "-"),
		 (long long)n);
	o = json_pack("{s:s,s:[{s:s,s:s}],s:s,s:[o],s:{s:s},s:o,s:o}",
		      "resourceType", "Observation", "identifier", "system",
		      SYS_DOSE, "value", id, "status",
		      running ? "preliminary" : "final", "partOf",
		      reference(proc_url), "code", "text", text, "subject",
		      subject(s), "effectivePeriod", period(s));
	json_object_set_new(
		o, "component",
		json_pack("[o,o,o,o]",
			  dose_component(c, "max_mmhg", "Maximum pressure",
					 "mm[Hg]"),
			  dose_component(c, "mean_mmhg", "Mean pressure",
					 "mm[Hg]"),
			  dose_component(c, "mmhg_s", "Pressure-time integral",
					 "mm[Hg].s"),
			  dose_component(c, "above_30_s", "Time above 30 mmHg",
					 "s")));
	return o;
}

static json_t *alarm_observation(const json_t *s, const json_t *e,
				 const char *proc_url)
{
	const char *id = sval(e, "alarm", "?");
	char text[96], seq[32];
	json_t *o, *when, *comp;

	snprintf(text, sizeof(text), "Device alarm: %s", id);
	ctl_json_text(json_object_get(e, "seq"), seq, sizeof(seq));
	o = json_pack("{s:s,s:[{s:s,s:s}],s:s,s:[o],s:o,s:o}", "resourceType",
		      "Observation", "identifier", "system", SYS_LOG, "value",
		      seq, "status", "final", "partOf", reference(proc_url),
		      "code", concept(SYS_ALARM, id, text), "subject",
		      subject(s));
	if ((when = iso_time(json_object_get(e, "time"))) != NULL)
		json_object_set_new(o, "effectiveDateTime", when);
	if (json_is_string(json_object_get(e, "message")))
		json_object_set_new(o, "valueString",
				    json_string(sval(e, "message", "")));
	comp = json_array();
	if (json_is_string(json_object_get(e, "priority")))
		json_array_append_new(comp,
				      json_pack("{s:o,s:s}", "code",
						concept(SYS_ALARM, "priority",
							"Alarm priority"),
						"valueString",
						sval(e, "priority", "")));
	if (json_is_integer(json_object_get(e, "chamber")))
		json_array_append_new(
			comp,
			json_pack("{s:o,s:I}", "code",
				  concept(SYS_ALARM, "chamber",
					  "Chamber (0: the whole device)"),
				  "valueInteger",
				  json_integer_value(
					  json_object_get(e, "chamber"))));
	json_object_set_new(o, "component", comp);
	return o;
}

static void add_entry(json_t *entries, const char *url, json_t *resource)
{
	json_array_append_new(entries, json_pack("{s:s,s:o}", "fullUrl", url,
						 "resource", resource));
}

/* The Bundle of session s (a session.get result's "session"), made at
 * now_ms; a new reference. */
json_t *fhir_bundle(const json_t *s, int64_t now_ms)
{
	char proc_url[64], url[64], stamp[64];
	const json_t *c, *e;
	json_t *bundle, *entries;
	size_t i;

	urn_uuid(url, sizeof(url));
	ctl_time_iso(stamp, sizeof(stamp), now_ms);
	bundle =
		json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "resourceType", "Bundle",
			  "identifier", "system", "urn:ietf:rfc:3986", "value",
			  url, "type", "collection", "timestamp", stamp);
	entries = json_array();
	urn_uuid(proc_url, sizeof(proc_url));
	add_entry(entries, proc_url, procedure(s));
	json_array_foreach(json_object_get(s, "chambers"), i, c)
	{
		urn_uuid(url, sizeof(url));
		add_entry(entries, url, dose_observation(s, c, proc_url));
	}
	json_array_foreach(json_object_get(s, "log"), i, e)
	{
		const char *kind =
			json_string_value(json_object_get(e, "kind"));
		const char *ev = json_string_value(json_object_get(e, "event"));

		if (kind == NULL || ev == NULL || strcmp(kind, "alarm") != 0 ||
		    strcmp(ev, "raised") != 0)
			continue;
		urn_uuid(url, sizeof(url));
		add_entry(entries, url, alarm_observation(s, e, proc_url));
	}
	json_object_set_new(bundle, "entry", entries);
	return bundle;
}

/* Write text to path by way of a temporary file, so that a failure leaves
 * no half a Bundle behind; an exit code. */
static int write_file(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;
	int bad;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
			     (long)getpid()) >= sizeof(tmp)) {
		ctl_usage_hint("-o: the path is too long");
		return CTL_USAGE;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "fasciactl: %s: %s\n", tmp, strerror(errno));
		return CTL_REFUSED;
	}
	bad = fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
	      fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		fprintf(stderr, "fasciactl: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return CTL_REFUSED;
	}
	return CTL_OK;
}

int cmd_export(struct ctl *ctl, int argc, char **argv)
{
	json_t *s, *bundle;
	char *text;
	int rc;

	if (!ctl_nargs(argc, 1, 1, "export --fhir ID [-o FILE]"))
		return CTL_USAGE;
	if (!ctl->fhir) {
		ctl_usage_hint("export: name the format: --fhir (FHIR R4 "
			       "Bundle)");
		return CTL_USAGE;
	}
	if ((s = ctl_session_get(ctl, argv[0], false, &rc)) == NULL)
		return rc;
	bundle = fhir_bundle(s, ctl_now_ms());
	json_decref(s);
	text = json_dumps(bundle, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
					  JSON_REAL_PRECISION(15));
	json_decref(bundle);
	if (text == NULL) {
		fputs("fasciactl: out of memory\n", stderr);
		return CTL_REFUSED;
	}
	if (ctl->output != NULL && strcmp(ctl->output, "-") != 0) {
		rc = write_file(ctl->output, text);
	} else {
		puts(text);
		rc = fflush(stdout) == 0 ? CTL_OK : CTL_REFUSED;
	}
	free(text);
	return rc;
}

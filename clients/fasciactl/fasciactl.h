/*
 * fasciactl's private header: the map of the program, one heading per
 * file (main.c: options and dispatch; request.c: calls to the daemon and
 * their errors; commands.c: the subcommands; records.c: the treatment
 * record's history and log; session.c: one recorded session; fhir.c: a
 * session as a FHIR
 * Bundle; table.c: aligned tables and CSV; when.c: times read and written;
 * print.c: human-readable output; watch.c: the publisher stream; keygen.c:
 * CURVE certificates).
 */
#ifndef FASCIACTL_H
#define FASCIACTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <fascia/client.h>
#include <fascia/profile.h>

#define FASCIACTL_VERSION "0.1"
#define CTL_TIMEOUT_DEFAULT_MS 2000

/* Exit codes (docs/man/fasciactl.1). */
enum {
	CTL_OK = 0,          /* done */
	CTL_REFUSED = 1,     /* the daemon refused, or a profile is invalid */
	CTL_USAGE = 2,       /* bad arguments */
	CTL_UNREACHABLE = 3, /* no (protocol) reply within the timeout */
};

/* The journal's bounds (docs/records.md): a page, a patient reference. */
#define CTL_PAGE_MAX 1000
#define CTL_PATIENT_MAX 64
#define CTL_NOTE_MAX 500 /* characters */

struct ctl {
	const char *control;     /* control endpoint */
	const char *publish;     /* publish endpoint */
	const char *control_src; /* where it came from: "--endpoint" ... */
	const char *publish_src; /* "--publish", "FASCIA_PUBLISH", "default" */
	int timeout_ms;          /* bounds every request */
	bool json;               /* raw replies, one JSON object a line */
	bool csv;                /* history, session, log: RFC 4180 CSV */
	long count;              /* watch: lines before exiting, 0 for ever */
	struct fascia_profile_limits limits; /* profile check */
	struct fascia_client *client;        /* opened on the first call */

	/* CURVE: both or neither (docs/man/fasciactl.1, SECURITY) */
	const char *cert;           /* the client's secret certificate */
	const char *cert_src;       /* "--cert" or "FASCIA_CERT" */
	const char *server_key;     /* the daemon's public key or its file */
	const char *server_key_src; /* "--server-key", "FASCIA_SERVER_KEY" */
	struct fascia_security security; /* both, once ctl_security() ok'd */
	bool security_checked;

	/* The options of start and of the journal's queries, as given;
	 * each command checks and converts the ones it takes. */
	const char *patient; /* --patient */
	const char *note;    /* --note */
	const char *since;   /* --since */
	const char *until;   /* --until */
	const char *limit;   /* --limit: a pressure (profile check) or a
				page size (history, log) */
	const char *before;  /* --before: a session id or a log seq */
	json_t *kinds;       /* --kind, each given: an array of strings */
	bool trace;          /* session --trace */
	bool fhir;           /* export --fhir */
	const char *output;  /* export -o FILE */
	const char *role;    /* keygen --role */
	const char *dir;     /* keygen -d DIR */
};

/* main.c */
void ctl_usage_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* request.c */
int ctl_call(struct ctl *ctl, json_t *req, json_t **result);
int ctl_query(struct ctl *ctl, json_t *req, json_t **result);
int ctl_call_quiet(struct ctl *ctl, json_t *req, json_t **reply);
int ctl_device_names(struct ctl *ctl, json_t **names);
int ctl_default_device(struct ctl *ctl, const char **device, json_t **keep);
int ctl_endpoint_error(const char *endpoint, const char *src);
int ctl_security(struct ctl *ctl, const struct fascia_security **sec);
void ctl_no_reply(const struct ctl *ctl, const char *endpoint);
void ctl_print_json(const json_t *v);
void ctl_list_devices(FILE *f, const json_t *names);

/* commands.c */
int cmd_devices(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_profiles(struct ctl *ctl, int argc, char **argv);
int cmd_profile(struct ctl *ctl, int argc, char **argv);
int cmd_start(struct ctl *ctl, int argc, char **argv);
int cmd_operator(struct ctl *ctl, int argc, char **argv);
bool ctl_nargs(int argc, int min, int max, const char *usage);

/* records.c */
bool ctl_patient_ok(const char *ref);
bool ctl_add_patient(struct ctl *ctl, json_t *req);
bool ctl_set_text(json_t *req, const char *key, const char *opt, const char *s);
bool ctl_wall_s(const json_t *session, double *seconds);
int cmd_history(struct ctl *ctl, int argc, char **argv);
int cmd_log(struct ctl *ctl, int argc, char **argv);
void ctl_log_summary(const json_t *entry, char *buf, size_t len);
struct table *ctl_log_table(struct ctl *ctl, const json_t *list,
			    bool with_device);

/* session.c */
int cmd_session(struct ctl *ctl, int argc, char **argv);
json_t *ctl_session_get(struct ctl *ctl, const char *id, bool trace, int *rc);

/* fhir.c */
int cmd_export(struct ctl *ctl, int argc, char **argv);
json_t *fhir_bundle(const json_t *session, int64_t now_ms);

/* table.c */
struct table;
struct table *table_new(const char *align, const char *const *head);
void table_add(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *f);
void table_csv(const struct table *t, FILE *f);
void table_destroy(struct table **t);
const char *table_str(const json_t *o, const char *key);
const char *table_num(const json_t *o, const char *key, char *buf, size_t len,
		      const char *fmt);
const char *table_raw(const json_t *o, const char *key, char *buf, size_t len);
const char *table_iso(const json_t *o, const char *key, char *buf, size_t len);
char *ctl_strdup(const char *s);
const char *ctl_printable(const char *s, char *buf, size_t len);
void ctl_json_text(const json_t *v, char *buf, size_t len);

/* when.c */
int ctl_parse_time(const char *s, int64_t *ms);
bool ctl_json_ms(const json_t *v, int64_t *ms);
void ctl_time_local(char *buf, size_t len, const json_t *ms, bool millis);
void ctl_time_iso(char *buf, size_t len, int64_t ms);
void ctl_duration(char *buf, size_t len, double s);
int64_t ctl_now_ms(void);

/* print.c */
void print_devices(const json_t *result);
void print_status(const json_t *st);
void print_profiles(const json_t *result);
void print_clock(FILE *f, json_int_t time_ms);
void print_state_line(FILE *f, const json_t *st);
void print_event_line(FILE *f, const json_t *ev);
void print_alarm_line(FILE *f, const json_t *al);

/* watch.c */
int cmd_watch(struct ctl *ctl, int argc, char **argv);

/* keygen.c */
int cmd_keygen(struct ctl *ctl, int argc, char **argv);

#endif

/*
 * fasciactl's private header: the map of the program, one heading per
 * file (main.c: options and dispatch; request.c: calls to the daemon and
 * their errors; commands.c: the subcommands; print.c: human-readable
 * output; watch.c: the publisher stream).
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

struct ctl {
	const char *control;     /* control endpoint */
	const char *publish;     /* publish endpoint */
	const char *control_src; /* where it came from: "--endpoint" ... */
	const char *publish_src; /* "--publish", "FASCIA_PUBLISH", "default" */
	int timeout_ms;          /* bounds every request */
	bool json;               /* raw replies, one JSON object a line */
	long count;              /* watch: lines before exiting, 0 for ever */
	struct fascia_profile_limits limits; /* profile check */
	struct fascia_client *client;        /* opened on the first call */
};

/* main.c */
void ctl_usage_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* request.c */
int ctl_call(struct ctl *ctl, json_t *req, json_t **result);
int ctl_call_quiet(struct ctl *ctl, json_t *req, json_t **reply);
int ctl_device_names(struct ctl *ctl, json_t **names);
int ctl_default_device(struct ctl *ctl, const char **device, json_t **keep);
int ctl_endpoint_error(const char *endpoint, const char *src);
void ctl_print_json(const json_t *v);
void ctl_list_devices(FILE *f, const json_t *names);

/* commands.c */
int cmd_devices(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_profiles(struct ctl *ctl, int argc, char **argv);
int cmd_profile(struct ctl *ctl, int argc, char **argv);
int cmd_start(struct ctl *ctl, int argc, char **argv);
int cmd_operator(struct ctl *ctl, int argc, char **argv);
int cmd_history(struct ctl *ctl, int argc, char **argv);

/* print.c */
void print_devices(const json_t *result);
void print_status(const json_t *st);
void print_profiles(const json_t *result);
void print_history(const json_t *result, const char *device);
void print_clock(FILE *f, json_int_t time_ms);
void print_state_line(FILE *f, const json_t *st);
void print_event_line(FILE *f, const json_t *ev);
void print_alarm_line(FILE *f, const json_t *al);

/* watch.c */
int cmd_watch(struct ctl *ctl, int argc, char **argv);

#endif

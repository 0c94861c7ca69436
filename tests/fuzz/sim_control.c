/*
 * Fuzz fascia-sim's control requests (sim/control.c) on a real struct sim
 * of two devices whose models start afresh for each input, with the
 * Modbus servers stubbed and a fake clock.  The input is
 *   - a request, as the control socket receives it (sim_control_handle);
 *   - or, after a leading '#', an --inject spec (scenario.c), applied;
 *   - or, when it starts with '[', a scenario file (scenario.c), each
 *     event checked and the first ones applied.
 * Invariants: every reply is valid JSON {"v":1,"id":...,"ok":bool,...}
 * with a result or an error {code, message}; a spec or scenario that
 * parses yields request objects; nothing crashes, nothing leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../sim/control.c"
#include "../../sim/model.c"
#include "../../sim/scenario.c"

#include "check.h"

/* ---- stubs for main.c and server.c ---- */

#define T0_US 1000000000ull
static uint64_t fake_now_us;

uint64_t sim_now_us(void)
{
	return fake_now_us;
}

void sim_device_advance(struct sim_device *d)
{
	bool was = sim_model_booting(&d->model);

	sim_model_advance(&d->model, sim_now_us());
	if (sim_model_booting(&d->model) != was)
		sim_server_link_changed(d);
}

static int link_changes;

void sim_server_link_changed(struct sim_device *d)
{
	(void)d;
	link_changes++;
}

void sim_server_close(struct sim_device *d)
{
	(void)d;
}

/* ---- the rig ---- */

static struct sim sim;
static struct sim_device devs[2];

static void reset_sim(void)
{
	struct sim_params p;

	fake_now_us = T0_US;
	memset(&sim, 0, sizeof(sim));
	memset(devs, 0, sizeof(devs));
	sim.dev = devs;
	sim.ndev = 2;
	sim.unit = 1;
	sim.start_us = T0_US - 1000;
	for (int i = 0; i < 2; i++) {
		sim_params_default(&p);
		p.chambers = i ? 16 : 8;
		p.seed += (uint64_t)i;
		devs[i].index = i;
		devs[i].sim = &sim;
		devs[i].link_mode = SIM_LINK_OK;
		snprintf(devs[i].where, sizeof(devs[i].where),
			 "tcp:127.0.0.1:%d", 1502 + i);
		sim_model_init(&devs[i].model, &p, T0_US);
	}
	/* requests are applied 5 ms after power on */
	fake_now_us = T0_US + 5000;
}

static void check_reply(char *text)
{
	json_error_t jerr;
	json_t *r, *ok, *err;

	CHECK(text != NULL);
	r = json_loads(text, 0, &jerr);
	if (r == NULL) {
		fprintf(stderr, "reply not JSON (%s): %s\n", jerr.text, text);
		abort();
	}
	CHECK(json_is_object(r));
	CHECK(json_integer_value(json_object_get(r, "v")) == 1);
	CHECK(json_object_get(r, "id") != NULL);
	ok = json_object_get(r, "ok");
	CHECK(json_is_boolean(ok));
	if (json_is_true(ok)) {
		CHECK(json_is_object(json_object_get(r, "result")));
	} else {
		err = json_object_get(r, "error");
		CHECK(json_is_object(err));
		CHECK(json_is_string(json_object_get(err, "code")));
		CHECK(json_is_string(json_object_get(err, "message")));
	}
	json_decref(r);
	free(text);
}

/* One request object through the checks, then the control protocol. */
static void apply(json_t *req)
{
	const char *code = NULL;
	char msg[256];
	char *text;

	CHECK(json_is_object(req));
	if (sim_request_check(&sim, req, &code, msg, sizeof(msg)) != 0) {
		CHECK(code != NULL);
		CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	}
	text = json_dumps(req, JSON_COMPACT);
	CHECK(text != NULL);
	check_reply(sim_control_handle(&sim, text, strlen(text)));
	free(text);
}

static void fuzz_spec(const uint8_t *data, size_t size)
{
	struct sim_event ev;
	char err[256];
	char *spec = malloc(size + 1);

	CHECK(spec != NULL);
	memcpy(spec, data, size);
	spec[size] = '\0';
	if (sim_inject_spec(spec, &ev, err, sizeof(err)) == 0) {
		CHECK(ev.req != NULL);
		CHECK(strcmp(json_string_value(json_object_get(ev.req, "cmd")),
			     "inject") == 0);
		apply(ev.req);
		json_decref(ev.req);
	} else {
		CHECK(ev.req == NULL);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	}
	free(spec);
}

static void fuzz_scenario(const uint8_t *data, size_t size)
{
	struct sim_event *evs = NULL;
	char path[64], err[512];
	int fd, n;

	if ((fd = memfd_create("scenario", 0)) < 0)
		return;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = sim_scenario_load(path, &evs, err, sizeof(err));
	close(fd);
	if (n < 0) {
		CHECK(evs == NULL);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return;
	}
	for (int i = 0; i < n; i++) {
		CHECK(evs[i].at_ms <= AT_MS_MAX);
		if (i < 8)
			apply(evs[i].req);
		json_decref(evs[i].req);
	}
	free(evs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	reset_sim();
	if (size > 0 && data[0] == '#')
		fuzz_spec(data + 1, size - 1);
	else if (size > 0 && data[0] == '[')
		fuzz_scenario(data, size);
	else
		check_reply(sim_control_handle(&sim, (const char *)data, size));
	return 0;
}

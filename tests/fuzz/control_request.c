/*
 * Fuzz fasciad's control requests (daemon/server.c, commands.c): any
 * payload through fd_server_handle() — fd_server_decode() and the whole
 * dispatch — on a fake daemon of two devices, no sockets and no threads:
 * fd_device_submit() is a stub, the verdict of a deferred command is
 * handed back at once, and so is the store's answer to a profile.put
 * (fd_store_write() is a stub that writes nothing).  Invariants: every
 * payload gets a reply object {"v":1,"id":...,"ok":bool,...} that
 * json_dumps() can encode (fd_server_send() is fatal otherwise), or is
 * deferred exactly when a device command or a profile write was
 * submitted; nothing crashes, nothing leaks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../daemon/interlock.c"
#include "../../daemon/profiles.c"
#include "../../daemon/publish.c"
#include "../../daemon/server.c"
#include "../../daemon/commands.c"
#include "../../daemon/dose.c"
#include "../../daemon/journal.c"
#include "../../daemon/query.c"
#include "../../daemon/record.c"
#include "../../daemon/session.c"
#include "../../daemon/state.c"

#include "check.h"

#include "../daemon_stubs.h"

static int submit_rc; /* what fd_device_submit returns */
static bool submitted;
static struct fd_command last_cmd;

/* The store: the write is taken, and answered once the request is. */
static fd_store_done stored_done;
static void *stored_arg;

int fd_store_write(struct fd_store *s, const char *dir, const char *name,
		   const void *data, size_t len, fd_store_done done, void *arg)
{
	(void)s;
	(void)dir;
	(void)name;
	(void)data;
	(void)len;
	CHECK(stored_done == NULL);
	stored_done = done;
	stored_arg = arg;
	return 0;
}

int fd_device_submit(struct fd_device *dev, const struct fd_command *c)
{
	(void)dev;
	if (submit_rc == 0) {
		submitted = true;
		last_cmd = *c;
	}
	return submit_rc;
}

/* ---- the fake daemon ---- */

static const char *const seed_profiles[] = {
	"{\"name\":\"gentle-wave\",\"description\":\"test\",\"chambers\":2,"
	"\"max_pressure_mmhg\":40,\"max_ramp_mmhg_s\":10,\"repeat\":1,"
	"\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":2},"
	"{\"set\":{\"all\":0},\"ramp_s\":3,\"hold_s\":1}]}",
	"{\"name\":\"pulse\",\"description\":\"every chamber to 40\","
	"\"chambers\":4,\"max_pressure_mmhg\":45,\"max_ramp_mmhg_s\":10,"
	"\"gradient\":\"distal-high\",\"repeat\":3,\"steps\":["
	"{\"set\":{\"all\":40},\"ramp_s\":5,\"hold_s\":5},"
	"{\"set\":{\"all\":0},\"ramp_s\":5,\"hold_s\":10}]}",
};
#define NSEED (int)(sizeof(seed_profiles) / sizeof(seed_profiles[0]))

static struct fd_daemon *d;
static struct fascia_profile seeds[NSEED];
static char dir[64];

static void remove_dir(void)
{
	char path[1100];

	if (d == NULL || dir[0] == '\0')
		return;
	for (int i = 0; i < d->profiles.n; i++) {
		snprintf(path, sizeof(path), "%s/%s.json", dir,
			 d->profiles.p[i].name);
		unlink(path);
	}
	rmdir(dir);
}

/* A snapshot with a session, chambers and alarms, so that status
 * builds every part of the state message. */
static void fake_snapshot(struct fd_device *dev)
{
	struct fd_snapshot *s = &dev->box.snap;

	dev->box.have_snap = true;
	s->tick = 1234;
	s->mono_s = 100.0;
	s->unix_ms = 1700000000000;
	s->state = FD_RUNNING;
	s->have_session = true;
	s->session_seq = 3;
	snprintf(s->profile, sizeof(s->profile), "gentle-wave");
	s->pos.step = 1;
	s->pos.cycle = 1;
	s->pos.elapsed_s = 12.5;
	s->pos.remaining_s = NAN;
	s->chambers = dev->conf.chambers;
	for (int i = 0; i < FASCIA_MAX_CHAMBERS; i++) {
		s->pressure[i] = 10.0 * i;
		s->setpoint[i] = 12.0 * i;
		s->valve[i] = (uint8_t)(i % 4); /* 3: not a valve state */
	}
	s->supply = 250;
	s->nalarm = 2;
	s->alarm[0].id = ILK_OVERPRESSURE;
	s->alarm[0].chamber = 2;
	s->alarm[0].present = true;
	s->alarm[0].since_s = 99.5;
	snprintf(s->alarm[0].message, sizeof(s->alarm[0].message),
		 "chamber 2 at 90 mmHg");
	s->alarm[1].id = ILK_COMMS;
	s->alarm[1].since_s = INFINITY;
	memcpy(s->alarm[1].message, "cut \xe2\x82", 7); /* cut UTF-8 */
	s->link.up = true;
	s->have_reading = (dev->conf.chambers & 4) != 0;
	s->link.rtt_us = 800;
	s->link.exchanges = 42;
	s->link.max_late_ms = 1.5;
}

static void setup(void)
{
	struct fascia_profile_error err;

	d = xcalloc(1, sizeof(*d));
	d->conf.tick_hz = 50;
	d->conf.publish_hz = 10;
	d->conf.max_session_s = 3600;
	d->ndev = 2;
	d->dev = xcalloc(2, sizeof(*d->dev));
	for (int i = 0; i < 2; i++) {
		struct fd_device_conf *c = &d->dev[i].conf;

		snprintf(c->name, sizeof(c->name), "%s", i ? "rtu1" : "sim");
		snprintf(c->host, sizeof(c->host), "127.0.0.1");
		c->unit = 1;
		c->limit_mmhg = 80;
		c->watchdog_ms = 500;
		c->port = 1502 + i;
		c->chambers = 4 + 4 * i;
		if (i == 1) {
			c->transport = TRANSPORT_RTU;
			snprintf(c->path, sizeof(c->path), "/dev/ttyUSB0");
		}
		d->dev[i].daemon = d;
		d->conf.dev[i] = *c;
	}
	d->conf.ndev = 2;
	fd_profiles_limits(&d->conf, &d->limits);
	for (int i = 0; i < NSEED; i++)
		if (fascia_profile_parse(seed_profiles[i],
					 strlen(seed_profiles[i]), &d->limits,
					 &seeds[i], &err) != 0)
			fatalx("seed profile %d: %s: %s", i, err.field,
			       err.message);
	/* sorted by name, as fd_profiles_add() keeps them */
	memcpy(d->profiles.p, seeds, sizeof(seeds));
	d->profiles.n = NSEED;
	snprintf(dir, sizeof(dir), "/tmp/fascia-fuzz-XXXXXX");
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	snprintf(d->profiles.dir, sizeof(d->profiles.dir), "%s", dir);
	atexit(remove_dir);
	fake_snapshot(&d->dev[0]);
}

/* Back to the seed profiles after a profile.put. */
static void reset_profiles(void)
{
	char path[1100];

	for (int i = 0; i < d->profiles.n; i++) {
		snprintf(path, sizeof(path), "%s/%s.json", dir,
			 d->profiles.p[i].name);
		unlink(path);
	}
	memcpy(d->profiles.p, seeds, sizeof(seeds));
	d->profiles.n = NSEED;
}

static void check_reply(json_t *r)
{
	json_t *ok, *err;
	char *text;

	CHECK(json_is_object(r));
	CHECK(json_integer_value(json_object_get(r, "v")) == 1);
	CHECK(json_object_get(r, "id") != NULL);
	ok = json_object_get(r, "ok");
	CHECK(json_is_boolean(ok));
	if (json_is_true(ok)) {
		CHECK(json_object_get(r, "result") != NULL);
	} else {
		err = json_object_get(r, "error");
		CHECK(json_is_object(err));
		CHECK(json_is_string(json_object_get(err, "code")));
		CHECK(json_is_string(json_object_get(err, "message")));
	}
	/* what fd_server_send() does, fatally when it cannot */
	text = json_dumps(r, JSON_COMPACT);
	CHECK(text != NULL);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fd_envelope env = {"client", 6, true};
	struct fd_outbox *news;
	int before;
	json_t *r;

	if (d == NULL)
		setup();
	if (size > FD_REQUEST_MAX)
		return 0;
	/* the device's answer, from the input's size: no format to keep */
	submit_rc = size % 7 == 3 ? -1 : 0;
	submitted = false;
	before = d->profiles.n;

	r = fd_server_handle(d, (const char *)data, size, &env);
	if (r == NULL && stored_done != NULL) {
		/* deferred: a profile.put waits for the store */
		fd_store_done done = stored_done;

		CHECK(!submitted);
		stored_done = NULL;
		done(size % 5 == 1 ? EIO : 0, stored_arg);
	} else if (r == NULL) {
		/* deferred: a command went to a device */
		struct fd_device *dev = NULL;

		CHECK(submitted);
		for (int i = 0; i < d->ndev; i++) {
			if (d->dev[i].pending.active) {
				CHECK(dev == NULL);
				dev = &d->dev[i];
				CHECK(dev->pending.token == last_cmd.token);
			}
		}
		CHECK(dev != NULL);
		CHECK(last_cmd.cmd > FD_CMD_NONE && last_cmd.cmd <= FD_CMD_ACK);
		if (last_cmd.cmd == FD_CMD_START)
			CHECK(fd_profiles_find(&d->profiles,
					       last_cmd.profile.name) != NULL);
		/* a stale verdict is ignored, the right one answers */
		news = xcalloc(1, sizeof(*news));
		news->have_snap = dev->box.have_snap;
		news->snap = dev->box.snap;
		news->have_verdict = true;
		news->verdict.cmd = last_cmd.cmd;
		news->verdict.token = last_cmd.token + 1;
		fd_commands_news(d, dev, news);
		CHECK(dev->pending.active);
		news->verdict.token = last_cmd.token;
		news->verdict.verdict = (enum fd_verdict)(size % 6);
		if (size & 1)
			snprintf(news->verdict.why, sizeof(news->verdict.why),
				 "refused \xc3");
		fd_commands_news(d, dev, news);
		CHECK(!dev->pending.active);
		free(news);
	} else {
		CHECK(!submitted);
		check_reply(r);
		json_decref(r);
	}
	for (int i = 0; i < d->ndev; i++)
		CHECK(!d->dev[i].pending.active);
	if (d->profiles.n != before ||
	    memcmp(d->profiles.p, seeds, sizeof(seeds)) != 0)
		reset_profiles();
	return 0;
}

/*
 * Profile model: every rejection names its field, the shipped profiles are
 * accepted and keep the interlocks' limits, parse -> to_json -> parse is
 * the identity, and the trajectory (soft start, ramps, holds, repeats,
 * release) is what docs/profiles.md says, sampled against its bounds.
 */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <fascia/profile.h>

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

/* The example of docs/profiles.md: a 25 s cycle that ends at 0, six times. */
static const char example[] =
	"{\"name\":\"gentle-wave\",\"description\":\"distal to proximal\","
	"\"chambers\":4,\"max_pressure_mmhg\":45,\"max_ramp_mmhg_s\":10,"
	"\"gradient\":\"distal-high\",\"repeat\":6,\"steps\":["
	"{\"set\":{\"1\":35},\"ramp_s\":4,\"hold_s\":2},"
	"{\"set\":{\"2\":30},\"ramp_s\":3,\"hold_s\":2},"
	"{\"set\":{\"all\":0},\"ramp_s\":4,\"hold_s\":10}]}";

/* A document with one step, for the rejections: HEAD then the step. */
#define HEAD                                                                   \
	"{\"name\":\"t\",\"chambers\":4,\"max_pressure_mmhg\":45,"             \
	"\"max_ramp_mmhg_s\":10,"
#define ONE_STEP "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,\"hold_s\":1}]"
/* What follows "name" in a valid document. */
#define REST                                                                   \
	",\"chambers\":4,\"max_pressure_mmhg\":45,\"max_ramp_mmhg_s\":"        \
	"10," ONE_STEP "}"
/* What follows "chambers" in a valid document. */
#define AFTER_CHAMBERS                                                         \
	",\"max_pressure_mmhg\":45,\"max_ramp_mmhg_s\":10," ONE_STEP "}"

static const char *const shipped[] = {
	"gentle-wave",
	"gradient-sequential",
	"pulse",
	"lymph-drain",
};

static int parse(const char *json, const struct fascia_profile_limits *lim,
		 struct fascia_profile *p, struct fascia_profile_error *e)
{
	return fascia_profile_parse(json, strlen(json), lim, p, e);
}

/* json is refused, naming field; returns the message for more checks. */
static const char *rejected_lim(const char *json,
				const struct fascia_profile_limits *lim,
				const char *field)
{
	static struct fascia_profile_error e;
	static struct fascia_profile p;

	errno = 0;
	if (parse(json, lim, &p, &e) == 0)
		fail_msg("accepted: %s", json);
	assert_int_equal(errno, EINVAL);
	if (strcmp(e.field, field) != 0)
		fail_msg("field \"%s\" (%s), wanted \"%s\", for %s", e.field,
			 e.message, field, json);
	assert_true(e.message[0] != '\0');
	return e.message;
}

static const char *rejected(const char *json, const char *field)
{
	return rejected_lim(json, NULL, field);
}

static void accepted(const char *json, struct fascia_profile *p)
{
	struct fascia_profile_error e;

	if (parse(json, NULL, p, &e) != 0)
		fail_msg("refused: %s: %s (%s)", e.field, e.message, json);
}

static void not_json_or_not_an_object_is_refused(void **state)
{
	(void)state;
	assert_non_null(strstr(rejected("{\"name\":", ""), "not JSON"));
	rejected("", "");
	rejected("[1,2]", "");
	rejected("\"gentle\"", "");
	rejected("{\"name\":\"a\",\"name\":\"b\"}", "");
}

static void missing_and_ill_typed_fields_are_refused(void **state)
{
	(void)state;
	rejected("{\"chambers\":4}", "name");
	rejected(HEAD "\"repeat\":2}", "steps");
	rejected("{\"name\":\"t\",\"max_pressure_mmhg\":45}", "chambers");
	rejected("{\"name\":7}", "name");
	rejected("{\"name\":\"t\",\"chambers\":\"4\"}", "chambers");
	assert_non_null(strstr(
		rejected("{\"name\":\"t\",\"chambers\":4.5}", "chambers"),
		"integer"));
	rejected("{\"name\":\"t\",\"chambers\":4,\"max_pressure_mmhg\":null}",
		 "max_pressure_mmhg");
	rejected(HEAD "\"repeat\":\"2\"," ONE_STEP "}", "repeat");
	rejected(HEAD "\"gradient\":1," ONE_STEP "}", "gradient");
	rejected(HEAD "\"steps\":{}}", "steps");
	rejected(HEAD "\"steps\":[7]}", "steps[0]");
	rejected(HEAD "\"steps\":[{\"ramp_s\":1,\"hold_s\":1}]}",
		 "steps[0].set");
	rejected(HEAD "\"steps\":[{\"set\":[20],\"ramp_s\":4,\"hold_s\":1}]}",
		 "steps[0].set");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"hold_s\":1}]}",
		 "steps[0].ramp_s");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,"
		      "\"hold_s\":\"1\"}]}",
		 "steps[0].hold_s");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":\"20\"},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.1");
}

static void unknown_fields_are_refused(void **state)
{
	(void)state;
	/* a typo is reported as itself, not as the field it misses */
	assert_string_equal(rejected("{\"name\":\"t\",\"max_presure_mmhg\":45}",
				     "max_presure_mmhg"),
			    "unknown field");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,"
		      "\"hodl_s\":1}]}",
		 "steps[0].hodl_s");
	rejected(HEAD "\"bad\\u0001key\":1," ONE_STEP "}", "bad?key");
}

static void bad_names_and_descriptions_are_refused(void **state)
{
	char doc[512];

	(void)state;
	rejected("{\"name\":\"Gentle Wave\"" REST, "name");
	rejected("{\"name\":\"\"" REST, "name");
	rejected("{\"name\":\"-wave\"" REST, "name");
	rejected("{\"name\":\"../wave\"" REST, "name");
	snprintf(doc, sizeof(doc), "{\"name\":\"%064d\"" REST, 0);
	rejected(doc, "name");
	snprintf(doc, sizeof(doc),
		 HEAD "\"description\":\"%0256d\"," ONE_STEP "}", 0);
	rejected(doc, "description");
	rejected(HEAD "\"description\":\"a\\u001b[2Jb\"," ONE_STEP "}",
		 "description");
}

static void chambers_out_of_range_or_beyond_the_device_are_refused(void **state)
{
	struct fascia_profile_limits lim;

	(void)state;
	rejected("{\"name\":\"t\",\"chambers\":0" AFTER_CHAMBERS, "chambers");
	rejected("{\"name\":\"t\",\"chambers\":17" AFTER_CHAMBERS, "chambers");
	rejected("{\"name\":\"t\",\"chambers\":99999999999" AFTER_CHAMBERS,
		 "chambers");
	fascia_profile_limits_default(&lim);
	lim.device_chambers = 2;
	assert_non_null(
		strstr(rejected_lim(HEAD ONE_STEP "}", &lim, "chambers"),
		       "device has 2"));
}

static void max_pressure_outside_its_bounds_is_refused(void **state)
{
	struct fascia_profile_limits lim;
	const char *tail = ",\"max_ramp_mmhg_s\":10," ONE_STEP "}";
	char doc[256];

	(void)state;
	snprintf(doc, sizeof(doc),
		 "{\"name\":\"t\",\"chambers\":4,"
		 "\"max_pressure_mmhg\":0%s",
		 tail);
	rejected(doc, "max_pressure_mmhg");
	snprintf(doc, sizeof(doc),
		 "{\"name\":\"t\",\"chambers\":4,"
		 "\"max_pressure_mmhg\":-5%s",
		 tail);
	rejected(doc, "max_pressure_mmhg");
	snprintf(doc, sizeof(doc),
		 "{\"name\":\"t\",\"chambers\":4,"
		 "\"max_pressure_mmhg\":90%s",
		 tail);
	assert_string_equal(rejected(doc, "max_pressure_mmhg"),
			    "90 mmHg is above the absolute ceiling 80 mmHg");
	/* the ceiling holds even when a device claims a higher limit */
	fascia_profile_limits_default(&lim);
	lim.device_limit_mmhg = 200;
	rejected_lim(doc, &lim, "max_pressure_mmhg");
	lim.device_limit_mmhg = 40;
	assert_non_null(strstr(
		rejected_lim(HEAD ONE_STEP "}", &lim, "max_pressure_mmhg"),
		"device limit 40"));
}

static void max_ramp_outside_its_bounds_is_refused(void **state)
{
	const char *head = "{\"name\":\"t\",\"chambers\":4,"
			   "\"max_pressure_mmhg\":45,";

	char doc[256];

	(void)state;
	snprintf(doc, sizeof(doc), "%s\"max_ramp_mmhg_s\":0," ONE_STEP "}",
		 head);
	rejected(doc, "max_ramp_mmhg_s");
	snprintf(doc, sizeof(doc), "%s\"max_ramp_mmhg_s\":10.5," ONE_STEP "}",
		 head);
	rejected(doc, "max_ramp_mmhg_s");
}

static void unknown_gradient_and_repeat_out_of_range_are_refused(void **state)
{
	(void)state;
	rejected(HEAD "\"gradient\":\"upward\"," ONE_STEP "}", "gradient");
	rejected(HEAD "\"repeat\":0," ONE_STEP "}", "repeat");
	rejected(HEAD "\"repeat\":1001," ONE_STEP "}", "repeat");
}

static void set_keys_other_than_all_or_a_chamber_are_refused(void **state)
{
	(void)state;
	assert_string_equal(
		rejected(HEAD "\"steps\":[{\"set\":{\"5\":20},\"ramp_s\":4,"
			      "\"hold_s\":1}]}",
			 "steps[0].set.5"),
		"chamber 5, but the profile has 4 chambers");
	rejected(HEAD "\"steps\":[{\"set\":{\"0\":20},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.0");
	rejected(HEAD "\"steps\":[{\"set\":{\"01\":20},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.01");
	rejected(HEAD "\"steps\":[{\"set\":{\"17\":20},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.17");
	rejected(HEAD "\"steps\":[{\"set\":{\"ALL\":20},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.ALL");
	rejected(HEAD "\"steps\":[{\"set\":{},\"ramp_s\":4,\"hold_s\":1}]}",
		 "steps[0].set");
}

static void pressures_outside_zero_to_max_are_refused(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_error e;
	char text[512];
	const char *doc = HEAD
		"\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,\"hold_s\":1},"
		"{\"set\":{\"2\":20},\"ramp_s\":4,\"hold_s\":1},"
		"{\"set\":{\"3\":95},\"ramp_s\":10,\"hold_s\":1}]}";

	(void)state;
	assert_int_equal(parse(doc, NULL, &p, &e), -1);
	assert_string_equal(fascia_profile_error_format(&e, text, sizeof(text)),
			    "steps[2].set.3: 95 mmHg is above "
			    "max_pressure_mmhg 45");
	rejected(HEAD "\"steps\":[{\"set\":{\"all\":46},\"ramp_s\":5,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.all");
	rejected(HEAD "\"steps\":[{\"set\":{\"2\":-1},\"ramp_s\":4,"
		      "\"hold_s\":1}]}",
		 "steps[0].set.2");
}

static void negative_or_endless_times_are_refused(void **state)
{
	(void)state;
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":-1,"
		      "\"hold_s\":1}]}",
		 "steps[0].ramp_s");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,"
		      "\"hold_s\":-0.5}]}",
		 "steps[0].hold_s");
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,"
		      "\"hold_s\":1e300}]}",
		 "steps[0].hold_s");
}

static void a_ramp_steeper_than_max_ramp_is_refused(void **state)
{
	struct fascia_profile p;

	(void)state;
	/* 20 mmHg in 1.9 s from the soft start at 0 */
	assert_non_null(strstr(
		rejected(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":1.9,"
			      "\"hold_s\":1}]}",
			 "steps[0].set.1"),
		"steeper than max_ramp_mmhg_s 10"));
	/* exactly at the bound is fine */
	accepted(HEAD "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":2,"
		      "\"hold_s\":1}]}",
		 &p);
	/* the previous target carries over from step to step */
	rejected(HEAD
		 "\"steps\":[{\"set\":{\"1\":40},\"ramp_s\":4,\"hold_s\":1},"
		 "{\"set\":{\"2\":5},\"ramp_s\":1,\"hold_s\":1},"
		 "{\"set\":{\"1\":0},\"ramp_s\":3,\"hold_s\":1}]}",
		 "steps[2].set.1");
	/* no ramp with a change is infinitely steep */
	assert_non_null(strstr(
		rejected(HEAD "\"steps\":[{\"set\":{\"1\":0.5},\"ramp_s\":0,"
			      "\"hold_s\":1}]}",
			 "steps[0].set.1"),
		"instant"));
	/* but no ramp without a change is fine */
	accepted(HEAD
		 "\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":2,\"hold_s\":1},"
		 "{\"set\":{\"1\":20},\"ramp_s\":0,\"hold_s\":1}]}",
		 &p);
}

static void a_ramp_too_steep_only_on_repeat_is_refused(void **state)
{
	const char *once =
		HEAD "\"repeat\":1,\"steps\":[{\"set\":{\"1\":10},\"ramp_s\":1,"
		     "\"hold_s\":0},{\"set\":{\"1\":40},\"ramp_s\":3,"
		     "\"hold_s\":0}]}";
	const char *twice =
		HEAD "\"repeat\":2,\"steps\":[{\"set\":{\"1\":10},\"ramp_s\":1,"
		     "\"hold_s\":0},{\"set\":{\"1\":40},\"ramp_s\":3,"
		     "\"hold_s\":0}]}";
	struct fascia_profile p;

	(void)state;
	accepted(once, &p);
	/* cycle 2 starts at 40, so 40 -> 10 in 1 s */
	assert_non_null(strstr(rejected(twice, "steps[0].set.1"), "cycle 2"));
}

static void a_reversed_gradient_is_refused(void **state)
{
	struct fascia_profile p;
	const char *gh = HEAD "\"gradient\":\"distal-high\",";
	char doc[512];

	(void)state;
	/* proximal above distal at the end of the ramp */
	snprintf(doc, sizeof(doc),
		 "%s\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":1},"
		 "{\"set\":{\"2\":35},\"ramp_s\":4,\"hold_s\":1}]}",
		 gh);
	assert_non_null(
		strstr(rejected(doc, "steps[1].set.2"), "end of the ramp"));
	/* the same with gradient none is a valid profile */
	accepted(HEAD
		 "\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":1},"
		 "{\"set\":{\"2\":35},\"ramp_s\":4,\"hold_s\":1}]}",
		 &p);
	/* a deflated distal chamber does not count */
	snprintf(doc, sizeof(doc),
		 "%s\"steps\":[{\"set\":{\"3\":30},\"ramp_s\":3,\"hold_s\":1},"
		 "{\"set\":{\"3\":0},\"ramp_s\":3,\"hold_s\":1}]}",
		 gh);
	accepted(doc, &p);
	/* a wave that lets chamber 1 down while 2 is up: reversed during the
	 * ramp although fine at both ends */
	snprintf(doc, sizeof(doc),
		 "%s\"steps\":[{\"set\":{\"1\":30},\"ramp_s\":3,\"hold_s\":1},"
		 "{\"set\":{\"2\":30},\"ramp_s\":3,\"hold_s\":1},"
		 "{\"set\":{\"1\":0},\"ramp_s\":3,\"hold_s\":1}]}",
		 gh);
	assert_non_null(
		strstr(rejected(doc, "steps[2].set.1"), "during the ramp"));
	/* "all" names the key the user wrote */
	snprintf(doc, sizeof(doc),
		 "%s\"steps\":[{\"set\":{\"all\":20,\"4\":25},\"ramp_s\":3,"
		 "\"hold_s\":1}]}",
		 gh);
	rejected(doc, "steps[0].set.4");
	snprintf(doc, sizeof(doc),
		 "%s\"steps\":[{\"set\":{\"all\":20,\"1\":15},\"ramp_s\":3,"
		 "\"hold_s\":1}]}",
		 gh);
	rejected(doc, "steps[0].set.all");
}

static void no_steps_or_too_many_are_refused(void **state)
{
	char *doc;
	size_t n = 0, size = 65 * 64 + 256;
	int i;

	(void)state;
	rejected(HEAD "\"steps\":[]}", "steps");
	doc = malloc(size);
	assert_non_null(doc);
	n += (size_t)snprintf(doc + n, size - n, HEAD "\"steps\":[");
	for (i = 0; i < 65; i++)
		n += (size_t)snprintf(doc + n, size - n,
				      "%s{\"set\":{\"1\":%d},\"ramp_s\":1,"
				      "\"hold_s\":0}",
				      i ? "," : "", i % 2 ? 5 : 0);
	snprintf(doc + n, size - n, "]}");
	rejected(doc, "steps");
	free(doc);
	/* a cycle of no time at all */
	rejected(HEAD "\"steps\":[{\"set\":{\"1\":0},\"ramp_s\":0,"
		      "\"hold_s\":0}]}",
		 "steps");
}

static void a_session_longer_than_the_maximum_is_refused(void **state)
{
	struct fascia_profile_limits lim;
	struct fascia_profile p;
	struct fascia_profile_error e;
	/* 20 mmHg in 4 s, hold 54 s: 58 s, then a 4 s release at 5 mmHg/s */
	const char *doc = HEAD
		"\"steps\":[{\"set\":{\"1\":20},\"ramp_s\":4,\"hold_s\":54}]}";

	(void)state;
	fascia_profile_limits_default(&lim);
	lim.max_session_s = 62;
	assert_int_equal(parse(doc, &lim, &p, &e), 0);
	NEAR(fascia_profile_duration_s(&p), 62);
	/* the release counts */
	lim.max_session_s = 60;
	assert_non_null(
		strstr(rejected_lim(doc, &lim, "steps"), "4 s release"));
	rejected(HEAD "\"repeat\":1000,\"steps\":[{\"set\":{\"1\":20},"
		      "\"ramp_s\":4,\"hold_s\":4}]}",
		 "repeat");
}

static void bad_limits_are_refused(void **state)
{
	struct fascia_profile_limits lim;

	(void)state;
	fascia_profile_limits_default(&lim);
	lim.device_chambers = 0;
	rejected_lim(HEAD ONE_STEP "}", &lim, "");
	fascia_profile_limits_default(&lim);
	lim.max_session_s = NAN;
	rejected_lim(HEAD ONE_STEP "}", &lim, "");
}

static void a_profile_built_in_memory_is_held_to_the_same_rules(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_error e;

	(void)state;
	accepted(example, &p);
	assert_int_equal(fascia_profile_validate(&p, NULL, &e), 0);
	p.steps[0].target_mmhg[0] = NAN;
	assert_int_equal(fascia_profile_validate(&p, NULL, &e), -1);
	assert_string_equal(e.field, "steps[0].set.1");
	accepted(example, &p);
	p.steps[1].ramp_s = INFINITY;
	assert_int_equal(fascia_profile_validate(&p, NULL, &e), -1);
	assert_string_equal(e.field, "steps[1].ramp_s");
	accepted(example, &p);
	memset(p.name, 'a', sizeof(p.name));
	assert_int_equal(fascia_profile_validate(&p, NULL, &e), -1);
	assert_string_equal(e.field, "name");
	accepted(example, &p);
	p.steps[2].via_all = 0x1; /* "all" that does not cover the rest */
	p.steps[2].set_mask = 0x1;
	assert_int_equal(fascia_profile_validate(&p, NULL, &e), -1);
	assert_string_equal(e.field, "steps[2].set.all");
}

static void files_are_named_in_errors(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_error e;
	char path[] = "/tmp/fascia-profile-XXXXXX", text[768];
	const char bad[] = HEAD "\"steps\":[{\"set\":{\"1\":50},\"ramp_s\":5,"
				"\"hold_s\":1}]}";
	int fd;

	(void)state;
	errno = 0;
	assert_int_equal(
		fascia_profile_load_file("/nonexistent/x.json", NULL, &p, &e),
		-1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(e.file, "/nonexistent/x.json");
	assert_string_equal(e.field, "");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bad, sizeof(bad) - 1), sizeof(bad) - 1);
	close(fd);
	assert_int_equal(fascia_profile_load_file(path, NULL, &p, &e), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(e.file, path);
	assert_string_equal(e.field, "steps[0].set.1");
	fascia_profile_error_format(&e, text, sizeof(text));
	assert_non_null(strstr(text, path));
	assert_non_null(strstr(text, ": steps[0].set.1: 50 mmHg is above"));
	unlink(path);
}

static void load_shipped(const char *name, struct fascia_profile *p)
{
	struct fascia_profile_limits lim;
	struct fascia_profile_error e;
	char path[128], text[768];

	/* the default simulated device: 8 chambers, limit 80 mmHg */
	fascia_profile_limits_default(&lim);
	lim.device_chambers = 8;
	lim.device_limit_mmhg = 80;
	snprintf(path, sizeof(path), "etc/profiles/%s.json", name);
	if (fascia_profile_load_file(path, &lim, p, &e) != 0)
		fail_msg("%s",
			 fascia_profile_error_format(&e, text, sizeof(text)));
	assert_string_equal(p->name, name);
}

/*
 * Sample p every dt and check the bounds at every sample: targets within
 * 0..max_pressure, slope within max_ramp, the gradient where asked for,
 * and (hold_limit_s > 0) no chamber above 30 mmHg for hold_limit_s.
 */
static void sample_bounds(const struct fascia_profile *p, double dt,
			  double hold_limit_s)
{
	double prev[FASCIA_MAX_CHAMBERS], cur[FASCIA_MAX_CHAMBERS];
	double above[FASCIA_MAX_CHAMBERS] = {0};
	double dur = fascia_profile_duration_s(p), t, last_elapsed = -1;
	struct fascia_profile_pos pos;
	int c, d;

	fascia_profile_targets(p, 0, prev, &pos);
	for (t = dt; t <= dur + 1; t += dt) {
		fascia_profile_targets(p, t, cur, &pos);
		assert_true(pos.elapsed_s >= last_elapsed);
		last_elapsed = pos.elapsed_s;
		NEAR(pos.elapsed_s + pos.remaining_s, dur);
		for (c = 0; c < FASCIA_MAX_CHAMBERS; c++) {
			assert_true(cur[c] >= 0);
			assert_true(cur[c] <= p->max_pressure_mmhg);
			if (c >= p->chambers)
				assert_true(cur[c] == 0);
			if (fabs(cur[c] - prev[c]) / dt >
			    p->max_ramp_mmhg_s + 1e-6)
				fail_msg("%s: chamber %d %g -> %g at t=%g",
					 p->name, c + 1, prev[c], cur[c], t);
			above[c] = cur[c] > 30 ? above[c] + dt : 0;
			if (hold_limit_s > 0 && above[c] >= hold_limit_s)
				fail_msg("%s: chamber %d above 30 mmHg for "
					 "%g s at t=%g",
					 p->name, c + 1, above[c], t);
			for (d = 0;
			     p->gradient == FASCIA_GRADIENT_DISTAL_HIGH &&
			     d < c;
			     d++)
				if (cur[c] > 0 && cur[d] > 0 &&
				    cur[c] > cur[d] + 1e-6)
					fail_msg("%s: reversed at t=%g",
						 p->name, t);
		}
		memcpy(prev, cur, sizeof(cur));
	}
	assert_true(pos.done);
	for (c = 0; c < FASCIA_MAX_CHAMBERS; c++)
		assert_true(cur[c] == 0);
}

static void shipped_profiles_are_accepted_and_keep_the_interlocks(void **state)
{
	struct fascia_profile p;
	glob_t g;
	size_t i;
	double dur;

	(void)state;
	for (i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
		load_shipped(shipped[i], &p);
		dur = fascia_profile_duration_s(&p);
		assert_true(p.chambers == 4 || p.chambers == 8);
		assert_true(p.max_pressure_mmhg <= 50);
		if (strcmp(p.name, "gentle-wave") == 0) {
			assert_int_equal(p.chambers, 4);
			assert_true(dur >= 180 && dur <= 360);
		} else {
			assert_true(dur >= 300 && dur <= 1800);
		}
		/* the hold_time interlock: 30 mmHg for 120 s */
		sample_bounds(&p, 0.02, 120);
	}
	/* and every file there, not only the ones this test knows */
	assert_int_equal(glob("etc/profiles/*.json", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 4);
	for (i = 0; i < g.gl_pathc; i++) {
		struct fascia_profile_error e;
		char text[768];

		if (fascia_profile_load_file(g.gl_pathv[i], NULL, &p, &e) != 0)
			fail_msg("%s", fascia_profile_error_format(
					       &e, text, sizeof(text)));
	}
	globfree(&g);
}

static void round_trip(const struct fascia_profile *p)
{
	struct fascia_profile back;
	struct fascia_profile_error e;
	char *json, *again;

	json = fascia_profile_to_json(p);
	assert_non_null(json);
	if (fascia_profile_parse(json, strlen(json), NULL, &back, &e) != 0)
		fail_msg("%s: %s in %s", e.field, e.message, json);
	assert_true(fascia_profile_equal(p, &back));
	again = fascia_profile_to_json(&back);
	assert_string_equal(json, again);
	free(json);
	free(again);
}

static void parse_to_json_parse_round_trips(void **state)
{
	struct fascia_profile p, q;
	size_t i;

	(void)state;
	accepted(example, &p);
	round_trip(&p);
	accepted(HEAD "\"description\":\"caf\\u00e9 \\\"quoted\\\"\","
		      "\"gradient\":\"distal-high\",\"repeat\":3,\"steps\":["
		      "{\"set\":{\"4\":12.5,\"all\":20.1},\"ramp_s\":2.01,"
		      "\"hold_s\":0.1},"
		      "{\"set\":{\"all\":0},\"ramp_s\":4,\"hold_s\":0}]}",
		 &p);
	assert_int_equal(p.steps[0].via_all, 0x7);
	NEAR(p.steps[0].target_mmhg[3], 12.5);
	assert_true(isnan(p.steps[1].target_mmhg[5]));
	round_trip(&p);
	for (i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
		load_shipped(shipped[i], &p);
		round_trip(&p);
	}
	/* equal means equal */
	accepted(example, &p);
	q = p;
	assert_true(fascia_profile_equal(&p, &q));
	q.steps[1].hold_s += 0.5;
	assert_false(fascia_profile_equal(&p, &q));
}

static void at(const struct fascia_profile *p, double t, double *out,
	       struct fascia_profile_pos *pos)
{
	fascia_profile_targets(p, t, out, pos);
}

static void trajectory_ramps_holds_and_repeats(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_pos pos;
	double o[FASCIA_MAX_CHAMBERS];

	(void)state;
	accepted(example, &p);
	NEAR(fascia_profile_cycle_s(&p), 25);
	NEAR(fascia_profile_release_s(&p), 0);
	NEAR(fascia_profile_duration_s(&p), 150);

	at(&p, 0, o, &pos); /* the soft start: everything from 0 */
	NEAR(o[0], 0);
	assert_int_equal(pos.step, 1);
	assert_int_equal(pos.cycle, 1);
	assert_int_equal(pos.phase, FASCIA_PHASE_RAMP);
	NEAR(pos.remaining_s, 150);
	at(&p, -3, o, &pos);
	NEAR(pos.elapsed_s, 0);
	at(&p, 2, o, &pos); /* ramp midpoint */
	NEAR(o[0], 17.5);
	NEAR(o[1], 0);
	at(&p, 5, o, &pos); /* hold */
	NEAR(o[0], 35);
	assert_int_equal(pos.phase, FASCIA_PHASE_HOLD);
	NEAR(pos.step_elapsed_s, 5);
	at(&p, 6, o, &pos); /* step boundary */
	assert_int_equal(pos.step, 2);
	NEAR(pos.step_elapsed_s, 0);
	NEAR(o[0], 35);
	NEAR(o[1], 0);
	at(&p, 7.5, o, &pos); /* chamber 1 holds, 2 ramps */
	NEAR(o[0], 35);
	NEAR(o[1], 15);
	at(&p, 13, o, &pos); /* "all" to 0, halfway */
	assert_int_equal(pos.step, 3);
	NEAR(o[0], 17.5);
	NEAR(o[1], 15);
	NEAR(o[2], 0);
	at(&p, 20, o, &pos);
	NEAR(o[0], 0);
	assert_int_equal(pos.phase, FASCIA_PHASE_HOLD);
	at(&p, 27, o, &pos); /* second cycle, ramp midpoint */
	assert_int_equal(pos.cycle, 2);
	assert_int_equal(pos.step, 1);
	NEAR(o[0], 17.5);
	at(&p, 149.5, o, &pos);
	assert_int_equal(pos.cycle, 6);
	assert_int_equal(pos.step, 3);
	assert_false(pos.done);
	at(&p, 150, o, &pos);
	assert_true(pos.done);
	assert_int_equal(pos.phase, FASCIA_PHASE_DONE);
	NEAR(pos.remaining_s, 0);
	at(&p, NAN, o, &pos);
	NEAR(pos.elapsed_s, 0);
	sample_bounds(&p, 0.01, 0);
}

static void targets_carry_across_repeats_and_release_gently(void **state)
{
	struct fascia_profile p;
	struct fascia_profile_pos pos;
	double o[FASCIA_MAX_CHAMBERS];

	(void)state;
	/* a cycle that ends at 30 mmHg: cycle 2 ramps down from there */
	accepted(HEAD "\"repeat\":2,\"steps\":["
		      "{\"set\":{\"1\":20,\"2\":10},\"ramp_s\":4,\"hold_s\":1},"
		      "{\"set\":{\"1\":30},\"ramp_s\":2,\"hold_s\":1}]}",
		 &p);
	/* release: 30 mmHg at min(10, 5) = 5 mmHg/s is 6 s */
	NEAR(fascia_profile_release_rate(&p), 5);
	NEAR(fascia_profile_release_s(&p), 6);
	NEAR(fascia_profile_duration_s(&p), 2 * 8 + 6);
	at(&p, 8 + 2, o, &pos);
	assert_int_equal(pos.cycle, 2);
	NEAR(o[0], 25);      /* 30 -> 20, halfway */
	NEAR(o[1], 10);      /* 10 -> 10 */
	at(&p, 16, o, &pos); /* release starts */
	assert_int_equal(pos.phase, FASCIA_PHASE_RELEASE);
	assert_int_equal(pos.step, 2);
	assert_int_equal(pos.cycle, 2);
	NEAR(o[0], 30);
	NEAR(o[1], 10);
	at(&p, 17, o, &pos);
	NEAR(o[0], 25);
	NEAR(o[1], 5);
	at(&p, 19, o, &pos); /* chamber 2 is down, 1 still going */
	NEAR(o[0], 15);
	NEAR(o[1], 0);
	NEAR(pos.step_elapsed_s, 3);
	NEAR(pos.remaining_s, 3);
	at(&p, 22, o, &pos); /* release end */
	assert_true(pos.done);
	NEAR(o[0], 0);
	sample_bounds(&p, 0.01, 0);

	/* a profile slower than 5 mmHg/s releases at its own rate */
	accepted("{\"name\":\"t\",\"chambers\":1,\"max_pressure_mmhg\":45,"
		 "\"max_ramp_mmhg_s\":2,\"steps\":[{\"set\":{\"1\":20},"
		 "\"ramp_s\":10,\"hold_s\":0}]}",
		 &p);
	NEAR(fascia_profile_release_rate(&p), 2);
	NEAR(fascia_profile_duration_s(&p), 20);
	at(&p, 15, o, &pos);
	NEAR(o[0], 10);
	sample_bounds(&p, 0.01, 0);
}

static void ramp_toward_limits_the_rate(void **state)
{
	(void)state;
	NEAR(fascia_ramp_toward(10, 40, 10, 0.02), 10.2);
	NEAR(fascia_ramp_toward(40, 10, 10, 0.02), 39.8);
	NEAR(fascia_ramp_toward(39.9, 40, 10, 0.02), 40);
	NEAR(fascia_ramp_toward(10.1, 10, 10, 0.02), 10);
	NEAR(fascia_ramp_toward(30, 30, 10, 0.02), 30);
	NEAR(fascia_ramp_toward(30, 0, 5, 10), 0); /* never past the target */
	NEAR(fascia_ramp_toward(NAN, 30, 10, 0.02), 0);
	NEAR(fascia_ramp_toward(30, INFINITY, 10, 0.02), 0);
	NEAR(fascia_ramp_toward(30, 0, 10, 0), 30);
	NEAR(fascia_ramp_toward(30, 0, 10, -1), 30);
	NEAR(fascia_ramp_toward(30, 0, NAN, 0.02), 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(not_json_or_not_an_object_is_refused),
		cmocka_unit_test(missing_and_ill_typed_fields_are_refused),
		cmocka_unit_test(unknown_fields_are_refused),
		cmocka_unit_test(bad_names_and_descriptions_are_refused),
		cmocka_unit_test(
			chambers_out_of_range_or_beyond_the_device_are_refused),
		cmocka_unit_test(max_pressure_outside_its_bounds_is_refused),
		cmocka_unit_test(max_ramp_outside_its_bounds_is_refused),
		cmocka_unit_test(
			unknown_gradient_and_repeat_out_of_range_are_refused),
		cmocka_unit_test(
			set_keys_other_than_all_or_a_chamber_are_refused),
		cmocka_unit_test(pressures_outside_zero_to_max_are_refused),
		cmocka_unit_test(negative_or_endless_times_are_refused),
		cmocka_unit_test(a_ramp_steeper_than_max_ramp_is_refused),
		cmocka_unit_test(a_ramp_too_steep_only_on_repeat_is_refused),
		cmocka_unit_test(a_reversed_gradient_is_refused),
		cmocka_unit_test(no_steps_or_too_many_are_refused),
		cmocka_unit_test(a_session_longer_than_the_maximum_is_refused),
		cmocka_unit_test(bad_limits_are_refused),
		cmocka_unit_test(
			a_profile_built_in_memory_is_held_to_the_same_rules),
		cmocka_unit_test(files_are_named_in_errors),
		cmocka_unit_test(
			shipped_profiles_are_accepted_and_keep_the_interlocks),
		cmocka_unit_test(parse_to_json_parse_round_trips),
		cmocka_unit_test(trajectory_ramps_holds_and_repeats),
		cmocka_unit_test(
			targets_carry_across_repeats_and_release_gently),
		cmocka_unit_test(ramp_toward_limits_the_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

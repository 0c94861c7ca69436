/*
 * Profiles as JSON: a document into the fixed-size struct (parse, load a
 * file) and back (to_json), and the error text.
 *
 * Parsing only checks what the struct needs to hold a value (types, string
 * lengths, chamber numbers up to 16, unknown fields); every rule about
 * values lives in fascia_profile_validate() (profile_check.c), so a
 * profile built in memory (a fuzzer, a test) is held to exactly the same
 * rules as one read from a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <fascia/profile.h>

static const char *const top_fields[] = {
	"name",
	"description",
	"chambers",
	"max_pressure_mmhg",
	"max_ramp_mmhg_s",
	"gradient",
	"repeat",
	"steps",
	NULL,
};
static const char *const step_fields[] = {"set", "ramp_s", "hold_s", NULL};

void fascia_profile_limits_default(struct fascia_profile_limits *lim)
{
	lim->device_chambers = FASCIA_MAX_CHAMBERS;
	lim->device_limit_mmhg = FASCIA_CEILING_MMHG;
	lim->max_session_s = FASCIA_DEFAULT_SESSION_S;
}

/* A key from the document, made safe to print: printable ASCII only, at
 * most 32 characters. */
static void safe_key(char *buf, size_t len, const char *key)
{
	size_t i, n = 0;

	for (i = 0; key[i] != '\0' && n + 4 < len; i++) {
		if (i == 32) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
	}
	buf[n] = '\0';
}

static bool in_list(const char *key, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* Refuse any member of obj not in list; prefix is "" or "steps[2].". */
static int check_unknown(json_t *obj, const char *const *list,
			 const char *prefix, struct fascia_profile_error *err)
{
	const char *key;
	json_t *v;
	char k[40], path[96];

	json_object_foreach(obj, key, v)
	{
		if (in_list(key, list))
			continue;
		safe_key(k, sizeof(k), key);
		snprintf(path, sizeof(path), "%s%s", prefix, k);
		return fascia_profile_fail(err, path, "unknown field");
	}
	return 0;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* Member key of obj, which must be present; path names it in errors. */
static json_t *member(json_t *obj, const char *key, const char *path,
		      struct fascia_profile_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		fascia_profile_fail(err, path, "missing");
	return v;
}

static int get_number(json_t *v, const char *path, double *out,
		      struct fascia_profile_error *err)
{
	if (!json_is_number(v))
		return fascia_profile_fail(err, path,
					   "must be a number, not %s",
					   json_type_name(v));
	*out = json_number_value(v);
	return 0;
}

/* An integer field, clamped into int for the struct (the range checks that
 * follow then report it as out of range). */
static int get_int(json_t *v, const char *path, int *out,
		   struct fascia_profile_error *err)
{
	json_int_t i;

	if (!json_is_integer(v))
		return fascia_profile_fail(
			err, path, "must be an integer, not %s",
			json_is_real(v) ? "a fraction" : json_type_name(v));
	i = json_integer_value(v);
	*out = i > INT_MAX ? INT_MAX : i < INT_MIN ? INT_MIN : (int)i;
	return 0;
}

static int get_string(json_t *v, const char *path, char *buf, size_t size,
		      struct fascia_profile_error *err)
{
	if (!json_is_string(v))
		return fascia_profile_fail(err, path,
					   "must be a string, not %s",
					   json_type_name(v));
	if (json_string_length(v) >= size)
		return fascia_profile_fail(err, path, "longer than %zu bytes",
					   size - 1);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fascia_profile_fail(err, path,
					   "contains a NUL character");
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* "all", or a chamber number 1..16 without sign or leading zero; returns
 * 0 for "all", the chamber number, or -1. */
static int set_key(const char *key)
{
	int c;

	if (strcmp(key, "all") == 0)
		return 0;
	if (key[0] < '1' || key[0] > '9' || strlen(key) > 2)
		return -1;
	if (key[1] != '\0' && (key[1] < '0' || key[1] > '9'))
		return -1;
	c = atoi(key);
	return c <= FASCIA_MAX_CHAMBERS ? c : -1;
}

static int parse_set(json_t *set, int chambers, int i,
		     struct fascia_profile_step *s,
		     struct fascia_profile_error *err)
{
	const char *key;
	json_t *v;
	char path[96], k[40];
	double all = NAN, mmhg = 0;
	uint16_t named = 0;
	int c, n;

	snprintf(path, sizeof(path), "steps[%d].set", i);
	if (!json_is_object(set))
		return fascia_profile_fail(err, path,
					   "must be an object, not %s",
					   json_type_name(set));
	json_object_foreach(set, key, v)
	{
		safe_key(k, sizeof(k), key);
		snprintf(path, sizeof(path), "steps[%d].set.%s", i, k);
		c = set_key(key);
		if (c < 0)
			return fascia_profile_fail(
				err, path,
				"not \"all\" or a chamber number 1..%d",
				chambers);
		if (get_number(v, path, &mmhg, err) < 0)
			return -1;
		if (c == 0) {
			all = mmhg;
			continue;
		}
		named |= (uint16_t)(1u << (c - 1));
		s->target_mmhg[c - 1] = mmhg;
	}
	/* "all" is the base whatever the member order; numbers override. */
	n = chambers < 0 ? 0 : chambers > 16 ? 16 : chambers;
	if (!isnan(all))
		for (c = 0; c < n; c++)
			if (!(named & (1u << c))) {
				s->target_mmhg[c] = all;
				s->via_all |= (uint16_t)(1u << c);
			}
	s->set_mask = named | s->via_all;
	return 0;
}

static int parse_step(json_t *js, int chambers, int i,
		      struct fascia_profile_step *s,
		      struct fascia_profile_error *err)
{
	char prefix[32], path[64];
	json_t *v;
	int c;

	snprintf(prefix, sizeof(prefix), "steps[%d]", i);
	if (!json_is_object(js))
		return fascia_profile_fail(err, prefix,
					   "must be an object, not %s",
					   json_type_name(js));
	snprintf(prefix, sizeof(prefix), "steps[%d].", i);
	if (check_unknown(js, step_fields, prefix, err) < 0)
		return -1;
	for (c = 0; c < FASCIA_MAX_CHAMBERS; c++)
		s->target_mmhg[c] = NAN;
	snprintf(path, sizeof(path), "steps[%d].set", i);
	if ((v = member(js, "set", path, err)) == NULL ||
	    parse_set(v, chambers, i, s, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "steps[%d].ramp_s", i);
	if ((v = member(js, "ramp_s", path, err)) == NULL ||
	    get_number(v, path, &s->ramp_s, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "steps[%d].hold_s", i);
	if ((v = member(js, "hold_s", path, err)) == NULL ||
	    get_number(v, path, &s->hold_s, err) < 0)
		return -1;
	return 0;
}

static int parse_gradient(json_t *v, struct fascia_profile *p,
			  struct fascia_profile_error *err)
{
	char buf[16];

	p->gradient = FASCIA_GRADIENT_NONE;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return fascia_profile_fail(err, "gradient",
					   "must be a string, not %s",
					   json_type_name(v));
	if (json_string_length(v) < sizeof(buf)) {
		memcpy(buf, json_string_value(v), json_string_length(v) + 1);
		if (strcmp(buf, "none") == 0)
			return 0;
		if (strcmp(buf, "distal-high") == 0) {
			p->gradient = FASCIA_GRADIENT_DISTAL_HIGH;
			return 0;
		}
	}
	return fascia_profile_fail(err, "gradient",
				   "must be \"none\" or \"distal-high\"");
}

static int parse_steps(json_t *v, struct fascia_profile *p,
		       struct fascia_profile_error *err)
{
	size_t i;

	if (!json_is_array(v))
		return fascia_profile_fail(err, "steps",
					   "must be an array, not %s",
					   json_type_name(v));
	if (json_array_size(v) == 0)
		return fascia_profile_fail(err, "steps", "no steps");
	if (json_array_size(v) > FASCIA_PROFILE_MAX_STEPS)
		return fascia_profile_fail(
			err, "steps", "%zu steps, more than %d",
			json_array_size(v), FASCIA_PROFILE_MAX_STEPS);
	p->nsteps = (int)json_array_size(v);
	for (i = 0; i < json_array_size(v); i++)
		if (parse_step(json_array_get(v, i), p->chambers, (int)i,
			       &p->steps[i], err) < 0)
			return -1;
	return 0;
}

/* The document's members into p, types and storage bounds only. */
static int parse_object(json_t *root, struct fascia_profile *p,
			struct fascia_profile_error *err)
{
	json_t *v;

	if (!json_is_object(root))
		return fascia_profile_fail(
			err, "", "a profile must be a JSON object, not %s",
			json_type_name(root));
	if (check_unknown(root, top_fields, "", err) < 0)
		return -1;
	if ((v = member(root, "name", "name", err)) == NULL ||
	    get_string(v, "name", p->name, sizeof(p->name), err) < 0)
		return -1;
	v = json_object_get(root, "description");
	if (v != NULL && get_string(v, "description", p->description,
				    sizeof(p->description), err) < 0)
		return -1;
	if ((v = member(root, "chambers", "chambers", err)) == NULL ||
	    get_int(v, "chambers", &p->chambers, err) < 0)
		return -1;
	if ((v = member(root, "max_pressure_mmhg", "max_pressure_mmhg", err)) ==
		    NULL ||
	    get_number(v, "max_pressure_mmhg", &p->max_pressure_mmhg, err) < 0)
		return -1;
	if ((v = member(root, "max_ramp_mmhg_s", "max_ramp_mmhg_s", err)) ==
		    NULL ||
	    get_number(v, "max_ramp_mmhg_s", &p->max_ramp_mmhg_s, err) < 0)
		return -1;
	if (parse_gradient(json_object_get(root, "gradient"), p, err) < 0)
		return -1;
	p->repeat = 1;
	v = json_object_get(root, "repeat");
	if (v != NULL && get_int(v, "repeat", &p->repeat, err) < 0)
		return -1;
	if ((v = member(root, "steps", "steps", err)) == NULL ||
	    parse_steps(v, p, err) < 0)
		return -1;
	return 0;
}

int fascia_profile_parse(const char *json, size_t len,
			 const struct fascia_profile_limits *lim,
			 struct fascia_profile *out,
			 struct fascia_profile_error *err)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	memset(out, 0, sizeof(*out));
	if (json == NULL)
		return fascia_profile_fail(err, "", "no document");
	if (len > FASCIA_PROFILE_JSON_MAX)
		return fascia_profile_fail(
			err, "", "document of %zu bytes, more than %d", len,
			FASCIA_PROFILE_JSON_MAX);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return fascia_profile_fail(err, "",
					   "not JSON: %s at line %d column %d",
					   jerr.text, jerr.line, jerr.column);
	rc = parse_object(root, out, err);
	json_decref(root);
	if (rc < 0)
		return -1;
	return fascia_profile_validate(out, lim, err);
}

int fascia_profile_load_file(const char *path,
			     const struct fascia_profile_limits *lim,
			     struct fascia_profile *out,
			     struct fascia_profile_error *err)
{
	char *buf;
	ssize_t n = 0;
	size_t len = 0;
	int fd, rc, saved;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		saved = errno;
		rc = fascia_profile_fail(err, "", "cannot open: %s",
					 strerror(saved));
		goto named;
	}
	if ((buf = malloc(FASCIA_PROFILE_JSON_MAX + 1)) == NULL) {
		close(fd);
		saved = ENOMEM;
		rc = fascia_profile_fail(err, "", "out of memory");
		goto named;
	}
	while (len <= FASCIA_PROFILE_JSON_MAX &&
	       (n = read(fd, buf + len, FASCIA_PROFILE_JSON_MAX + 1 - len)) !=
		       0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	if (n < 0) {
		saved = errno;
		rc = fascia_profile_fail(err, "", "cannot read: %s",
					 strerror(saved));
	} else {
		if (len > FASCIA_PROFILE_JSON_MAX)
			rc = fascia_profile_fail(err, "",
						 "larger than %d bytes",
						 FASCIA_PROFILE_JSON_MAX);
		else
			rc = fascia_profile_parse(buf, len, lim, out, err);
		saved = errno;
	}
	free(buf);
	close(fd);
named:
	if (err != NULL)
		snprintf(err->file, sizeof(err->file), "%s", path);
	errno = saved;
	return rc;
}

/* ---- back to JSON ---- */

/* Whole numbers as JSON integers, so that 45 reads back as 45. */
static json_t *number(double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *step_to_json(const struct fascia_profile *p, int i)
{
	const struct fascia_profile_step *s = &p->steps[i];
	json_t *js = json_object(), *set = json_object();
	char key[8];
	int c, bad = js == NULL || set == NULL;

	if (!bad && s->via_all != 0)
		bad |= json_object_set_new(
			set, "all",
			number(s->target_mmhg[__builtin_ctz(s->via_all)]));
	for (c = 0; !bad && c < FASCIA_MAX_CHAMBERS; c++) {
		if (!(s->set_mask & (1u << c)) || (s->via_all & (1u << c)))
			continue;
		snprintf(key, sizeof(key), "%d", c + 1);
		bad |= json_object_set_new(set, key, number(s->target_mmhg[c]));
	}
	if (!bad) {
		bad |= json_object_set_new(js, "set", set);
		set = NULL;
		bad |= json_object_set_new(js, "ramp_s", number(s->ramp_s));
		bad |= json_object_set_new(js, "hold_s", number(s->hold_s));
	}
	json_decref(set);
	if (bad) {
		json_decref(js);
		return NULL;
	}
	return js;
}

char *fascia_profile_to_json(const struct fascia_profile *p)
{
	json_t *o = json_object(), *steps = json_array();
	char *s = NULL;
	int i, bad = o == NULL || steps == NULL;

	if (!bad) {
		bad |= json_object_set_new(o, "name", json_string(p->name));
		bad |= json_object_set_new(o, "description",
					   json_string(p->description));
		bad |= json_object_set_new(o, "chambers",
					   json_integer(p->chambers));
		bad |= json_object_set_new(o, "max_pressure_mmhg",
					   number(p->max_pressure_mmhg));
		bad |= json_object_set_new(o, "max_ramp_mmhg_s",
					   number(p->max_ramp_mmhg_s));
		bad |= json_object_set_new(
			o, "gradient",
			json_string(p->gradient == FASCIA_GRADIENT_DISTAL_HIGH
					    ? "distal-high"
					    : "none"));
		bad |= json_object_set_new(o, "repeat",
					   json_integer(p->repeat));
	}
	for (i = 0; !bad && i < p->nsteps && i < FASCIA_PROFILE_MAX_STEPS; i++)
		bad |= json_array_append_new(steps, step_to_json(p, i));
	if (!bad) {
		bad |= json_object_set_new(o, "steps", steps);
		steps = NULL;
	}
	if (!bad)
		s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(steps);
	json_decref(o);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

static bool same(double a, double b)
{
	return a == b || (isnan(a) && isnan(b));
}

bool fascia_profile_equal(const struct fascia_profile *a,
			  const struct fascia_profile *b)
{
	const struct fascia_profile_step *x, *y;
	int i, c;

	if (strncmp(a->name, b->name, sizeof(a->name)) != 0 ||
	    strncmp(a->description, b->description, sizeof(a->description)) !=
		    0 ||
	    a->chambers != b->chambers ||
	    !same(a->max_pressure_mmhg, b->max_pressure_mmhg) ||
	    !same(a->max_ramp_mmhg_s, b->max_ramp_mmhg_s) ||
	    a->gradient != b->gradient || a->repeat != b->repeat ||
	    a->nsteps != b->nsteps || a->nsteps < 0 ||
	    a->nsteps > FASCIA_PROFILE_MAX_STEPS)
		return false;
	for (i = 0; i < a->nsteps; i++) {
		x = &a->steps[i];
		y = &b->steps[i];
		if (x->set_mask != y->set_mask || x->via_all != y->via_all ||
		    !same(x->ramp_s, y->ramp_s) || !same(x->hold_s, y->hold_s))
			return false;
		for (c = 0; c < FASCIA_MAX_CHAMBERS; c++)
			if ((x->set_mask & (1u << c)) &&
			    !same(x->target_mmhg[c], y->target_mmhg[c]))
				return false;
	}
	return true;
}

char *fascia_profile_error_format(const struct fascia_profile_error *err,
				  char *buf, size_t len)
{
	if (len == 0)
		return buf;
	snprintf(buf, len, "%s%s%s%s%s", err->file, err->file[0] ? ": " : "",
		 err->field, err->field[0] ? ": " : "", err->message);
	return buf;
}

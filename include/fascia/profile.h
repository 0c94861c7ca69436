/*
 * fascia profile model: a treatment profile parsed from JSON into a
 * fixed-size struct, validated against the device and the build's limits,
 * and its trajectory (every chamber's target at any time since the session
 * started) as pure functions.
 *
 * Parsing allocates (jansson) and belongs in the daemon's main thread or in
 * a client; the trajectory functions, fascia_profile_validate() and
 * fascia_ramp_toward() neither allocate nor block and may run in the
 * control thread's tick.  The format and its rules are in docs/profiles.md.
 */
#ifndef FASCIA_PROFILE_H
#define FASCIA_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fascia/limits.h>
#include <fascia/regmap.h>

#define FASCIA_PROFILE_NAME_MAX 63  /* characters, [a-z0-9-] */
#define FASCIA_PROFILE_DESC_MAX 255 /* bytes of UTF-8, no control chars */
#define FASCIA_PROFILE_MAX_STEPS 64
#define FASCIA_PROFILE_MAX_REPEAT 1000
/* Largest profile document accepted, bytes (file or profile.put). */
#define FASCIA_PROFILE_JSON_MAX (256 * 1024)
/* The gentle rate of the final release and of a stop, mmHg/s: a profile
 * releases at the lower of this and its own max_ramp_mmhg_s. */
#define FASCIA_PROFILE_RELEASE_MMHG_S 5.0

enum fascia_profile_gradient {
	FASCIA_GRADIENT_NONE = 0,
	/* at every moment, among inflated chambers, a more distal chamber
	 * (lower number) is at least as high as a more proximal one */
	FASCIA_GRADIENT_DISTAL_HIGH = 1,
};

/*
 * One step.  Bit c of set_mask means chamber c + 1 is named; then
 * target_mmhg[c] is its new target, otherwise target_mmhg[c] is NaN and
 * the chamber keeps its target.  via_all marks the chambers that were
 * named through the "all" key (a subset of set_mask), so that messages and
 * fascia_profile_to_json() can say "all" again.
 */
struct fascia_profile_step {
	uint16_t set_mask;
	uint16_t via_all;
	double target_mmhg[FASCIA_MAX_CHAMBERS];
	double ramp_s; /* linear ramp from the current targets, >= 0 */
	double hold_s; /* then hold, >= 0 */
};

struct fascia_profile {
	char name[FASCIA_PROFILE_NAME_MAX + 1];
	char description[FASCIA_PROFILE_DESC_MAX + 1];
	int chambers; /* 1..16; chamber 1 is the most distal */
	double max_pressure_mmhg;
	double max_ramp_mmhg_s;
	enum fascia_profile_gradient gradient;
	int repeat; /* 1..FASCIA_PROFILE_MAX_REPEAT */
	int nsteps; /* 1..FASCIA_PROFILE_MAX_STEPS */
	struct fascia_profile_step steps[FASCIA_PROFILE_MAX_STEPS];
};

/* What the profile is checked against. */
struct fascia_profile_limits {
	int device_chambers;      /* 1..16 */
	double device_limit_mmhg; /* the device's LIMIT; > 0 */
	double max_session_s; /* FASCIA_MIN_SESSION_S..FASCIA_MAX_SESSION_S */
};

/*
 * Why a profile was refused.  field is a JSON path into the document
 * ("max_pressure_mmhg", "steps[2].set.3", "steps[0].ramp_s"), or "" when
 * the document as a whole is at fault (not JSON, not an object, unreadable
 * file).  file is the path given to fascia_profile_load_file(), else "".
 */
struct fascia_profile_error {
	char file[256];
	char field[128];
	char message[256];
};

/* Where a session is in its profile at a time t. */
enum fascia_profile_phase {
	FASCIA_PHASE_RAMP = 0,
	FASCIA_PHASE_HOLD = 1,
	FASCIA_PHASE_RELEASE = 2, /* the final release to 0 */
	FASCIA_PHASE_DONE = 3,
};

struct fascia_profile_pos {
	int step;  /* 1..nsteps; nsteps during the release and once done */
	int cycle; /* 1..repeat; repeat during the release and once done */
	enum fascia_profile_phase phase;
	double step_elapsed_s; /* since this step (or the release) began */
	double elapsed_s;      /* min(t, duration) */
	double remaining_s;    /* duration - elapsed_s */
	bool done;             /* t >= duration: every target is 0 */
};

/*
 * The defaults: 16 chambers, FASCIA_CEILING_MMHG, and the session maximum
 * of a fasciad left at its default, FASCIA_DEFAULT_SESSION_S, so that a
 * profile checked against them is one that daemon accepts.
 */
void fascia_profile_limits_default(struct fascia_profile_limits *lim);

/*
 * Parse and validate a profile document of len bytes (need not be
 * NUL-terminated).  lim NULL means the defaults.  Returns 0 with *out
 * filled, or -1 with errno EINVAL (or ENOMEM) and, when err is not NULL,
 * err->field and err->message saying which field is wrong and why; *out is
 * then unspecified.
 */
int fascia_profile_parse(const char *json, size_t len,
			 const struct fascia_profile_limits *lim,
			 struct fascia_profile *out,
			 struct fascia_profile_error *err);

/*
 * fascia_profile_parse() on the contents of the file at path; err->file is
 * path.  Returns 0, or -1 with errno from open/read (err->field "") or
 * EINVAL (a file over FASCIA_PROFILE_JSON_MAX bytes, or a bad profile).
 */
int fascia_profile_load_file(const char *path,
			     const struct fascia_profile_limits *lim,
			     struct fascia_profile *out,
			     struct fascia_profile_error *err);

/*
 * The semantic checks of fascia_profile_parse() on a profile built in
 * memory: every bound, the ramps, the gradient, the total duration.  Does
 * not allocate.  Returns 0, or -1 with errno EINVAL and err filled.
 */
int fascia_profile_validate(const struct fascia_profile *p,
			    const struct fascia_profile_limits *lim,
			    struct fascia_profile_error *err);

/*
 * The profile as a compact JSON document that fascia_profile_parse() reads
 * back into an equal profile (for one that fascia_profile_validate()
 * accepts).  Returns a string to free(), or NULL with errno ENOMEM (also
 * for a name or description that is not UTF-8).
 */
char *fascia_profile_to_json(const struct fascia_profile *p);

/* Whether two profiles are the same (field by field; NaN equals NaN). */
bool fascia_profile_equal(const struct fascia_profile *a,
			  const struct fascia_profile *b);

/*
 * "file: field: message", leaving out the parts that are empty, into buf
 * (always NUL-terminated when len > 0).  Returns buf.
 */
char *fascia_profile_error_format(const struct fascia_profile_error *err,
				  char *buf, size_t len);

/*
 * Report a rejection: the field and the message (printf) into err (which
 * may be NULL), errno EINVAL.  Always returns -1.
 */
__attribute__((format(printf, 3, 4))) int
fascia_profile_fail(struct fascia_profile_error *err, const char *field,
		    const char *fmt, ...);

/*
 * The trajectory of a valid profile (the results are unspecified for one
 * that fascia_profile_validate() refuses).
 *
 * fascia_profile_cycle_s: one pass through the steps (sum of ramp_s +
 * hold_s).  fascia_profile_release_rate: min(max_ramp_mmhg_s,
 * FASCIA_PROFILE_RELEASE_MMHG_S).  fascia_profile_release_s: how long the
 * final release takes, from the highest target at the end of the last
 * cycle down to 0 at that rate.  fascia_profile_duration_s: repeat * cycle
 * + release, the whole session.
 */
double fascia_profile_cycle_s(const struct fascia_profile *p);
double fascia_profile_release_rate(const struct fascia_profile *p);
double fascia_profile_release_s(const struct fascia_profile *p);
double fascia_profile_duration_s(const struct fascia_profile *p);

/*
 * Every chamber's target at t seconds since the session started (t < 0 or
 * NaN counts as 0), into out[0..15] (chambers beyond p->chambers are 0),
 * and where that is into *pos (pos may be NULL).  Pure: the same p and t
 * always give the same result.  Costs O(nsteps * chambers).
 */
void fascia_profile_targets(const struct fascia_profile *p, double t,
			    double out[FASCIA_MAX_CHAMBERS],
			    struct fascia_profile_pos *pos);

/*
 * A setpoint rate limiter for each tick: current moved toward target by at
 * most max_rate * dt (mmHg/s, s), never past it.  A non-finite current or
 * target gives 0 (the safe side); dt <= 0, max_rate <= 0 or either
 * non-finite leaves current as it is.
 */
double fascia_ramp_toward(double current, double target, double max_rate,
			  double dt);

#endif

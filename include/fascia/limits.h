/*
 * Limits compiled into every fascia program.  No configuration file,
 * profile or command can go past them.
 */
#ifndef FASCIA_LIMITS_H
#define FASCIA_LIMITS_H

/* Absolute pressure ceiling, mmHg.  Clinical compression ranges are
 * 30..50 mmHg and are never taken above 80 (docs/profiles.md). */
#define FASCIA_CEILING_MMHG 80.0
/* Steepest ramp a profile may ask for, mmHg/s. */
#define FASCIA_MAX_RAMP_MMHG_S 10.0
/* Longest session, seconds (2 h). */
#define FASCIA_MAX_SESSION_S 7200.0
/* fasciad's max_session_s: its bounds and its default, which a profile
 * is checked against (fasciactl's profile check uses the same). */
#define FASCIA_MIN_SESSION_S 60.0
#define FASCIA_DEFAULT_SESSION_S 3600.0
/* A chamber below this is vented, mmHg. */
#define FASCIA_VENTED_MMHG 5.0

#endif

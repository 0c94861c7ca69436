/*
 * The profile directory: every NAME.json in it, parsed and validated by
 * libfascia against what holds for every device (16 chambers, the build's
 * ceiling, the session maximum).  A file that is refused is refused alone,
 * logged with what to do, and the others load; only a directory that
 * cannot be read fails a load, and then the old set stays.  Whether a
 * profile fits one device is asked when a session starts on it
 * (session.c's start()); fd_profiles_fits() asks the same for the log.
 * A profile.put comes in three steps, so that the disk work can leave the
 * libevent loop: fd_profiles_check() on the loop, the file from
 * fd_profiles_text() written by the store (store.c), and only once it is
 * on disk fd_profiles_add(): what the daemon serves is always what a
 * restart would load.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fasciad.h"

/* What an operator does about a refused file. */
#define REFUSED_WHAT_TO_DO                                                     \
	"not loaded: fix or remove the file, or point `profiles =` elsewhere"

void fd_profiles_load_limits(const struct fd_conf *c,
			     struct fascia_profile_limits *lim)
{
	fascia_profile_limits_default(lim);
	if (c->max_session_s > 0)
		lim->max_session_s = c->max_session_s;
}

void fd_profiles_limits(const struct fd_conf *c,
			struct fascia_profile_limits *lim)
{
	fd_profiles_load_limits(c, lim);
	if (c->ndev > 0) {
		lim->device_chambers = 0;
		lim->device_limit_mmhg = 0;
	}
	for (int i = 0; i < c->ndev; i++) {
		if (c->dev[i].chambers > lim->device_chambers)
			lim->device_chambers = c->dev[i].chambers;
		if (c->dev[i].limit_mmhg > lim->device_limit_mmhg)
			lim->device_limit_mmhg = c->dev[i].limit_mmhg;
	}
}

bool fd_profiles_fits(const struct fascia_profile *p,
		      const struct fd_device_conf *dc, char *why, size_t len)
{
	char wide[96] = "", high[128] = "";

	if (p->chambers > dc->chambers)
		snprintf(wide, sizeof(wide),
			 "the profile has %d chambers, the device %d",
			 p->chambers, dc->chambers);
	if (p->max_pressure_mmhg > dc->limit_mmhg)
		snprintf(high, sizeof(high),
			 "the profile's maximum %.1f mmHg is above the device "
			 "limit %.1f mmHg",
			 p->max_pressure_mmhg, dc->limit_mmhg);
	if (len > 0)
		snprintf(why, len, "%s%s%s", wide,
			 wide[0] && high[0] ? "; " : "", high);
	return wide[0] == '\0' && high[0] == '\0';
}

/* A profile name is also a file name: [a-z0-9-], not empty. */
static bool safe_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FASCIA_PROFILE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
			return false;
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The *.json entries of dir, sorted; NULL with errno on failure. */
static char **list_json(const char *dir, int *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	int cap = 0, saved;

	*n = 0;
	if (dp == NULL)
		return NULL;
	for (;;) {
		size_t len;

		errno = 0;
		if ((de = readdir(dp)) == NULL)
			break;
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				fatal("realloc");
		}
		if ((names[(*n)++] = strdup(de->d_name)) == NULL)
			fatal("strdup");
	}
	/* A directory that fails half-way is not read: a set missing the
	 * files after the failure would look like a good one. */
	if ((saved = errno) != 0) {
		closedir(dp);
		free_names(names, *n);
		*n = 0;
		errno = saved;
		return NULL;
	}
	closedir(dp);
	if (names == NULL)
		names = xcalloc(1, sizeof(*names));
	qsort(names, *n, sizeof(*names), cmp_names);
	return names;
}

/* Read dir/file into the set's next slot; -1 with err filled. */
static int load_one(const char *dir, const char *file,
		    const struct fascia_profile_limits *lim,
		    struct fd_profiles *set, struct fascia_profile_error *err)
{
	struct fascia_profile *p = &set->p[set->n];
	size_t base = strlen(file) - 5;
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (set->n < FD_MAX_PROFILES &&
	    fascia_profile_load_file(path, lim, p, err) < 0)
		return -1; /* err names the file */
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%.*s",
		 (int)sizeof(err->file) - 1, path);
	if (set->n == FD_MAX_PROFILES)
		return fascia_profile_fail(err, "", "more than %d profiles",
					   FD_MAX_PROFILES);
	/* The file's name is the profile's: a copy left under another name
	 * would otherwise serve a second profile of the same name.  It also
	 * makes every name in the set unique. */
	if (strlen(p->name) != base || strncmp(p->name, file, base) != 0)
		return fascia_profile_fail(
			err, "name",
			"\"%s\" differs from the file's "
			"name; profile %s belongs in %s.json",
			p->name, p->name, p->name);
	return 0;
}

/* Log a refused file with what to do, and keep it in the set. */
static void note_refused(struct fd_profiles *set,
			 const struct fascia_profile_error *err)
{
	char buf[700];

	log_warnx("%s (%s)", fascia_profile_error_format(err, buf, sizeof(buf)),
		  REFUSED_WHAT_TO_DO);
	if (set->nrefused < FD_MAX_REFUSED)
		set->refused[set->nrefused] = *err;
	set->nrefused++;
}

int fd_profiles_load(const char *dir, const struct fascia_profile_limits *lim,
		     struct fd_profiles *out)
{
	struct fascia_profile_error err;
	struct fd_profiles *set;
	char **names;
	int n;

	if (strlen(dir) >= sizeof(out->dir)) {
		log_warnx("%s: profile directory name too long", dir);
		return -1;
	}
	if ((names = list_json(dir, &n)) == NULL) {
		log_warn("%s: cannot read the profile directory", dir);
		return -1;
	}
	set = xcalloc(1, sizeof(*set));
	snprintf(set->dir, sizeof(set->dir), "%s", dir);
	for (int i = 0; i < n; i++) {
		if (load_one(dir, names[i], lim, set, &err) == 0)
			set->n++;
		else
			note_refused(set, &err);
	}
	free_names(names, n);
	if (set->nrefused > 0)
		log_warnx("%s: %d %s loaded, %d %s refused", dir, set->n,
			  set->n == 1 ? "profile" : "profiles", set->nrefused,
			  set->nrefused == 1 ? "file" : "files");
	else
		log_info("%s: %d %s", dir, set->n,
			 set->n == 1 ? "profile" : "profiles");
	/* Not fatal: a device can still be vented, acknowledged and
	 * watched, and profile.put can store a profile. */
	if (set->n == 0)
		log_warnx("%s: no profile loaded: no session can start until "
			  "one is stored (profile.put) or the directory is "
			  "fixed and reloaded (SIGHUP)",
			  dir);
	*out = *set;
	free(set);
	return 0;
}

const struct fascia_profile *fd_profiles_find(const struct fd_profiles *ps,
					      const char *name)
{
	for (int i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i].name, name) == 0)
			return &ps->p[i];
	return NULL;
}

int fd_profiles_check(const struct fd_profiles *ps, const char *json,
		      size_t len, const struct fascia_profile_limits *lim,
		      struct fascia_profile *out,
		      struct fascia_profile_error *err)
{
	memset(err, 0, sizeof(*err));
	if (fascia_profile_parse(json, len, lim, out, err) < 0)
		return -1;
	if (!safe_name(out->name)) {
		snprintf(err->field, sizeof(err->field), "name");
		snprintf(err->message, sizeof(err->message),
			 "not a safe file name: [a-z0-9-] only");
		errno = EINVAL;
		return -1;
	}
	if (fd_profiles_find(ps, out->name) == NULL &&
	    ps->n == FD_MAX_PROFILES) {
		snprintf(err->message, sizeof(err->message),
			 "the directory holds %d profiles already",
			 FD_MAX_PROFILES);
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

char *fd_profiles_text(const struct fascia_profile *p)
{
	char *compact, *pretty, *text;
	json_t *root;
	size_t n;

	/* Through jansson again for the indentation: a file an operator
	 * reads and diffs, not the compact form of the wire. */
	if ((compact = fascia_profile_to_json(p)) == NULL)
		fatalx("profile %s: out of memory encoding it", p->name);
	root = json_loads(compact, 0, NULL);
	free(compact);
	if (root == NULL)
		fatalx("profile %s: cannot encode it", p->name);
	pretty = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	json_decref(root);
	if (pretty == NULL)
		fatalx("profile %s: out of memory encoding it", p->name);
	n = strlen(pretty);
	text = xcalloc(1, n + 2);
	memcpy(text, pretty, n);
	text[n] = '\n';
	free(pretty);
	return text;
}

int fd_profiles_add(struct fd_profiles *ps, const struct fascia_profile *p)
{
	struct fascia_profile *slot;
	int at = 0;

	slot = (struct fascia_profile *)fd_profiles_find(ps, p->name);
	if (slot == NULL) {
		/* Two puts of new names can pass fd_profiles_check() before
		 * either is added: the set must still not overflow. */
		if (ps->n == FD_MAX_PROFILES) {
			log_warnx("profile %s: written to %s but not served: "
				  "the set holds %d profiles already",
				  p->name, ps->dir, FD_MAX_PROFILES);
			errno = ENOSPC;
			return -1;
		}
		/* A new name goes where it sorts: `profiles` lists the set
		 * in name order. */
		while (at < ps->n && strcmp(ps->p[at].name, p->name) < 0)
			at++;
		memmove(&ps->p[at + 1], &ps->p[at],
			(size_t)(ps->n - at) * sizeof(ps->p[0]));
		ps->n++;
		slot = &ps->p[at];
	}
	*slot = *p;
	log_info("profile %s stored in %s", p->name, ps->dir);
	return 0;
}

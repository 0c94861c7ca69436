/*
 * The profile directory: every NAME.json in it, parsed and validated by
 * libfascia against the largest configured device.  A load builds a fresh
 * set and keeps the old one when any file is refused.  A profile.put
 * comes in three steps, so that the disk work can leave the libevent loop:
 * fd_profiles_check() on the loop, the file from fd_profiles_text()
 * written by the store (store.c), and only once it is on disk
 * fd_profiles_add(): what the daemon serves is always what a restart
 * would load.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fasciad.h"

void fd_profiles_limits(const struct fd_conf *c,
			struct fascia_profile_limits *lim)
{
	fascia_profile_limits_default(lim);
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
	if (c->max_session_s > 0)
		lim->max_session_s = c->max_session_s;
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

/* The *.json entries of dir, sorted; NULL with errno on failure. */
static char **list_json(const char *dir, int *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	int cap = 0;

	*n = 0;
	if (dp == NULL)
		return NULL;
	while ((de = readdir(dp)) != NULL) {
		size_t len = strlen(de->d_name);

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
	closedir(dp);
	if (names == NULL)
		names = xcalloc(1, sizeof(*names));
	qsort(names, *n, sizeof(*names), cmp_names);
	return names;
}

/* Load one file into set; -1 logged. */
static int load_one(const char *dir, const char *file,
		    const struct fascia_profile_limits *lim,
		    struct fd_profiles *set)
{
	struct fascia_profile_error err;
	struct fascia_profile *p = &set->p[set->n];
	char path[1024], buf[700];
	size_t base = strlen(file) - 5;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (set->n == FD_MAX_PROFILES) {
		log_warnx("%s: refused: more than %d profiles", path,
			  FD_MAX_PROFILES);
		return -1;
	}
	memset(&err, 0, sizeof(err));
	if (fascia_profile_load_file(path, lim, p, &err) < 0) {
		log_warnx("%s",
			  fascia_profile_error_format(&err, buf, sizeof(buf)));
		return -1;
	}
	if (strlen(p->name) != base || strncmp(p->name, file, base) != 0) {
		log_warnx("%s: name: \"%s\" differs from the file's name", path,
			  p->name);
		return -1;
	}
	if (fd_profiles_find(set, p->name) != NULL) {
		log_warnx("%s: name: \"%s\" is defined twice", path, p->name);
		return -1;
	}
	set->n++;
	return 0;
}

int fd_profiles_load(const char *dir, const struct fascia_profile_limits *lim,
		     struct fd_profiles *out)
{
	struct fd_profiles *set;
	char **names;
	int n, bad = 0;

	if (strlen(dir) >= sizeof(out->dir)) {
		log_warnx("%s: profile directory name too long", dir);
		return -1;
	}
	if ((names = list_json(dir, &n)) == NULL) {
		log_warn("%s", dir);
		return -1;
	}
	set = xcalloc(1, sizeof(*set));
	snprintf(set->dir, sizeof(set->dir), "%s", dir);
	for (int i = 0; i < n; i++) {
		if (load_one(dir, names[i], lim, set) < 0)
			bad++;
		free(names[i]);
	}
	free(names);
	if (bad == 0) {
		*out = *set;
		log_info("%s: %d profiles", dir, set->n);
	} else {
		log_warnx("%s: %d profile files refused; nothing loaded", dir,
			  bad);
	}
	free(set);
	return bad ? -1 : 0;
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

/*
 * fasciactl's tables: rows of text cells printed either aligned for a
 * person or as RFC 4180 CSV for a spreadsheet.  A cell holds what the
 * command put there; the aligned form replaces control characters (a note
 * or a message may hold a newline or an escape sequence) so that a row
 * stays one line and cannot drive the terminal, while CSV keeps every
 * byte, quoting the fields that need it.  The table_str/num/raw/iso
 * helpers turn a JSON member into a cell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasciactl.h"

#define TABLE_COLS_MAX 64

struct table {
	int ncols;
	char align[TABLE_COLS_MAX]; /* 'l' or 'r' per column */
	char **cells;               /* (1 + rows) * ncols: the head first */
	size_t nrows;               /* the head included */
	size_t cap;
};

/* Out of memory in a command-line tool: say so and stop. */
static void *must(void *p)
{
	if (p == NULL) {
		fputs("fasciactl: out of memory\n", stderr);
		exit(CTL_REFUSED);
	}
	return p;
}

char *ctl_strdup(const char *s)
{
	return must(strdup(s != NULL ? s : ""));
}

/* A JSON value as text: a string as is, a number as jansson writes it
 * (15 significant digits: 359.9, not 359.89999999999998), null or absent
 * as "", anything else as compact JSON. */
void ctl_json_text(const json_t *v, char *buf, size_t len)
{
	char *text;

	if (json_is_string(v)) {
		snprintf(buf, len, "%s", json_string_value(v));
		return;
	}
	if (v == NULL || json_is_null(v)) {
		snprintf(buf, len, "%s", "");
		return;
	}
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
				     JSON_REAL_PRECISION(15));
	snprintf(buf, len, "%s", text != NULL ? text : "");
	free(text);
}

/* The cells of a JSON object's members, for the commands' rows. */

/* A string member, "-" when it is absent or not a string. */
const char *table_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

/* A number member with fmt, "-" when it is absent or null. */
const char *table_num(const json_t *o, const char *key, char *buf, size_t len,
		      const char *fmt)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, fmt, json_number_value(v));
	return buf;
}

/* A member as CSV text: as the daemon wrote it, "" for null. */
const char *table_raw(const json_t *o, const char *key, char *buf, size_t len)
{
	ctl_json_text(json_object_get(o, key), buf, len);
	return buf;
}

/* A time member as ISO 8601 with the offset, "" for none. */
const char *table_iso(const json_t *o, const char *key, char *buf, size_t len)
{
	int64_t ms;

	if (!ctl_json_ms(json_object_get(o, key), &ms))
		return "";
	ctl_time_iso(buf, len, ms);
	return buf;
}

/*
 * A table of as many columns as head has names (NULL-terminated), at most
 * TABLE_COLS_MAX; align gives 'l' or 'r' for each column ("" or a short
 * string: the rest are 'l').
 */
struct table *table_new(const char *align, const char *const *head)
{
	struct table *t = must(calloc(1, sizeof(*t)));
	size_t alen = strlen(align);

	while (head[t->ncols] != NULL && t->ncols < TABLE_COLS_MAX) {
		t->align[t->ncols] =
			(size_t)t->ncols < alen ? align[t->ncols] : 'l';
		t->ncols++;
	}
	table_add(t, head);
	return t;
}

/* One row: ncols cells (NULL cells are empty). */
void table_add(struct table *t, const char *const *cells)
{
	size_t need = (t->nrows + 1) * (size_t)t->ncols;

	if (need > t->cap) {
		t->cap = need * 2;
		t->cells = must(realloc(t->cells, t->cap * sizeof(*t->cells)));
	}
	for (int c = 0; c < t->ncols; c++)
		t->cells[t->nrows * (size_t)t->ncols + (size_t)c] =
			ctl_strdup(cells[c]);
	t->nrows++;
}

/* The rows below the head. */
size_t table_rows(const struct table *t)
{
	return t->nrows > 0 ? t->nrows - 1 : 0;
}

/* Characters on screen: UTF-8 sequences count once (wide characters are
 * rare in these fields and are not measured). */
static size_t width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* s with control characters as spaces, into buf. */
const char *ctl_printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' '
								      : s[i];
	buf[i] = '\0';
	return buf;
}

void table_print(const struct table *t, FILE *f)
{
	size_t w[TABLE_COLS_MAX] = {0}, r, n;
	char buf[2048];
	const char *s;
	int c;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			s = ctl_printable(
				t->cells[r * (size_t)t->ncols + (size_t)c], buf,
				sizeof(buf));
			n = width(s);
			if (n > w[c])
				w[c] = n;
		}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			s = ctl_printable(
				t->cells[r * (size_t)t->ncols + (size_t)c], buf,
				sizeof(buf));
			n = width(s);
			if (c > 0)
				fputs("  ", f);
			if (t->align[c] == 'r')
				fprintf(f, "%*s%s", (int)(w[c] - n), "", s);
			else if (c < t->ncols - 1)
				fprintf(f, "%s%*s", s, (int)(w[c] - n), "");
			else
				fputs(s, f); /* no trailing blanks */
		}
		fputc('\n', f);
	}
}

/* RFC 4180: a field with a comma, a quote, CR or LF is quoted, its quotes
 * doubled; records end with CRLF. */
static void csv_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

void table_csv(const struct table *t, FILE *f)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			if (c > 0)
				fputc(',', f);
			csv_field(f,
				  t->cells[r * (size_t)t->ncols + (size_t)c]);
		}
		fputs("\r\n", f);
	}
}

void table_destroy(struct table **tp)
{
	struct table *t = tp != NULL ? *tp : NULL;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	*tp = NULL;
}

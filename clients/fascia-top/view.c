/*
 * fascia-top's curses view: a title, a "daemon unreachable" banner when the
 * publisher has gone quiet, one line per device, then the selected device
 * in detail (session, link, one bar per chamber with the setpoint marked,
 * the alarms, the last sessions in the rows left), a status line and the
 * keys.  Plain ASCII and ACS line characters only, so that it reads the
 * same over any SSH session; it fits 80x24 with an 8-chamber device and
 * degrades on smaller terminals (the last sessions go first).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curses.h>

#include "top.h"

enum {
	PAIR_GREEN = 1,
	PAIR_CYAN,
	PAIR_YELLOW,
	PAIR_MAGENTA,
	PAIR_RED,
	PAIR_BANNER,
	PAIR_TITLE,
};

#define LIST_ROWS_MAX 4

void view_init_colors(void)
{
	if (!has_colors())
		return;
	start_color();
	use_default_colors();
	init_pair(PAIR_GREEN, COLOR_GREEN, -1);
	init_pair(PAIR_CYAN, COLOR_CYAN, -1);
	init_pair(PAIR_YELLOW, COLOR_YELLOW, -1);
	init_pair(PAIR_MAGENTA, COLOR_MAGENTA, -1);
	init_pair(PAIR_RED, COLOR_RED, -1);
	init_pair(PAIR_BANNER, COLOR_WHITE, COLOR_RED);
	init_pair(PAIR_TITLE, COLOR_BLACK, COLOR_CYAN);
}

/* printf at (row, col), clipped to the screen's width. */
static void put(int row, int col, attr_t attr, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (row < 0 || row >= LINES || col >= COLS)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	attron(attr);
	mvaddnstr(row, col, buf, COLS - col);
	attroff(attr);
}

static attr_t state_attr(const char *state)
{
	if (strcmp(state, "idle") == 0)
		return COLOR_PAIR(PAIR_GREEN);
	if (strcmp(state, "running") == 0)
		return COLOR_PAIR(PAIR_CYAN) | A_BOLD;
	if (strcmp(state, "paused") == 0)
		return COLOR_PAIR(PAIR_YELLOW) | A_BOLD;
	if (strcmp(state, "releasing") == 0 || strcmp(state, "venting") == 0)
		return COLOR_PAIR(PAIR_MAGENTA) | A_BOLD;
	if (strcmp(state, "fault") == 0)
		return COLOR_PAIR(PAIR_RED) | A_BOLD | A_REVERSE;
	if (strcmp(state, "offline") == 0)
		return COLOR_PAIR(PAIR_RED) | A_BOLD;
	return A_NORMAL;
}

static attr_t priority_attr(const char *priority)
{
	if (strcmp(priority, "high") == 0)
		return COLOR_PAIR(PAIR_RED) | A_BOLD;
	if (strcmp(priority, "medium") == 0)
		return COLOR_PAIR(PAIR_YELLOW) | A_BOLD;
	return A_NORMAL;
}

static void fmt_duration(char *buf, size_t len, double s)
{
	int v = s > 0 && s < 5999999 ? (int)(s + 0.5) : 0;

	snprintf(buf, len, "%d:%02d", (v / 60) % 100000, v % 60);
}

static int progress_pct(const struct top_device *d)
{
	double total = d->elapsed_s + d->remaining_s;

	if (!d->in_session || total <= 0)
		return 0;
	return (int)(100.0 * d->elapsed_s / total + 0.5);
}

static void draw_title(const struct top *t)
{
	attron(COLOR_PAIR(PAIR_TITLE) | A_BOLD);
	mvhline(0, 0, ' ', COLS);
	attroff(COLOR_PAIR(PAIR_TITLE) | A_BOLD);
	put(0, 1, COLOR_PAIR(PAIR_TITLE) | A_BOLD, "fascia-top  %s  devices %d",
	    t->publish, t->ndevices);
}

static void draw_banner(const struct top *t)
{
	int64_t quiet = top_silence_ms(t);

	if (!top_daemon_unreachable(t))
		return;
	attron(COLOR_PAIR(PAIR_BANNER) | A_BOLD);
	mvhline(1, 0, ' ', COLS);
	attroff(COLOR_PAIR(PAIR_BANNER) | A_BOLD);
	if (t->last_state_ms)
		put(1, 1, COLOR_PAIR(PAIR_BANNER) | A_BOLD,
		    "*** daemon unreachable: no state for %lld s from %s ***",
		    (long long)(quiet / 1000), t->publish);
	else
		put(1, 1, COLOR_PAIR(PAIR_BANNER) | A_BOLD,
		    "*** daemon unreachable: nothing from %s ***", t->publish);
}

static void draw_list_line(const struct top *t, int row, int i)
{
	const struct top_device *d = &t->devices[i];
	bool sel = i == t->selected, stale = top_device_stale(t, d);
	char left[24] = "";

	put(row, 0, sel ? A_BOLD | A_REVERSE : A_NORMAL, "%c %-12.12s",
	    sel ? '>' : ' ', d->name);
	put(row, 15, stale ? A_DIM : state_attr(d->state), "%-9.9s", d->state);
	if (d->in_session) {
		fmt_duration(left, sizeof(left), d->remaining_s);
		put(row, 25, A_NORMAL,
		    "%-12.12s st %-2d cy %-2d %3d%% left %-6s", d->profile,
		    d->step, d->cycle, progress_pct(d), left);
	}
	put(row, 67,
	    d->link_up && !stale ? COLOR_PAIR(PAIR_GREEN)
				 : COLOR_PAIR(PAIR_RED),
	    "%s",
	    stale        ? "stale"
	    : d->link_up ? "link up"
			 : "link DOWN");
	if (d->nalarms)
		put(row, 77, COLOR_PAIR(PAIR_RED) | A_BOLD, "!%d", d->nalarms);
}

/* One line per device, scrolled so that the selection shows. */
static int draw_list(const struct top *t, int row)
{
	int rows = t->ndevices < LIST_ROWS_MAX ? t->ndevices : LIST_ROWS_MAX;
	int first = 0, i;

	if (t->ndevices == 0) {
		put(row, 2, A_DIM, "(no devices yet)");
		return row + 1;
	}
	if (t->selected >= rows)
		first = t->selected - rows + 1;
	for (i = 0; i < rows; i++)
		draw_list_line(t, row + i, first + i);
	return row + rows;
}

static void draw_separator(int row, const char *label)
{
	if (row >= LINES)
		return;
	mvhline(row, 0, ACS_HLINE, COLS);
	put(row, 2, A_BOLD, " %s ", label);
}

static int draw_session(const struct top *t, const struct top_device *d,
			int row)
{
	char el[24], left[24];
	attr_t dim = top_device_stale(t, d) ? A_DIM : A_NORMAL;
	int pct = progress_pct(d), w = COLS - 42, fill, i;

	put(row, 0, A_NORMAL, "state");
	put(row, 6, dim ? A_DIM : state_attr(d->state), "%s", d->state);
	if (dim)
		put(row, 16, COLOR_PAIR(PAIR_RED) | A_BOLD, "(stale)");
	if (!d->in_session) {
		put(row, 25, dim, "no session");
		return row + 1;
	}
	fmt_duration(el, sizeof(el), d->elapsed_s);
	fmt_duration(left, sizeof(left), d->remaining_s);
	put(row, 25, dim, "profile %s  step %d  cycle %d", d->profile, d->step,
	    d->cycle);
	row++;
	if (w < 10)
		w = 10;
	fill = w * pct / 100;
	put(row, 0, dim, "progress [");
	for (i = 0; i < w; i++)
		put(row, 10 + i, dim, "%c", i < fill ? '=' : ' ');
	put(row, 10 + w, dim, "] %3d%%  elapsed %s  left %s", pct, el, left);
	return row + 1;
}

static int draw_link(const struct top *t, const struct top_device *d, int row)
{
	bool stale = top_device_stale(t, d);

	put(row, 0,
	    d->link_up && !stale ? COLOR_PAIR(PAIR_GREEN)
				 : COLOR_PAIR(PAIR_RED) | A_BOLD,
	    "link %s", d->link_up ? "up" : "DOWN");
	put(row, 10, stale ? A_DIM : A_NORMAL,
	    "rtt %lldus  to %lld  err %lld  exc %lld  reconn %lld", d->rtt_us,
	    d->timeouts, d->errors, d->exceptions, d->reconnects);
	if (d->supply_known)
		put(row, 62, stale ? A_DIM : A_NORMAL, "supply %.1f",
		    d->supply);
	else
		put(row, 62, stale ? A_DIM : A_NORMAL, "supply ?");
	return row + 1;
}

/* "  1 [#######|....]  25.1/ 25.0 +" in width w from col. */
static void draw_chamber(const struct top_device *d, int i, int row, int col,
			 int w, attr_t dim)
{
	const struct top_chamber *c = &d->chambers[i];
	double scale = top_device_scale(d);
	int bw = w - 22, fill, mark, x;
	char v = c->valve[0] == 'i' ? '+' : c->valve[0] == 'd' ? '-' : '=';
	char p[16] = "  ?  ", sp[16] = "  ?  "; /* unknown: never 0.0 */

	if (bw < 4)
		bw = 4;
	fill = c->pressure_known ? (int)(c->pressure / scale * bw + 0.5) : 0;
	mark = c->setpoint_known ? (int)(c->setpoint / scale * bw + 0.5) : -1;
	if (mark >= bw)
		mark = bw - 1;
	put(row, col, dim, "%2d [", i + 1);
	for (x = 0; x < bw; x++) {
		if (x == mark)
			put(row, col + 4 + x, COLOR_PAIR(PAIR_YELLOW) | A_BOLD,
			    "|");
		else
			put(row, col + 4 + x,
			    x < fill ? COLOR_PAIR(PAIR_CYAN) | dim : dim, "%c",
			    x < fill ? '#' : '.');
	}
	if (c->pressure_known)
		snprintf(p, sizeof(p), "%5.1f", c->pressure);
	if (c->setpoint_known)
		snprintf(sp, sizeof(sp), "%5.1f", c->setpoint);
	put(row, col + 4 + bw, dim, "] %s/%s %c", p, sp, v);
}

/* The bars, in two columns when one does not fit in rows. */
static int draw_chambers(const struct top *t, const struct top_device *d,
			 int row, int rows)
{
	attr_t dim = top_device_stale(t, d) ? A_DIM : A_NORMAL;
	int n = d->nchambers, cols = 1, per, i;

	if (n == 0) {
		/* before the first reading: say why, never draw zeros */
		if (d->link_error[0])
			put(row, 0, A_BOLD, "no reading yet (%s)",
			    d->link_error);
		else
			put(row, 0, A_BOLD, "no reading yet");
		return row + 1;
	}
	if (n > rows && COLS >= 56)
		cols = 2;
	per = (n + cols - 1) / cols;
	if (per > rows)
		per = rows > 1 ? rows - 1 : 1;
	for (i = 0; i < n && i < per * cols; i++)
		draw_chamber(d, i, row + i % per, (i / per) * (COLS / cols),
			     COLS / cols - 1, dim);
	if (n > per * cols) {
		put(row + per, 0, A_BOLD, "... %d more chambers (enlarge)",
		    n - per * cols);
		per++;
	}
	return row + per;
}

static int draw_alarms(const struct top_device *d, int row, int last)
{
	int i;

	if (d->nalarms == 0) {
		put(row, 0, A_DIM, "no alarms");
		return row + 1;
	}
	for (i = 0; i < d->nalarms && row <= last; i++, row++) {
		const struct top_alarm *a = &d->alarms[i];

		if (row == last && i < d->nalarms - 1) {
			put(row, 0, A_BOLD, "... %d more alarms",
			    d->nalarms - i);
			return row + 1;
		}
		put(row, 0, priority_attr(a->priority),
		    "ALARM %-6s %-12s ch %-2d %-7s %-7s %s", a->priority, a->id,
		    a->chamber, a->latched ? "latched" : "",
		    a->present ? "present" : "cleared", a->message);
	}
	return row;
}

static attr_t end_attr(const char *end)
{
	if (strcmp(end, "completed") == 0)
		return COLOR_PAIR(PAIR_GREEN);
	if (strcmp(end, "running") == 0)
		return COLOR_PAIR(PAIR_CYAN);
	if (strcmp(end, "fault") == 0 || strcmp(end, "interrupted") == 0)
		return COLOR_PAIR(PAIR_RED) | A_BOLD;
	return COLOR_PAIR(PAIR_YELLOW);
}

/* "11-25 10:55" local, of a Unix ms time. */
static void fmt_start(char *buf, size_t len, int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || localtime_r(&s, &tm) == NULL ||
	    strftime(buf, len, "%m-%d %H:%M", &tm) == 0)
		snprintf(buf, len, "?");
}

/* The last sessions of the selected device, from row to last at most;
 * it needs two rows (a heading and one line) or draws nothing. */
static void draw_sessions(const struct top *t, const struct top_device *d,
			  int row, int last)
{
	const struct top_history *h = &t->history;
	char start[24], dur[24];
	int i;

	if (row + 1 > last || strcmp(h->device, d->name) != 0)
		return;
	draw_separator(row++, "last sessions");
	if (!h->have) {
		put(row, 0, A_DIM, "asking the journal ...");
		return;
	}
	if (h->error[0]) {
		put(row, 0, A_BOLD, "%s", h->error);
		return;
	}
	if (h->nsessions == 0) {
		put(row, 0, A_DIM, "no sessions recorded");
		return;
	}
	for (i = 0; i < h->nsessions && row <= last; i++, row++) {
		const struct top_session *s = &h->sessions[i];

		fmt_start(start, sizeof(start), s->started_ms);
		if (s->duration_s >= 0)
			fmt_duration(dur, sizeof(dur), s->duration_s);
		else
			snprintf(dur, sizeof(dur), "-");
		put(row, 0, A_NORMAL, "%-11s  %-24.24s", start, s->profile);
		put(row, 38, end_attr(s->end_reason), "%-11.11s",
		    s->end_reason);
		put(row, 50, s->alarm[0] ? COLOR_PAIR(PAIR_RED) : A_NORMAL,
		    "%-18.18s", s->alarm);
		put(row, 69, A_NORMAL, "%9s", dur);
	}
}

static void draw_detail(const struct top *t, int row)
{
	const struct top_device *d;
	int last = LINES - 3, chamber_rows;

	if (t->ndevices == 0 || row > last)
		return;
	d = &t->devices[t->selected];
	draw_separator(row++, d->name);
	row = draw_session(t, d, row);
	row = draw_link(t, d, row);
	/* Leave room for the alarms (at least one line) and the last event. */
	chamber_rows = last - row + 1 - (d->nalarms ? d->nalarms : 1) - 1;
	if (chamber_rows < 2)
		chamber_rows = 2;
	row = draw_chambers(t, d, row, chamber_rows);
	if (row <= last)
		row = draw_alarms(d, row, last);
	if (row <= last && d->last_event[0])
		put(row++, 0, A_DIM, "last: %s", d->last_event);
	draw_sessions(t, d, row, last);
}

void view_draw(const struct top *t, const char *status, bool prompt)
{
	int row;

	erase();
	if (LINES < 8 || COLS < 40) {
		put(0, 0, A_BOLD, "terminal too small");
		if (top_daemon_unreachable(t))
			put(1, 0, A_BOLD, "daemon unreachable");
		refresh();
		return;
	}
	draw_title(t);
	draw_banner(t);
	row = draw_list(t, 2);
	draw_detail(t, row);
	put(LINES - 2, 0, prompt ? A_BOLD | A_REVERSE : A_BOLD, "%s", status);
	put(LINES - 1, 0, A_DIM,
	    "Tab/arrows select  p pause  r resume  s stop  v vent  a ack  q "
	    "quit");
	refresh();
}

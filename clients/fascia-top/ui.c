/*
 * fascia-top's interactive loop: poll the monitor's descriptor and the
 * terminal with a short timeout, take what the publisher sent, handle the
 * keys, redraw.  Nothing here waits for long: the only blocking calls are
 * the operator's commands, bounded by TOP_COMMAND_TIMEOUT_MS and not sent
 * at all while the daemon is unreachable.  Every command asks for
 * confirmation first, and its reply shows in the status line.
 *
 * Letters are read regardless of case: with Caps Lock on, S and Y still
 * stop a session (a stop or a vent must never fail for a shift state).
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curses.h>

#include "top.h"

#define POLL_MS 100
#define REDRAW_MS 250
#define DRAIN_MAX 2000

struct command {
	int key;
	const char *cmd;
	const char *question; /* %s: the device */
};

static const struct command commands[] = {
	{'p', "pause", "Pause session on %s? [y/N]"},
	{'r', "resume", "Resume session on %s? [y/N]"},
	{'s', "stop", "Stop session on %s? [y/N]"},
	{'v', "vent", "Vent %s? [y/N]"},
	{'a', "ack", "Acknowledge alarms on %s? [y/N]"},
};

struct ui {
	struct top *top;
	struct fascia_client *commander; /* longer timeout than queries */
	char status[200];
	/* the status line is still the start-up one, which holds only as
	 * long as the daemon stays as it was found */
	enum { HELLO_NONE, HELLO_CONNECTED, HELLO_NO_REPLY } hello;
	const struct command *pending; /* awaiting y/N */
	char pending_device[TOP_NAME_MAX];
	bool quit;
	bool dirty;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void set_status(struct ui *ui, const char *fmt, const char *a,
		       const char *b, const char *c)
{
	snprintf(ui->status, sizeof(ui->status), fmt, a, b, c);
	ui->hello = HELLO_NONE;
	ui->dirty = true;
}

/* The start-up status goes once it is no longer true: "connected to"
 * under the unreachable banner would contradict it, and "no reply" once
 * the daemon is heard. */
static void check_hello(struct ui *ui)
{
	bool unreachable = top_daemon_unreachable(ui->top);

	if ((ui->hello == HELLO_CONNECTED && unreachable) ||
	    (ui->hello == HELLO_NO_REPLY && !unreachable &&
	     ui->top->last_state_ms != 0)) {
		ui->status[0] = '\0';
		ui->hello = HELLO_NONE;
		ui->dirty = true;
	}
}

static void show_reply(struct ui *ui, const char *cmd, const char *dev,
		       json_t *rep)
{
	json_t *err = json_object_get(rep, "error");
	json_t *st = json_object_get(json_object_get(rep, "result"), "state");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));

	ui->hello = HELLO_NONE;
	if (!rep) {
		snprintf(ui->status, sizeof(ui->status),
			 "%s %s: no reply within %d ms (daemon unreachable?)",
			 cmd, dev, TOP_COMMAND_TIMEOUT_MS);
	} else if (json_is_true(json_object_get(rep, "ok"))) {
		snprintf(ui->status, sizeof(ui->status), "%s %s: ok (state %s)",
			 cmd, dev,
			 json_is_string(st) ? json_string_value(st) : "?");
	} else {
		snprintf(ui->status, sizeof(ui->status), "%s %s: error %s: %s",
			 cmd, dev, code ? code : "?", msg ? msg : "");
	}
	ui->dirty = true;
}

/* Send one confirmed command; the UI shows "waiting" while it is out. */
static void send_command(struct ui *ui, const struct command *c,
			 const char *dev)
{
	json_t *req, *rep;

	if (top_daemon_unreachable(ui->top)) {
		set_status(ui, "%s %s: not sent: %s", c->cmd, dev,
			   "daemon unreachable");
		return;
	}
	set_status(ui, "%s %s: sent, waiting for the reply%s", c->cmd, dev, "");
	view_draw(ui->top, ui->status, false);
	req = json_pack("{s:s,s:s}", "cmd", c->cmd, "device", dev);
	if (!req) {
		set_status(ui, "%s %s: %s", c->cmd, dev, "out of memory");
		return;
	}
	rep = fascia_client_call(ui->commander, req);
	json_decref(req);
	show_reply(ui, c->cmd, dev, rep);
	json_decref(rep);
}

static void select_step(struct ui *ui, int step)
{
	struct top *t = ui->top;

	if (t->ndevices == 0)
		return;
	t->selected = (t->selected + step + t->ndevices) % t->ndevices;
	ui->dirty = true;
}

static void answer_prompt(struct ui *ui, int ch)
{
	const struct command *c = ui->pending;

	ui->pending = NULL;
	if (ch == 'y')
		send_command(ui, c, ui->pending_device);
	else
		set_status(ui, "%s %s: cancelled%s", c->cmd, ui->pending_device,
			   "");
}

static void ask(struct ui *ui, const struct command *c)
{
	struct top *t = ui->top;
	const char *dev;

	if (t->ndevices == 0) {
		set_status(ui, "%s: no device%s%s", c->cmd, "", "");
		return;
	}
	dev = t->devices[t->selected].name;
	ui->pending = c;
	snprintf(ui->pending_device, sizeof(ui->pending_device), "%s", dev);
	set_status(ui, c->question, dev, "", "");
}

static void handle_key(struct ui *ui, int ch)
{
	size_t i;

	if (ch == KEY_RESIZE) {
		clear();
		ui->dirty = true;
		return;
	}
	if (ch >= 'A' && ch <= 'Z')
		ch = tolower(ch);
	if (ui->pending) {
		answer_prompt(ui, ch);
		return;
	}
	switch (ch) {
	case 'q':
		ui->quit = true;
		return;
	case '\t':
	case KEY_DOWN:
	case KEY_RIGHT:
		select_step(ui, 1);
		return;
	case KEY_BTAB:
	case KEY_UP:
	case KEY_LEFT:
		select_step(ui, -1);
		return;
	case 12: /* ^L */
		clear();
		ui->dirty = true;
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].key == ch)
			ask(ui, &commands[i]);
}

/* newterm rather than initscr: a bad TERM is an error, not an exit, and
 * delscreen frees what the screen held. */
static SCREEN *setup_curses(void)
{
	struct sigaction sa;
	SCREEN *screen;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	setlocale(LC_ALL, "");
	screen = newterm(NULL, stdout, stdin);
	if (!screen)
		return NULL;
	set_term(screen);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	set_escdelay(25);
	view_init_colors();
	return screen;
}

/* Wait at most POLL_MS for the terminal or the publisher.  Returns false
 * when the terminal is gone. */
static bool wait_input(struct top *t)
{
	struct pollfd fds[2];
	int n = 1;

	fds[0].fd = STDIN_FILENO;
	fds[0].events = POLLIN;
	fds[0].revents = 0;
	fds[1].fd = fascia_monitor_fd(t->monitor);
	fds[1].events = POLLIN;
	fds[1].revents = 0;
	if (fds[1].fd >= 0)
		n = 2;
	if (poll(fds, n, POLL_MS) < 0 && errno != EINTR)
		return false;
	return !(fds[0].revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void loop(struct ui *ui)
{
	struct top *t = ui->top;
	int64_t drawn = 0;
	int ch;

	while (!ui->quit && !got_signal) {
		if (!wait_input(t))
			break;
		if (top_model_drain(t, DRAIN_MAX) > 0)
			ui->dirty = true;
		top_model_maybe_requery(t);
		top_history_maybe_ask(t);
		check_hello(ui);
		while (!ui->quit && (ch = getch()) != ERR)
			handle_key(ui, ch);
		if (ui->dirty || top_now_ms() - drawn >= REDRAW_MS) {
			view_draw(t, ui->status, ui->pending != NULL);
			drawn = top_now_ms();
			ui->dirty = false;
		}
	}
}

/* The curses view until q (0), a signal or a lost terminal (1). */
int ui_run(struct top *t)
{
	struct ui ui;
	SCREEN *screen;

	memset(&ui, 0, sizeof(ui));
	ui.top = t;
	ui.commander = fascia_client_new_secure(
		t->control, TOP_COMMAND_TIMEOUT_MS, t->security);
	if (!ui.commander) {
		fprintf(stderr, "fascia-top: %s: %s\n", t->control,
			strerror(errno));
		return 1;
	}
	if (top_model_query(t) < 0) {
		snprintf(ui.status, sizeof(ui.status), "no reply from %s: %s",
			 t->control, top_no_reply_why(t));
		ui.hello = HELLO_NO_REPLY;
	} else {
		snprintf(ui.status, sizeof(ui.status), "connected to %s",
			 t->control);
		ui.hello = HELLO_CONNECTED;
	}
	screen = setup_curses();
	if (!screen) {
		fprintf(stderr,
			"fascia-top: cannot use the terminal (TERM=%s)\n",
			getenv("TERM") ? getenv("TERM") : "");
		fascia_client_destroy(&ui.commander);
		return 1;
	}
	loop(&ui);
	endwin();
	delscreen(screen);
	fascia_client_destroy(&ui.commander);
	return ui.quit ? 0 : 1;
}

/*
 * fasciad's configuration file: the keys of fasciad.conf(5), the bounds, and
 * each error reported with its line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemon/config.c"
#include "../../daemon/interlock.c"

static char path[64];
static struct fd_conf conf;
static struct conf_errors errs;

static int load(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/fascia-conf-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = conf_load(path, &conf, &errs);
	unlink(path);
	return rc;
}

/* The error at line, whose message contains what. */
static void assert_error(int line, const char *what)
{
	for (int i = 0; i < errs.n; i++)
		if (errs.e[i].line == line && strstr(errs.e[i].message, what))
			return;
	for (int i = 0; i < errs.n; i++)
		print_error("  line %d: %s\n", errs.e[i].line,
			    errs.e[i].message);
	fail_msg("no error '%s' at line %d", what, line);
}

static void test_builtin(void **state)
{
	(void)state;
	conf_builtin(&conf);
	assert_int_equal(conf.ndev, 1);
	assert_string_equal(conf.dev[0].name, "sim");
	assert_string_equal(conf.dev[0].host, "127.0.0.1");
	assert_int_equal(conf.dev[0].port, 1502);
	assert_int_equal(conf.tick_hz, 50);
	assert_int_equal(conf.publish_hz, 10);
	assert_true(conf.dev[0].limit_mmhg <= FASCIA_CEILING_MMHG);
	assert_true(conf.ilk.v[ILK_OVERPRESSURE][0] == 5);
	/* Where `make install` puts them, not a path that depends on the
	 * directory the daemon starts in. */
	assert_true(conf.profiles[0] == '/');
	assert_non_null(strstr(conf.profiles, "/share/fascia/profiles"));
}

/* The example of fasciad.conf(5), inline comments and all. */
static void test_design_example(void **state)
{
	(void)state;
	assert_int_equal(load("[daemon]\n"
			      "control = tcp://127.0.0.1:7410\n"
			      "publish = tcp://127.0.0.1:7411\n"
			      "profiles = etc/profiles\n"
			      "tick_hz = 50\n"
			      "publish_hz = 10\n"
			      "\n"
			      "[device sim]\n"
			      "transport = tcp            ; or rtu\n"
			      "address = 127.0.0.1:1502   ; or /dev/ttyUSB0\n"
			      "baud = 115200              ; rtu only\n"
			      "unit = 1\n"
			      "chambers = 8\n"
			      "limit_mmhg = 80\n"
			      "watchdog_ms = 500\n"),
			 0);
	assert_int_equal(conf.ndev, 1);
	assert_string_equal(conf.dev[0].host, "127.0.0.1");
	assert_int_equal(conf.dev[0].port, 1502);
	assert_int_equal(conf.dev[0].chambers, 8);
	assert_true(conf.dev[0].limit_mmhg == 80);
	assert_int_equal(conf.dev[0].line, 8);
}

static void test_rtu_and_thresholds(void **state)
{
	(void)state;
	assert_int_equal(load("[daemon]\n"
			      "tick_hz = 200\n"
			      "deviation_mmhg = 10\n"
			      "hold_s = 300\n"
			      "[device left]\n"
			      "transport = rtu\n"
			      "address = /dev/ttyUSB0\n"
			      "baud = 19200\n"
			      "parity = e\n"
			      "[device right]\n"),
			 0);
	assert_int_equal(conf.tick_hz, 200);
	assert_true(conf.ilk.v[ILK_DEVIATION][0] == 10);
	assert_true(conf.ilk.v[ILK_HOLD_TIME][1] == 300);
	assert_true(conf.ilk.v[ILK_HOLD_TIME][0] == 30); /* default kept */
	assert_int_equal(conf.ndev, 2);
	assert_int_equal(conf.dev[0].transport, TRANSPORT_RTU);
	assert_string_equal(conf.dev[0].path, "/dev/ttyUSB0");
	assert_int_equal(conf.dev[0].baud, 19200);
	assert_int_equal(conf.dev[0].parity, 'E');
	/* A section without keys is a device with the defaults. */
	assert_string_equal(conf.dev[1].name, "right");
	assert_int_equal(conf.dev[1].port, 1502);
}

/* Every error at once, each with its line. */
static void test_errors_with_lines(void **state)
{
	(void)state;
	assert_int_equal(load("[daemon]\n"                      /* 1 */
			      "tick_hz = 5\n"                   /* 2 */
			      "publish_hz = ten\n"              /* 3 */
			      "control = http://x\n"            /* 4 */
			      "colour = blue\n"                 /* 5 */
			      "overpressure_margin_mmhg = 20\n" /* 6 */
			      "tick_hz = 50\n"                  /* 7 */
			      "[device a]\n"                    /* 8 */
			      "limit_mmhg = 90\n"               /* 9 */
			      "watchdog_ms = 10\n"              /* 10 */
			      "address = nohost\n"              /* 11 */
			      "chambers = 17\n"                 /* 12 */
			      "baud = 12345\n"                  /* 13 */
			      "parity = X\n"                    /* 14 */
			      "[device a]\n"                    /* 15 */
			      "[device b c]\n"                  /* 16 */
			      "[servers]\n"                     /* 17 */
			      "not a key value line\n"          /* 18 */
			      "[device r]\n"                    /* 19 */
			      "transport = rtu\n"               /* 20 */
			      "unit = 0\n"),                    /* 21 */
			 -1);
	assert_error(2, "tick_hz: 5 is outside 10..200");
	assert_error(3, "publish_hz: 'ten' is not a whole number");
	assert_error(4, "not a ZeroMQ endpoint");
	assert_error(5, "unknown key 'colour'");
	assert_error(6, "overpressure_margin_mmhg: 20 is outside 0..10");
	assert_error(7, "tick_hz: given twice");
	assert_error(9, "limit_mmhg: 90 is outside 10..80");
	assert_error(10, "watchdog_ms: 10 is outside 50..5000");
	assert_error(11, "not HOST:PORT");
	assert_error(12, "chambers: 17 is outside 1..16");
	assert_error(13, "not a standard rate");
	assert_error(14, "parity");
	assert_error(15, "defined twice");
	assert_error(16, "device name 'b c'");
	assert_error(17, "unknown section [servers]");
	assert_error(18, "not a key = value line");
	assert_error(19, "rtu needs address");
	assert_error(21, "unit: 0 is outside 1..247");
}

static void test_file_level_errors(void **state)
{
	(void)state;
	assert_int_equal(load("[daemon]\ntick_hz = 50\n"), -1);
	assert_error(0, "no [device NAME] section");
	assert_int_equal(load("[daemon]\n"
			      "control = tcp://127.0.0.1:1\n"
			      "publish = tcp://127.0.0.1:1\n"
			      "[device x]\n"),
			 -1);
	assert_error(0, "control and publish are the same");
	assert_int_equal(conf_load("/nonexistent/fasciad.conf", &conf, &errs),
			 -1);
	assert_error(0, "cannot open");
}

/* The file the README starts the daemon with, from the repository's root. */
static void test_shipped_example(void **state)
{
	(void)state;
	assert_int_equal(conf_load("etc/fasciad.conf.example", &conf, &errs),
			 0);
	assert_string_equal(conf.profiles, "etc/profiles");
	assert_int_equal(conf.ndev, 1);
	assert_string_equal(conf.dev[0].name, "sim");
	assert_string_equal(conf.dev[0].host, "127.0.0.1");
	assert_int_equal(conf.dev[0].port, 1502);
}

/* More errors than are kept: they are counted, not lost silently. */
static void test_many_errors(void **state)
{
	char text[4096] = "[device x]\n";

	(void)state;
	for (int i = 0; i < 40; i++)
		strcat(text, "unit = 999\n");
	assert_int_equal(load(text), -1);
	assert_int_equal(errs.n, CONF_MAX_ERRORS);
	assert_int_equal(errs.dropped, 40 - CONF_MAX_ERRORS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_rtu_and_thresholds),
		cmocka_unit_test(test_errors_with_lines),
		cmocka_unit_test(test_file_level_errors),
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test(test_many_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

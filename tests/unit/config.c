/*
 * fasciad's configuration file: the keys of fasciad.conf(5), the bounds, and
 * each error reported with its line: a key given twice in any section, and
 * the files that parse but cannot work (a watchdog the tick cannot feed,
 * two devices at one address, the keys of one transport on the other).
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
#include "../../daemon/confdev.c"
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
	assert_non_null(strstr(conf.profiles, "/etc/fascia/profiles"));
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
			      "; baud = 115200 is for rtu: refused here\n"
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
	assert_error(7, "tick_hz: given twice in [daemon], first at line 2");
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

/* A key given twice is refused in every section, naming both lines, and
 * neither value is taken for the other. */
static void test_a_key_given_twice_in_any_section(void **state)
{
	const char *dev[][2] = {
		{"transport", "tcp"}, {"address", "127.0.0.1:1502"},
		{"unit", "2"},        {"chambers", "4"},
		{"limit_mmhg", "40"}, {"watchdog_ms", "500"},
	};
	char text[2048] = "[daemon]\n"                     /* 1 */
			  "tick_hz = 50\n"                 /* 2 */
			  "overpressure_margin_mmhg = 5\n" /* 3 */
			  "profiles = a\n"                 /* 4 */
			  "tick_hz = 100\n"                /* 5 */
			  "overpressure_margin_mmhg = 2\n" /* 6 */
			  "[device a]\n"                   /* 7 */
			  "limit_mmhg = 40\n"              /* 8 */
			  "limit_mmhg = 80\n"              /* 9 */
			  "[daemon]\n"                     /* 10 */
			  "profiles = b\n"                 /* 11 */
			  "[device b]\n";                  /* 12 */
	char what[96];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) { /* 13.. */
		snprintf(what, sizeof(what), "%s = %s\n%s = %s\n", dev[i][0],
			 dev[i][1], dev[i][0], dev[i][1]);
		strcat(text, what);
	}
	strcat(text, "[device r]\ntransport = rtu\naddress = /dev/ttyS0\n"
		     "baud = 9600\nbaud = 9600\nparity = E\nparity = E\n");
	assert_int_equal(load(text), -1);
	assert_error(5, "tick_hz: given twice in [daemon], first at line 2");
	assert_error(6, "overpressure_margin_mmhg: given twice in [daemon], "
			"first at line 3");
	assert_error(9, "limit_mmhg: given twice in [device a], first at "
			"line 8: keep one");
	assert_error(11, "profiles: given twice in [daemon], first at line 4");
	for (i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) {
		snprintf(what, sizeof(what),
			 "%s: given twice in [device b], first at line %zu",
			 dev[i][0], 13 + 2 * i);
		assert_error(14 + 2 * (int)i, what);
	}
	assert_error(29, "baud: given twice in [device r], first at line 28");
	assert_error(31, "parity: given twice in [device r], first at line 30");
	/* The first value stands; the second was not read. */
	assert_int_equal(conf.tick_hz, 50);
	assert_true(conf.dev[0].limit_mmhg == 40);
	assert_true(conf.ilk.v[ILK_OVERPRESSURE][0] == 5);

	/* The same key in two devices is no repetition. */
	assert_int_equal(load("[device a]\nlimit_mmhg = 40\n"
			      "[device b]\nlimit_mmhg = 40\n"
			      "address = 127.0.0.1:1503\n"),
			 0);
}

/* inih reads an indented line as more of the key above: a second value,
 * refused with what to do about the indent. */
static void test_an_indented_line_is_not_a_new_key(void **state)
{
	(void)state;
	assert_int_equal(load("[device a]\n"
			      "limit_mmhg = 40\n"
			      "  unit = 2\n"),
			 -1);
	assert_error(3, "limit_mmhg: an indented line is read as more of "
			"line 2: start each key at the line's beginning");
}

/* watchdog_ms: at least comms_ticks + 2 tick periods, whichever section
 * comes first. */
static void test_a_watchdog_shorter_than_the_tick_can_feed(void **state)
{
	(void)state;
	assert_int_equal(load("[daemon]\n"
			      "tick_hz = 10\n"
			      "[device a]\n"
			      "watchdog_ms = 50\n"),
			 -1);
	assert_error(4, "watchdog_ms: 50 is under 5 ticks at tick_hz 10 "
			"(comms_ticks + 2): give 500 or more, or raise "
			"tick_hz");
	assert_int_equal(errs.n, 1);

	/* [daemon] after the device, and the bound exactly. */
	assert_int_equal(load("[device a]\n"
			      "watchdog_ms = 500\n"
			      "[daemon]\n"
			      "tick_hz = 10\n"),
			 0);
	assert_int_equal(load("[device a]\n"
			      "watchdog_ms = 99\n"
			      "[device b]\n"
			      "address = 127.0.0.1:1503\n"
			      "watchdog_ms = 100\n"),
			 -1);
	assert_error(2, "give 100 or more");
	assert_int_equal(errs.n, 1);

	/* A slower comms interlock needs a longer watchdog: the default
	 * 500 ms, not given, is refused at the device's section. */
	assert_int_equal(load("[daemon]\n"
			      "tick_hz = 10\n"
			      "comms_ticks = 10\n"
			      "[device a]\n"),
			 -1);
	assert_error(4, "watchdog_ms: 500 is under 12 ticks at tick_hz 10");
	assert_error(4, "give 1200 or more");
}

/* One controller, one device: the same tcp host, port and unit, or the
 * same serial port whatever the units. */
static void test_two_devices_at_one_address(void **state)
{
	(void)state;
	assert_int_equal(load("[device a]\n"             /* 1 */
			      "address = box:1502\n"     /* 2 */
			      "unit = 3\n"               /* 3 */
			      "[device b]\n"             /* 4 */
			      "unit = 3\n"               /* 5 */
			      "address = BOX:1502\n"     /* 6 */
			      "[device c]\n"             /* 7 */
			      "[device d]\n"             /* 8 */
			      "[device r1]\n"            /* 9 */
			      "transport = rtu\n"        /* 10 */
			      "address = /dev/ttyUSB0\n" /* 11 */
			      "[device r2]\n"            /* 12 */
			      "transport = rtu\n"        /* 13 */
			      "address = /dev/ttyUSB0\n" /* 14 */
			      "unit = 2\n"),             /* 15 */
			 -1);
	assert_error(6, "device b: BOX:1502 unit 3 is device a's (line 1): "
			"give each its own address or unit");
	/* Both at the default address: the second section is the line. */
	assert_error(8, "device d: 127.0.0.1:1502 unit 1 is device c's "
			"(line 7)");
	assert_error(14, "device r2: /dev/ttyUSB0 is device r1's (line 9): "
			 "one device a serial port, even with other units");
	assert_int_equal(errs.n, 3);

	/* Other units behind one tcp gateway, other ports, other paths. */
	assert_int_equal(load("[device a]\n"
			      "address = box:1502\n"
			      "[device b]\n"
			      "address = box:1502\n"
			      "unit = 2\n"
			      "[device c]\n"
			      "address = box:1503\n"
			      "[device r1]\n"
			      "transport = rtu\n"
			      "address = /dev/ttyUSB0\n"
			      "[device r2]\n"
			      "transport = rtu\n"
			      "address = /dev/ttyUSB1\n"),
			 0);

	/* An address refused as it was read clashes with nothing. */
	assert_int_equal(load("[device a]\n"
			      "[device b]\n"
			      "address = 127.0.0.1:0\n"),
			 -1);
	assert_error(3, "address port: 0 is outside 1..65535");
	assert_int_equal(errs.n, 1);
}

/* The keys of one transport on a device of the other, in either order. */
static void test_the_other_transports_keys(void **state)
{
	(void)state;
	assert_int_equal(load("[device t]\n"               /* 1 */
			      "baud = 9600\n"              /* 2 */
			      "parity = E\n"               /* 3 */
			      "[device p]\n"               /* 4 */
			      "address = /dev/ttyUSB0\n"   /* 5 */
			      "[device r]\n"               /* 6 */
			      "address = 127.0.0.1:1502\n" /* 7 */
			      "transport = rtu\n"),        /* 8 */
			 -1);
	assert_error(2, "baud: device t is tcp; baud and parity are for rtu: "
			"remove the line, or transport = rtu");
	assert_error(3, "parity: device t is tcp");
	assert_error(5, "address: '/dev/ttyUSB0' is a serial device, but "
			"device p is tcp: give HOST:PORT, or transport = rtu");
	assert_error(7, "address: '127.0.0.1:1502' is not a serial device, "
			"but device r is rtu: give its path (/dev/ttyUSB0), or "
			"transport = tcp");
	assert_int_equal(errs.n, 4);

	/* transport may come after the keys it decides. */
	assert_int_equal(load("[device r]\n"
			      "address = /dev/ttyUSB0\n"
			      "baud = 9600\n"
			      "parity = o\n"
			      "transport = rtu\n"),
			 0);
	assert_string_equal(conf.dev[0].path, "/dev/ttyUSB0");
	assert_int_equal(conf.dev[0].baud, 9600);
	assert_int_equal(conf.dev[0].parity, 'O');
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
		cmocka_unit_test(test_a_key_given_twice_in_any_section),
		cmocka_unit_test(test_an_indented_line_is_not_a_new_key),
		cmocka_unit_test(
			test_a_watchdog_shorter_than_the_tick_can_feed),
		cmocka_unit_test(test_two_devices_at_one_address),
		cmocka_unit_test(test_the_other_transports_keys),
		cmocka_unit_test(test_many_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

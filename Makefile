# fascia: a plain Makefile.  `make` builds everything into build/;
# `make check` installs missing Debian packages (as root), builds and runs
# every test; `make demo` runs a gentle session against the simulator.

B ?= build
PREFIX ?= /usr/local
DESTDIR ?=
PYTHON ?= /usr/bin/python3

CC ?= cc
CFLAGS ?= -O2 -g
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FASCIA_CFLAGS = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -Iinclude

PKG_CONFIG ?= pkg-config
pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pkg_libs = $(shell $(PKG_CONFIG) --libs $(1))

# The pkg-config modules each part links: what its own #includes and calls
# use (modbus_*, event_*, zmq_*, json_*, ini_*, curses), and, as every
# program links libfascia.a, libfascia's.  A part that starts to use a
# library gets it on its own line here, and only there.
#   libfascia (protocol/): zmq_* (client.c), zcert_* (libczmq: a client's
#   CURVE certificate), json_*; fmin, fmax, round.
LIB_PKGS = libzmq libczmq jansson
LIB_SYS = -lm
#   fascia-sim: event_*, zmq_*, json_*; its Modbus server is its own.
SIM_PKGS = libevent $(LIB_PKGS)
SIM_SYS = -lm
#   fasciad: modbus_*, event_*, zmq_*, json_*, ini_*, sqlite3_* (the
#   journal), crypto_hash_sha256 (libsodium: a profile's hash), zauth,
#   zcert_*, zsys_init (libczmq: CURVE's ZAP handler), sd_notify
#   (libsystemd: the unit's readiness and watchdog); threads, libm.
#   (Nothing calls evthread_*: add libevent_pthreads when something does.)
DAEMON_PKGS = libmodbus libevent libzmq libczmq jansson inih sqlite3 \
	libsodium libsystemd
DAEMON_SYS = -lpthread -lm
#   fasciactl: json_*, zcert_* (keygen), and libfascia's client (zmq_*).
CTL_PKGS = $(LIB_PKGS)
CTL_SYS = $(LIB_SYS)
#   fascia-top: curses, json_*, and libfascia's client (zmq_*).
TOP_PKGS = ncursesw $(LIB_PKGS)
TOP_SYS = $(LIB_SYS)
#   fascia-web: event_*, evhttp_* (libevent), bufferevent_openssl_*
#   (libevent_openssl) and SSL_* (openssl: HTTPS), zmq_* (its rooms),
#   json_*, ini_*, crypto_pwhash_* and randombytes (libsodium: passwords,
#   sessions), and libfascia's CURVE keys (zcert_*: libczmq); threads (the
#   log's writer, the password checker).
WEB_PKGS = libevent libevent_openssl openssl libzmq libczmq jansson inih \
	libsodium
WEB_SYS = -lpthread -lm
#   The unit tests, the benches and the fuzzers #include modules of every
#   part (tests/unit/*.c the daemon's .c files): the whole list.
TEST_PKGS = libmodbus libevent libzmq libczmq jansson inih sqlite3 \
	libsodium libsystemd
TEST_SYS = -lpthread -lm
UNIT_PKGS = $(TEST_PKGS) cmocka

libs_of = $(call pkg_libs,$(sort $(1)))
LIB_LIBS = $(call libs_of,$(LIB_PKGS)) $(LIB_SYS)
SIM_LIBS = $(call libs_of,$(SIM_PKGS)) $(SIM_SYS)
DAEMON_LIBS = $(call libs_of,$(DAEMON_PKGS)) $(DAEMON_SYS)
CTL_LIBS = $(call libs_of,$(CTL_PKGS)) $(CTL_SYS)
TOP_LIBS = $(call libs_of,$(TOP_PKGS)) $(TOP_SYS)
WEB_LIBS = $(call libs_of,$(WEB_PKGS)) $(WEB_SYS)
TEST_LIBS = $(call libs_of,$(TEST_PKGS)) $(TEST_SYS)
UNIT_LIBS = $(call libs_of,$(UNIT_PKGS)) $(TEST_SYS)

# Every object is compiled with the headers of these (modbus.h is under
# /usr/include/modbus).
PKG_CFLAGS = $(call pkg_cflags,$(TEST_PKGS))
ALL_CFLAGS = $(FASCIA_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) $(if $(SAN),$(SAN_FLAGS))
SAN_LDFLAGS = -fsanitize=address,undefined
ALL_LDFLAGS = $(LDFLAGS) $(if $(SAN),$(SAN_LDFLAGS))

# Debian 12 packages the build, the tests and the demo need.
DEB_PACKAGES = build-essential pkg-config libmodbus-dev libevent-dev \
	libzmq3-dev libjansson-dev libinih-dev libcmocka-dev libncurses-dev \
	python3 python3-zmq python3-pytest python3-pymodbus mbpoll tmux \
	python3-serial-asyncio libsqlite3-dev libsodium-dev sqlite3 \
	libczmq-dev libsystemd-dev libssl-dev \
	debhelper dh-python lintian systemd strace python3-seccomp \
	chromium chromium-driver python3-selenium python3-prometheus-client \
	clang libclang-rt-14-dev valgrind

# Before anything is compiled, pkg-check asks pkg-config for every module
# the build needs and stops with one message naming the Debian packages
# that are missing (else the compiler fails on a header or a symbol, naming
# a library that may well be installed).  Every compile waits for it.  It
# is a target, not a parse-time test: `make deps`, `clean`, `format` need
# no library, and when deps or a goal that runs deps first (DEPS_FIRST) is
# on the command line, pkg-check waits for deps.
CHECK_PKGS = $(sort $(LIB_PKGS) $(SIM_PKGS) $(DAEMON_PKGS) $(CTL_PKGS) \
	$(TOP_PKGS) $(WEB_PKGS) $(TEST_PKGS) $(UNIT_PKGS))
DEB_OF_libmodbus = libmodbus-dev
DEB_OF_libevent = libevent-dev
DEB_OF_libevent_pthreads = libevent-dev
DEB_OF_libzmq = libzmq3-dev
DEB_OF_jansson = libjansson-dev
DEB_OF_inih = libinih-dev
DEB_OF_cmocka = libcmocka-dev
DEB_OF_ncursesw = libncurses-dev
DEB_OF_sqlite3 = libsqlite3-dev
DEB_OF_libsodium = libsodium-dev
DEB_OF_libczmq = libczmq-dev
DEB_OF_libsystemd = libsystemd-dev
DEB_OF_libevent_openssl = libevent-dev
DEB_OF_openssl = libssl-dev
MISSING_MODULES = $(shell for m in $(CHECK_PKGS); do \
	$(PKG_CONFIG) --exists $$m || echo $$m; done)
MISSING_DEBS = $(if $(shell command -v $(firstword $(PKG_CONFIG)) 2>/dev/null),\
	$(sort $(foreach m,$(MISSING_MODULES),$(or $(DEB_OF_$(m)),$(m)))),pkg-config)
MISSING = $(strip $(MISSING_DEBS))
MISSING_MESSAGE = fascia: missing Debian packages: $(MISSING) — run \
	"make deps" as root (it installs them with apt-get)
DEPS_FIRST = check demo bench soak soak-journal safety-report check-valgrind \
	bench-sim fuzz

LIB_SRCS = $(wildcard protocol/*.c)
SIM_SRCS = $(wildcard sim/*.c)
DAEMON_SRCS = $(wildcard daemon/*.c)
CTL_SRCS = $(wildcard clients/fasciactl/*.c)
TOP_SRCS = $(wildcard clients/fascia-top/*.c)
WEB_SRCS = $(wildcard clients/fascia-web/*.c)
UNIT_SRCS = $(wildcard tests/unit/*.c)
BENCH_SRCS = $(wildcard tests/bench/*.c)
FUZZ_SRCS = $(wildcard tests/fuzz/*.c)

LIB_OBJS = $(LIB_SRCS:%.c=$(B)/obj/%.o)
SIM_OBJS = $(SIM_SRCS:%.c=$(B)/obj/%.o)
DAEMON_OBJS = $(DAEMON_SRCS:%.c=$(B)/obj/%.o)
CTL_OBJS = $(CTL_SRCS:%.c=$(B)/obj/%.o)
TOP_OBJS = $(TOP_SRCS:%.c=$(B)/obj/%.o)
WEB_OBJS = $(WEB_SRCS:%.c=$(B)/obj/%.o)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
BENCH_BINS = $(BENCH_SRCS:tests/bench/%.c=$(B)/bench/%)

# A program is built once it has sources.
PROGRAMS = $(B)/fascia-sim $(if $(wildcard daemon/fasciad.c),$(B)/fasciad) \
	$(if $(CTL_SRCS),$(B)/fasciactl) $(if $(TOP_SRCS),$(B)/fascia-top) \
	$(if $(WEB_SRCS),$(B)/fascia-web)

.PHONY: all check unit unit-asan system bench bench-sim demo deps install \
	programs deb \
	clean format fuzz fuzz-smoke check-valgrind soak soak-journal safety-report \
	pkg-check
.DEFAULT_GOAL := all

all: $(B)/libfascia.a $(B)/libfascia.so $(PROGRAMS) $(UNIT_BINS) $(BENCH_BINS)

pkg-check: $(if $(filter deps $(DEPS_FIRST),$(MAKECMDGOALS)),deps)
	$(if $(MISSING),$(error $(MISSING_MESSAGE)))

$(B)/obj/%.o: %.c | pkg-check
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libfascia.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/libfascia.so: $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(LIB_LIBS)

$(B)/fascia-sim: $(SIM_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(SIM_OBJS) $(B)/libfascia.a $(SIM_LIBS)

$(B)/fasciad: $(DAEMON_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(DAEMON_OBJS) $(B)/libfascia.a $(DAEMON_LIBS)

$(B)/fasciactl: $(CTL_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CTL_OBJS) $(B)/libfascia.a $(CTL_LIBS)

$(B)/fascia-top: $(TOP_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(TOP_OBJS) $(B)/libfascia.a $(TOP_LIBS)

# fascia-web's objects also see OpenSSL's and libevent_openssl's headers.
$(WEB_OBJS): ALL_CFLAGS += $(call pkg_cflags,libevent_openssl openssl)
$(B)/fascia-web: $(WEB_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(WEB_OBJS) $(B)/libfascia.a $(WEB_LIBS)

# A unit test is one file; it may #include the module .c it tests.
$(B)/tests/%: tests/unit/%.c $(B)/libfascia.a | pkg-check
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,cmocka) -MMD -MP -o $@ $< \
		$(B)/libfascia.a $(ALL_LDFLAGS) $(UNIT_LIBS)

$(B)/bench/%: tests/bench/%.c $(B)/libfascia.a | pkg-check
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(B)/libfascia.a $(ALL_LDFLAGS) \
		$(TEST_LIBS)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# Install what is missing: as root with apt-get, otherwise say how.
deps:
	@missing=; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
			grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "missing Debian packages:$$missing" >&2; \
		echo "run: sudo apt-get install -y$$missing" >&2; \
		exit 1; \
	fi

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

unit-asan:
	$(MAKE) --no-print-directory B=$(B)/asan SAN=1 unit

system: all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) -m pytest -q tests/system

check: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory unit-asan
	$(MAKE) --no-print-directory system
	$(if $(FUZZ_SRCS),$(MAKE) --no-print-directory fuzz-smoke)

bench-sim: deps all
	$(B)/bench/bench_sim --sim $(B)/fascia-sim

# Every benchmark in one run: a table, and build/bench.json.
bench: deps all
	$(if $(wildcard tests/bench/run.py),FASCIA_BUILD=$(abspath $(B)) \
		$(PYTHON) tests/bench/run.py --json $(B)/bench.json, \
		$(B)/bench/bench_sim --sim $(B)/fascia-sim)

# The long run: RSS over 10 minutes (not part of bench or check).
soak: deps all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) tests/bench/soak.py

# kill -9 of fasciad mid-session, CRASH_ROUNDS times (check does 20): the
# journal must open cleanly, hold every alarm and close the session as
# interrupted, each time.
CRASH_ROUNDS ?= 200
soak-journal: deps all
	FASCIA_CRASH_ROUNDS=$(CRASH_ROUNDS) FASCIA_BUILD=$(abspath $(B)) \
		$(PYTHON) -m pytest -q tests/system/test_journal_crash.py

# libFuzzer targets (clang): FUZZ_SECONDS each, seeds in tests/fuzz/corpus.
FUZZ_CC = clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -g -O1
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) | pkg-check
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FASCIA_CFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) -o $@ $< \
		$(LIB_SRCS) $(TEST_LIBS)

fuzz: deps $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		tests/fuzz/run.sh $$f $(FUZZ_SECONDS); done

fuzz-smoke: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		tests/fuzz/run.sh $$f $(FUZZ_SMOKE_SECONDS); done

# The system tests under valgrind memcheck: the simulator's with
# fascia-sim under it, the daemon's with fasciad under it.
check-valgrind: deps all
	FASCIA_VALGRIND=fascia-sim FASCIA_BUILD=$(abspath $(B)) $(PYTHON) -m pytest \
		-q tests/system/test_sim_*.py
	FASCIA_VALGRIND=fasciad FASCIA_BUILD=$(abspath $(B)) $(PYTHON) -m pytest \
		-q tests/system/test_daemon_*.py tests/system/test_fault_matrix.py \
		tests/system/test_journal.py tests/system/test_security.py

# Re-measure the reactions quoted in docs/safety.md.
safety-report: deps all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) tests/system/safety_report.py \
		docs/safety.md

demo: deps all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) clients/demo.py

# The installed layout (docs/install.md), which the daemon's built-in
# defaults must match: fasciad in sbin, the clients and the simulator in
# bin, the configuration, the profiles and the clients' certificates in
# SYSCONFDIR/fascia (/etc/fascia for PREFIX=/usr, as the package has them),
# the journal's directory in LOCALSTATEDIR/lib/fascia (/var: fasciad's
# built-in journal and the unit's StateDirectory= are /var/lib/fascia
# whatever PREFIX), the unit in SYSTEMDUNITDIR (debian/rules gives
# Debian 12's /lib/systemd/system), the example configuration and
# docs/install.md in DOCDIR.  config.o is the one object that knows
# PROFILES_DIR (-D), and $(B)/profiles-dir, rewritten only when the
# directory changes, rebuilds it when PREFIX does: a build for one PREFIX
# installed under another would look for its profiles where none are.
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/fascia
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LOCALSTATEDIR ?= /var
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONF_DIR = $(SYSCONFDIR)/fascia
PROFILES_DIR = $(SYSCONF_DIR)/profiles
STATE_DIR = $(LOCALSTATEDIR)/lib/fascia
SBIN_PROGRAMS = $(filter %/fasciad,$(PROGRAMS))
BIN_PROGRAMS = $(filter-out %/fasciad,$(PROGRAMS))
# The installed files that name the layout: /etc/fascia and /usr/sbin in
# the source become SYSCONF_DIR and SBINDIR.
INSTALL_PATHS = sed -e 's|/etc/fascia|$(SYSCONF_DIR)|g' \
	-e 's|/usr/sbin/fasciad|$(SBINDIR)/fasciad|g'
# Install $(1) as $(2) unless $(2) exists: a configuration or a profile,
# once installed, is the administrator's (the package's conffiles, in
# `make install`'s terms).
INSTALL_KEPT = if [ -e $(2) ]; then echo "kept $(2) (yours; the new one \
	is $(1))"; else install -m 644 $(1) $(2); fi

$(B)/obj/daemon/config.o: ALL_CFLAGS += \
	-DFASCIA_PROFILES_DIR='"$(PROFILES_DIR)"'
$(B)/obj/daemon/config.o: $(B)/profiles-dir
$(B)/profiles-dir: FORCE
	@mkdir -p $(@D)
	@echo '$(PROFILES_DIR)' | cmp -s - $@ || echo '$(PROFILES_DIR)' > $@
# Always out of date: $(B)/profiles-dir's recipe runs every time.
FORCE:

# fascia-web's pages without `static =`: the source tree's when it runs
# from the directory it was built in, the installed ones (WEB_DIR)
# anywhere else.  Its config.o knows the three, and $(B)/web-dirs rebuilds
# it when one changes, as profiles-dir does config.o's.
WEB_DIR = $(PREFIX)/share/fascia/web
WEB_TREE = $(abspath clients/fascia-web/static)
WEB_DIRS = $(WEB_DIR) $(abspath $(B)) $(WEB_TREE)
$(B)/obj/clients/fascia-web/config.o: ALL_CFLAGS += \
	-DFASCIA_WEB_STATIC='"$(WEB_DIR)"' \
	-DFASCIA_WEB_BUILD='"$(abspath $(B))"' -DFASCIA_WEB_TREE='"$(WEB_TREE)"'
$(B)/obj/clients/fascia-web/config.o: $(B)/web-dirs
$(B)/web-dirs: FORCE
	@mkdir -p $(@D)
	@echo '$(WEB_DIRS)' | cmp -s - $@ || echo '$(WEB_DIRS)' > $@

# What it installs, not the tests and benches of `all`.  libfascia and
# its headers are for developers; the Debian package leaves them out
# (debian/not-installed).
programs: $(B)/libfascia.a $(B)/libfascia.so $(PROGRAMS)

install: programs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/fascia \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(PROFILES_DIR)
	install -d -m 750 $(DESTDIR)$(SYSCONF_DIR)/clients $(DESTDIR)$(STATE_DIR)
	install -m 755 $(BIN_PROGRAMS) $(DESTDIR)$(BINDIR)
	$(if $(SBIN_PROGRAMS),install -m 755 $(SBIN_PROGRAMS) $(DESTDIR)$(SBINDIR))
	install -m 644 $(B)/libfascia.a $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(B)/libfascia.so $(DESTDIR)$(PREFIX)/lib
	install -m 644 include/fascia/*.h $(DESTDIR)$(PREFIX)/include/fascia
	install -m 644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1
	install -m 644 docs/man/*.5 $(DESTDIR)$(MANDIR)/man5
	install -m 644 docs/man/*.8 $(DESTDIR)$(MANDIR)/man8
	install -m 644 docs/install.md $(DESTDIR)$(DOCDIR)
	sed 's|^profiles = .*|profiles = $(PROFILES_DIR)|' etc/fasciad.conf.example \
		> $(DESTDIR)$(DOCDIR)/examples/fasciad.conf.example
	$(INSTALL_PATHS) etc/systemd/fasciad.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/fasciad.service
	$(INSTALL_PATHS) etc/fasciad.conf > $(B)/fasciad.conf
	chmod 644 $(DESTDIR)$(DOCDIR)/examples/fasciad.conf.example \
		$(DESTDIR)$(SYSTEMDUNITDIR)/fasciad.service
	@$(call INSTALL_KEPT,$(B)/fasciad.conf,$(DESTDIR)$(SYSCONF_DIR)/fasciad.conf)
	@for f in etc/profiles/*.json; do \
		$(call INSTALL_KEPT,$$f,$(DESTDIR)$(PROFILES_DIR)/$${f##*/}); \
	done
	$(if $(WEB_SRCS),install -d $(DESTDIR)$(WEB_DIR))
	$(if $(WEB_SRCS),install -m 644 $(wildcard clients/fascia-web/static/*.*) \
		$(DESTDIR)$(WEB_DIR))
	$(if $(WEB_SRCS),install -m 644 etc/fascia-web.conf.example \
		$(DESTDIR)$(SYSCONF_DIR))

# The Debian package (debian/, docs/install.md): dpkg-buildpackage in a
# copy of the tree's files (git's, tracked and untracked, not ignored), so
# that it writes nothing beside the repository; the .deb files, .buildinfo
# and .changes end up in $(B)/deb.  DEB_BUILD_OPTIONS passes through (the
# tests give "nocheck parallel=2").
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_SRC = $(B)/deb/src/fascia-$(DEB_VERSION)
deb: deps
	rm -rf $(B)/deb && mkdir -p $(DEB_SRC)
	git ls-files -z -co --exclude-standard | \
		grep -zv '^$(patsubst ./%,%,$(B))/' | \
		tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	mv $(B)/deb/src/*.deb $(B)/deb/src/*.buildinfo $(B)/deb/src/*.changes \
		$(B)/deb/
	rm -rf $(B)/deb/src
	@ls $(B)/deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

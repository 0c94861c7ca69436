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

PKGS = libmodbus libevent libevent_pthreads libzmq jansson inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ALL_CFLAGS = $(FASCIA_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) $(if $(SAN),$(SAN_FLAGS))
SAN_LDFLAGS = -fsanitize=address,undefined
ALL_LDFLAGS = $(LDFLAGS) $(if $(SAN),$(SAN_LDFLAGS))

# Debian 12 packages the build, the tests and the demo need.
DEB_PACKAGES = build-essential pkg-config libmodbus-dev libevent-dev \
	libzmq3-dev libjansson-dev libinih-dev libcmocka-dev libncurses-dev \
	python3 python3-zmq python3-pytest python3-pymodbus mbpoll tmux \
	python3-serial-asyncio \
	clang libclang-rt-14-dev valgrind

LIB_SRCS = $(wildcard protocol/*.c)
SIM_SRCS = $(wildcard sim/*.c)
DAEMON_SRCS = $(wildcard daemon/*.c)
CTL_SRCS = $(wildcard clients/fasciactl/*.c)
TOP_SRCS = $(wildcard clients/fascia-top/*.c)
UNIT_SRCS = $(wildcard tests/unit/*.c)
BENCH_SRCS = $(wildcard tests/bench/*.c)
FUZZ_SRCS = $(wildcard tests/fuzz/*.c)

LIB_OBJS = $(LIB_SRCS:%.c=$(B)/obj/%.o)
SIM_OBJS = $(SIM_SRCS:%.c=$(B)/obj/%.o)
DAEMON_OBJS = $(DAEMON_SRCS:%.c=$(B)/obj/%.o)
CTL_OBJS = $(CTL_SRCS:%.c=$(B)/obj/%.o)
TOP_OBJS = $(TOP_SRCS:%.c=$(B)/obj/%.o)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
BENCH_BINS = $(BENCH_SRCS:tests/bench/%.c=$(B)/bench/%)

# A program is built once it has sources.
PROGRAMS = $(B)/fascia-sim $(if $(wildcard daemon/fasciad.c),$(B)/fasciad) \
	$(if $(CTL_SRCS),$(B)/fasciactl) $(if $(TOP_SRCS),$(B)/fascia-top)

.PHONY: all check unit unit-asan system bench bench-sim demo deps install \
	clean format fuzz fuzz-smoke check-valgrind soak safety-report
.DEFAULT_GOAL := all

all: $(B)/libfascia.a $(B)/libfascia.so $(PROGRAMS) $(UNIT_BINS) $(BENCH_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libfascia.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/libfascia.so: $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(PKG_LIBS)

$(B)/fascia-sim: $(SIM_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(SIM_OBJS) $(B)/libfascia.a $(PKG_LIBS)

$(B)/fasciad: $(DAEMON_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(DAEMON_OBJS) $(B)/libfascia.a $(PKG_LIBS)

$(B)/fasciactl: $(CTL_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CTL_OBJS) $(B)/libfascia.a $(PKG_LIBS)

$(B)/fascia-top: $(TOP_OBJS) $(B)/libfascia.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(TOP_OBJS) $(B)/libfascia.a $(PKG_LIBS) \
		$(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw)

# A unit test is one file; it may #include the module .c it tests.
$(B)/tests/%: tests/unit/%.c $(B)/libfascia.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(B)/libfascia.a $(ALL_LDFLAGS) \
		$(PKG_LIBS) -lcmocka

$(B)/bench/%: tests/bench/%.c $(B)/libfascia.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(B)/libfascia.a $(ALL_LDFLAGS) \
		$(PKG_LIBS)

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

# libFuzzer targets (clang): FUZZ_SECONDS each, seeds in tests/fuzz/corpus.
FUZZ_CC = clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -g -O1
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FASCIA_CFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) -o $@ $< \
		$(LIB_SRCS) $(PKG_LIBS)

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
		-q tests/system/test_daemon_*.py tests/system/test_fault_matrix.py

# Re-measure the reactions quoted in docs/safety.md.
safety-report: deps all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) tests/system/safety_report.py \
		docs/safety.md

demo: deps all
	FASCIA_BUILD=$(abspath $(B)) $(PYTHON) clients/demo.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
		$(DESTDIR)$(PREFIX)/include/fascia
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(B)/libfascia.a $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(B)/libfascia.so $(DESTDIR)$(PREFIX)/lib
	install -m 644 include/fascia/*.h $(DESTDIR)$(PREFIX)/include/fascia
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/fascia/profiles
	install -m 644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 docs/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 644 docs/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 etc/profiles/*.json $(DESTDIR)$(PREFIX)/share/fascia/profiles

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

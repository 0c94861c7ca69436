#!/bin/sh
# Run one libFuzzer target: tests/fuzz/run.sh BIN SECONDS
#
# First every crash input kept in tests/fuzz/regress/NAME/ is replayed (they
# stay there forever); then the fuzzer runs for SECONDS on a writable work
# corpus, $(dirname BIN)/work/NAME, seeded from tests/fuzz/corpus/NAME.  The
# fuzzer's output goes to $(dirname BIN)/work/NAME.log; one line is printed:
#   NAME: EXECS execs/s, cov COV, corpus FILES files (BYTES bytes)
# A crash (or leak, timeout, out of memory) exits non-zero with the
# sanitizer's report and the path of the input that caused it.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 BIN SECONDS" >&2
	exit 2
fi
bin=$1
seconds=$2
name=$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$(dirname "$bin")" && pwd)
seeds=$here/corpus/$name
regress=$here/regress/$name
work=$out/work/$name
crashes=$out/crashes
log=$out/work/$name.log
opts="-rss_limit_mb=2048 -timeout=10"

if [ ! -x "$bin" ]; then
	echo "$name: no fuzzer at $bin" >&2
	exit 2
fi
mkdir -p "$work" "$crashes"
if [ -d "$seeds" ]; then
	cp -n "$seeds"/* "$work"/ 2>/dev/null
fi

# The crash regressions: each must now run clean.
if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
	if ! "$bin" $opts "$regress"/* >"$log" 2>&1; then
		sed -n '/^==[0-9]*==ERROR\|^invariant\|runtime error\|^Running:\|^    #[0-9]/p' \
			"$log" | head -n 30 >&2
		echo "$name: FAILED: a regression input in $regress crashes" \
			"(full log: $log)" >&2
		exit 1
	fi
fi

"$bin" $opts -max_total_time="$seconds" -print_final_stats=1 \
	-artifact_prefix="$crashes/$name-" "$work" >"$log" 2>&1
rc=$?

execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(sed -n 's/^#[0-9]*[[:space:]].*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
files=$(find "$work" -type f | wc -l)
bytes=$(find "$work" -type f -exec cat {} + | wc -c)

if [ $rc -ne 0 ]; then
	# the report, and where libFuzzer left the input
	sed -n '/^==[0-9]*==ERROR\|^SUMMARY\|^invariant\|runtime error\|^    #[0-9]/p' \
		"$log" | head -n 30 >&2
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
		tail -n 1)
	echo "$name: CRASH (exit $rc): input ${artifact:-(none written)}," \
		"full log: $log" >&2
	echo "$name: keep it: cp ${artifact:-INPUT} $regress/" >&2
	exit 1
fi
echo "$name: ${execs:-?} execs/s, cov ${cov:-?}, corpus $files files" \
	"($bytes bytes)"

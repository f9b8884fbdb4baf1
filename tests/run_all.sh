#!/usr/bin/env bash
# Runs every test program given on the command line, then tests/cli/*.sh; prints one line per test
# and a closing line "N passed, N failed, N skipped", and exits non-zero if any failed.
# Run from the repository root.
#
# Skips: a test that cannot run a section prints a line starting with "SKIP " and the reason (C tests
# with printf, shell tests with echo); each such line counts as one skipped section, apart from the
# tests that passed, and is shown. Under CI (environment CI=true) a skip is a failure of its test,
# since CI has what the tests need (numpy, the vocabularies, root for the tmpfs full-disk test, the
# CPU's own SIMD paths), unless the line starts with "SKIP [ci-ok] ": something CI may lack by
# design, such as a SIMD path the CPU does not have.
# A test program that does not exist is a failure. Each test runs under `timeout` (default 900 s,
# a guard against hangs with room for a slow machine: test_full.sh alone takes about 290 s on 2
# cores; ICLAB_TEST_TIMEOUT to change it; `make test-asan` gives more): a test that runs out is a failure.
set -u
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads slow every
# small parallel region by orders of magnitude. Results do not depend on it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
limit=${ICLAB_TEST_TIMEOUT:-900}
ci=0; [ "${CI:-}" = true ] && ci=1
pass=0; fail=0; skipped=0; failed=()
for t in "$@" tests/cli/*.sh; do
  name=$(basename "$t"); log="/tmp/iclab-test-$name.log"
  if [ ! -x "$t" ]; then
    fail=$((fail+1)); failed+=("$t"); echo "FAIL $name (no such test program: $t)"; continue
  fi
  start=$(date +%s)
  timeout -k 10 "$limit" "$t" > "$log" 2>&1; rc=$?
  secs=$(( $(date +%s) - start ))
  skips=$(grep -c '^SKIP ' "$log"); skipped=$((skipped+skips))
  grep '^SKIP ' "$log" | sed 's/^/    /'
  why=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after ${limit}s"
  elif [ $rc -ne 0 ]; then why="exit status $rc"
  elif [ $ci -eq 1 ] && grep '^SKIP ' "$log" | grep -qv '^SKIP \[ci-ok\] '; then why="a skip under CI=true"
  fi
  if [ -z "$why" ]; then
    pass=$((pass+1)); echo "PASS $name (${secs}s$([ "$skips" -gt 0 ] && echo ", $skips skipped"))"
  else
    fail=$((fail+1)); failed+=("$t"); echo "FAIL $name ($why)"; tail -n 30 "$log" | sed 's/^/    /'
  fi
done
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]

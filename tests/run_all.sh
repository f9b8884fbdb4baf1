#!/usr/bin/env bash
# Runs every test program given on the command line, then tests/cli/*.sh; prints a summary and
# exits non-zero if any failed. Run from the repository root.
set -u
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads slow every
# small parallel region by orders of magnitude. Results do not depend on it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
pass=0; fail=0; failed=()
for t in "$@" tests/cli/*.sh; do
  [ -e "$t" ] || continue
  start=$(date +%s)
  if "$t" > "/tmp/iclab-test-$(basename "$t").log" 2>&1; then
    pass=$((pass+1)); echo "PASS $(basename "$t") ($(( $(date +%s) - start ))s)"
  else
    fail=$((fail+1)); failed+=("$t"); echo "FAIL $(basename "$t")"; tail -n 30 "/tmp/iclab-test-$(basename "$t").log" | sed 's/^/    /'
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

# Helpers shared by the end-to-end tests in tests/cli/*.sh (sourced, not run).
fails=0
ok()  { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
# expect_fail DESCRIPTION PATTERN CMD...: non-zero exit (not a crash), last stderr line matches PATTERN
expect_fail() {
  local desc=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$out" | tail -n 1 | grep -qE "$pat"; then ok "$desc"; else bad "$desc (rc=$rc, stderr: $out)"; fi
}
finish() { echo "$fails failures"; [ "$fails" -eq 0 ]; }

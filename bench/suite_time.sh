#!/usr/bin/env bash
# How long the test suite takes from a fresh clone, as CI runs it: `make test` (the first-time
# install into .venv included) in a clone of HEAD. Writes bench/results/test_suite.md: the CPU,
# the wall time, pytest's closing line and the slowest tests.
#
#   bench/suite_time.sh                 # about 25 minutes on 2 cores
set -euo pipefail
source "$(dirname "$0")/fresh_clone.sh"
fresh_clone clone
commit=$(git rev-parse --short HEAD)
start=$SECONDS
status=0
make test PYTEST_ADDOPTS="--durations=10" > "$work/test.log" 2>&1 || status=$?
seconds=$((SECONDS - start))
closing=$(grep -E '^=+ .*(passed|failed).* =+$' "$work/test.log" | tail -1 | sed 's/^=* //; s/ =*$//')
slowest=$(sed -n '/slowest 10 durations/,/^$/p' "$work/test.log" | grep -E '^[0-9.]+s ' | head -10 | sed 's/^/    /')
failed=$(grep -E '^(FAILED|ERROR) ' "$work/test.log" | sed 's/^/    /' || true)
[ -z "$failed" ] || failed=$'\nWhat failed, as pytest summed it up:\n\n'"$failed"$'\n'
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (CPU family $(lscpu | sed -n 's/^CPU family: *//p'), model $(lscpu | sed -n 's/^Model: *//p'))"
cat > "$root/bench/results/test_suite.md" <<MD
# The test suite from a fresh clone

Made by \`bench/suite_time.sh\` at commit $commit: \`make test\` in a fresh clone, the first-time
install included, on $cpu ($(nproc) cores): **$((seconds / 60)) min $((seconds % 60)) s**, exit status $status.

pytest: $closing
$failed
The slowest tests (\`--durations=10\`; with two processes, their times overlap):

$slowest
MD
echo "wrote bench/results/test_suite.md ($((seconds / 60)) min $((seconds % 60)) s, exit status $status)"
exit $status

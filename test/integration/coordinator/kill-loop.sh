#!/bin/sh
# Runs the leader-kill test N times in a row (default 5) and stops at the
# first failure: the evidence that the kill test passes repeatedly, without
# paying for N runs in every CI build.
#   sh test/integration/coordinator/kill-loop.sh [N]
set -e
n=${1:-5}
cd "$(dirname "$0")/../../.."
i=1
while [ "$i" -le "$n" ]; do
  echo "=== kill test run $i/$n ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
  npx mocha test/integration/coordinator/kill.test.ts
  i=$((i + 1))
done
echo "kill test passed $n times in a row"

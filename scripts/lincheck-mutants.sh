#!/usr/bin/env bash
# The store checker can fail: each patch in store/storetest/lincheck/testdata/mutants breaks
# the product code the way a real bug would (a follower answers linearizable reads from its
# local state; the watch hub is not told of a snapshot restore; the FSM drops a failed fence
# compare). Each is applied to a scratch copy of HEAD and the checker run there must report
# a violation. (The tests themselves show the same three bugs caught through broken
# wrappers, lincheck.Bugs; this runs them against patched backends.)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# One schedule each (make soak exports LINCHECK_SCHEDULES=50 for its own runs: inherited, each
# mutant ran 50 schedules, a quarter of an hour, after its first violation).
rc=0
for p in store/storetest/lincheck/testdata/mutants/*.patch; do
  name=$(basename "$p" .patch)
  pkg=./store/${name%%-*}/
  tmp=$(mktemp -d)
  git archive HEAD | tar -x -C "$tmp"
  if ! (cd "$tmp" && patch -p1 -s <"$repo/$p"); then
    echo "mutant $name: the patch no longer applies" >&2
    rc=1
    rm -rf "$tmp"
    continue
  fi
  mkdir "$tmp/.tmp" # the visualization of a caught violation goes with the scratch copy
  out=$(cd "$tmp" && TMPDIR="$tmp/.tmp" LINCHECK_SEED=${MUTANT_SEED:-1} LINCHECK_SCHEDULES=1 go test -race -count=1 -run '^TestLincheckUnderFaults$' -v "$pkg" 2>&1)
  caught=$(grep -m1 -E 'violation: ' <<<"$out" | sed 's/^ *lincheck.go:[0-9]*: //' | cut -c1-220)
  if [ -n "$caught" ]; then
    echo "mutant $name: caught: $caught"
  else
    echo "mutant $name: NOT caught"
    grep -E 'lincheck.go|^(ok|FAIL)' <<<"$out" | tail -3
    rc=1
  fi
  rm -rf "$tmp"
done
exit $rc

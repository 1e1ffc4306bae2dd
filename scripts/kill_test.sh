#!/usr/bin/env bash
# What a killed prune leaves and what the next run does with it
# (docs/safety.md). On a sharded checkpoint (default: a synthetic one made
# here; --model DIR for another) it
#   1. prunes once without interruption into ref/;
#   2. for each kill point -- during the early layer copies, during
#      calibration, during the final write -- starts a prune into out/,
#      kill -9s it there, lists what it left, runs the same prune again to
#      out/, and checks: exit 0, the log names each removed leftover, no
#      .out.tmp-* or .out.lock remains, and out/ is byte-identical to ref/;
#   3. starts two prunes into one output at once and checks that exactly one
#      writes it, the other fails with one line, and the output equals ref/.
# Prints one line per check; exits 1 if any failed.
#
#   scripts/kill_test.sh [--bin PATH] [--work DIR] [--model DIR] [--prune "ARGS"]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/src/cli/linearpatch"
work="/tmp/lp-kill-test"
model=""
synth="--num-layers 12 --hidden 1024 --intermediate 2816 --heads 8 --kv-heads 4 --vocab 8000 --max-shard-size 100MB"
prune="--layers 3 --calib-samples 8 --seq-len 128 --calib $root/data/text/brown.calib.txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --prune) prune="$2"; shift 2 ;;
    *) echo "kill_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
if [ -z "$model" ]; then
  model="$work/model"
  if [ ! -f "$model/.synth-args" ] || [ "$(cat "$model/.synth-args")" != "$synth" ]; then
    rm -rf "$model"
    # shellcheck disable=SC2086  # synth holds several arguments
    "$bin" --log-level warn synth $synth --out "$model" >/dev/null
    echo "$synth" >"$model/.synth-args"
  fi
fi
failures=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
no_debris() { [ -z "$(find "$work" -maxdepth 1 \( -name '.out.tmp-*' -o -name '.out.lock' \))" ]; }
run_prune() {  # run_prune OUT LOG: in the background, pid in $pid
  # shellcheck disable=SC2086  # prune holds several arguments
  "$bin" prune --model "$model" $prune --out "$1" 2>"$2" >/dev/null &
  pid=$!
}
temp_of() { echo "$work/.out.tmp-$1-0"; }

rm -rf "$work/ref" "$work/out" "$work"/.out.* "$work"/.ref.*
start=$(date +%s%N)
run_prune "$work/ref" "$work/ref.log"
wait "$pid"
echo "uninterrupted prune: $(( ($(date +%s%N) - start) / 1000000 )) ms, $(du -sh "$work/ref" | cut -f1) written"

# Waits until the run is at the kill point; 1 if it ended first.
at_point() {  # at_point POINT PID LOG
  local temp
  temp="$(temp_of "$2")"
  while kill -0 "$2" 2>/dev/null; do
    case "$1" in
      copies) [ -n "$(find "$temp" -maxdepth 1 -name '.early-layer-*' 2>/dev/null | head -1)" ] && return 0 ;;
      calibration) grep -q "calibration:" "$3" 2>/dev/null && sleep 0.3 && return 0 ;;
      write) [ -n "$(find "$temp" -maxdepth 1 -name '[!.]*' 2>/dev/null | head -1)" ] && return 0 ;;
    esac
    sleep 0.002
  done
  return 1
}

for point in copies calibration write; do
  rm -rf "$work/out"
  run_prune "$work/out" "$work/killed-$point.log"
  killed=$pid
  if ! at_point "$point" "$killed" "$work/killed-$point.log"; then
    echo "FAIL $point: the run ended before the kill point"; failures=$((failures + 1)); continue
  fi
  kill -9 "$killed"
  wait "$killed" 2>/dev/null || true
  left="$(temp_of "$killed")"
  echo "killed pid $killed during $point: left $(find "$left" -type f 2>/dev/null | wc -l) files," \
       "$(du -sh "$left" 2>/dev/null | cut -f1) in $(basename "$left")"
  check "$point: the killed run published no output" test ! -e "$work/out"
  run_prune "$work/out" "$work/again-$point.log"
  status=0
  wait "$pid" || status=$?
  check "$point: the next run succeeds" test "$status" = 0
  check "$point: its log names the removed leftover" grep -q "removed $left " "$work/again-$point.log"
  grep "removed " "$work/again-$point.log" | sed 's/^/     log: /'
  check "$point: no temporary or lock remains" no_debris
  check "$point: the output is byte-identical to the uninterrupted run's" diff -r "$work/ref" "$work/out"
done

rm -rf "$work/out"
run_prune "$work/out" "$work/race-1.log"
first=$pid
run_prune "$work/out" "$work/race-2.log"
second=$pid
s1=0 s2=0
wait "$first" || s1=$?
wait "$second" || s2=$?
echo "two runs at once: exit statuses $s1 and $s2"
if [ "$s1" = 0 ]; then loser="$work/race-2.log" winner=$first loser_status=$s2; else loser="$work/race-1.log" winner=$second loser_status=$s1; fi
check "race: exactly one run succeeded" test "$(( (s1 == 0) + (s2 == 0) ))" = 1
check "race: the other failed with exit 1" test "$loser_status" = 1
check "race: with one line naming the writer's pid" grep -q "being written by another run (pid $winner)" "$loser"
sed 's/^/     stderr: /' "$loser"
check "race: no temporary or lock remains" no_debris
check "race: the output is byte-identical to the uninterrupted run's" diff -r "$work/ref" "$work/out"
echo "$failures check(s) failed"
[ "$failures" = 0 ]

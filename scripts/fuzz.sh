#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) and runs each for a while.
#   scripts/fuzz.sh [seconds-per-target] [target...]   (default 60 s, all)
# Targets run one after the other; set LP_FUZZ_PARALLEL=2 to run two at once.
# Work corpora persist in build-fuzz/corpus/<target>; seeds come from
# tests/data/fuzz/seeds and tests/data/fuzz/regressions (plus the full
# tokenizer.model from ../shared for spm_model). A crash, leak, timeout or
# oversized allocation leaves its input in build-fuzz/artifacts/ and makes the
# script exit non-zero: copy it to tests/data/fuzz/regressions/<target>/ so
# the test suite replays it (tests/safety/fuzz_regression_test.cpp).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
all=(safetensors_header checkpoint_index llama_config tokenizer_json tokenizer_config tokenizer_encode json_lines
     spm_model)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
build="${LP_FUZZ_BUILD_DIR:-$root/build-fuzz}"
spm_build="$build-spm"
shared="${LP_SHARED_DIR:-$root/../shared}"
parallel="${LP_FUZZ_PARALLEL:-1}"

# clang and its libFuzzer runtime are not among the project's build
# dependencies, so this script brings them itself.
if ! command -v clang++-14 >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
    >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clang-14 libclang-rt-14-dev
fi
"$root/scripts/install_deps.sh" >/dev/null

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
        -DLP_BUILD_FUZZERS=ON -DLP_BUILD_TESTS=OFF -DLP_USE_PCH=OFF "${launcher[@]}")
asan_targets=() spm=0
for t in "${targets[@]}"; do
  if [ "$t" = spm_model ]; then spm=1; else asan_targets+=("fuzz_$t"); fi
done
if [ ${#asan_targets[@]} -gt 0 ]; then
  cmake -S "$root" -B "$build" "${common[@]}" -DLP_SANITIZE=address,undefined -DLP_WITH_SPM=OFF >/dev/null
  cmake --build "$build" --target "${asan_targets[@]}"
fi
if [ $spm -eq 1 ]; then
  # sentencepiece is dlopen'ed with RTLD_DEEPBIND, which ASan refuses.
  cmake -S "$root" -B "$spm_build" "${common[@]}" -DLP_SANITIZE= -DLP_WITH_SPM=ON >/dev/null
  cmake --build "$spm_build" --target fuzz_spm_model lp_spm_shim
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
mkdir -p "$build/artifacts" "$build/logs"

run_target() {
  local t="$1" bin="$build/tests/fuzz/fuzz_$1" extra=()
  [ "$t" != spm_model ] || bin="$spm_build/tests/fuzz/fuzz_spm_model"
  local corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  for dir in "$root/tests/data/fuzz/seeds/$t" "$root/tests/data/fuzz/regressions/$t"; do
    [ -d "$dir" ] && extra+=("$dir")
  done
  if [ "$t" = spm_model ] && [ -f "$shared/fixtures/models/tiny-llama2-s/tokenizer.model" ]; then
    mkdir -p "$build/shared-seeds/spm_model"
    cp -f "$shared/fixtures/models/tiny-llama2-s/tokenizer.model" "$build/shared-seeds/spm_model/"
    extra+=("$build/shared-seeds/spm_model")
  fi
  # -timeout: one input running 10 s is a hang; -rss_limit_mb also caps any
  # single allocation (malloc_limit_mb defaults to it).
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$corpus" "${extra[@]}" >"$build/logs/$t.log" 2>&1
}

summary() {
  local t="$1" log="$build/logs/$1.log" status="$2"
  local execs cov
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  printf '%-20s %-6s %12s executions  %s  corpus %s files\n' "$t" "$status" "${execs:-?}" "${cov:-cov: ?}" \
    "$(find "$build/corpus/$t" -type f | wc -l)"
}

failed=0
running=()
# Each run leaves its exit status in logs/<target>.status, read as it ends.
reap() {
  local still=() t
  for t in "${running[@]}"; do
    if [ -f "$build/logs/$t.status" ]; then
      if [ "$(cat "$build/logs/$t.status")" = 0 ]; then summary "$t" ok; else
        summary "$t" FAILED
        failed=1
        grep -E 'ERROR|SUMMARY|Test unit written|invariant' "$build/logs/$t.log" | head -5 | sed 's/^/    /'
      fi
    else
      still+=("$t")
    fi
  done
  running=(${still[@]+"${still[@]}"})
}
echo "fuzz: ${seconds} s per target, logs in $build/logs"
for t in "${targets[@]}"; do
  while [ ${#running[@]} -ge "$parallel" ]; do sleep 1; reap; done
  rm -f "$build/logs/$t.status"
  (set +e; run_target "$t"; echo $? >"$build/logs/$t.status") &
  running+=("$t")
done
while [ ${#running[@]} -gt 0 ]; do sleep 1; reap; done
wait
exit $failed

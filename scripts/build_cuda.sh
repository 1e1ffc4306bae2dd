#!/usr/bin/env bash
# Builds linearpatch on the GPU machine (Ubuntu 24.04, g++ 13, CMake 4,
# CUDA 13) against the libtorch inside PyTorch, with the Debian headers and
# libraries that scripts/fetch_gpu_deps.sh unpacked into .gpu-deps/root here
# (name .gpu-deps in the device run's `carry`). The Debian CPU build
# (scripts/build.sh) is not affected.
#
#   scripts/build_cuda.sh [--build-dir DIR] [--tests] [--torch-prefix DIR] [--no-cuda] [CMAKE ARGS...]
#
#   --build-dir DIR     default: build-cuda in the repository
#   --tests             also build the GoogleTest suites (from the carried libgtest-dev)
#   --torch-prefix DIR  the folder holding Torch/TorchConfig.cmake; default: PyTorch's
#                       torch.utils.cmake_prefix_path
#   --no-cuda           skip the CUDA settings and checks, to try the dependency plumbing
#                       against a CPU libtorch, e.g. Debian's:
#                       --no-cuda --torch-prefix /usr/lib/x86_64-linux-gnu/cmake
#
# With sentencepiece from the carried Debian packages: the shim module that
# reads tokenizer.model files gets an RPATH to them (checked below).
# Prints the binary's path last; exits non-zero, saying why, on any failure.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.gpu-deps/root"
build="$root/build-cuda"
tests=OFF
cuda=1
torch_prefix=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --tests) tests=ON; shift ;;
    --torch-prefix) torch_prefix="$2"; shift 2 ;;
    --no-cuda) cuda=0; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done

die() { echo "build_cuda: error: $*" >&2; exit 1; }
say() { echo "build_cuda: $*"; }

[ -d "$deps/usr" ] || die "$deps is missing: run scripts/fetch_gpu_deps.sh on the Debian machine and carry .gpu-deps"
libdir="$deps/usr/lib/x86_64-linux-gnu"

if [ -z "$torch_prefix" ]; then
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" ||
    die "python3 cannot import torch; pass --torch-prefix"
fi
torch_config="$torch_prefix/Torch/TorchConfig.cmake"
[ -f "$torch_config" ] || die "no $torch_config"

# The carried spdlog/fmt are built with the C++11 std::string ABI; a libtorch
# built with the old ABI would make every std::string crossing them a link error.
abi="$(grep -o '_GLIBCXX_USE_CXX11_ABI=[01]' "$torch_config" | tail -n 1 | cut -d= -f2 || true)"
if [ -z "$abi" ] && [ "$cuda" = 1 ]; then
  # Newer TorchConfig.cmake files drop the flag: PyTorch builds only the C++11 ABI since 2.8.
  abi="$(python3 -c 'import torch; f = getattr(torch, "compiled_with_cxx11_abi", None); print(int(f() if f else True))')" ||
    die "cannot read libtorch's C++ ABI"
fi
[ "$abi" = 1 ] || die "libtorch at $torch_prefix is not built with the C++11 ABI (_GLIBCXX_USE_CXX11_ABI=${abi:-unknown})"
say "libtorch: $torch_prefix (C++11 ABI)"

cmake_args=(
  -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_PREFIX_PATH=$deps/usr;$torch_prefix"
  -DLP_WITH_SPM=ON
  "-DLP_BUILD_TESTS=$tests"
)
if [ "$cuda" = 1 ]; then
  if ! command -v nvcc >/dev/null; then
    [ -x /usr/local/cuda/bin/nvcc ] || die "no nvcc on PATH or in /usr/local/cuda/bin (Torch's CMake config enables CUDA)"
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  say "nvcc: $(command -v nvcc) ($(nvcc --version | grep -o 'release [0-9.]*'))"
  # Hopper only: skips Torch's GPU-architecture probe. USE_SYSTEM_NVTX makes
  # Torch's cuda.cmake take NVTX 3 from the toolkit's headers: CUDA 12+ no
  # longer ships the old libnvToolsExt it falls back to.
  export TORCH_CUDA_ARCH_LIST="9.0"
  # CMake 4 refuses cmake_minimum_required() below 3.5 in any package config
  # that Torch pulls in, unless this floor is set.
  cmake_args+=(-DCMAKE_CUDA_ARCHITECTURES=90 -DUSE_SYSTEM_NVTX=ON "-DPYTHON_EXECUTABLE=$(command -v python3)"
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5)
fi
if command -v ccache >/dev/null; then cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

# PCRE2 and sentencepiece come through pkg-config: the carried pkgconf, reading only the
# carried .pc files, with their /usr paths moved under $deps.
mkdir -p "$build/gpu-deps-bin"
wrapper="$build/gpu-deps-bin/pkg-config"
cat >"$wrapper" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$deps/usr/bin/pkgconf" "\$@"
EOF
chmod +x "$wrapper"
export PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$deps/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$deps"
unset PKG_CONFIG_PATH
for module in libpcre2-8 sentencepiece; do
  "$wrapper" --cflags --libs "$module" >/dev/null || die "the carried pkgconf cannot resolve $module"
done
cmake_args+=("-DPKG_CONFIG_EXECUTABLE=$wrapper")

cmake -S "$root" -B "$build" -G Ninja "${cmake_args[@]}" "${extra[@]}" || die "configure failed (see above)"

# Each dependency must come from the carried tree, not from whatever the
# machine happens to have.
cache="$build/CMakeCache.txt"
check_from_deps() {
  local value
  value="$(grep -E "^$1(:[A-Z]+)?=" "$cache" | head -n 1 | cut -d= -f2-)"
  case "$value" in
    "$deps"/*) ;;
    *) die "$1 is '${value}', not inside $deps" ;;
  esac
}
for var in CLI11_DIR nlohmann_json_DIR spdlog_DIR fmt_DIR pkgcfg_lib_PCRE2_pcre2-8 \
  pkgcfg_lib_SENTENCEPIECE_sentencepiece; do
  check_from_deps "$var"
done
if [ "$tests" = ON ]; then check_from_deps GTest_DIR; fi

# The NCCL backend of the data-parallel distillation and the fused RMSNorm
# are the parts built against what no CPU build compiles; when they fail,
# the tool is still worth having without them.
if ! cmake --build "$build" -j "$(nproc)"; then
  say "build failed; retrying with -DLP_DATA_PARALLEL=OFF -DLP_FUSED_RMS_NORM=OFF" \
    "(distillation on one GPU only, RMSNorm in 8 kernels)"
  cmake -S "$root" -B "$build" -DLP_DATA_PARALLEL=OFF -DLP_FUSED_RMS_NORM=OFF > /dev/null ||
    die "reconfigure failed (see above)"
  cmake --build "$build" -j "$(nproc)" || die "build failed (see above)"
fi

bin="$build/src/cli/linearpatch"
[ -x "$bin" ] || die "no $bin after the build"
links="$(ldd "$bin")" || die "ldd cannot read $bin"
if grep -q 'not found' <<<"$links"; then
  grep 'not found' <<<"$links" >&2
  die "$bin has unresolved libraries"
fi
for lib in libspdlog libfmt libpcre2-8; do
  grep "$lib" <<<"$links" | grep -qF "$libdir/" || die "$bin does not load $lib from $libdir: $(grep "$lib" <<<"$links")"
done
if [ "$cuda" = 1 ]; then
  # Linkers that default to --as-needed drop libtorch_cuda.so (nothing refers
  # to it by symbol); without it every CUDA op fails at run time.
  grep -q libtorch_cuda.so <<<"$links" || die "$bin is not linked to libtorch_cuda.so"
fi
"$bin" --version >/dev/null || die "$bin does not start"

# The sentencepiece shim, opened with dlopen at run time, must find the
# carried library through its own RPATH (DT_RPATH: it outranks any
# LD_LIBRARY_PATH), and the binary must find and open the shim.
shim="$build/src/tokenizer/liblp_spm_shim.so"
[ -f "$shim" ] || die "no $shim after the build"
dynamic="$(readelf -d "$shim")" || die "readelf cannot read $shim"
rpath="$(sed -n 's/.*(RPATH).*\[\(.*\)\]$/\1/p' <<<"$dynamic")"
# Exactly the folder: an empty entry (a trailing ':') would search the working directory.
case "$rpath" in "" | *:*) rpath_ok=0 ;; *) [ "$(realpath "$rpath")" = "$(realpath "$libdir")" ] && rpath_ok=1 || rpath_ok=0 ;; esac
[ "$rpath_ok" = 1 ] || die "$shim's RPATH is '$rpath', not $libdir ($(grep -E 'R(UN)?PATH' <<<"$dynamic" || echo none))"
shim_links="$(ldd "$shim")" || die "ldd cannot read $shim"
if grep -q 'not found' <<<"$shim_links"; then
  grep 'not found' <<<"$shim_links" >&2
  die "$shim has unresolved libraries"
fi
grep libsentencepiece.so <<<"$shim_links" | grep -qF "$libdir/" ||
  die "$shim does not load libsentencepiece from $libdir: $(grep libsentencepiece <<<"$shim_links")"
# Bytes that are no model: the error must come from sentencepiece itself,
# which proves the shim was found, opened and called.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'not a model' >"$probe/tokenizer.model"
probe_out="$("$bin" tokenize --model "$probe" --text x 2>&1 || true)"
grep -q 'not a sentencepiece model' <<<"$probe_out" || die "$bin cannot use the sentencepiece shim: $probe_out"
say "built $("$bin" --version) with tests $tests, cuda $cuda, sentencepiece from $libdir"
echo "$bin"

#!/usr/bin/env bash
# Run HERE (Debian 12), not on the GPU machine: downloads the Debian packages
# that scripts/build_cuda.sh needs and the GPU machine lacks, and unpacks them
# into .gpu-deps/root (git-ignored through .git/info/exclude, so it travels
# only when a device run names it in `carry`).
#
# What and why:
#   headers + CMake packages  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libgtest-dev
#   shared libraries          libspdlog1.10 libfmt9 (spdlog is a compiled library linked against fmt)
#   PCRE2 via pkg-config      libpcre2-dev libpcre2-8-0, and pkgconf-bin + libpkgconf3 because the
#                             GPU machine's image may have no pkg-config
#   sentencepiece             libsentencepiece-dev libsentencepiece0, for the module that reads
#                             tokenizer.model files (src/tokenizer/spm_shim.h). No protobuf: Debian's
#                             libsentencepiece0 0.1.97 has protobuf-lite built in (apt-cache depends:
#                             libc6, libgcc-s1, libstdc++6 only; ldd agrees).
#
# The GPU machine runs Ubuntu 24.04 (glibc 2.39, libstdc++ of GCC 14): these
# libraries, built for glibc 2.36 and GCC 12's libstdc++, run there unchanged,
# and both sides use the C++11 std::string ABI (build_cuda.sh checks libtorch's).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.gpu-deps"
packages=(
  libcli11-dev nlohmann-json3-dev
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libpcre2-dev libpcre2-8-0
  pkgconf-bin libpkgconf3
  libsentencepiece-dev libsentencepiece0
  libgtest-dev
)
limit_mib=40

die() { echo "fetch_gpu_deps: $*" >&2; exit 1; }

exclude="$(git -C "$root" rev-parse --git-path info/exclude)"
case "$exclude" in /*) ;; *) exclude="$root/$exclude" ;; esac
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$exclude"

debs="$(mktemp -d)"
trap 'rm -rf "$debs"' EXIT
# The sandbox user cannot write into a root-owned temporary directory.
(cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "${packages[@]}") ||
  die "apt-get download failed (run 'apt-get update' once, then retry)"

rm -rf "$deps"
mkdir -p "$deps/root"
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$deps/root"
  # shellcheck disable=SC2016  # dpkg's own ${...} fields
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$deps/MANIFEST"
done
# Documentation, manuals and the 16/32-bit PCRE2 variants are never used by the build.
rm -rf "$deps/root/usr/share/doc" "$deps/root/usr/share/man" "$deps/root/usr/share/lintian"
find "$deps/root" \( -name 'libpcre2-16*' -o -name 'libpcre2-32*' -o -name 'libpcre2-posix*' \
  -o -name 'libpcre2-16.pc' -o -name 'libpcre2-32.pc' -o -name 'libpcre2-posix.pc' \) -exec rm -rf {} +

# Checks that every piece build_cuda.sh relies on is where it looks.
lib="$deps/root/usr/lib/x86_64-linux-gnu"
for f in usr/include/CLI/CLI.hpp usr/share/cmake/CLI11/CLI11Config.cmake \
  usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake \
  usr/lib/x86_64-linux-gnu/cmake/spdlog/spdlogConfig.cmake usr/lib/x86_64-linux-gnu/cmake/fmt/fmt-config.cmake \
  usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake \
  usr/lib/x86_64-linux-gnu/pkgconfig/libpcre2-8.pc usr/include/pcre2.h usr/bin/pkgconf \
  usr/lib/x86_64-linux-gnu/pkgconfig/sentencepiece.pc usr/include/sentencepiece_processor.h; do
  [ -e "$deps/root/$f" ] || die "$f is missing after unpacking (package contents changed?)"
done
for so in libspdlog.so libfmt.so libpcre2-8.so libpkgconf.so.3 libsentencepiece.so libsentencepiece_train.so; do
  [ -e "$lib/$so" ] || die "$lib/$so is missing or a dangling link"
done

size_kib="$(du -sk "$deps" | cut -f1)"
echo "fetch_gpu_deps: $(wc -l <"$deps/MANIFEST") packages in $deps ($((size_kib / 1024)) MiB):"
sed 's/^/  /' "$deps/MANIFEST"
[ "$size_kib" -le $((limit_mib * 1024)) ] || die "$deps is $((size_kib / 1024)) MiB, over the ${limit_mib} MiB budget"

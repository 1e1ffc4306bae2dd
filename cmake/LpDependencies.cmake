# Every external dependency, found in one place. All come from Debian 12
# packages (scripts/install_deps.sh) or, on the GPU machine, from the libtorch
# inside PyTorch plus carried Debian headers (scripts/build_cuda.sh).
find_package(Torch REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(CLI11 2.1 REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
if(LP_WITH_SPM)
  # Debian ships sentencepiece without a CMake package.
  pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
endif()
if(LP_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

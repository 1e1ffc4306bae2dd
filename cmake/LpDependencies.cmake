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
# Data-parallel distillation sums gradients through libtorch's c10d: NCCL in
# CUDA builds (nccl.h: PyTorch's nvidia-nccl wheel beside torch, the CUDA
# toolkit or $NCCL_INCLUDE_DIR), Gloo in CPU builds (gloo's headers: Debian's
# libgloo-dev). Without them, or with LP_DATA_PARALLEL=OFF, it is left out and
# distillation runs through the layers as placed.
option(LP_DATA_PARALLEL "Data-parallel distillation through c10d where its backend's headers are found" ON)
if(LP_DATA_PARALLEL AND TORCH_CUDA_LIBRARIES)
  file(GLOB LP_NCCL_WHEEL_INCLUDE_DIRS "${Torch_DIR}/../../../../nvidia/nccl/include" "${Torch_DIR}/../../../../nvidia/*/include")
  find_path(LP_NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_INCLUDE_DIR ${TORCH_INCLUDE_DIRS} ${CUDAToolkit_INCLUDE_DIRS}
            ${LP_NCCL_WHEEL_INCLUDE_DIRS})
elseif(LP_DATA_PARALLEL)
  find_path(LP_GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${TORCH_INCLUDE_DIRS})
endif()

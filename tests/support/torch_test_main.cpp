// gtest main for the libtorch tests: one intra-op thread so `ctest -j2`
// runs two binaries side by side on the 2-core CI machine, fixed seeds, and
// the CLI's allocator settings.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "linearpatch/core/allocator.h"

int main(int argc, char** argv) {
  lp::keep_tensor_buffers_in_heap();  // as the CLI does: the golden checks ran 7x slower without it
  at::set_num_threads(1);
  at::manual_seed(0);
  spdlog::set_level(spdlog::level::warn);  // progress lines would drown the test output
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

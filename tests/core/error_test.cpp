#include <gtest/gtest.h>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

TEST(Error, ContextIsPrependedAndTheTypeKept) {
  try {
    try {
      throw InputError("bad dtype");
    } catch (...) {
      rethrow_with_context("while loading x.safetensors");
    }
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "while loading x.safetensors: bad dtype");
    return;
  }
  FAIL() << "the InputError type was lost";
}

}  // namespace
}  // namespace lp

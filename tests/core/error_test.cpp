#include <gtest/gtest.h>
#include "linearpatch/core/error.h"
TEST(Error, Context){ try { try { throw lp::InputError("x"); } catch(...) { lp::rethrow_with_context("stage"); } } catch (const lp::InputError& e) { EXPECT_STREQ(e.what(), "stage: x"); return; } FAIL(); }

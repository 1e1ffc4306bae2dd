// libFuzzer entry point of one target, chosen at compile time
// (LP_FUZZ_TARGET, see CMakeLists.txt). InputError is the expected way for a
// parser to refuse an input; any other exception escapes and libFuzzer
// records the input as a crash.
#include <cstdio>
#include <cstdlib>

#include "fuzz_targets.h"
#include "linearpatch/core/error.h"

namespace {

const lp::fuzz::Target& target() {
  static const lp::fuzz::Target* found = [] {
    const lp::fuzz::Target* t = lp::fuzz::find_target(LP_FUZZ_TARGET);
    if (!t) {
      std::fprintf(stderr, "unknown fuzz target %s\n", LP_FUZZ_TARGET);
      std::abort();
    }
    return t;
  }();
  return *found;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    target().run(data, size);
  } catch (const lp::InputError&) {
  }
  return 0;
}

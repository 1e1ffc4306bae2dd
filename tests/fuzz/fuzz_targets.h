// The parsers of user files as fuzz targets. Each runner feeds one input to
// one parser and returns normally or throws; every exception other than
// lp::InputError is a bug (a hostile file must be reported as a bad input
// file, exit status 3). The libFuzzer mains (fuzz_main.cpp) and the
// regression replay in tests/safety share these runners, so a crash input
// kept in tests/data/fuzz/regressions/<target>/ is replayed exactly as it
// was found.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lp::fuzz {

using Runner = void (*)(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // also the corpus directory name
  Runner run;
};

// Every target, including "spm_model" (needs sentencepiece, so it is only
// meaningful where lp::sentencepiece_unavailable_reason() is nullopt).
const std::vector<Target>& targets();
const Target* find_target(const std::string& name);

}  // namespace lp::fuzz

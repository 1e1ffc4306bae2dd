// LINEARPATCH_PROFILE=FILE records a Kineto trace of the command (CPU
// operators and, on a GPU, every CUDA kernel) into FILE, in the Chrome
// trace format (chrome://tracing, Perfetto; scripts/trace_summary.py sums
// kernel time by name): where the time of a run goes, without nsys.
#pragma once

#include <string>

namespace lp::cli {

class CommandProfile {
 public:
  CommandProfile();  // starts recording when LINEARPATCH_PROFILE is set
  ~CommandProfile();  // writes the trace
  CommandProfile(const CommandProfile&) = delete;
  CommandProfile& operator=(const CommandProfile&) = delete;

 private:
  std::string path_;
};

}  // namespace lp::cli

// Runs the linearpatch executable (or any program) and captures its output.
#pragma once

#include <string>
#include <vector>

namespace lp::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

// Runs `args` (args[0] is the program), waiting for it to finish.
ProcessResult run_process(const std::vector<std::string>& args);

// run_process with the linearpatch binary in front of `args`.
ProcessResult run_linearpatch(const std::vector<std::string>& args);

// The demo model and its texts as command-line arguments.
std::string demo_model_arg();
std::string demo_calibration_arg();
std::string demo_evaluation_arg();

// Three easy piqa rows (lm-eval's jsonl fields) for task runs on the demo model.
extern const char* const kPiqaRows;

// Exactly one line on stderr, carrying `needle`: how every failure ends.
void expect_one_error_line(const ProcessResult& r, const std::string& needle);

}  // namespace lp::test

#include "support/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include <gtest/gtest.h>

#include "support/test_env.h"

namespace lp::test {

ProcessResult run_process(const std::vector<std::string>& args) {
  TempDir logs;
  const std::string out_path = (logs / "out").string(), err_path = (logs / "err").string();
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) ::_exit(125);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ProcessResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

ProcessResult run_linearpatch(const std::vector<std::string>& args) {
  std::vector<std::string> all{binary_path().string()};
  all.insert(all.end(), args.begin(), args.end());
  return run_process(all);
}

void expect_one_error_line(const ProcessResult& r, const std::string& needle) {
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

const char* const kPiqaRows =
    R"({"goal": "To dry wet hands,", "sol1": "rub them on a towel.", "sol2": "put them in a pond.", "label": 0})"
    "\n"
    R"({"goal": "The capital of France", "sol1": "is Paris.", "sol2": "sings loudly.", "label": 0})"
    "\n"
    R"({"goal": "Water boils at", "sol1": "one hundred degrees.", "sol2": "the moon.", "label": 0})"
    "\n";

std::string demo_model_arg() { return demo_model_dir().string(); }
std::string demo_calibration_arg() { return demo_calibration_text().string(); }
std::string demo_evaluation_arg() { return demo_evaluation_text().string(); }

}  // namespace lp::test

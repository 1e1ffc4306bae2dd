// The linearpatch executable under conditions a user or an operating system
// creates: SIGINT/SIGTERM/SIGKILL mid-run, a full disk, two runs at once,
// and refused outputs. Each case spawns the real binary on a copy of the
// demo model (data/models/demo-llama3-d, 9.5 MB) with 4 calibration windows
// of 64 tokens, so a run takes about a second plus libtorch's start-up.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "linearpatch/io/safetensors.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kRunTimeout = std::chrono::seconds(180);

struct Outcome {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string err;
};

// A linearpatch process with stdout/stderr in files of `logs`.
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& logs, std::optional<rlim_t> file_size_limit = {})
      : err_path_(logs / ("stderr-" + std::to_string(counter_++))) {
    const std::string binary = test::binary_path().string();
    std::vector<std::string> all{binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string err = err_path_.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec: the test process
      // has threads.
      const int null_fd = ::open("/dev/null", O_WRONLY);
      const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (null_fd < 0 || err_fd < 0) ::_exit(125);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(err_fd, STDERR_FILENO);
      if (file_size_limit) {
        // Writes past the limit fail with EFBIG instead of killing the
        // process with SIGXFSZ: what a full disk (ENOSPC) looks like to it.
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{*file_size_limit, *file_size_limit};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(125);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  bool running() {
    if (reaped_) return false;
    const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) reaped_ = true;
    return !reaped_;
  }
  Outcome wait() {
    const auto deadline = Clock::now() + kRunTimeout;
    while (running() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Outcome outcome;
    if (!reaped_) {
      ADD_FAILURE() << "linearpatch still running after " << kRunTimeout.count() << " s; killed";
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    if (WIFEXITED(status_)) outcome.exit_code = WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) outcome.signal = WTERMSIG(status_);
    outcome.err = test::read_file(err_path_);
    return outcome;
  }

 private:
  static inline int counter_ = 0;
  fs::path err_path_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// Every file under `dir` by relative path, with its bytes.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    files[fs::relative(entry.path(), dir).string()] = entry.is_regular_file() ? test::read_file(entry.path()) : "<dir>";
  return files;
}

std::vector<std::string> temp_siblings(const fs::path& out) {
  std::vector<std::string> found;
  const std::string prefix = "." + out.filename().string() + ".tmp-";
  for (const auto& entry : fs::directory_iterator(out.parent_path()))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) found.push_back(entry.path().filename().string());
  return found;
}

class CliSafety : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = new test::TempDir;
    fs::copy(test::demo_model_dir(), model_dir(), fs::copy_options::recursive);
  }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(fs::is_regular_file(test::binary_path())) << "LP_BINARY " << test::binary_path();
    before_ = snapshot(model_dir());
  }
  // Whatever a test did, the input checkpoint is byte-for-byte as it was.
  void TearDown() override { EXPECT_TRUE(snapshot(model_dir()) == before_) << "the input directory changed"; }

  static fs::path model_dir() { return models_->path() / "demo"; }
  static std::vector<std::string> prune_args(const fs::path& out) {
    return {"-q",        "prune",     "--model",         model_dir().string(),
            "--layers",  "2",         "--calib-samples", "4",
            "--seq-len", "64",        "--calib",         test::demo_calibration_text().string(),
            "--out",     out.string()};
  }
  // Starts a prune and returns once its temporary output directory exists,
  // i.e. while it loads or calibrates.
  std::unique_ptr<Child> start_prune_and_wait_for_temp_dir(const fs::path& out) {
    auto child = std::make_unique<Child>(prune_args(out), work_.path());
    const auto deadline = Clock::now() + kRunTimeout;
    while (temp_siblings(out).empty() && child->running() && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_FALSE(temp_siblings(out).empty()) << "no temporary output directory appeared";
    return child;
  }

  static inline test::TempDir* models_ = nullptr;
  test::TempDir work_;
  std::map<std::string, std::string> before_;
};

class CliInterrupt : public CliSafety, public ::testing::WithParamInterface<int> {};

TEST_P(CliInterrupt, StopsWithStatus130AndLeavesNoOutput) {
  const fs::path out = work_ / "out";
  auto child = start_prune_and_wait_for_temp_dir(out);
  ASSERT_EQ(::kill(child->pid(), GetParam()), 0);
  const Outcome outcome = child->wait();
  EXPECT_EQ(outcome.exit_code, 130) << outcome.err;
  EXPECT_NE(outcome.err.find("linearpatch: interrupted"), std::string::npos) << outcome.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(temp_siblings(out).empty()) << temp_siblings(out).front();
}

INSTANTIATE_TEST_SUITE_P(Signals, CliInterrupt, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) { return info.param == SIGINT ? "SIGINT" : "SIGTERM"; });

// SIGKILL cannot be caught: the hidden temporary directory stays behind,
// but the output path never holds a partial checkpoint, and the next run to
// the same path removes the leftover, says so, and succeeds.
TEST_F(CliSafety, SigkillLeftoversAreRemovedByTheNextRun) {
  const fs::path out = work_ / "out";
  auto child = start_prune_and_wait_for_temp_dir(out);
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  const Outcome outcome = child->wait();
  EXPECT_EQ(outcome.signal, SIGKILL);
  EXPECT_FALSE(fs::exists(out));
  const auto left = temp_siblings(out);
  ASSERT_FALSE(left.empty()) << "the killed run left nothing: this test no longer tests the cleanup";
  for (const auto& name : left) EXPECT_NE(name.find(".tmp-" + std::to_string(child->pid()) + "-"), std::string::npos) << name;

  const Outcome again = Child(prune_args(out), work_.path()).wait();
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(fs::is_regular_file(out / "model.safetensors"));
  EXPECT_TRUE(temp_siblings(out).empty()) << temp_siblings(out).front();
  EXPECT_FALSE(fs::exists(work_ / ".out.lock"));
  EXPECT_NE(again.err.find("removed "), std::string::npos) << again.err;
  for (const auto& name : left) EXPECT_NE(again.err.find(name), std::string::npos) << again.err;
}

// One run per output: a second run with the same output fails at once,
// naming the first one's pid, and the first finishes undisturbed.
TEST_F(CliSafety, ASecondRunToTheSameOutputFailsAndTheFirstCompletes) {
  const fs::path out = work_ / "out";
  auto first = start_prune_and_wait_for_temp_dir(out);
  // Stopped, the first run cannot finish before the second one starts.
  ASSERT_EQ(::kill(first->pid(), SIGSTOP), 0);
  const auto before = temp_siblings(out);
  auto args = prune_args(out);
  args.push_back("--force");
  const Outcome second = Child(args, work_.path()).wait();
  EXPECT_EQ(second.exit_code, 1) << second.err;
  const auto lines = lines_of(second.err);
  ASSERT_EQ(lines.size(), 1u) << second.err;
  EXPECT_NE(lines[0].find("is being written by another run (pid " + std::to_string(first->pid()) + ")"),
            std::string::npos)
      << lines[0];
  EXPECT_EQ(temp_siblings(out), before) << "the first run's temporary is untouched";
  ASSERT_EQ(::kill(first->pid(), SIGCONT), 0);
  const Outcome done = first->wait();
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_TRUE(fs::is_regular_file(out / "model.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(out / "config.json"));
  EXPECT_TRUE(temp_siblings(out).empty());
}

TEST_F(CliSafety, FullDiskIsOneClearErrorAndLeavesNoOutput) {
  const fs::path out = work_ / "out";
  // The pruned weights are 8 MB; 1 MB fits config.json but not them.
  const Outcome outcome = Child(prune_args(out), work_.path(), rlim_t{1} << 20).wait();
  EXPECT_EQ(outcome.exit_code, 1) << outcome.err;
  const auto lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_EQ(lines[0].rfind("linearpatch: error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("File too large"), std::string::npos) << lines[0];
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(temp_siblings(out).empty());
}

TEST_F(CliSafety, ConcurrentRunsFromOneInputWriteIdenticalWeights) {
  const fs::path out1 = work_ / "out1", out2 = work_ / "out2";
  Child first(prune_args(out1), work_.path());
  Child second(prune_args(out2), work_.path());
  const Outcome a = first.wait(), b = second.wait();
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const io::SafetensorsFile w1(out1 / "model.safetensors"), w2(out2 / "model.safetensors");
  ASSERT_EQ(w1.tensors().size(), w2.tensors().size());
  for (const auto& t1 : w1.tensors()) {
    const auto& t2 = w2.get(t1.name);
    ASSERT_EQ(t1.nbytes(), t2.nbytes()) << t1.name;
    EXPECT_EQ(std::memcmp(w1.data(t1), w2.data(t2), t1.nbytes()), 0) << t1.name;
  }
  EXPECT_EQ(test::read_file(out1 / "config.json"), test::read_file(out2 / "config.json"));
}

TEST_F(CliSafety, ReportSplitsTheWriteAndSaysWhetherItIsDurable) {
  for (const bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "default (fsync)" : "--no-fsync");
    const fs::path out = work_ / (sync ? "synced" : "plain"), report = work_ / (sync ? "synced.json" : "plain.json");
    auto args = prune_args(out);
    args.insert(args.end(), {"--report", report.string()});
    if (!sync) args.push_back("--no-fsync");
    const Outcome outcome = Child(args, work_.path()).wait();
    ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
    const auto json = nlohmann::json::parse(test::read_file(report));
    const auto& timings = json["timings"];
    const double write = timings["write"], copy = timings["write_copy"], flush = timings["write_sync"];
    EXPECT_GT(copy, 0.0);
    EXPECT_GE(flush, 0.0);
    EXPECT_LE(copy + flush, write);
    EXPECT_EQ(json["write"]["durable"], sync);
    EXPECT_NEAR(json["write"]["mb_per_s"].get<double>(), json["bytes"].get<double>() / 1e6 / write, 1e-6);
  }
  EXPECT_EQ(test::read_file(work_ / "synced" / "model.safetensors"),
            test::read_file(work_ / "plain" / "model.safetensors"));
}

// The options are judged on config.json before any weight file is opened:
// over weights no reader accepts, a bad layer count is still the error, one
// usage line, and nothing is written.
TEST_F(CliSafety, BadLayerCountIsReportedBeforeTheWeightsAreRead) {
  const fs::path model = work_ / "unreadable";
  fs::create_directory(model);
  for (const auto& entry : fs::directory_iterator(model_dir()))
    if (entry.path().filename() != "model.safetensors") fs::copy_file(entry.path(), model / entry.path().filename());
  test::write_file(model / "model.safetensors", "not a safetensors file");
  auto args = prune_args(work_ / "out");
  args[3] = model.string();  // --model
  args[5] = "12";            // --layers
  const Outcome outcome = Child(args, work_.path()).wait();
  EXPECT_EQ(outcome.exit_code, 2) << outcome.err;
  const auto lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_NE(lines[0].find("cannot remove 12 of 10 layers"), std::string::npos) << lines[0];
  EXPECT_FALSE(fs::exists(work_ / "out"));
  EXPECT_TRUE(temp_siblings(work_ / "out").empty());
  EXPECT_FALSE(fs::exists(work_ / ".out.lock"));

  args[5] = "2";  // a valid request reaches the weights and is refused there
  const Outcome reached = Child(args, work_.path()).wait();
  EXPECT_EQ(reached.exit_code, 3) << reached.err;
  EXPECT_NE(reached.err.find("model.safetensors"), std::string::npos) << reached.err;
  EXPECT_FALSE(fs::exists(work_ / "out"));
  EXPECT_TRUE(temp_siblings(work_ / "out").empty());
}

struct Refusal {
  const char* name;
  int exit_code;
  const char* message;
};

class CliRefusal : public CliSafety, public ::testing::WithParamInterface<Refusal> {};

TEST_P(CliRefusal, OneErrorLineAndTheInputIsUntouched) {
  const std::string name = GetParam().name;
  fs::path out = work_ / "out";
  std::vector<std::string> extra;
  if (name == "InsideInput") out = model_dir() / "pruned";
  if (name == "ExistingWithoutForce") {
    fs::create_directory(out);
    test::write_file(out / "keep.txt", "mine");
  }
  if (name == "Unwritable") {
    test::write_file(work_ / "a-file", "");
    out = work_ / "a-file" / "out";
  }
  const Outcome outcome = Child(prune_args(out), work_.path()).wait();
  EXPECT_EQ(outcome.exit_code, GetParam().exit_code) << outcome.err;
  const auto lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_EQ(lines[0].rfind("linearpatch: error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(GetParam().message), std::string::npos) << lines[0];
  if (name == "ExistingWithoutForce") {
    EXPECT_EQ(test::read_file(out / "keep.txt"), "mine");
  }
}

INSTANTIATE_TEST_SUITE_P(Outputs, CliRefusal,
                         ::testing::Values(Refusal{"InsideInput", 2, "must not be inside"},
                                           Refusal{"ExistingWithoutForce", 2, "already exists, and replacing it was not asked for"},
                                           Refusal{"Unwritable", 1, "cannot create"}),
                         [](const auto& info) { return std::string(info.param.name); });

// The demo model has max_position_embeddings 4096.
class CliSeqLen : public CliSafety, public ::testing::WithParamInterface<const char*> {};

TEST_P(CliSeqLen, AboveMaxPositionEmbeddingsIsAUsageError) {
  const std::string command = GetParam();
  std::vector<std::string> args{"-q", command, "--model", model_dir().string(), "--seq-len", "4097"};
  const std::string text = test::demo_calibration_text().string();
  if (command == "eval") args.insert(args.end(), {"--text", text});
  if (command != "eval") args.insert(args.end(), {"--calib", text, "--calib-samples", "1"});
  if (command == "prune") args.insert(args.end(), {"--layers", "2", "--out", (work_ / "out").string()});
  const Outcome outcome = Child(args, work_.path()).wait();
  EXPECT_EQ(outcome.exit_code, 2) << outcome.err;
  const auto lines = lines_of(outcome.err);
  ASSERT_EQ(lines.size(), 1u) << outcome.err;
  EXPECT_NE(lines[0].find("windows of 4097 tokens are longer than the 4096 positions"), std::string::npos) << lines[0];
  EXPECT_FALSE(fs::exists(work_ / "out"));
}

INSTANTIATE_TEST_SUITE_P(Commands, CliSeqLen, ::testing::Values("eval", "score", "prune"));

}  // namespace
}  // namespace lp

// Durable writes overlapped with copying: with sync, a shard's fsync runs in
// the background while the next shard is copied. This binary interposes
// fsync() (defined below, it takes precedence over libc's for everything
// linked into lp_base_tests), so tests can watch, delay and fail the flushes.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "support/expect_error.h"
#include "linearpatch/io/checkpoint.h"
#include "support/test_env.h"

namespace {

// Called for every fsync with the descriptor's path; returns 0 to let the
// real fsync run, or an errno to fail it. Set only while no flush runs.
std::function<int(const std::string& path)> g_fsync_hook;

std::string path_of(int fd) {
  char target[4096];
  const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof(target) - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

}  // namespace

extern "C" int fsync(int fd) {
  if (g_fsync_hook) {
    if (const int err = g_fsync_hook(path_of(fd))) {
      errno = err;
      return -1;
    }
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace lp::io {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_message;
using test::TempDir;

constexpr uint64_t kTensorBytes = uint64_t{1} << 20;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class HookGuard {
 public:
  explicit HookGuard(std::function<int(const std::string&)> hook) { g_fsync_hook = std::move(hook); }
  ~HookGuard() { g_fsync_hook = nullptr; }
};

// Six 1 MiB tensors copied kernel-side from a source file, two per shard,
// plus one from memory.
class DurableWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::vector<uint8_t>> bytes(6, std::vector<uint8_t>(kTensorBytes));
    std::vector<OutputTensor> source;
    for (size_t t = 0; t < bytes.size(); ++t) {
      for (size_t i = 0; i < kTensorBytes; ++i) bytes[t][i] = static_cast<uint8_t>(i * 7 + t * 13 + i / 4096);
      source.push_back({"layer." + std::to_string(t), DType::kU8, {int64_t(kTensorBytes)}, kTensorBytes,
                        bytes[t].data()});
    }
    write_safetensors(dir_ / "source.safetensors", source, {}, {/*sync=*/false, 0});
    source_ = std::make_unique<SafetensorsFile>(dir_ / "source.safetensors");
  }

  std::vector<std::string> write(const fs::path& out, bool sync) {
    fs::create_directory(out);
    test::write_file(out / "config.json", R"({"model_type": "llama"})");
    ShardedWriter writer(out, 2 * kTensorBytes);
    for (const auto& info : source_->tensors())
      writer.add({info.name, info.dtype, info.shape, info.nbytes(), nullptr, source_->fd(), source_->file_offset(info)});
    writer.add({"patch", DType::kF32, {2}, sizeof(patch_), patch_});
    auto files = writer.finish({}, {sync, 2});
    times_ = writer.times();
    return files;
  }

  TempDir dir_;
  std::unique_ptr<SafetensorsFile> source_;
  const float patch_[2] = {1.5f, -2.0f};
  WriteTimes times_;
};

TEST_F(DurableWrite, OverlappedSyncWritesTheSameBytesAsNoSync) {
  std::mutex mutex;
  std::vector<std::string> synced;
  const auto files = [&] {
    HookGuard hook([&](const std::string& path) {
      std::lock_guard<std::mutex> lock(mutex);  // the flushes run in parallel
      synced.push_back(fs::path(path).filename().string());
      return 0;
    });
    return write(dir_ / "synced", true);
  }();
  const auto plain_files = write(dir_ / "plain", false);
  ASSERT_EQ(files, plain_files);
  ASSERT_EQ(files.size(), 5u);  // 4 shards (the last holds the patch) + index
  for (const auto& name : files)
    EXPECT_EQ(test::read_file(dir_ / "synced" / name), test::read_file(dir_ / "plain" / name)) << name;
  // Each file flushed exactly once.
  std::sort(synced.begin(), synced.end());
  std::vector<std::string> expected = files;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(synced, expected);

  const Checkpoint checkpoint(dir_ / "synced");
  for (const auto& info : source_->tensors()) {
    const auto ref = checkpoint.tensor(info.name);
    ASSERT_EQ(ref.info->nbytes(), info.nbytes());
    EXPECT_EQ(std::memcmp(ref.data(), source_->data(info), info.nbytes()), 0) << info.name;
  }
  EXPECT_GT(times_.copy_seconds, 0.0);
  EXPECT_GE(times_.sync_seconds, 0.0);
}

TEST_F(DurableWrite, NoSyncNeverFlushes) {
  int calls = 0;
  HookGuard hook([&](const std::string&) {
    ++calls;
    return 0;
  });
  write(dir_ / "plain", false);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(times_.sync_seconds, 0.0);
}

TEST_F(DurableWrite, FirstShardFlushesWhileTheNextIsCopied) {
  // The first shard's fsync waits for the second shard to appear: that only
  // happens when copying goes on while the flush runs.
  const fs::path out = dir_ / "overlap";
  std::mutex mutex;
  bool saw_next = false;
  HookGuard hook([&](const std::string& path) {
    if (!ends_with(path, "model-00001-of-00004.safetensors")) return 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!fs::exists(out / "model-00002-of-00004.safetensors") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mutex);
    saw_next = fs::exists(out / "model-00002-of-00004.safetensors");
    return 0;
  });
  write(out, true);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_TRUE(saw_next);
}

TEST_F(DurableWrite, FailedBackgroundFlushIsAnErrorNamingTheFile) {
  const fs::path out = dir_ / "failing";
  HookGuard hook([](const std::string& path) { return ends_with(path, "model-00002-of-00004.safetensors") ? EIO : 0; });
  const std::string message = error_message<Error>([&] { write(out, true); });
  EXPECT_TRUE(contains(message, "cannot flush " + (out / "model-00002-of-00004.safetensors").string() + ": " +
                                    std::strerror(EIO)))
      << message;
  // The file whose flush failed is removed; the caller's AtomicOutputDir
  // removes the rest.
  EXPECT_FALSE(fs::exists(out / "model-00002-of-00004.safetensors"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
}

}  // namespace
}  // namespace lp::io

#include "distill/teacher_targets.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "linearpatch/core/error.h"

namespace lp {

TeacherTargets::TeacherTargets(int64_t windows, int64_t tokens, int64_t k, uint64_t memory_budget_bytes,
                               const std::filesystem::path& spill_dir) {
  const uint64_t entries = static_cast<uint64_t>(windows) * tokens * k;
  const uint64_t bytes = entries * (sizeof(float) + sizeof(int64_t));
  if (bytes <= memory_budget_bytes) {
    log_probs_ = at::empty({windows, tokens, k}, at::kFloat);
    ids_ = at::empty({windows, tokens, k}, at::kLong);
    return;
  }
  std::filesystem::path dir = spill_dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = tmp ? tmp : "/tmp";
  }
  auto pattern = (dir / "linearpatch-teacher-XXXXXX").string();
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw Error("cannot create the teacher cache in " + dir.string() + ": " + std::strerror(errno));
  ::unlink(pattern.c_str());
  // posix_fallocate reserves the blocks now, so a full disk is an error here
  // rather than a SIGBUS while training.
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc != 0) {
    ::close(fd);
    throw Error("cannot reserve " + std::to_string(bytes >> 20) + " MiB for the teacher cache in " + dir.string() +
                ": " + std::strerror(rc) + " (cache them in another folder or keep fewer teacher tokens)");
  }
  mapping_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw Error("cannot map the teacher cache: " + std::string(std::strerror(errno)));
  }
  mapping_bytes_ = bytes;
  auto* base = static_cast<char*>(mapping_);
  ids_ = at::from_blob(base, {windows, tokens, k}, at::kLong);
  log_probs_ = at::from_blob(base + entries * sizeof(int64_t), {windows, tokens, k}, at::kFloat);
}

TeacherTargets::~TeacherTargets() {
  if (mapping_) ::munmap(mapping_, mapping_bytes_);
}

std::pair<at::Tensor, at::Tensor> top_k_targets(const at::Tensor& logits, int64_t k) {
  auto [values, ids] = at::topk(logits, k, /*dim=*/-1);
  return {at::log_softmax(values.to(at::kFloat), -1), ids};
}

}  // namespace lp

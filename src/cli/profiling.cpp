#include "cli/profiling.h"

#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <cstdlib>

namespace lp::cli {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

// c10 errors carry a backtrace; one line is enough here.
std::string message(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) return error->what_without_backtrace();
  return e.what();
}

std::set<ActivityType> activities() {
  std::set<ActivityType> set{ActivityType::CPU};
  if (at::hasCUDA()) set.insert(ActivityType::CUDA);
  return set;
}

}  // namespace

CommandProfile::CommandProfile() {
  const char* path = std::getenv("LINEARPATCH_PROFILE");
  if (!path || !*path) return;
  try {
    const ProfilerConfig config(ProfilerState::KINETO);
    profiler::prepareProfiler(config, activities());
    profiler::enableProfiler(config, activities());
    path_ = path;
  } catch (const std::exception& e) {
    spdlog::warn("LINEARPATCH_PROFILE: this libtorch cannot record a trace ({})", message(e));
  }
}

CommandProfile::~CommandProfile() {
  if (path_.empty()) return;
  try {
    profiler::disableProfiler()->save(path_);
    spdlog::info("profile written to {}", path_);
  } catch (const std::exception& e) {
    spdlog::warn("LINEARPATCH_PROFILE: cannot write {}: {}", path_, message(e));
  }
}

}  // namespace lp::cli

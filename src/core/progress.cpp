#include "linearpatch/core/progress.h"

#include <spdlog/spdlog.h>

#include "linearpatch/core/interrupt.h"

namespace lp {
namespace {

constexpr double kLogEverySeconds = 5.0;

std::string format_duration(double seconds) {
  if (seconds < 90) return fmt::format("{:.0f} s", seconds);
  if (seconds < 5400) return fmt::format("{:.1f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

}  // namespace

Progress::Progress(std::string what, int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), start_(Clock::now()),
      last_log_(start_) {
  spdlog::debug("{}: {} {}", what_, total_, unit_);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void Progress::advance(int64_t n, const std::string& detail) {
  throw_if_interrupted();
  done_ += n;
  const auto now = Clock::now();
  if (done_ >= total_ || std::chrono::duration<double>(now - last_log_).count() < kLogEverySeconds) return;
  last_log_ = now;
  const double elapsed = elapsed_seconds();
  const double rate = done_ / elapsed;
  spdlog::info("{}: {}/{} {}, {:.2f} {}/s, ETA {}{}{}", what_, done_, total_, unit_, rate, unit_,
               format_duration((total_ - done_) / rate), detail.empty() ? "" : ", ", detail);
}

double Progress::finish() {
  const double elapsed = elapsed_seconds();
  spdlog::info("{}: {} {} in {} ({:.2f} {}/s)", what_, done_, unit_, format_duration(elapsed),
               elapsed > 0 ? done_ / elapsed : 0.0, unit_);
  return elapsed;
}

}  // namespace lp

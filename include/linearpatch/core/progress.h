// Progress reporting for long loops: logs count, rate and ETA on stderr at
// most every few seconds (and never as \r animations, so CI logs stay
// readable), and is the place long loops notice SIGINT/SIGTERM.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lp {

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit);
  // Counts `n` more units done; throws Interrupted after SIGINT/SIGTERM.
  // `detail` (e.g. the current loss) is appended to the periodic log line.
  void advance(int64_t n = 1, const std::string& detail = "");
  // Logs the total time and rate; returns the elapsed seconds.
  double finish();
  double elapsed_seconds() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_, unit_;
  int64_t total_ = 0, done_ = 0;
  Clock::time_point start_, last_log_;
};

// Seconds since `start`, for per-phase timings in reports.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lp

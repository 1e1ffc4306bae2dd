#include "linearpatch/core/interrupt.h"

#include <csignal>
#include <cstring>
#include <mutex>
#include <set>
#include <unistd.h>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

volatile std::sig_atomic_t g_signal_count = 0;
std::mutex g_cleanup_mutex;
std::set<std::filesystem::path> g_cleanup_paths;

void handle_signal(int signal) {
  if (++g_signal_count < 2) return;
  // Second signal: the user wants out now. Not async-signal-safe, but the
  // process is about to die and leaving a half-written output is worse.
  for (const auto& path : g_cleanup_paths) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = handle_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_signal_count > 0; }

void throw_if_interrupted() {
  if (interrupt_requested()) throw Interrupted();
}

void register_cleanup_path(const std::filesystem::path& path) {
  std::lock_guard<std::mutex> lock(g_cleanup_mutex);
  g_cleanup_paths.insert(path);
}

void unregister_cleanup_path(const std::filesystem::path& path) {
  std::lock_guard<std::mutex> lock(g_cleanup_mutex);
  g_cleanup_paths.erase(path);
}

}  // namespace lp

// SIGINT/SIGTERM handling. The handlers only set a flag; long loops poll it
// (Progress::advance does) and unwind with lp::Interrupted, so destructors
// remove temporary outputs. A second signal terminates at once, after the
// registered cleanup paths are removed.
#pragma once

#include <filesystem>

namespace lp {

void install_interrupt_handlers();
bool interrupt_requested();
void throw_if_interrupted();  // throws lp::Interrupted

// Paths removed (recursively) if the process is killed by a second signal
// before normal unwinding could remove them.
void register_cleanup_path(const std::filesystem::path& path);
void unregister_cleanup_path(const std::filesystem::path& path);

}  // namespace lp

#include "linearpatch/core/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "linearpatch/core/error.h"

namespace lp {

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create " + path.string() + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw Error("cannot write " + path.string() + ": " + std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
}

}  // namespace lp

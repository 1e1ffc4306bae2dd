// Tokenizer throughput: lp_tokenizer_bench <tokenizer dir> <text file> [repeats]
// Prints load time and, per repeat, encode time of the whole file at once
// (the first run fills the pre-token cache, later ones hit it): wall time
// and this process's CPU time, which stays meaningful on a busy machine.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>

#include "linearpatch/tokenizer/tokenizer.h"

namespace {

struct Stopwatch {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  std::clock_t cpu = std::clock();

  double wall_seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(); }
  double cpu_seconds() const { return static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC; }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <tokenizer dir> <text file> [repeats]\n", argv[0]);
    return 2;
  }
  try {
    std::ifstream in(argv[2], std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    const std::string text = content.str();
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 2;

    const Stopwatch load;
    const auto tokenizer = lp::load_tokenizer(argv[1]);
    std::printf("%s: loaded in %.3f s (cpu %.3f s)\n", tokenizer->description().c_str(), load.wall_seconds(),
                load.cpu_seconds());
    for (int r = 0; r < repeats; ++r) {
      const Stopwatch encode;
      const auto ids = tokenizer->encode(text, true);
      const double cpu = encode.cpu_seconds();
      std::printf("encode %zu bytes -> %zu tokens in %.3f s (cpu %.3f s, %.1f MB/s of cpu)\n", text.size(), ids.size(),
                  encode.wall_seconds(), cpu, static_cast<double>(text.size()) / cpu / 1e6);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

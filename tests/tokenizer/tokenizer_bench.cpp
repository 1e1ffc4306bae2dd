// Tokenizer throughput: lp_tokenizer_bench <tokenizer dir> <text file> [repeats]
// Prints load time and, per repeat, encode time of the whole file at once
// (the first run fills the pre-token cache, later ones hit it).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>

#include "linearpatch/tokenizer/tokenizer.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

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

    auto start = std::chrono::steady_clock::now();
    const auto tokenizer = lp::load_tokenizer(argv[1]);
    std::printf("%s: loaded in %.3f s\n", tokenizer->description().c_str(), seconds_since(start));
    for (int r = 0; r < repeats; ++r) {
      start = std::chrono::steady_clock::now();
      const auto ids = tokenizer->encode(text, true);
      const double s = seconds_since(start);
      std::printf("encode %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", text.size(), ids.size(), s,
                  static_cast<double>(text.size()) / s / 1e6);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Measures this machine's float32 matrix-multiply rate through libtorch at
// the shapes a model's forward uses, the ceiling eval/prune throughput is
// compared with in scripts/bench_cpu.sh.
//   lp_matmul_bench M K N [repeats]   -> one JSON line {"m","k","n","gflops"}
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s M K N [repeats]\n", argv[0]);
    return 2;
  }
  const int64_t m = std::atoll(argv[1]), k = std::atoll(argv[2]), n = std::atoll(argv[3]);
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 20;
  auto a = at::randn({m, k});
  auto b = at::randn({n, k});
  at::linear(a, b);  // warm-up: thread pool, BLAS initialisation
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) at::linear(a, b);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"m\": %lld, \"k\": %lld, \"n\": %lld, \"threads\": %d, \"gflops\": %.2f}\n", (long long)m,
              (long long)k, (long long)n, at::get_num_threads(), 2.0 * m * k * n * repeats / seconds / 1e9);
  return 0;
}

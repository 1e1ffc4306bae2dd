#include "cli/common.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>

#include "cli/usage.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/model_locator.h"
#include "linearpatch/model/device.h"

namespace lp::cli {

void add_model_option(CLI::App& cmd, std::string& model) {
  cmd.add_option("-m,--model", model,
                 "Model: a checkpoint directory, an alias from configs/aliases.json, or a HuggingFace repo id "
                 "in the local hub cache")
      ->required();
}

void add_model_args(CLI::App& cmd, ModelArgs& args) {
  add_model_option(cmd, args.model);
  cmd.add_option("--device", args.device,
                 "cpu, cuda or cuda:N; several GPUs as cuda:0,1,... or cuda:all: the layers are spread over them "
                 "by free memory (and --distill trains data-parallel when a whole model fits on each)")
      ->capture_default_str();
  cmd.add_option("--dtype", args.dtype, "Compute dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, float16")
      ->capture_default_str();
  cmd.add_option("--max-gpu-memory", args.max_gpu_memory,
                 "Device memory for weights (on each device), e.g. 8GB; a larger model streams its layers from host "
                 "memory one at a time");
}

void add_runtime_args(CLI::App& cmd, RuntimeArgs& args) {
  cmd.add_option("--threads", args.threads, "CPU threads (0: all cores)")->capture_default_str()->check(at_least(0));
  cmd.add_option("--batch-size", args.batch_size,
                 "Windows per forward pass (0: about 4096 tokens per pass on CPU, 16384 on GPU)")
      ->capture_default_str()
      ->check(at_least(0));
}

int64_t tokens_per_pass(const std::string& device) {
  // GPUs want many rows per matrix product to keep the tensor cores busy
  // (the Python baseline runs 8 x 2048); on CPUs 4k already saturates BLAS.
  return device.rfind("cuda", 0) == 0 ? 16384 : 4096;
}

int64_t apply_runtime(const RuntimeArgs& args, int64_t seq_len, const std::string& device) {
  if (args.threads > 0) at::set_num_threads(args.threads);
  if (args.batch_size > 0) return args.batch_size;
  return std::max<int64_t>(1, tokens_per_pass(device) / std::max<int64_t>(seq_len, 1));
}

std::filesystem::path resolve_model_dir(const std::string& spec) {
  auto dir = io::resolve_model(spec);
  if (dir.string() != spec) spdlog::info("model '{}' -> {}", spec, dir.string());
  return dir;
}

std::vector<std::string> device_list(const std::string& text) {
  if (text == "cuda:all") {
    const int64_t count = cuda_device_count();
    if (count == 0) throw UsageError("--device cuda:all: this build or machine has no CUDA device");
    std::vector<std::string> all;
    for (int64_t i = 0; i < count; ++i) all.push_back("cuda:" + std::to_string(i));
    return all;
  }
  std::vector<std::string> devices;
  std::string kind;  // "cuda:" of the previous entry, for bare indices as in cuda:0,1
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    auto entry = text.substr(begin, end - begin);
    const auto digit = [](unsigned char ch) { return std::isdigit(ch) != 0; };
    const bool bare_index = !entry.empty() && std::all_of(entry.begin(), entry.end(), digit);
    if (bare_index && !kind.empty()) entry = kind + entry;
    const auto colon = entry.find(':');
    kind = colon == std::string::npos ? "" : entry.substr(0, colon + 1);
    devices.push_back(entry);
    begin = end + 1;
  }
  try {
    resolve_devices(devices);
  } catch (const Error& e) {
    throw UsageError("--device " + text + ": " + e.what());
  }
  return devices;
}

ModelOptions model_options(const ModelArgs& args) {
  ModelOptions options;
  options.devices = device_list(args.device);
  options.compute_dtype = args.dtype;
  if (!args.max_gpu_memory.empty()) options.max_device_bytes = parse_byte_size(args.max_gpu_memory);
  return options;
}

LlamaModel load_model(const ModelArgs& args) {
  return LlamaModel::load(resolve_model_dir(args.model), model_options(args));
}

std::vector<std::filesystem::path> to_paths(const std::vector<std::string>& files) {
  return {files.begin(), files.end()};
}

std::vector<std::filesystem::path> default_calibration_files() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("LINEARPATCH_DATA_DIR")) dirs.emplace_back(env);
  dirs.emplace_back(LP_SOURCE_DATA_DIR);
  dirs.emplace_back(LP_INSTALL_DATA_DIR);
  for (const auto& dir : dirs) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir / "text", ec))
      if (entry.path().extension() == ".txt") files.push_back(entry.path());
    if (!files.empty()) {
      std::sort(files.begin(), files.end());
      return files;
    }
  }
  std::string looked;
  for (const auto& dir : dirs) looked += " " + (dir / "text").string();
  throw UsageError("no --calib given and no default calibration text found (looked in" + looked + ")");
}

uint64_t parse_byte_size(const std::string& text) {
  static const std::vector<std::pair<std::string, uint64_t>> units = {
      {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}, {"GB", 1000000000ull},
      {"MB", 1000000ull},  {"KB", 1000ull},     {"B", 1ull}};
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) ++digits;
  const std::string unit = text.substr(digits);
  uint64_t scale = unit.empty() ? 1 : 0;
  for (const auto& [name, factor] : units)
    if (unit == name) scale = factor;
  double value = 0;
  try {
    value = digits ? std::stod(text.substr(0, digits)) : 0;
  } catch (const std::exception&) {
    value = 0;
  }
  if (scale == 0 || value <= 0) throw UsageError("cannot read size '" + text + "' (examples: 5GB, 500MB, 4GiB)");
  return static_cast<uint64_t>(value * static_cast<double>(scale));
}

void print_json(const Json& json) { std::cout << json.dump(2) << std::endl; }

}  // namespace lp::cli

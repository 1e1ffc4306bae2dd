// Pieces shared by the subcommands: option groups, logging set-up, model
// loading with the resolved --model path, and JSON/human output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "linearpatch/model/llama.h"

namespace lp::cli {

using Json = nlohmann::ordered_json;

struct ModelArgs {
  std::string model;
  std::string device = "cpu";
  std::string dtype = "auto";
  std::string max_gpu_memory;
};

struct RuntimeArgs {
  int threads = 0;  // 0: all cores
  int64_t batch_size = 0;  // 0: chosen from the window length
};

void add_model_option(CLI::App& cmd, std::string& model);
void add_model_args(CLI::App& cmd, ModelArgs& args);
void add_runtime_args(CLI::App& cmd, RuntimeArgs& args);

// Tokens one forward pass should carry: enough rows to keep the device's
// matrix units busy, few enough to bound activation memory.
int64_t tokens_per_pass(const std::string& device);

// Applies --threads; returns the batch size to use for windows of seq_len tokens.
int64_t apply_runtime(const RuntimeArgs& args, int64_t seq_len, const std::string& device);

// --device as a list: "cuda:0,1" and "cuda:0,cuda:1" -> {"cuda:0", "cuda:1"},
// "cuda:all" -> every GPU this process sees; UsageError naming the flag.
std::vector<std::string> device_list(const std::string& text);

std::filesystem::path resolve_model_dir(const std::string& spec);
LlamaModel load_model(const ModelArgs& args);
ModelOptions model_options(const ModelArgs& args);

std::vector<std::filesystem::path> to_paths(const std::vector<std::string>& files);

// The calibration text shipped with linearpatch (data/text/*.txt), found via
// $LINEARPATCH_DATA_DIR, the source tree, or the install prefix.
std::vector<std::filesystem::path> default_calibration_files();

// "5GB", "500MB", "4GiB", "123" -> bytes; UsageError otherwise.
uint64_t parse_byte_size(const std::string& text);

void print_json(const Json& json);

// A subcommand and what runs it once parsing succeeded (kept out of CLI11
// callbacks so parse errors and run errors are reported differently).
struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};

Command register_inspect(CLI::App& app);
Command register_tokenize(CLI::App& app);
Command register_eval(CLI::App& app);
Command register_score(CLI::App& app);
Command register_prune(CLI::App& app);
Command register_synth(CLI::App& app);

}  // namespace lp::cli

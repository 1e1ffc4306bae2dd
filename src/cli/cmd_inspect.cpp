// linearpatch inspect: what a checkpoint holds, without loading weights.
#include <spdlog/spdlog.h>

#include <iostream>
#include <map>

#include "cli/common.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp::cli {
namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
};

// The per-family details of the attention layers.
Json attention_json(const LlamaConfig& c) {
  Json j{{"qkv_bias", c.qkv_bias}, {"o_bias", c.o_bias}, {"qk_norm", c.qk_norm}};
  auto windowed = Json::array();
  for (size_t l = 0; l < c.attention_windows.size(); ++l)
    if (c.attention_windows[l] > 0) windowed.push_back(l);
  j["sliding_window"] = c.narrowest_window() > 0 ? Json(c.narrowest_window()) : Json(nullptr);
  j["windowed_layers"] = windowed;
  return j;
}

Json describe(const std::filesystem::path& dir) {
  const auto opened = open_checkpoint(dir);
  const auto& checkpoint = *opened;
  const auto config = parse_llama_config(checkpoint.config_text(), (dir / "config.json").string());
  int64_t parameters = 0;
  std::map<std::string, int64_t> dtypes;
  for (const auto& name : checkpoint.tensor_names()) {
    const auto& info = *checkpoint.tensor(name).info;
    parameters += static_cast<int64_t>(info.numel());
    dtypes[std::string(io::dtype_name(info.dtype))] += static_cast<int64_t>(info.numel());
  }
  Json out;
  out["model"] = dir.string();
  out["model_type"] = config.model_type;
  out["layers"] = config.num_hidden_layers;
  out["hidden_size"] = config.hidden_size;
  out["intermediate_size"] = config.intermediate_size;
  out["heads"] = config.num_attention_heads;
  out["kv_heads"] = config.num_key_value_heads;
  out["head_dim"] = config.head_dim;
  out["vocab_size"] = config.vocab_size;
  out["dtype"] = config.dtype.empty() ? (dtypes.size() == 1 ? dtypes.begin()->first : "mixed") : config.dtype;
  out["tensor_dtypes"] = dtypes;
  out["parameters"] = parameters;
  out["tie_word_embeddings"] = config.tie_word_embeddings;
  out["rope_theta"] = config.rope_theta;
  out["max_position_embeddings"] = config.max_position_embeddings;
  out["attention"] = attention_json(config);
  out["shards"] = checkpoint.shards().size();
  out["tensor_bytes"] = checkpoint.total_tensor_bytes();
  auto patches = Json::array();
  for (const auto& p : config.patches) patches.push_back({{"layer", p.layer}, {"tensor", p.tensor}});
  out["patches"] = patches;
  try {
    const auto tokenizer = load_tokenizer(dir);
    out["tokenizer"] = tokenizer->description();
    out["text_prefix"] = tokenizer->prefix_description();
  } catch (const InputError& e) {
    out["tokenizer"] = nullptr;
    spdlog::warn("no usable tokenizer: {}", e.what());
  }
  return out;
}

void print_human(const Json& j) {
  const auto& attention = j["attention"];
  std::cout << j["model"].get<std::string>() << " (" << j["model_type"].get<std::string>() << ")\n"
            << "  layers " << j["layers"] << ", hidden " << j["hidden_size"] << ", intermediate "
            << j["intermediate_size"] << "\n"
            << "  heads " << j["heads"] << " (kv " << j["kv_heads"] << ", head_dim " << j["head_dim"] << "), vocab "
            << j["vocab_size"] << ", tied embeddings " << (j["tie_word_embeddings"].get<bool>() ? "yes" : "no") << "\n"
            << "  dtype " << j["dtype"].get<std::string>() << ", " << j["parameters"] << " parameters in "
            << j["shards"] << " file(s)\n";
  if (attention["qkv_bias"].get<bool>() || attention["qk_norm"].get<bool>())
    std::cout << "  attention: " << (attention["qkv_bias"].get<bool>() ? "q/k/v biases" : "")
              << (attention["qkv_bias"].get<bool>() && attention["qk_norm"].get<bool>() ? ", " : "")
              << (attention["qk_norm"].get<bool>() ? "q/k norms" : "") << "\n";
  if (!attention["sliding_window"].is_null())
    std::cout << "  sliding window " << attention["sliding_window"] << " tokens on " << attention["windowed_layers"].size()
              << " of " << j["layers"] << " layers\n";
  for (const auto& p : j["patches"])
    std::cout << "  patch " << p["tensor"].get<std::string>() << " at the input of layer " << p["layer"] << "\n";
  std::cout << "  tokenizer " << (j["tokenizer"].is_null() ? "none" : j["tokenizer"].get<std::string>());
  if (j.contains("text_prefix")) std::cout << "; text prefix " << j["text_prefix"].get<std::string>();
  std::cout << std::endl;
}

}  // namespace

Command register_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Show a checkpoint's shape, dtype, parameter count, patches and tokenizer");
  add_model_option(*cmd, args->model);
  cmd->add_flag("--json", args->json, "Print one JSON object on stdout");
  return {cmd, [args] {
            const auto info = describe(resolve_model_dir(args->model));
            if (args->json) print_json(info);
            else print_human(info);
          }};
}

}  // namespace lp::cli

// linearpatch inspect: what a checkpoint holds, without loading weights.
#include <spdlog/spdlog.h>

#include <iostream>
#include <map>

#include "cli/common.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/layer_range.h"
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
  // Sublayer-pruned checkpoints (ours or Nemotron-NAS no_op blocks).
  auto without_attention = Json::array(), without_mlp = Json::array();
  for (int64_t l = 0; l < static_cast<int64_t>(c.layer_specs.size()); ++l) {
    if (!c.layer_spec(l).attention) without_attention.push_back(l);
    if (!c.layer_spec(l).mlp) without_mlp.push_back(l);
  }
  j["layers_without_attention"] = without_attention;
  j["layers_without_mlp"] = without_mlp;
  return j;
}

// What a linearpatch output records about how it was made (config.json's
// "linearpatch" entry): source, removed layers, repairs, recipe. Checkpoints
// from before ranges were spelled out give their gaps as "removed": [start, end).
Json provenance_json(const Json& entry) {
  Json out;
  for (const char* key : {"source", "recipe", "recipe_overrides", "metric", "repair", "rotation", "emit", "fold",
                          "original_num_hidden_layers", "removed_layers", "tool"})
    if (entry.contains(key)) out[key] = entry[key];
  auto gaps = Json::array();
  for (const auto& g : entry.value("gaps", Json::array())) {
    const auto range = g.contains("range") ? g["range"] : g.value("removed", Json::array());
    Json gap{{"range", range}};
    if (g.contains("removed_layers")) gap["removed_layers"] = g["removed_layers"];
    else if (range.size() == 2) {
      auto layers = Json::array();
      for (int64_t l = range[0].get<int64_t>(); l < range[1].get<int64_t>(); ++l) layers.push_back(l);
      gap["removed_layers"] = layers;
    }
    if (g.contains("new_position")) gap["new_position"] = g["new_position"];
    gap["repair"] = g.value("repair", "");
    gap["how"] = g.value("how", "");
    gaps.push_back(gap);
  }
  out["gaps"] = gaps;
  if (entry.contains("distill")) out["distilled"] = true;
  return out;
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
  out["num_layers"] = config.num_hidden_layers;
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
  const auto raw = Json::parse(checkpoint.config_text(), nullptr, /*allow_exceptions=*/false);
  if (raw.is_object() && raw.contains("linearpatch") && raw["linearpatch"].is_object())
    out["pruned"] = provenance_json(raw["linearpatch"]);
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

std::string text_of(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// Original layer numbers throughout; the pruned model's own index of the
// layer after a gap is said as "new position".
void print_provenance(const Json& p) {
  std::cout << "  pruned from " << (p.contains("source") ? text_of(p["source"]) : std::string("(not recorded)"));
  if (p.contains("original_num_hidden_layers")) std::cout << " (" << p["original_num_hidden_layers"] << " layers)";
  std::cout << "\n";
  if (p.contains("removed_layers")) {
    std::string layers;
    for (const auto& l : p["removed_layers"]) layers += (layers.empty() ? "" : ", ") + l.dump();
    std::cout << "  removed layers " << layers << " (original numbering)";
    if (p.contains("metric")) std::cout << ", chosen by " << text_of(p["metric"]);
    std::cout << "\n";
  }
  if (p.contains("recipe")) {
    std::cout << "  recipe " << text_of(p["recipe"]);
    if (p.contains("recipe_overrides"))
      for (const auto& o : p["recipe_overrides"]) std::cout << " " << text_of(o);
    std::cout << "\n";
  }
  for (const auto& g : p["gaps"]) {
    const auto& range = g["range"];
    if (range.size() != 2 || !range[0].is_number_integer() || !range[1].is_number_integer()) continue;
    const int64_t start = range[0], end = range[1];
    std::cout << "  gap " << describe_range({start, end}) << ": " << text_of(g["repair"]);
    if (g.contains("new_position"))
      std::cout << "; layer " << end << " is now at position " << g["new_position"];
    std::cout << "\n";
  }
  if (p.value("distilled", false)) std::cout << "  repairs distilled\n";
  if (p.contains("emit")) std::cout << "  written as " << text_of(p["emit"]) << "\n";
}

void print_human(const Json& j) {
  const auto& attention = j["attention"];
  std::cout << j["model"].get<std::string>() << " (" << j["model_type"].get<std::string>() << ")\n"
            << "  layers " << j["num_layers"] << ", hidden " << j["hidden_size"] << ", intermediate "
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
              << " of " << j["num_layers"] << " layers\n";
  for (const char* key : {"layers_without_attention", "layers_without_mlp"})
    if (!attention[key].empty())
      std::cout << "  " << (std::string(key) == "layers_without_mlp" ? "no MLP" : "no attention") << " in layers "
                << attention[key].dump() << "\n";
  if (j.contains("pruned")) print_provenance(j["pruned"]);
  else
    for (const auto& p : j["patches"])
      std::cout << "  patch " << p["tensor"].get<std::string>() << " on the stream entering layer " << p["layer"] << " (new numbering)\n";
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

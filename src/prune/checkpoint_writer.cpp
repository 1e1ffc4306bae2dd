#include "linearpatch/prune/checkpoint_writer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "linearpatch/config/config_rewrite.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/config/nemotron_nas.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "model/tensor_bridge.h"
#include "prune/hf_modeling.h"

namespace fs = std::filesystem;

namespace lp {
namespace {

constexpr int kFormatVersion = 1;

bool is_weight_file(const fs::path& path) {
  const auto name = path.filename().string();
  const auto ext = path.extension().string();
  return ext == ".safetensors" || ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".gguf" ||
         ext == ".msgpack" || ext == ".h5" || name == "model.safetensors.index.json" ||
         name == "pytorch_model.bin.index.json";
}

// Tokenizer, generation config, chat template, README, licence... Hidden
// files and subdirectories (e.g. Meta's original/ consolidated weights) are
// not part of the HF checkpoint and are left behind.
void copy_side_files(const fs::path& from, const fs::path& to) {
  for (const auto& entry : fs::directory_iterator(from)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.empty() || name[0] == '.' || name == "config.json" ||
        is_weight_file(entry.path()))
      continue;
    fs::copy_file(entry.path(), to / name);
  }
}

// Per new layer, which sublayers it has: the source's spec less what the
// plan removes. Empty when every layer keeps both.
std::vector<LayerSpec> output_layer_specs(const LlamaConfig& source, const PrunePlan& plan) {
  std::vector<LayerSpec> specs;
  bool partial = false;
  for (const int64_t layer : plan.kept) {
    auto spec = source.layer_spec(layer);
    if (removes_sublayer(plan, layer, Sublayer::kAttention)) spec.attention = false;
    if (removes_sublayer(plan, layer, Sublayer::kMlp)) spec.mlp = false;
    partial = partial || !(spec == LayerSpec{});
    specs.push_back(spec);
  }
  return partial ? specs : std::vector<LayerSpec>{};
}

std::string linearpatch_entry(const PrunePlan& plan, const CheckpointEdits& edits,
                              const std::vector<LayerSpec>& layer_specs) {
  const auto& patches = edits.patches;
  auto entry = nlohmann::ordered_json::object();
  entry["format_version"] = kFormatVersion;
  entry["original_num_hidden_layers"] = plan.original_layers;
  entry["removed_layers"] = plan.removed;
  auto list = nlohmann::ordered_json::array();
  for (const auto& run : removed_runs(plan)) {
    const int64_t position = new_layer_index(plan, run.patched_layer());
    if (!patches.count(position)) continue;
    nlohmann::ordered_json patch{{"layer", position}, {"tensor", patch_tensor_name(position)}};
    if (run.whole_layers()) {
      patch["replaces_layers"] = nlohmann::ordered_json::array({run.begin / 2, run.end / 2});
    } else {
      auto sites = nlohmann::ordered_json::array();
      for (const auto& site : run.sites())
        sites.push_back({{"layer", site.layer}, {"sublayer", sublayer_name(site.sublayer)}});
      patch["replaces_sublayers"] = sites;
    }
    patch["apply"] = "h = h @ W on the residual stream entering this layer";
    list.push_back(std::move(patch));
  }
  entry["patches"] = list;
  if (!plan.removed_sublayers.empty()) {
    auto sites = nlohmann::ordered_json::array();
    for (const auto& site : plan.removed_sublayers)
      sites.push_back({{"layer", site.layer}, {"sublayer", sublayer_name(site.sublayer)}});
    entry["removed_sublayers"] = sites;
  }
  if (!layer_specs.empty()) {
    auto layers = nlohmann::ordered_json::array();
    for (const auto& spec : layer_specs) layers.push_back({{"attention", spec.attention}, {"mlp", spec.mlp}});
    entry["layers"] = layers;
  }
  if (!edits.provenance_json.empty()) {
    auto extra = nlohmann::ordered_json::parse(edits.provenance_json);
    for (auto it = extra.begin(); it != extra.end(); ++it) entry[it.key()] = it.value();
  }
  return entry.dump();
}

// config.json edits the layer rewrite does not cover: untied embeddings and
// the transformers entry points: the family's own class, or its patched
// subclass from the modeling file.
std::string finish_config(const std::string& config_text, ModelFamily family, const CheckpointEdits& edits,
                          bool partial_layers) {
  auto config = nlohmann::ordered_json::parse(config_text);
  if (edits.untie_embeddings) config["tie_word_embeddings"] = false;
  const std::string plain = causal_lm_class_name(family);
  if (!edits.patches.empty() || partial_layers) {
    const std::string patched = "LinearPatch" + plain;
    const std::string module = std::filesystem::path(kHfModelingFile).stem().string();
    config["architectures"] = {patched};
    config["auto_map"] = {{"AutoModelForCausalLM", module + "." + patched}};
  } else {
    config["architectures"] = {plain};
    config.erase("auto_map");
  }
  return config.dump(2) + "\n";
}

}  // namespace

std::string renamed_tensor(const std::string& name, const PrunePlan& plan) {
  const auto [layer, suffix] = split_layer_tensor_name(name);
  if (layer < 0) return name;
  const auto it = std::lower_bound(plan.kept.begin(), plan.kept.end(), layer);
  if (it == plan.kept.end() || *it != layer) return "";
  if (const auto owner = owner_of_suffix(suffix); owner && removes_sublayer(plan, layer, *owner)) return "";
  return layer_tensor_name(it - plan.kept.begin(), suffix);
}

namespace {

// The tensors of the output, by kind, each as (new name, source name).
struct OutputNames {
  std::vector<std::pair<std::string, std::string>> embeddings, layers, rest;  // rest: norm, head
};

OutputNames output_names(const io::Checkpoint& source, const PrunePlan& plan, const CheckpointEdits& edits) {
  OutputNames names;
  for (const auto& name : source.tensor_names()) {
    const auto renamed = renamed_tensor(name, plan);
    if (renamed.empty()) continue;
    if (split_layer_tensor_name(name).first >= 0) names.layers.emplace_back(renamed, name);
    else if (name.rfind("model.embed_tokens", 0) == 0) names.embeddings.emplace_back(renamed, name);
    else names.rest.emplace_back(renamed, name);
  }
  if (edits.untie_embeddings && !source.contains("lm_head.weight"))
    names.rest.emplace_back("lm_head.weight", "model.embed_tokens.weight");
  // Layer tensors in new layer order.
  std::sort(names.layers.begin(), names.layers.end(), [](const auto& a, const auto& b) {
    const auto la = split_layer_tensor_name(a.first).first, lb = split_layer_tensor_name(b.first).first;
    return la != lb ? la < lb : a.first < b.first;
  });
  return names;
}

// Output tensors: the source's bytes (a file range) or, for replaced
// tensors and patches, bytes held in `storage` until the write returns.
class OutputTensors {
 public:
  OutputTensors(const io::Checkpoint& source, const CheckpointEdits& edits) : source_(source), edits_(edits) {}

  io::OutputTensor from_source(const std::string& new_name, const std::string& old_name) {
    const auto ref = source_.tensor(old_name);
    // The head copy of untied embeddings keeps the original values.
    const auto replaced = edits_.replaced.find(old_name);
    if (replaced != edits_.replaced.end() && new_name != "lm_head.weight")
      return from_memory(new_name, replaced->second.to(to_scalar_type(ref.info->dtype, old_name)));
    auto out = io::file_range_copy(ref, new_name);
    parameters_ += static_cast<int64_t>(ref.info->numel());
    bytes_ += out.nbytes;
    return out;
  }

  io::OutputTensor from_memory(const std::string& name, const at::Tensor& tensor) {
    storage_.push_back(tensor.to(at::kCPU).contiguous());
    parameters_ += storage_.back().numel();
    auto out = output_tensor(name, storage_.back());
    bytes_ += out.nbytes;
    return out;
  }

  std::vector<io::OutputTensor> patches() {
    std::vector<io::OutputTensor> out;
    for (const auto& [position, patch] : edits_.patches)
      out.push_back(from_memory(patch_tensor_name(position), patch.to(at::kFloat)));
    return out;
  }

  // A source tensor written by other means (an early copy).
  void count_unchanged(const std::string& old_name) {
    const auto ref = source_.tensor(old_name);
    parameters_ += static_cast<int64_t>(ref.info->numel());
    bytes_ += ref.info->nbytes();
  }
  int64_t parameters() const { return parameters_; }
  uint64_t bytes() const { return bytes_; }

 private:
  const io::Checkpoint& source_;
  const CheckpointEdits& edits_;
  std::vector<at::Tensor> storage_;
  int64_t parameters_ = 0;
  uint64_t bytes_ = 0;
};

// Sharded like the source (or by max_shard_bytes): embeddings, layers, then
// norm, head and patches, packed in order.
std::vector<std::string> write_packed(const OutputNames& names, OutputTensors& tensors, uint64_t max_shard_bytes,
                                      const fs::path& dir, const io::WriteOptions& options, WrittenCheckpoint& written) {
  io::ShardedWriter writer(dir, max_shard_bytes);
  for (const auto* group : {&names.embeddings, &names.layers, &names.rest})
    for (const auto& [new_name, old_name] : *group) writer.add(tensors.from_source(new_name, old_name));
  for (auto& patch : tensors.patches()) writer.add(std::move(patch));
  auto files = writer.finish({}, options);
  written.copy_seconds = writer.times().copy_seconds;
  written.sync_seconds = writer.times().sync_seconds;
  return files;
}

// One file for the embeddings, norm, head and patches, then one per kept
// layer: the early copy where the layer is unedited (its tensors renamed in
// place), else written now.
std::vector<std::string> write_per_layer(const OutputNames& names, OutputTensors& tensors, const PrunePlan& plan,
                                         const CheckpointEdits& edits, EarlyLayerCopies& early, const fs::path& dir,
                                         const io::WriteOptions& options, WrittenCheckpoint& written) {
  Stopwatch watch;
  std::set<int64_t> edited;
  for (const auto& [name, tensor] : edits.replaced) edited.insert(split_layer_tensor_name(name).first);
  for (const auto& site : plan.removed_sublayers) edited.insert(site.layer);  // its copy holds the removed tensors
  std::set<int64_t> unedited;
  for (const auto layer : plan.kept)
    if (!edited.count(layer)) unedited.insert(layer);
  const auto staged = early.finish(unedited);
  written.bytes_copied_early = early.bytes_copied_early();

  const size_t count = plan.kept.size() + 1;
  std::vector<std::string> files{io::shard_file_name(1, count)};
  std::vector<io::SafetensorsOutput> to_write(1);
  to_write[0].path = dir / files[0];
  for (const auto* group : {&names.embeddings, &names.rest})
    for (const auto& [new_name, old_name] : *group) to_write[0].tensors.push_back(tensors.from_source(new_name, old_name));
  for (auto& patch : tensors.patches()) to_write[0].tensors.push_back(std::move(patch));
  std::map<std::string, std::string> weight_map;
  for (const auto& tensor : to_write[0].tensors) weight_map[tensor.name] = files[0];

  auto next = names.layers.begin();
  for (size_t position = 0; position < plan.kept.size(); ++position) {
    const int64_t layer = plan.kept[position];
    files.push_back(io::shard_file_name(position + 2, count));
    const auto staged_file = staged.find(layer);
    if (staged_file == staged.end()) to_write.push_back({dir / files.back(), {}});
    for (; next != names.layers.end() && split_layer_tensor_name(next->second).first == layer; ++next) {
      weight_map[next->first] = files.back();
      if (staged_file == staged.end()) to_write.back().tensors.push_back(tensors.from_source(next->first, next->second));
      else tensors.count_unchanged(next->second);
    }
    if (staged_file == staged.end()) continue;
    io::rename_tensors_in_place(staged_file->second, [&](const std::string& name) { return renamed_tensor(name, plan); },
                                options.sync);
    fs::rename(staged_file->second, dir / files.back());
  }
  const auto times = io::write_safetensors_files(std::move(to_write), {}, options);
  io::write_shard_index(dir, weight_map, tensors.bytes(), options.sync);
  files.push_back("model.safetensors.index.json");
  written.sync_seconds = times.sync_seconds;
  written.copy_seconds = watch.seconds() - times.sync_seconds;
  return files;
}

}  // namespace

WrittenCheckpoint write_pruned_checkpoint(const io::Checkpoint& source, const PrunePlan& plan,
                                          const CheckpointEdits& edits, uint64_t max_shard_bytes,
                                          const fs::path& dir, const io::WriteOptions& options,
                                          EarlyLayerCopies* early_copies) {
  const auto runs = removed_runs(plan);
  for (const auto& position_patch : edits.patches)
    if (std::none_of(runs.begin(), runs.end(), [&](const SiteRun& run) {
          return new_layer_index(plan, run.patched_layer()) == position_patch.first;
        }))
      throw Error("internal: patch at position " + std::to_string(position_patch.first) + " repairs no removed run");

  const auto names = output_names(source, plan, edits);
  OutputTensors tensors(source, edits);
  WrittenCheckpoint written;
  if (early_copies) {
    written.files = write_per_layer(names, tensors, plan, edits, *early_copies, dir, options, written);
  } else {
    const uint64_t shard_bytes =
        max_shard_bytes ? max_shard_bytes : (source.sharded() ? source.largest_shard_bytes() : UINT64_MAX);
    written.files = write_packed(names, tensors, shard_bytes, dir, options, written);
  }
  written.parameters = tensors.parameters();
  for (const auto& file : written.files) written.bytes += fs::file_size(dir / file);

  const auto config_path = (source.dir() / "config.json").string();
  const auto source_config = parse_llama_config(source.config_text(), config_path);
  const auto layer_specs = output_layer_specs(source_config, plan);
  const auto config = rewrite_config_for_pruning(source.config_text(), plan.kept,
                                                 linearpatch_entry(plan, edits, layer_specs), config_path);
  if (edits.nemotron_nas && !layer_specs.empty()) {
    if (!edits.patches.empty()) throw Error("internal: a Nemotron-NAS checkpoint holds no stream patches");
    auto pruned = source_config;
    pruned.num_hidden_layers = static_cast<int64_t>(plan.kept.size());
    pruned.attention_windows.clear();
    write_text_file(dir / "config.json",
                    nemotron_config_json(finish_config(config, source_config.family, edits, false), pruned, layer_specs));
    write_text_file(dir / kNemotronConfigurationFile, nemotron_configuration_source());
    write_text_file(dir / kNemotronModelingFile, nemotron_modeling_source());
  } else {
    const bool modeling_file = !edits.patches.empty() || !layer_specs.empty();
    write_text_file(dir / "config.json", finish_config(config, source_config.family, edits, !layer_specs.empty()));
    if (modeling_file)
      write_text_file(dir / kHfModelingFile, std::string(hf_modeling_source()) +
                                                 (layer_specs.empty() ? "" : "\n\n" + std::string(hf_modeling_sublayer_source())));
  }
  copy_side_files(source.dir(), dir);
  return written;
}

}  // namespace lp

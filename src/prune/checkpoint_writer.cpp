#include "linearpatch/prune/checkpoint_writer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "linearpatch/config/config_rewrite.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
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

std::string linearpatch_entry(const PrunePlan& plan, const CheckpointEdits& edits) {
  const auto& patches = edits.patches;
  auto entry = nlohmann::ordered_json::object();
  entry["format_version"] = kFormatVersion;
  entry["original_num_hidden_layers"] = plan.original_layers;
  entry["removed_layers"] = plan.removed;
  auto list = nlohmann::ordered_json::array();
  for (const auto& gap : plan.gaps) {
    if (!patches.count(gap.new_position)) continue;
    list.push_back({{"layer", gap.new_position},
                    {"tensor", patch_tensor_name(gap.new_position)},
                    {"replaces_layers", nlohmann::ordered_json::array({gap.range.start, gap.range.end})},
                    {"apply", "h = h @ W on the residual stream entering this layer"}});
  }
  entry["patches"] = list;
  if (!edits.provenance_json.empty()) {
    auto extra = nlohmann::ordered_json::parse(edits.provenance_json);
    for (auto it = extra.begin(); it != extra.end(); ++it) entry[it.key()] = it.value();
  }
  return entry.dump();
}

// config.json edits the layer rewrite does not cover: untied embeddings and
// the transformers entry points: the family's own class, or its patched
// subclass from the modeling file.
std::string finish_config(const std::string& config_text, ModelFamily family, const CheckpointEdits& edits) {
  auto config = nlohmann::ordered_json::parse(config_text);
  if (edits.untie_embeddings) config["tie_word_embeddings"] = false;
  const std::string plain = causal_lm_class_name(family);
  if (!edits.patches.empty()) {
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
  return layer_tensor_name(it - plan.kept.begin(), suffix);
}

WrittenCheckpoint write_pruned_checkpoint(const io::Checkpoint& source, const PrunePlan& plan,
                                          const CheckpointEdits& edits, uint64_t max_shard_bytes,
                                          const fs::path& dir, const io::WriteOptions& options) {
  for (const auto& gap_patch : edits.patches)
    if (std::none_of(plan.gaps.begin(), plan.gaps.end(),
                     [&](const Gap& g) { return g.new_position == gap_patch.first; }))
      throw Error("internal: patch at position " + std::to_string(gap_patch.first) + " matches no gap");

  // Layer tensors in new layer order, the rest (embeddings, norm, head) around them.
  std::vector<std::pair<std::string, std::string>> layer_tensors, other_tensors;  // (new, old)
  for (const auto& name : source.tensor_names()) {
    const auto renamed = renamed_tensor(name, plan);
    if (renamed.empty()) continue;
    (split_layer_tensor_name(name).first >= 0 ? layer_tensors : other_tensors).emplace_back(renamed, name);
  }
  if (edits.untie_embeddings && !source.contains("lm_head.weight"))
    other_tensors.emplace_back("lm_head.weight", "model.embed_tokens.weight");
  auto by_layer = [](const auto& a, const auto& b) {
    const auto la = split_layer_tensor_name(a.first).first, lb = split_layer_tensor_name(b.first).first;
    return la != lb ? la < lb : a.first < b.first;
  };
  std::sort(layer_tensors.begin(), layer_tensors.end(), by_layer);

  WrittenCheckpoint written;
  io::ShardedWriter writer(dir, max_shard_bytes ? max_shard_bytes
                                                : (source.sharded() ? source.largest_shard_bytes() : UINT64_MAX));
  std::vector<at::Tensor> storage;  // keeps in-memory bytes alive until finish()
  auto add_memory_tensor = [&](const std::string& name, at::Tensor tensor) {
    storage.push_back(tensor.to(at::kCPU).contiguous());
    written.parameters += storage.back().numel();
    writer.add(output_tensor(name, storage.back()));
  };
  auto add_source_tensor = [&](const std::string& new_name, const std::string& old_name) {
    const auto ref = source.tensor(old_name);
    // The head copy of untied embeddings keeps the original values.
    const bool keep_original = new_name == "lm_head.weight";
    const auto replaced = edits.replaced.find(old_name);
    if (replaced != edits.replaced.end() && !keep_original) {
      add_memory_tensor(new_name, replaced->second.to(to_scalar_type(ref.info->dtype, old_name)));
      return;
    }
    io::OutputTensor out;
    out.name = new_name;
    out.dtype = ref.info->dtype;
    out.shape = ref.info->shape;
    out.nbytes = ref.info->nbytes();
    out.src_fd = ref.file->fd();
    out.src_offset = ref.file->file_offset(*ref.info);
    written.parameters += static_cast<int64_t>(ref.info->numel());
    writer.add(std::move(out));
  };
  auto is_head = [](const std::string& n) { return n.rfind("model.embed_tokens", 0) != 0; };
  for (const auto& [n, o] : other_tensors)
    if (!is_head(n)) add_source_tensor(n, o);
  for (const auto& [n, o] : layer_tensors) add_source_tensor(n, o);
  for (const auto& [n, o] : other_tensors)
    if (is_head(n)) add_source_tensor(n, o);
  for (const auto& [position, patch] : edits.patches)
    add_memory_tensor(patch_tensor_name(position), patch.to(at::kFloat));
  written.files = writer.finish({}, options);
  written.copy_seconds = writer.times().copy_seconds;
  written.sync_seconds = writer.times().sync_seconds;
  for (const auto& file : written.files) written.bytes += fs::file_size(dir / file);

  const auto config_path = (source.dir() / "config.json").string();
  const auto family = parse_llama_config(source.config_text(), config_path).family;
  const auto config = rewrite_config_for_pruning(source.config_text(), plan.kept, linearpatch_entry(plan, edits),
                                                 config_path);
  write_text_file(dir / "config.json", finish_config(config, family, edits));
  if (!edits.patches.empty()) write_text_file(dir / kHfModelingFile, hf_modeling_source());
  copy_side_files(source.dir(), dir);
  return written;
}

}  // namespace lp

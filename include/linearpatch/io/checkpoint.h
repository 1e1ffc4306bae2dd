// A HuggingFace checkpoint directory: config.json plus tensors in one
// model.safetensors or in shards listed by model.safetensors.index.json
// ({"metadata": {"total_size": N}, "weight_map": {"<tensor>": "<shard file>"}}).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "linearpatch/io/safetensors.h"

namespace lp::io {

// Reference to one tensor inside an opened checkpoint.
struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;

  const uint8_t* data() const { return file->data(*info); }
};

// An output tensor named `name` whose bytes are `ref`'s range of its file,
// copied kernel-side by the writer.
OutputTensor file_range_copy(const TensorRef& ref, std::string name);

class Checkpoint {
 public:
  // Opens `dir`; throws InputError when config.json or the weights are
  // missing, an index names a missing shard, a tensor is listed in the index
  // but absent from its shard (or the reverse), or a name occurs twice.
  // Like transformers, prefers model.safetensors when both forms exist.
  // `check_config` (config.json's text and path) runs before any weight
  // file is opened, so a refused architecture is reported as such, not as
  // missing or unreadable weights.
  using ConfigCheck = std::function<void(const std::string& text, const std::filesystem::path& path)>;
  explicit Checkpoint(const std::filesystem::path& dir, const ConfigCheck& check_config = {});

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& config_text() const { return config_text_; }
  bool sharded() const { return shards_.size() > 1 || has_index_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }
  uint64_t largest_shard_bytes() const;  // tensor bytes of the largest shard
  uint64_t total_tensor_bytes() const;

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  TensorRef tensor(const std::string& name) const;  // throws InputError naming the checkpoint
  std::vector<std::string> tensor_names() const;    // sorted

 private:
  void open_single();
  void open_sharded();

  std::filesystem::path dir_;
  std::string config_text_;
  bool has_index_ = false;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, TensorRef> tensors_;
};

// config.json's text, read as Checkpoint reads it (InputError when `dir`
// or the file is missing or too large); opens no weight file.
std::string read_checkpoint_config(const std::filesystem::path& dir);

// A checkpoint's files by their size on disk, from the directory listing
// alone (no weight file is opened): what the checks before a run judge an
// output's size by. Weights: model.safetensors, or else every
// *.safetensors file beside model.safetensors.index.json (sharded).
struct CheckpointFileSizes {
  bool sharded = false;
  uint64_t weight_bytes = 0;
  uint64_t other_bytes = 0;  // config, tokenizer and other visible regular files
};
CheckpointFileSizes checkpoint_file_sizes(const std::filesystem::path& dir);

// HF's shard names: model-00001-of-00004.safetensors (1-based index).
std::string shard_file_name(size_t index, size_t count);

// Writes dir/model.safetensors.index.json: `weight_map` (tensor -> file) and
// the total tensor bytes, as transformers reads it.
void write_shard_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& weight_map,
                       uint64_t total_bytes, bool sync);

// The rule of huggingface_hub and ShardedWriter: consecutive items go into
// one shard until the next would push a non-empty shard past `max_bytes`
// (an item larger than that gets a shard of its own). Returns, for each
// shard, the number of items it holds.
std::vector<size_t> shard_sizes(const std::vector<uint64_t>& item_bytes, uint64_t max_bytes);

// Writes tensors as HF does: one model.safetensors when everything fits in
// `max_shard_bytes`, else model-XXXXX-of-YYYYY.safetensors shards filled in
// insertion order plus model.safetensors.index.json ({"metadata":
// {"total_size": <tensor bytes>}, "weight_map": {...}}, written last). A
// tensor larger than `max_shard_bytes` gets a shard of its own. Shards are
// copied one at a time (each one's fsync overlapping the next one's copy, see
// write_safetensors_files), so memory holds at most the in-memory tensors
// handed in.
class ShardedWriter {
 public:
  ShardedWriter(std::filesystem::path dir, uint64_t max_shard_bytes);  // max_shard_bytes > 0
  void add(OutputTensor tensor);  // throws Error when the name was added before
  // Writes all files into dir (which must exist) and returns their names.
  std::vector<std::string> finish(const std::map<std::string, std::string>& metadata = {},
                                  const WriteOptions& options = {});
  const WriteTimes& times() const { return times_; }  // of the last finish()

 private:
  std::filesystem::path dir_;
  uint64_t max_shard_bytes_;
  std::vector<OutputTensor> pending_;
  std::set<std::string> names_;
  WriteTimes times_;
};

}  // namespace lp::io

#include "linearpatch/io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "io/file_util.h"
#include "io/json_util.h"
#include "linearpatch/core/error.h"

namespace lp::io {
namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// Index files of the largest public checkpoints are a few hundred KB.
constexpr uint64_t kMaxJsonBytes = uint64_t{64} << 20;
// {"weight_map": {...}, "metadata": {...}}; generous for unknown extra keys.
constexpr int kMaxIndexDepth = 8;

std::string missing_weights_message(const std::filesystem::path& dir) {
  std::string message = "no " + std::string(kSingleFile) + " or " + kIndexFile;
  if (path_exists(dir / "pytorch_model.bin") || path_exists(dir / "pytorch_model.bin.index.json")) {
    message += " (found pytorch_model.bin: PyTorch pickle weights are not read; convert them to safetensors)";
  }
  return message;
}

std::map<std::string, std::string> read_weight_map(const std::filesystem::path& index_path) {
  const auto index = parse_json_strict(read_text_file(index_path, kMaxJsonBytes), index_path.string(), kMaxIndexDepth);
  if (!index.is_object()) fail_input(index_path, "must be a JSON object, got " + json_excerpt(index));
  const auto it = index.find("weight_map");
  if (it == index.end()) fail_input(index_path, "missing 'weight_map'");
  if (!it->is_object()) fail_input(index_path, "'weight_map' must be an object, got " + json_excerpt(*it));
  if (it->empty()) fail_input(index_path, "'weight_map' is empty");
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string()) {
      fail_input(index_path,
                 "'weight_map' entry of tensor '" + tensor + "' must be a shard file name, got " + json_excerpt(shard));
    }
    const auto& name = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(name)) {
      fail_input(index_path, "tensor '" + tensor + "' maps to '" + name + "', which is not a file name");
    }
    weight_map.emplace(tensor, name);
  }
  return weight_map;
}


}  // namespace

std::string read_checkpoint_config(const std::filesystem::path& dir) {
  if (!directory_exists(dir)) fail_input(dir, path_exists(dir) ? "not a directory" : "no such directory");
  return read_text_file(dir / "config.json", kMaxJsonBytes);
}

CheckpointFileSizes checkpoint_file_sizes(const std::filesystem::path& dir) {
  CheckpointFileSizes sizes;
  const bool single = path_exists(dir / kSingleFile);
  sizes.sharded = !single && path_exists(dir / kIndexFile);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    std::error_code size_ec;
    if (name.empty() || name[0] == '.' || !it->is_regular_file(size_ec)) continue;
    const uint64_t bytes = it->file_size(size_ec);
    if (size_ec) continue;
    const bool weights = single ? name == kSingleFile
                                : sizes.sharded && it->path().extension() == ".safetensors";
    (weights ? sizes.weight_bytes : sizes.other_bytes) += bytes;
  }
  return sizes;
}

Checkpoint::Checkpoint(const std::filesystem::path& dir, const ConfigCheck& check_config) : dir_(dir) {
  config_text_ = read_checkpoint_config(dir);
  if (check_config) check_config(config_text_, dir / "config.json");
  if (path_exists(dir / kSingleFile)) {
    open_single();
  } else if (path_exists(dir / kIndexFile)) {
    has_index_ = true;
    open_sharded();
  } else {
    fail_input(dir, missing_weights_message(dir));
  }
}

void Checkpoint::open_single() {
  shards_.push_back(std::make_unique<SafetensorsFile>(dir_ / kSingleFile));
  for (const auto& info : shards_.front()->tensors())
    tensors_.emplace(info.name, TensorRef{shards_.front().get(), &info});
}

void Checkpoint::open_sharded() {
  const auto index_path = dir_ / kIndexFile;
  const auto weight_map = read_weight_map(index_path);

  std::map<std::string, const SafetensorsFile*> shard_by_name;
  for (const auto& [tensor, shard] : weight_map) {
    if (shard_by_name.count(shard)) continue;
    const auto path = dir_ / shard;
    if (!path_exists(path)) {
      fail_input(index_path, "shard '" + shard + "' (listed for tensor '" + tensor + "') does not exist");
    }
    shards_.push_back(std::make_unique<SafetensorsFile>(path));
    shard_by_name.emplace(shard, shards_.back().get());
  }

  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile* file = shard_by_name.at(shard);
    const TensorInfo* info = file->find(tensor);
    if (!info)
      fail_input(index_path, "tensor '" + tensor + "' is mapped to shard '" + shard + "', which does not contain it");
    tensors_.emplace(tensor, TensorRef{file, info});
  }

  // The index's entries are all found now; any other tensor in a shard is
  // either unlisted or a second copy of a listed one.
  for (const auto& file : shards_) {
    for (const auto& info : file->tensors()) {
      const auto it = weight_map.find(info.name);
      if (it == weight_map.end()) {
        fail_input(file->path(), "tensor '" + info.name + "' is not listed in " + kIndexFile);
      }
      if (tensors_.at(info.name).file != file.get()) {
        fail_input(file->path(), "tensor '" + info.name + "' is also stored in '" + it->second +
                                     "' (where the index maps it); a tensor must live in one shard only");
      }
    }
  }
}

uint64_t Checkpoint::largest_shard_bytes() const {
  uint64_t largest = 0;
  for (const auto& shard : shards_) largest = std::max(largest, shard->data_bytes());
  return largest;
}

uint64_t Checkpoint::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) total += shard->data_bytes();
  return total;
}

TensorRef Checkpoint::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) fail_input(dir_, "checkpoint has no tensor '" + name + "'");
  return it->second;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& entry : tensors_) names.push_back(entry.first);
  return names;
}

OutputTensor file_range_copy(const TensorRef& ref, std::string name) {
  OutputTensor out;
  out.name = std::move(name);
  out.dtype = ref.info->dtype;
  out.shape = ref.info->shape;
  out.nbytes = ref.info->nbytes();
  out.src_fd = ref.file->fd();
  out.src_offset = ref.file->file_offset(*ref.info);
  return out;
}

std::string shard_file_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index, count);
  return name;
}

std::vector<size_t> shard_sizes(const std::vector<uint64_t>& item_bytes, uint64_t max_bytes) {
  std::vector<size_t> sizes;
  uint64_t shard_bytes = 0;
  for (const uint64_t bytes : item_bytes) {
    if (sizes.empty() || (sizes.back() > 0 && shard_bytes + bytes > max_bytes)) {
      sizes.push_back(0);
      shard_bytes = 0;
    }
    shard_bytes += bytes;
    ++sizes.back();
  }
  return sizes;
}

ShardedWriter::ShardedWriter(std::filesystem::path dir, uint64_t max_shard_bytes)
    : dir_(std::move(dir)), max_shard_bytes_(max_shard_bytes) {
  if (max_shard_bytes_ == 0) throw Error("the maximum shard size must be positive");
}

void ShardedWriter::add(OutputTensor tensor) {
  if (!names_.insert(tensor.name).second) {
    throw Error(dir_.string() + ": tensor '" + tensor.name + "' added twice");
  }
  pending_.push_back(std::move(tensor));
}

std::vector<std::string> ShardedWriter::finish(const std::map<std::string, std::string>& metadata,
                                                 const WriteOptions& options) {
  std::vector<OutputTensor> tensors = std::move(pending_);
  pending_.clear();
  names_.clear();
  uint64_t total = 0;
  for (const auto& tensor : tensors) total += tensor.nbytes;
  if (total <= max_shard_bytes_) {
    std::vector<SafetensorsOutput> single(1);
    single[0] = {dir_ / kSingleFile, std::move(tensors)};
    times_ = write_safetensors_files(std::move(single), metadata, options);
    return {kSingleFile};
  }

  std::vector<uint64_t> bytes;
  for (const auto& tensor : tensors) bytes.push_back(tensor.nbytes);
  const auto counts = shard_sizes(bytes, max_shard_bytes_);
  std::vector<std::string> files;
  std::vector<SafetensorsOutput> shards;
  std::map<std::string, std::string> weight_map;
  auto next = tensors.begin();
  for (size_t i = 0; i < counts.size(); ++i) {
    files.push_back(shard_file_name(i + 1, counts.size()));
    std::vector<OutputTensor> shard(std::make_move_iterator(next), std::make_move_iterator(next + counts[i]));
    next += static_cast<std::ptrdiff_t>(counts[i]);
    for (const auto& tensor : shard) weight_map[tensor.name] = files.back();
    shards.push_back({dir_ / files.back(), std::move(shard)});
  }
  times_ = write_safetensors_files(std::move(shards), metadata, options);
  write_shard_index(dir_, weight_map, total, options.sync);
  files.push_back(kIndexFile);
  return files;
}

void write_shard_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& weight_map,
                       uint64_t total_bytes, bool sync) {
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  write_new_file(dir / kIndexFile, index.dump(2) + "\n", sync);
}

}  // namespace lp::io

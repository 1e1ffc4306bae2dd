// safetensors reading and writing.
//
// File layout (https://github.com/huggingface/safetensors):
//   [0, 8)        N: little-endian u64, length of the JSON header
//   [8, 8+N)      UTF-8 JSON object, starts with '{', may be padded with spaces:
//                 {"<tensor name>": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
//                  ..., "__metadata__": {"<key>": "<string value>"}}
//   [8+N, EOF)    data buffer; offsets are relative to its start, end exclusive.
//
// The reader maps the file read-only and hands out pointers into the mapping
// (zero copy). It rejects anything the reference implementation rejects, plus
// duplicate names, unknown dtypes and offsets that would overflow. The writer
// produces files HF transformers loads: metadata {"format": "pt"}, header
// padded to a multiple of 8, data ordered by descending element size then by
// name so every tensor is aligned to its element size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lp::io {

enum class DType : uint8_t { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

std::string_view dtype_name(DType dtype);  // "BF16", as written in headers
std::optional<DType> parse_dtype(std::string_view name);
size_t dtype_size(DType dtype);  // bytes per element

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data buffer, end exclusive
  uint64_t end = 0;

  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A parsed and validated header. Kept separate from file access so fuzzers and
// tests can feed in-memory buffers.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N: where the data buffer starts in the file
};

// Validates `bytes` (the whole file, or at least its header when
// `file_size` is larger than `size`) and throws InputError naming `source`,
// the tensor and the offending values.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& source);

// A read-only memory mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws InputError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws InputError on any defect.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& get(std::string_view name) const;  // throws InputError naming file and tensor

  const uint8_t* data(const TensorInfo& info) const { return file_->data() + header_.data_offset + info.begin; }
  uint64_t file_offset(const TensorInfo& info) const { return header_.data_offset + info.begin; }
  // Whether data(info) is aligned to the element size (the mapping itself is
  // page-aligned). Files from other writers may not be; alias only aligned
  // tensors and copy the others.
  bool aligned(const TensorInfo& info) const { return file_offset(info) % dtype_size(info.dtype) == 0; }
  uint64_t data_bytes() const;  // size of the data buffer: the sum of all tensor bytes
  int fd() const { return file_->fd(); }

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

// A tensor to write. Its bytes come either from memory (`data`, which must
// stay valid until the write returns) or from a byte range of an open file
// (`src_fd`, `src_offset`), copied kernel-side with copy_file_range.
struct OutputTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  const void* data = nullptr;
  int src_fd = -1;
  uint64_t src_offset = 0;
};

struct WriteOptions {
  bool sync = true;  // fsync every file, so it survives a power loss
  int threads = 0;   // tensors copied in parallel; 0: min(8, hardware threads)
};

// Where the time of a write went: copying the tensors into the files, then
// waiting for the flushes still running when the last one was copied (0
// without sync).
struct WriteTimes {
  double copy_seconds = 0, sync_seconds = 0;
};

struct SafetensorsOutput {
  std::filesystem::path path;
  std::vector<OutputTensor> tensors;
};

// Writes safetensors files in order; each `path` must not exist yet
// (callers write into a temporary directory). Validates every file's names
// (unique, non-empty) and that nbytes == numel * dtype_size before writing
// any; `metadata` gets "format": "pt" added. Each file is allocated to its
// full size first, so a full disk is reported before its tensors are copied.
// With sync, a tensor's write-back starts as soon as it is copied and a
// file's fsync runs in the background as soon as it is complete, so files
// reach the disk while later ones are copied; returns once all are synced.
WriteTimes write_safetensors_files(std::vector<SafetensorsOutput> files,
                                   const std::map<std::string, std::string>& metadata = {},
                                   const WriteOptions& options = {});
// Renames tensors of a safetensors file in place by rewriting its header,
// padded with spaces to its old length so that no byte of data moves:
// every new name must be at most as long as the header allows (callers
// rename "model.layers.12." to "model.layers.3.", never longer). `rename`
// maps each tensor name to its new one; with `sync` the header is flushed
// to the disk before returning.
void rename_tensors_in_place(const std::filesystem::path& path,
                             const std::function<std::string(const std::string&)>& rename, bool sync);

// One file, the same way.
void write_safetensors(const std::filesystem::path& path, std::vector<OutputTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {}, const WriteOptions& options = {});

}  // namespace lp::io

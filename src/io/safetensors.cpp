#include "linearpatch/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "io/file_util.h"
#include "io/json_util.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/interrupt.h"
#include "linearpatch/core/progress.h"

namespace lp::io {
namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},     {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},   {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},   {DType::kF32, "F32", 4}, {DType::kF64, "F64", 8},   {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
};

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE
// {"<tensor>": {"shape": [...]}} nests three containers; deeper is hostile.
constexpr int kMaxHeaderDepth = 3;
// Shapes in messages are cut after this many dimensions.
constexpr size_t kMaxShownDims = 8;

const DTypeEntry& dtype_entry(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  throw Error("invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

std::string supported_dtypes() {
  std::string names;
  for (const auto& entry : kDTypes) names += (names.empty() ? "" : ", ") + std::string(entry.name);
  return names;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size() && i < kMaxShownDims; ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() > kMaxShownDims) text += ", ... (" + std::to_string(shape.size()) + " dims)";
  return text + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Element count times element size, or nullopt when it overflows 64 bits.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, DType dtype) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  return bytes;
}

uint64_t read_le64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

const nlohmann::json& field(const nlohmann::json& entry, const char* key, const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end()) fail_input(where, std::string("missing '") + key + "'");
  return *it;
}

DType read_dtype(const nlohmann::json& entry, const std::string& where) {
  const auto& value = field(entry, "dtype", where);
  if (!value.is_string()) fail_input(where, "'dtype' must be a string, got " + json_excerpt(value));
  const auto& name = value.get_ref<const std::string&>();
  const auto dtype = parse_dtype(name);
  if (!dtype)
    fail_input(where, "unsupported dtype '" + name.substr(0, 40) + "' (supported: " + supported_dtypes() + ")");
  return *dtype;
}

std::vector<int64_t> read_shape(const nlohmann::json& entry, const std::string& where) {
  const auto& value = field(entry, "shape", where);
  if (!value.is_array()) fail_input(where, "'shape' must be an array, got " + json_excerpt(value));
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  for (const auto& dim : value) {
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      fail_input(where, "negative dimension " + dim.dump() + " in 'shape' " + json_excerpt(value));
    }
    if (!dim.is_number_unsigned()) fail_input(where, "'shape' must hold integers, got " + json_excerpt(dim));
    const auto size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_input(where, "dimension " + std::to_string(size) + " in 'shape' is too large");
    }
    shape.push_back(static_cast<int64_t>(size));
  }
  return shape;
}

void read_offsets(const nlohmann::json& entry, const std::string& where, TensorInfo& info) {
  const auto& value = field(entry, "data_offsets", where);
  if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() || !value[1].is_number_unsigned()) {
    fail_input(where, "'data_offsets' must be two non-negative integers [begin, end], got " + json_excerpt(value));
  }
  info.begin = value[0].get<uint64_t>();
  info.end = value[1].get<uint64_t>();
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& entry, uint64_t data_size,
                       const std::string& source) {
  const std::string where = source + ": tensor '" + name + "'";
  if (!entry.is_object()) fail_input(where, "entry must be an object, got " + json_excerpt(entry));
  TensorInfo info;
  info.name = name;
  info.dtype = read_dtype(entry, where);
  info.shape = read_shape(entry, where);
  read_offsets(entry, where, info);
  const std::string offsets = "data_offsets " + range_string(info.begin, info.end);
  if (info.end < info.begin) fail_input(where, offsets + " end before they begin");
  const auto expected = byte_size(info.shape, info.dtype);
  if (!expected) fail_input(where, "shape " + shape_string(info.shape) + " has more elements than 64 bits can count");
  if (info.nbytes() != *expected) {
    fail_input(where, "shape " + shape_string(info.shape) + " of " + std::string(dtype_name(info.dtype)) + " needs " +
                          std::to_string(*expected) + " bytes but " + offsets + " span " +
                          std::to_string(info.nbytes()));
  }
  if (info.end > data_size) {
    fail_input(where, offsets + " run past the end of the data buffer (" + std::to_string(data_size) + " bytes)");
  }
  return info;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& value, const std::string& source) {
  std::map<std::string, std::string> metadata;
  // The reference reads a null __metadata__ as absent.
  if (value.is_null()) return metadata;
  if (!value.is_object()) fail_input(source, "'__metadata__' must be an object of strings, got " + json_excerpt(value));
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      fail_input(source, "'__metadata__' value of '" + key + "' must be a string, got " + json_excerpt(item));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// The reference's rule: sorted by offsets, the tensors tile the data buffer
// exactly, without holes or overlaps.
void check_layout(const std::vector<TensorInfo>& tensors, uint64_t data_size, const std::string& source) {
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const auto& tensor : tensors) by_offset.push_back(&tensor);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* tensor : by_offset) {
    if (tensor->begin != covered) {
      const std::string where = source + ": tensor '" + tensor->name + "'";
      const std::string offsets = "data_offsets " + range_string(tensor->begin, tensor->end);
      if (tensor->begin > covered) {
        fail_input(where, offsets + " leave a hole: data buffer bytes " + range_string(covered, tensor->begin) +
                              " belong to no tensor");
      }
      fail_input(where, offsets + " overlap tensor '" + previous->name + "', which ends at " + std::to_string(covered));
    }
    covered = tensor->end;
    previous = tensor;
  }
  if (covered != data_size) {
    fail_input(source, "the data buffer has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                           std::to_string(covered) + " (trailing bytes belong to no tensor)");
  }
}

}  // namespace

std::string_view dtype_name(DType dtype) { return dtype_entry(dtype).name; }

size_t dtype_size(DType dtype) { return dtype_entry(dtype).size; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

uint64_t TensorInfo::numel() const {
  uint64_t count = 1;
  for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
  return count;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& source) {
  if (size > file_size) {
    throw Error(source + ": " + std::to_string(size) + " bytes given for a file of " + std::to_string(file_size));
  }
  if (file_size < 8) {
    fail_input(source, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  }
  if (size < 8) fail_input(source, "only " + std::to_string(size) + " of the 8 header-length bytes were provided");
  const uint64_t header_size = read_le64(bytes);
  if (header_size > kMaxHeaderBytes) {
    fail_input(source, "header length " + std::to_string(header_size) + " exceeds the limit of " +
                           std::to_string(kMaxHeaderBytes) + " bytes");
  }
  // file_size >= 8 here, so the subtraction cannot wrap.
  if (header_size > file_size - 8) {
    fail_input(source, "header length " + std::to_string(header_size) + " runs past the end of the file (" +
                           std::to_string(file_size) + " bytes)");
  }
  if (8 + header_size > size) {
    fail_input(source, "only " + std::to_string(size) + " of the " + std::to_string(8 + header_size) +
                           " header bytes were provided");
  }
  if (header_size == 0 || bytes[8] != '{') fail_input(source, "header (at byte 8) does not start with '{'");

  const std::string_view text(reinterpret_cast<const char*>(bytes + 8), header_size);
  const auto header = parse_json_strict(text, source + ": header", kMaxHeaderDepth, /*byte_offset=*/8);
  if (!header.is_object()) fail_input(source, "header is not a JSON object");

  SafetensorsHeader result;
  result.data_offset = 8 + header_size;
  const uint64_t data_size = file_size - result.data_offset;
  result.tensors.reserve(header.size());
  // nlohmann objects iterate in key order, so tensors come out sorted by name.
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      result.metadata = parse_metadata(entry, source);
    } else {
      result.tensors.push_back(parse_entry(name, entry, data_size, source));
    }
  }
  check_layout(result.tensors, data_size, source);
  return result;
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const OpenedFile file = open_regular_file(path);
  fd_ = file.fd;
  size_ = file.size;
  if (size_ == 0) return;  // mmap refuses empty ranges; the parser reports the short file
  void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (mapping == MAP_FAILED) {
    const int err = errno;
    ::close(fd_);
    throw Error("cannot map " + path.string() + ": " + std::strerror(err));
  }
  data_ = static_cast<const uint8_t*>(mapping);
  // Checkpoints are read front to back once; a larger readahead helps on
  // disks. Only a hint, so its result does not matter.
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(std::make_shared<MappedFile>(path)),
      header_(parse_safetensors_header(file_->data(), file_->size(), file_->size(), path.string())) {}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto& tensors = header_.tensors;
  const auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                                   [](const TensorInfo& info, std::string_view key) { return info.name < key; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsFile::get(std::string_view name) const {
  if (const TensorInfo* info = find(name)) return *info;
  throw InputError(path().string() + ": no tensor '" + std::string(name) + "'");
}

uint64_t SafetensorsFile::data_bytes() const { return file_->size() - header_.data_offset; }

namespace {

void validate_output(const std::vector<OutputTensor>& tensors, const std::string& where) {
  std::set<std::string_view> names;
  for (const auto& tensor : tensors) {
    const std::string what = where + ": tensor '" + tensor.name + "'";
    if (tensor.name.empty() || tensor.name == "__metadata__") throw Error(what + ": invalid tensor name");
    if (!names.insert(tensor.name).second) throw Error(what + ": written twice");
    const auto expected = byte_size(tensor.shape, tensor.dtype);
    if (!expected || *expected != tensor.nbytes) {
      throw Error(what + ": shape " + shape_string(tensor.shape) + " of " + std::string(dtype_name(tensor.dtype)) +
                  " does not match its " + std::to_string(tensor.nbytes) + " bytes");
    }
    const bool from_memory = tensor.data != nullptr;
    const bool from_file = tensor.src_fd >= 0;
    if (from_memory == from_file && tensor.nbytes > 0) {
      throw Error(what + ": needs exactly one source, memory or a file range");
    }
  }
}

std::string build_header(const std::vector<OutputTensor>& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    header[tensor.name] = {{"dtype", std::string(dtype_name(tensor.dtype))},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.nbytes}}};
    offset += tensor.nbytes;
  }
  std::string text = header.dump();
  // Spaces up to a multiple of 8 put the data buffer at an 8-aligned offset.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Creates `path` and copies the tensors into it; the caller commits it.
// With options.sync, each tensor's write-back starts as soon as it is
// copied, while the other threads go on copying.
std::unique_ptr<OutputFile> copy_safetensors(const std::filesystem::path& path, std::vector<OutputTensor> tensors,
                                             std::map<std::string, std::string> metadata,
                                             const WriteOptions& options) {
  // Descending element size then name, as the reference writer does: with an
  // 8-aligned data buffer every tensor starts aligned to its element size.
  std::sort(tensors.begin(), tensors.end(), [](const OutputTensor& a, const OutputTensor& b) {
    const size_t size_a = dtype_size(a.dtype);
    const size_t size_b = dtype_size(b.dtype);
    return size_a != size_b ? size_a > size_b : a.name < b.name;
  });
  metadata["format"] = "pt";  // HF transformers refuses files without it
  const std::string header = build_header(tensors, metadata);

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i));
  std::vector<uint64_t> offsets;
  uint64_t end = sizeof(length) + header.size();
  for (const auto& tensor : tensors) {
    offsets.push_back(end);
    end += tensor.nbytes;
  }
  auto out = std::make_unique<OutputFile>(path);
  out->reserve(end);
  out->write(length, sizeof(length));
  out->write(header.data(), header.size());
  // Tensors go to known offsets, so several threads can copy at once: one
  // kernel-side copy runs at a fraction of what the page cache takes.
  const size_t workers = std::min<size_t>(
      tensors.size(), options.threads > 0 ? static_cast<size_t>(options.threads)
                                          : std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(workers);
  auto work = [&](size_t worker) {
    try {
      for (size_t i = next++; i < tensors.size(); i = next++) {
        throw_if_interrupted();
        const auto& tensor = tensors[i];
        if (tensor.nbytes == 0) continue;
        try {
          if (tensor.data) out->write_at(offsets[i], tensor.data, tensor.nbytes);
          else out->copy_at(offsets[i], tensor.src_fd, tensor.src_offset, tensor.nbytes);
          if (options.sync) out->start_writeback(offsets[i], tensor.nbytes);
        } catch (...) {
          rethrow_with_context("writing tensor '" + tensor.name + "'");
        }
      }
    } catch (...) {
      errors[worker] = std::current_exception();
      next = tensors.size();  // the others stop at their next tensor
    }
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work, w);
  if (workers > 0) work(0);
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace

WriteTimes write_safetensors_files(std::vector<SafetensorsOutput> files,
                                   const std::map<std::string, std::string>& metadata, const WriteOptions& options) {
  // Every file is checked before the first byte is copied.
  for (const auto& file : files) validate_output(file.tensors, file.path.string());
  Stopwatch watch;
  BackgroundCommits commits;
  for (auto& file : files) {
    auto out = copy_safetensors(file.path, std::move(file.tensors), metadata, options);
    if (options.sync) commits.commit(std::move(out));
    else out->commit(/*sync=*/false);
  }
  WriteTimes times;
  times.copy_seconds = watch.seconds();
  if (options.sync) {
    commits.wait();
    times.sync_seconds = watch.seconds() - times.copy_seconds;
  }
  return times;
}

void rename_tensors_in_place(const std::filesystem::path& path,
                             const std::function<std::string(const std::string&)>& rename, bool sync) {
  const std::string where = path.string() + ": renaming tensors in the header";
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw Error(where + ": " + std::strerror(errno));
  const std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  auto transfer = [&](bool write, void* bytes, uint64_t size, uint64_t offset) {
    for (uint64_t done = 0; done < size;) {
      auto* at = static_cast<char*>(bytes) + done;
      const auto n = write ? ::pwrite(fd, at, size - done, static_cast<off_t>(offset + done))
                           : ::pread(fd, at, size - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error(where + ": " + (n < 0 ? std::strerror(errno) : "file ends inside the header"));
      done += static_cast<uint64_t>(n);
    }
  };
  uint8_t length_bytes[8];
  transfer(false, length_bytes, sizeof(length_bytes), 0);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | length_bytes[i];
  if (length > kMaxHeaderBytes) throw Error(where + ": header length " + std::to_string(length) + " is too large");
  std::string text(length, ' ');
  transfer(false, text.data(), length, sizeof(length_bytes));
  const auto header = parse_json_strict(text, where, kMaxHeaderDepth, /*byte_offset=*/8);
  if (!header.is_object()) throw Error(where + ": the header is not a JSON object");
  nlohmann::json renamed = nlohmann::json::object();
  for (const auto& [name, entry] : header.items()) {
    const std::string new_name = name == "__metadata__" ? name : rename(name);
    if (new_name.empty() || renamed.contains(new_name))
      throw Error(where + ": tensor '" + name + "' would be renamed to '" + new_name + "', which is empty or taken");
    renamed[new_name] = entry;
  }
  std::string out = renamed.dump();
  if (out.size() > length)
    throw Error(where + ": the new header needs " + std::to_string(out.size()) + " bytes, the file has " +
                std::to_string(length));
  out.append(length - out.size(), ' ');
  transfer(true, out.data(), out.size(), sizeof(length_bytes));
  if (sync && ::fdatasync(fd) != 0) throw Error(where + ": fdatasync: " + std::strerror(errno));
}

void write_safetensors(const std::filesystem::path& path, std::vector<OutputTensor> tensors,
                       const std::map<std::string, std::string>& metadata, const WriteOptions& options) {
  std::vector<SafetensorsOutput> files(1);
  files[0].path = path;
  files[0].tensors = std::move(tensors);
  write_safetensors_files(std::move(files), metadata, options);
}

}  // namespace lp::io

#include "fuzz_targets.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string_view>

#include "io/file_util.h"
#include "linearpatch/config/config_rewrite.h"
#include "linearpatch/config/llama_config.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/io/safetensors.h"
#include "linearpatch/io/text_corpus.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "tokenizer/special_config.h"
#include "tokenizer/spm_tokenizer.h"

namespace lp::fuzz {
namespace {

namespace fs = std::filesystem;

// A broken invariant is a bug even when no sanitizer notices it: abort so
// libFuzzer keeps the input.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

std::string_view as_text(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// Fixed inputs of the harness itself (no user file): any size goes.
std::string read_file(const fs::path& path) { return io::read_text_file(path, uint64_t{1} << 32); }

// Texts that reach the special-token matcher, the pre-tokenizer regex, byte
// fallback and invalid UTF-8.
constexpr std::string_view kFixedTexts[] = {
    "Hello, world! It's 2024 and I'm   here.\n\n\tcaf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
    "<|begin_of_text|><s></s> <unk>x<|end_of_text|>",
    "\xff\xfe\xc3 \xe2\x82 123456789 'S 'LL",
};

void exercise(const Tokenizer& tokenizer) {
  const int64_t vocab = tokenizer.vocab_size();
  check(vocab >= 0, "negative vocabulary size");
  for (const auto text : kFixedTexts) {
    for (const bool add_special : {false, true}) {
      const auto ids = tokenizer.encode(text, add_special);
      for (const int32_t id : ids) check(id >= 0 && id < vocab, "encode() returned an id outside the vocabulary");
      tokenizer.decode(ids);
    }
  }
  if (const auto bos = tokenizer.bos_id()) check(*bos >= 0 && *bos < vocab, "BOS id outside the vocabulary");
  if (const auto eos = tokenizer.eos_id()) check(*eos >= 0 && *eos < vocab, "EOS id outside the vocabulary");
  // What goes in front of every calibration stream must be what encode() puts there.
  const auto prefix = tokenizer.prefix_ids();
  const auto with_special = tokenizer.encode(kFixedTexts[0], true);
  check(with_special.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), with_special.begin()),
        "prefix_ids() is not what encode() puts in front");
  tokenizer.prefix_description();
  tokenizer.description();
}

void run_safetensors_header(const uint8_t* data, size_t size) {
  // As a whole file, then as a header read ahead of a larger file.
  for (const uint64_t file_size : {uint64_t{size}, uint64_t{size} + 4096}) {
    try {
      const auto header = io::parse_safetensors_header(data, size, file_size, "fuzz");
      check(header.data_offset >= 8 && header.data_offset <= file_size, "data offset outside the file");
      const uint64_t data_size = file_size - header.data_offset;
      for (const auto& tensor : header.tensors) {
        check(tensor.begin <= tensor.end && tensor.end <= data_size, "tensor outside the data buffer");
        check(tensor.numel() * io::dtype_size(tensor.dtype) == tensor.nbytes(), "tensor size differs from its shape");
      }
    } catch (const InputError&) {
      if (file_size != size) continue;
      throw;
    }
  }
}

// Checkpoint reads the index from a directory: the input becomes
// model.safetensors.index.json next to two small valid shards, so the
// cross-checks between index and shards run too.
class IndexDir {
 public:
  IndexDir() {
    // Rewriting the index on a disk-backed /tmp costs ~15x the executions.
    std::error_code ec;
    const fs::path base = std::getenv("TMPDIR") == nullptr && fs::is_directory("/dev/shm", ec)
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    std::string pattern = (base / "lp-fuzz-index-XXXXXX").string();
    check(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    dir_ = pattern;
    std::ofstream(dir_ / "config.json") << "{\"num_hidden_layers\": 1}";
    static const float a[2] = {1, 2};
    static const int32_t b[1] = {3};
    static const double c[2] = {4, 5};
    io::write_safetensors(dir_ / "model-00001-of-00002.safetensors",
                          {{"a", io::DType::kF32, {2}, sizeof(a), a}, {"b", io::DType::kI32, {1}, sizeof(b), b}});
    io::write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", io::DType::kF64, {2}, sizeof(c), c}});
  }
  ~IndexDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

void run_checkpoint_index(const uint8_t* data, size_t size) {
  static const IndexDir dir;
  const auto index = dir.path() / "model.safetensors.index.json";
  {
    std::ofstream out(index, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    check(static_cast<bool>(out), "cannot write the index file");
  }
  const io::Checkpoint checkpoint(dir.path());
  for (const auto& name : checkpoint.tensor_names()) {
    const auto ref = checkpoint.tensor(name);
    check(ref.info->name == name, "index resolved a tensor to another name");
  }
  check(checkpoint.total_tensor_bytes() == 28, "tensor bytes differ from the shards'");
}

void run_llama_config(const uint8_t* data, size_t size) {
  const auto text = as_text(data, size);
  const LlamaConfig config = parse_llama_config(text, "fuzz");
  check(config.num_hidden_layers > 0 && config.hidden_size > 0 && config.vocab_size > 0, "non-positive dimension");
  config.parameter_count();
  // Drop layer 1 where that leaves a valid model; huge layer counts only
  // keep layer 0 so that the kept list stays small.
  std::vector<int64_t> kept{0};
  if (config.num_hidden_layers <= 1024) {
    for (int64_t layer = 2; layer < config.num_hidden_layers; ++layer) kept.push_back(layer);
  }
  const auto rewritten = rewrite_config_for_pruning(text, kept, "{\"format_version\": 1}", "fuzz");
  const LlamaConfig pruned = parse_llama_config(rewritten, "fuzz (rewritten)");
  check(pruned.num_hidden_layers == static_cast<int64_t>(kept.size()), "rewrite did not set num_hidden_layers");
}

void run_tokenizer_json(const uint8_t* data, size_t size) {
  exercise(*tokenizer_from_json(as_text(data, size), "", "fuzz"));
}

void run_tokenizer_config(const uint8_t* data, size_t size) {
  static const std::string tokenizer_json =
      read_file(fs::path(LP_FUZZ_REPO_DIR) / "tests/data/fuzz/seeds/tokenizer_json/mini-byte-level.json");
  const auto text = as_text(data, size);
  exercise(*tokenizer_from_json(tokenizer_json, text, "fuzz"));
  detail::SpecialConfig config;
  detail::read_model_config(text, "fuzz (config.json)", config);
}

// Real tokenizers loaded once: the demo model's byte-level BPE (in the repo)
// and, when ../shared is there, LLaMA-2's byte-fallback BPE.
struct FixedTokenizers {
  std::unique_ptr<Tokenizer> byte_level;
  std::unique_ptr<Tokenizer> byte_fallback;
  FixedTokenizers() {
    byte_level = load_tokenizer(fs::path(LP_FUZZ_REPO_DIR) / "data/models/demo-llama3-d");
    const fs::path llama2 = fs::path(LP_FUZZ_SHARED_DIR) / "fixtures/tokenizers/llama2";
    std::error_code ec;
    if (fs::exists(llama2 / "tokenizer.json", ec))
      byte_fallback = tokenizer_from_json(read_file(llama2 / "tokenizer.json"), "", llama2.string());
  }
};

void run_tokenizer_encode(const uint8_t* data, size_t size) {
  static const FixedTokenizers tokenizers;
  const auto text = as_text(data, size);
  const auto ids = tokenizers.byte_level->encode(text, false);
  for (const int32_t id : ids) check(id >= 0 && id < tokenizers.byte_level->vocab_size(), "id outside the vocabulary");
  // Documented in tokenizer.h for byte-level tokenizers.
  check(tokenizers.byte_level->decode(ids) == text, "byte-level decode(encode(x)) != x");
  tokenizers.byte_level->encode(text, true);
  if (tokenizers.byte_fallback) {
    for (const int32_t id : tokenizers.byte_fallback->encode(text, true))
      check(id >= 0 && id < tokenizers.byte_fallback->vocab_size(), "id outside the vocabulary");
  }
}

void run_json_lines(const uint8_t* data, size_t size) {
  const auto joined = io::parse_json_lines(as_text(data, size), "fuzz");
  // Records are copied, never expanded beyond their JSON escapes, plus a
  // two-byte separator per line.
  check(joined.size() <= 2 * size + 2, "joined text larger than the input allows");
}

void run_spm_model(const uint8_t* data, size_t size) {
  exercise(*detail::make_spm_tokenizer(std::string(as_text(data, size)), {}, "fuzz"));
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"safetensors_header", run_safetensors_header},
      {"checkpoint_index", run_checkpoint_index},
      {"llama_config", run_llama_config},
      {"tokenizer_json", run_tokenizer_json},
      {"tokenizer_config", run_tokenizer_config},
      {"tokenizer_encode", run_tokenizer_encode},
      {"json_lines", run_json_lines},
      {"spm_model", run_spm_model},
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const auto& target : targets())
    if (name == target.name) return &target;
  return nullptr;
}

}  // namespace lp::fuzz

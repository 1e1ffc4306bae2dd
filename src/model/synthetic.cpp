#include "linearpatch/model/synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <future>
#include <map>
#include <numeric>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/core/version.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/io/safetensors.h"
#include "linearpatch/model/llama.h"
#include "model/tensor_bridge.h"
#include "tokenizer/byte_level.h"

namespace lp {
namespace {

using Json = nlohmann::json;

constexpr double kInitStd = 0.02;             // transformers' initializer_range for LLaMA
constexpr int64_t kChunk = int64_t{1} << 20;  // elements per RNG stream
constexpr int64_t kByteTokens = 256;
constexpr int64_t kMaxSpecialTokens = 256;

struct Shape {
  const char* name;
  ModelFamily family;
  int64_t layers, hidden, intermediate, heads, kv_heads, head_dim, vocab;
  bool tied;
  double rope_theta;
  int64_t max_positions;
  double llama3_rope_factor;  // 0: no RoPE scaling
};

constexpr auto kLlama = ModelFamily::kLlama;
// From the published config.json files of these models.
constexpr Shape kShapes[] = {
    {"llama2-7b", kLlama, 32, 4096, 11008, 32, 32, 128, 32000, false, 1e4, 4096, 0},
    {"llama2-13b", kLlama, 40, 5120, 13824, 40, 40, 128, 32000, false, 1e4, 4096, 0},
    {"llama3-8b", kLlama, 32, 4096, 14336, 32, 8, 128, 128256, false, 5e5, 8192, 0},
    {"llama3.1-8b", kLlama, 32, 4096, 14336, 32, 8, 128, 128256, false, 5e5, 131072, 8},
    {"llama3.2-1b", kLlama, 16, 2048, 8192, 32, 8, 64, 128256, true, 5e5, 131072, 32},
    {"llama3.2-3b", kLlama, 28, 3072, 8192, 24, 8, 128, 128256, true, 5e5, 131072, 32},
    {"llama3-70b", kLlama, 80, 8192, 28672, 64, 8, 128, 128256, false, 5e5, 8192, 0},
    {"mistral-7b", ModelFamily::kMistral, 32, 4096, 14336, 32, 8, 128, 32768, false, 1e6, 32768, 0},
    {"mistral-nemo-12b", ModelFamily::kMistral, 40, 5120, 14336, 32, 8, 128, 131072, false, 1e6, 1024000, 0},
    {"qwen2.5-0.5b", ModelFamily::kQwen2, 24, 896, 4864, 14, 2, 64, 151936, true, 1e6, 32768, 0},
    {"qwen2.5-7b", ModelFamily::kQwen2, 28, 3584, 18944, 28, 4, 128, 152064, false, 1e6, 131072, 0},
    {"qwen3-0.6b", ModelFamily::kQwen3, 28, 1024, 3072, 16, 8, 128, 151936, true, 1e6, 40960, 0},
    {"qwen3-8b", ModelFamily::kQwen3, 36, 4096, 12288, 32, 8, 128, 151936, false, 1e6, 40960, 0},
};

LlamaConfig base_config() {
  LlamaConfig c;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 5e5;
  c.max_position_embeddings = 8192;
  c.dtype = "bfloat16";
  return c;
}

int64_t special_token_count(int64_t vocab) { return std::min(kMaxSpecialTokens, vocab - kByteTokens); }

uint64_t mix(uint64_t x) {  // splitmix64: independent seeds from consecutive integers
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

at::ScalarType storage_type(const std::string& dtype) {
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "float16") return at::kHalf;
  if (dtype == "float32") return at::kFloat;
  throw UsageError("synthetic checkpoints store bfloat16, float16 or float32, not '" + dtype + "'");
}

// transformers' initialisation: matrices random, RMSNorm weights 1, biases 0.
enum class Init { kNormal, kOnes, kZeros };

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;
  Init init = Init::kNormal;
  uint64_t nbytes = 0;
  uint64_t seed = 0;
};

Init init_of(TensorRole role) {
  switch (role) {
    case TensorRole::kEmbedding:
    case TensorRole::kProjection: return Init::kNormal;
    case TensorRole::kBias: return Init::kZeros;
    case TensorRole::kSublayerNorm:
    case TensorRole::kHeadNorm:
    case TensorRole::kFinalNorm: return Init::kOnes;
  }
  return Init::kNormal;
}

// In the order of the family's state_dict, which is how save_pretrained
// fills its shards.
std::vector<TensorPlan> plan_tensors(const LlamaConfig& c, size_t element_size) {
  std::vector<TensorPlan> plan;
  auto add = [&](std::string name, std::vector<int64_t> shape, TensorRole role) {
    uint64_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
    plan.push_back({std::move(name), std::move(shape), init_of(role), numel * element_size, 0});
  };
  const auto globals = global_tensor_specs(c);
  add(globals.front().name, globals.front().shape, globals.front().role);  // the embeddings lead
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& spec : layer_tensor_specs(c, l)) add(layer_tensor_name(l, spec.suffix), spec.shape, spec.role);
  for (size_t i = 1; i < globals.size(); ++i) add(globals[i].name, globals[i].shape, globals[i].role);
  return plan;
}

struct RandomFill {
  at::Tensor flat;  // a whole tensor, viewed as 1-D
  uint64_t seed;
};

// N(0, kInitStd) in independent RNG streams of kChunk elements, each seeded
// from (tensor seed, chunk index): the bytes do not depend on how the
// intra-op pool splits the work, and one pass over every chunk of a shard
// keeps all threads busy even through the small k/v projections.
void fill_normal(const std::vector<RandomFill>& fills) {
  std::vector<std::pair<size_t, int64_t>> jobs;  // (fill, chunk)
  for (size_t f = 0; f < fills.size(); ++f)
    for (int64_t chunk = 0; chunk * kChunk < fills[f].flat.numel(); ++chunk) jobs.emplace_back(f, chunk);
  at::parallel_for(0, static_cast<int64_t>(jobs.size()), 1, [&](int64_t begin, int64_t end) {
    at::Tensor scratch;
    for (int64_t j = begin; j < end; ++j) {
      const auto [f, chunk] = jobs[j];
      const auto& flat = fills[f].flat;
      const int64_t offset = chunk * kChunk, length = std::min(kChunk, flat.numel() - offset);
      auto generator = at::make_generator<at::CPUGeneratorImpl>(mix(fills[f].seed + static_cast<uint64_t>(chunk)));
      auto slice = flat.narrow(0, offset, length);
      if (slice.scalar_type() == at::kFloat) {
        slice.normal_(0.0, kInitStd, generator);
        continue;
      }
      if (!scratch.defined()) scratch = at::empty({kChunk}, at::kFloat);
      auto values = scratch.narrow(0, 0, length);
      values.normal_(0.0, kInitStd, generator);
      slice.copy_(values);
    }
  });
}


Json rope_parameters(const LlamaConfig& c) {
  Json rope = {{"rope_theta", c.rope_theta}};
  const auto& s = c.rope_scaling;
  switch (s.type) {
    case RopeScaling::Type::kDefault:
      rope["rope_type"] = "default";
      break;
    case RopeScaling::Type::kLinear:
      rope["rope_type"] = "linear";
      rope["factor"] = s.factor;
      break;
    case RopeScaling::Type::kLlama3:
      rope["rope_type"] = "llama3";
      rope["factor"] = s.factor;
      rope["low_freq_factor"] = s.low_freq_factor;
      rope["high_freq_factor"] = s.high_freq_factor;
      rope["original_max_position_embeddings"] = s.original_max_position_embeddings;
      break;
  }
  return rope;
}

void check_size(int64_t value, const char* what) {
  if (value < 1) throw UsageError(std::string(what) + " must be at least 1, got " + std::to_string(value));
}

void finalize(LlamaConfig& c) {
  check_size(c.num_hidden_layers, "the layer count");
  check_size(c.hidden_size, "the hidden size");
  check_size(c.intermediate_size, "the intermediate size");
  check_size(c.num_attention_heads, "the head count");
  check_size(c.num_key_value_heads, "the key/value head count");
  if (c.head_dim == 0 && c.hidden_size % c.num_attention_heads != 0)
    throw UsageError("hidden size " + std::to_string(c.hidden_size) + " is not a multiple of the " +
                     std::to_string(c.num_attention_heads) + " heads (give the head dimension)");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw UsageError(std::to_string(c.num_attention_heads) + " heads are not a multiple of the key/value heads, " +
                     std::to_string(c.num_key_value_heads));
  if (c.head_dim == 0) c.head_dim = c.hidden_size / c.num_attention_heads;
  if (c.head_dim % 2 != 0)
    throw UsageError("head dimension " + std::to_string(c.head_dim) + " must be even for RoPE");
  if (c.vocab_size < kByteTokens + 2)
    throw UsageError("the vocabulary must hold at least " + std::to_string(kByteTokens + 2) +
                     " (256 byte tokens, BOS and EOS), got " + std::to_string(c.vocab_size));
  set_synthetic_special_ids(c);
}

}  // namespace

std::vector<std::string> synthetic_shape_names() {
  std::vector<std::string> names;
  for (const auto& shape : kShapes) names.emplace_back(shape.name);
  return names;
}

LlamaConfig synthetic_shape(const std::string& name) {
  for (const auto& s : kShapes) {
    if (name != s.name) continue;
    auto c = synthetic_config(s.layers, s.hidden, s.intermediate, s.heads, s.kv_heads, s.vocab, s.tied, s.family,
                              s.head_dim);
    c.rope_theta = s.rope_theta;
    c.max_position_embeddings = s.max_positions;
    if (s.llama3_rope_factor > 0) c.rope_scaling = {RopeScaling::Type::kLlama3, s.llama3_rope_factor, 1.0, 4.0, 8192};
    return c;
  }
  std::string known;
  for (const auto& n : synthetic_shape_names()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown shape '" + name + "' (known: " + known + ")");
}

LlamaConfig synthetic_config(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads, int64_t kv_heads,
                             int64_t vocab, bool tie_word_embeddings, ModelFamily family, int64_t head_dim) {
  auto c = base_config();
  c.family = family;
  c.model_type = model_type_name(family);
  c.qkv_bias = family == ModelFamily::kQwen2;
  c.qk_norm = family == ModelFamily::kQwen3;
  c.head_dim = head_dim;
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.vocab_size = vocab;
  c.tie_word_embeddings = tie_word_embeddings;
  finalize(c);
  c.attention_windows.assign(static_cast<size_t>(layers), 0);
  return c;
}

void set_synthetic_special_ids(LlamaConfig& config) {
  const int64_t first_special = config.vocab_size - special_token_count(config.vocab_size);
  config.bos_token_id = first_special;
  config.eos_token_ids = {first_special + 1};
}

std::string synthetic_config_json(const LlamaConfig& c) {
  // Keys sorted, as transformers writes them (nlohmann::json keeps objects sorted).
  Json j;
  j["architectures"] = {causal_lm_class_name(c.family)};
  if (c.family == ModelFamily::kLlama || c.family == ModelFamily::kQwen3) j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id.value_or(0);
  j["dtype"] = c.dtype;
  j["eos_token_id"] = c.eos_token_ids.empty() ? 0 : c.eos_token_ids.front();
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = kInitStd;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.family == ModelFamily::kLlama) {
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (c.family == ModelFamily::kQwen2 || c.family == ModelFamily::kQwen3) {
    j["layer_types"] = std::vector<std::string>(static_cast<size_t>(c.num_hidden_layers), "full_attention");
    j["max_window_layers"] = c.num_hidden_layers;
    j["use_sliding_window"] = false;
  }
  if (c.family != ModelFamily::kLlama) j["sliding_window"] = nullptr;
  j["model_type"] = model_type_name(c.family);
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_parameters"] = rope_parameters(c);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["transformers_version"] = "5.17.0";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  return j.dump(2) + "\n";
}

std::string synthetic_tokenizer_json(int64_t vocab_size) {
  const int64_t specials = special_token_count(vocab_size);
  if (specials < 2)
    throw UsageError("a synthetic tokenizer needs at least 258 tokens, got " + std::to_string(vocab_size));
  const int64_t first_special = vocab_size - specials;
  // Byte tokens in GPT-2's order (printable bytes first), the ids they
  // have in LLaMA-3: "!" is 0, the byte 0x00 is 188.
  std::vector<int> bytes(kByteTokens);
  std::iota(bytes.begin(), bytes.end(), 0);
  std::stable_partition(bytes.begin(), bytes.end(),
                        [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; });
  Json vocab = Json::object();
  for (int id = 0; id < kByteTokens; ++id)
    vocab[std::string(detail::byte_level_char(static_cast<uint8_t>(bytes[id])))] = id;
  for (int64_t id = kByteTokens; id < first_special; ++id) vocab["<|unused_" + std::to_string(id) + "|>"] = id;

  Json added = Json::array();
  for (int64_t k = 0; k < specials; ++k) {
    const std::string content = k == 0   ? "<|begin_of_text|>"
                                : k == 1 ? "<|end_of_text|>"
                                         : "<|reserved_special_token_" + std::to_string(k - 2) + "|>";
    added.push_back({{"id", first_special + k},
                     {"content", content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const Json bos = {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}};
  const Json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  Json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = std::move(added);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        byte_level}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens",
       {{"<|begin_of_text|>",
         {{"id", "<|begin_of_text|>"}, {"ids", {first_special}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  // Without merges every byte stays a token; ignore_merges off keeps the
  // placeholders unreachable even when a word spells one.
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", std::move(vocab)},
                {"merges", Json::array()}};
  return j.dump() + "\n";
}

std::string synthetic_tokenizer_config_json() {
  const Json j = {{"backend", "tokenizers"},
                  {"bos_token", "<|begin_of_text|>"},
                  {"eos_token", "<|end_of_text|>"},
                  {"tokenizer_class", "TokenizersBackend"}};
  return j.dump(2) + "\n";
}

SyntheticSummary write_synthetic_checkpoint(const std::filesystem::path& dir, const SyntheticSpec& spec) {
  const auto config_text = synthetic_config_json(spec.config);
  // The reader is the judge of what we write: refuse before drawing 16 GB.
  parse_llama_config(config_text, "synthetic config.json");
  if (spec.max_shard_bytes == 0) throw UsageError("the maximum shard size must be positive");
  const auto dtype = storage_type(spec.config.dtype);
  const size_t element_size = c10::elementSize(dtype);

  write_text_file(dir / "config.json", config_text);
  write_text_file(dir / "tokenizer.json", synthetic_tokenizer_json(spec.config.vocab_size));
  write_text_file(dir / "tokenizer_config.json", synthetic_tokenizer_config_json());
  const Json provenance = {{"generator", std::string("linearpatch ") + version()},
                           {"seed", spec.seed},
                           {"init", "normal(0, 0.02) matrices, RMSNorm weights 1"},
                           {"tokenizer", "byte-level BPE without merges; placeholders pad the vocabulary"}};
  write_text_file(dir / "synthetic.json", provenance.dump(2) + "\n");

  SyntheticSummary summary;
  summary.files = {"config.json", "tokenizer.json", "tokenizer_config.json", "synthetic.json"};
  auto tensors = plan_tensors(spec.config, element_size);
  for (const auto& t : tensors) summary.tensor_bytes += t.nbytes;
  summary.parameters = static_cast<int64_t>(summary.tensor_bytes / element_size);
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].seed = mix(mix(spec.seed) + i);

  const bool single = summary.tensor_bytes <= spec.max_shard_bytes;
  std::vector<uint64_t> bytes;
  for (const auto& tensor : tensors) bytes.push_back(tensor.nbytes);
  std::vector<std::vector<TensorPlan>> shards;
  auto next = tensors.begin();
  for (const size_t count : io::shard_sizes(bytes, single ? summary.tensor_bytes : spec.max_shard_bytes)) {
    shards.emplace_back(std::make_move_iterator(next), std::make_move_iterator(next + static_cast<std::ptrdiff_t>(count)));
    next += static_cast<std::ptrdiff_t>(count);
  }
  Progress progress("synthetic weights", static_cast<int64_t>(summary.tensor_bytes >> 20), "MiB");
  std::map<std::string, std::string> weight_map;
  // Two shard buffers, drawn into and written in turn, allocated once: fresh
  // pages for every shard cost more in page faults than drawing the numbers.
  uint64_t largest_shard = 0;
  for (const auto& shard : shards) {
    uint64_t shard_bytes = 0;
    for (const auto& t : shard) shard_bytes += t.nbytes;
    largest_shard = std::max(largest_shard, shard_bytes);
  }
  std::array<at::Tensor, 2> buffers;
  std::future<void> writing;  // the previous shard, written while this one is drawn
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = single ? "model.safetensors" : io::shard_file_name(s + 1, shards.size());
    auto& buffer = buffers[s % 2];
    if (!buffer.defined()) buffer = at::empty({static_cast<int64_t>(largest_shard / element_size)}, dtype);
    std::vector<at::Tensor> storage;
    std::vector<io::OutputTensor> outputs;
    std::vector<RandomFill> fills;
    uint64_t shard_bytes = 0;
    for (const auto& t : shards[s]) {
      auto tensor = buffer.narrow(0, static_cast<int64_t>(shard_bytes / element_size),
                                  static_cast<int64_t>(t.nbytes / element_size))
                        .view(t.shape);
      if (t.init == Init::kNormal)
        fills.push_back({tensor.view({-1}), t.seed});
      else
        tensor.fill_(t.init == Init::kOnes ? 1.0 : 0.0);
      outputs.push_back(output_tensor(t.name, tensor));
      storage.push_back(std::move(tensor));
      weight_map[t.name] = file;
      shard_bytes += t.nbytes;
    }
    fill_normal(fills);
    progress.advance(static_cast<int64_t>(shard_bytes >> 20));
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async,
                         [path = dir / file, storage = std::move(storage), outputs = std::move(outputs)]() mutable {
                           io::write_safetensors(path, std::move(outputs));
                         });
    summary.files.push_back(file);
  }
  if (writing.valid()) writing.get();
  if (!single) {
    io::write_shard_index(dir, weight_map, summary.tensor_bytes, /*sync=*/true);
    summary.files.push_back("model.safetensors.index.json");
  }
  progress.finish();
  return summary;
}

}  // namespace lp

#include "linearpatch/config/llama_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "config/config_json.h"
#include "io/json_util.h"
#include "linearpatch/config/nemotron_nas.h"
#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/error.h"

namespace lp {
namespace {

using Json = nlohmann::json;

// Reads typed fields of one JSON object; `prefix` places the object in the
// file ("rope_scaling.") so that messages name the full field.
class Fields {
 public:
  Fields(const Json& object, const std::string& source, std::string prefix)
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  // Where absent and null differ (a default that null switches off).
  bool contains(const char* key) const { return object_.contains(key); }
  // Absent and null read alike: transformers stores None as null.
  const Json* get(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw InputError(source_ + ": field '" + prefix_ + key + "' " + what);
  }
  const Json& required(const char* key) const {
    const Json* value = get(key);
    if (!value) fail(key, "is missing");
    return *value;
  }

  std::optional<int64_t> integer(const char* key) const {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_number_integer()) fail(key, "must be an integer, got " + io::json_excerpt(*value));
    if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) {
      fail(key, "is too large: " + value->dump());
    }
    return value->get<int64_t>();
  }
  int64_t positive(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    const auto value = integer(key);
    if (!value && !fallback) fail(key, "is missing");
    if (value && *value <= 0) fail(key, "must be positive, got " + std::to_string(*value));
    return value.value_or(fallback.value_or(0));
  }
  std::optional<double> number(const char* key) const {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_number()) fail(key, "must be a number, got " + io::json_excerpt(*value));
    return value->get<double>();
  }
  double positive_number(const char* key, std::optional<double> fallback = std::nullopt) const {
    const auto value = number(key);
    if (!value && !fallback) fail(key, "is missing");
    const double result = value.value_or(fallback.value_or(0.0));
    if (!(result > 0.0) || !std::isfinite(result)) fail(key, "must be a positive number, got " + Json(result).dump());
    return result;
  }
  bool boolean(const char* key, bool fallback) const {
    const Json* value = get(key);
    if (!value) return fallback;
    if (!value->is_boolean()) fail(key, "must be true or false, got " + io::json_excerpt(*value));
    return value->get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) fail(key, "must be a string, got " + io::json_excerpt(*value));
    return value->get<std::string>();
  }
  Fields object(const char* key) const {
    const Json& value = required(key);
    if (!value.is_object()) fail(key, "must be an object, got " + io::json_excerpt(value));
    return Fields(value, source_, prefix_ + key + ".");
  }
  // Fields of `value`, an element of this object's array `name` ("patches[0]").
  Fields element(const Json& value, const std::string& name) const {
    if (!value.is_object()) fail(name.c_str(), "must be an object, got " + io::json_excerpt(value));
    return Fields(value, source_, prefix_ + name + ".");
  }

 private:
  const Json& object_;
  const std::string& source_;
  std::string prefix_;
};

std::string in_quotes(const std::string& text) { return "'" + text + "'"; }

struct FamilyInfo {
  ModelFamily family;
  const char* model_type;
  const char* causal_lm_class;
};

constexpr FamilyInfo kFamilies[] = {
    {ModelFamily::kLlama, "llama", "LlamaForCausalLM"},
    {ModelFamily::kMistral, "mistral", "MistralForCausalLM"},
    {ModelFamily::kQwen2, "qwen2", "Qwen2ForCausalLM"},
    {ModelFamily::kQwen3, "qwen3", "Qwen3ForCausalLM"},
};

const FamilyInfo& family_info(ModelFamily family) {
  for (const auto& info : kFamilies)
    if (info.family == family) return info;
  throw Error("internal: unknown model family");
}

// Why a known architecture is refused, for the one-line error; unknown
// ones are simply not supported.
std::string refusal_reason(const std::string& model_type, const Fields& top) {
  if (top.get("text_config")) return "a multimodal wrapper (its language model has its own config)";
  if (model_type.find("moe") != std::string::npos || model_type == "mixtral" || model_type == "dbrx" ||
      model_type.rfind("deepseek", 0) == 0)
    return "mixture-of-experts or multi-latent attention layers";
  if (model_type.rfind("gemma", 0) == 0) return "Gemma layers (scaled embeddings, extra norms, soft-capping)";
  if (model_type.rfind("phi", 0) == 0) return "Phi layers (fused projections or partial rotary embeddings)";
  return "not a LLaMA-family decoder";
}

// Refuses architectures whose forward pass differs from the one we run.
ModelFamily read_family(const Fields& top) {
  const std::string model_type = top.string("model_type").value_or("");
  if (model_type.empty()) top.fail("model_type", "is missing");
  // Nemotron-NAS blocks are LLaMA layers (read_nemotron_blocks checks which).
  const auto known = model_type == kNemotronModelType ? ModelFamily::kLlama : family_from_model_type(model_type);
  if (!known || top.get("text_config"))
    top.fail("model_type", "is " + in_quotes(model_type) + ": unsupported, " + refusal_reason(model_type, top) +
                               " (supported: " + supported_model_types() + ")");
  if (const auto act = top.string("hidden_act"); act && *act != "silu") {
    top.fail("hidden_act", "is " + in_quotes(*act) + ": only 'silu' is supported");
  }
  if (const auto tp = top.integer("pretraining_tp"); tp && *tp > 1) {
    top.fail("pretraining_tp", "is " + std::to_string(*tp) + ": only 1 is supported");
  }
  if (top.get("quantization_config"))
    top.fail("quantization_config", "is set: quantized checkpoints are not supported");
  return *known;
}

// transformers' per-family defaults (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config).
int64_t default_max_positions(ModelFamily family) {
  switch (family) {
    case ModelFamily::kLlama: return 2048;
    case ModelFamily::kMistral: return 4096 * 32;
    case ModelFamily::kQwen2:
    case ModelFamily::kQwen3: return 32768;
  }
  return 2048;
}

void read_head_dim(const Fields& top, LlamaConfig& config) {
  if (top.get("head_dim")) {
    config.head_dim = top.positive("head_dim");
  } else if (config.family == ModelFamily::kQwen3) {
    config.head_dim = 128;  // Qwen3Config's default, not hidden / heads
  } else if (config.hidden_size % config.num_attention_heads != 0) {
    top.fail("hidden_size", "is " + std::to_string(config.hidden_size) + ", not divisible by num_attention_heads " +
                                std::to_string(config.num_attention_heads) + ", and no head_dim is given");
  } else {
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  if (config.head_dim % 2 != 0)
    top.fail("head_dim", "is " + std::to_string(config.head_dim) + ": rotary embeddings need an even head dimension");
}

// What Nemotron-NAS block configs say of one shape of LLaMA layer.
struct NemotronBlocks {
  std::optional<int64_t> kv_heads, intermediate;
  std::vector<LayerSpec> specs;
};

// block_configs: every block a LLaMA layer of one shape or no_op, as vLLM
// and llama.cpp read them; anything else is refused naming the block and field.
NemotronBlocks read_nemotron_blocks(const Fields& top, int64_t layers, int64_t heads, int64_t hidden) {
  const Json& blocks = top.required("block_configs");
  if (!blocks.is_array() || blocks.size() != static_cast<size_t>(layers))
    top.fail("block_configs", "must list one block per layer (" + std::to_string(layers) + ")");
  NemotronBlocks out;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Fields block = top.element(blocks[i], "block_configs[" + std::to_string(i) + "]");
    const Fields attention = block.object("attention"), ffn = block.object("ffn");
    LayerSpec spec{!attention.boolean("no_op", false), !ffn.boolean("no_op", false)};
    for (const auto* part : {&attention, &ffn})
      if (part->boolean("replace_with_linear", false))
        part->fail("replace_with_linear", "is true: linear replacement blocks are not supported");
    if (attention.get("window_length")) attention.fail("window_length", "is set: windowed blocks are not supported");
    if (spec.attention) {
      const int64_t group = attention.positive("n_heads_in_group");
      if (heads % group != 0)
        attention.fail("n_heads_in_group", "is " + std::to_string(group) + ", which does not divide num_attention_heads");
      if (out.kv_heads && *out.kv_heads != heads / group)
        attention.fail("n_heads_in_group", "is " + std::to_string(group) +
                                               ": blocks with different key/value head counts are not supported");
      out.kv_heads = heads / group;
    }
    if (spec.mlp) {
      const int64_t size = ffn.get("ffn_mult")
                               ? nemotron_intermediate_size(ffn.positive_number("ffn_mult"), hidden)
                               : ffn.positive("intermediate_size");
      if (out.intermediate && *out.intermediate != size)
        ffn.fail("ffn_mult", "gives intermediate size " + std::to_string(size) + ", block 0.. gave " +
                                 std::to_string(*out.intermediate) +
                                 ": blocks with different MLP sizes are not supported");
      out.intermediate = size;
    }
    out.specs.push_back(spec);
  }
  return out;
}

void read_sizes(const Fields& top, LlamaConfig& config) {
  config.vocab_size = top.positive("vocab_size");
  config.hidden_size = top.positive("hidden_size");
  config.num_hidden_layers = top.positive("num_hidden_layers");
  config.num_attention_heads = top.positive("num_attention_heads");
  const NemotronBlocks blocks =
      top.string("model_type") == std::string(kNemotronModelType)
          ? read_nemotron_blocks(top, config.num_hidden_layers, config.num_attention_heads, config.hidden_size)
          : NemotronBlocks{};
  config.layer_specs = blocks.specs;
  // Block configs decide the shapes where they give them.
  // (a model whose every MLP is no_op needs no intermediate size).
  config.intermediate_size = blocks.intermediate  ? *blocks.intermediate
                             : blocks.specs.empty() ? top.positive("intermediate_size")
                                                    : top.positive("intermediate_size", 1);
  config.num_key_value_heads = blocks.kv_heads ? *blocks.kv_heads
                                               : top.positive("num_key_value_heads", config.num_attention_heads);
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    top.fail("num_key_value_heads", "is " + std::to_string(config.num_key_value_heads) +
                                        ", which does not divide num_attention_heads " +
                                        std::to_string(config.num_attention_heads));
  }
  read_head_dim(top, config);
  config.max_position_embeddings = top.positive("max_position_embeddings", default_max_positions(config.family));
  config.rms_norm_eps = top.positive_number("rms_norm_eps", 1e-6);
}

// Which projections carry a bias and whether q/k are normalised per head,
// as each family's modeling code decides (some ignore attention_bias).
void read_layer_options(const Fields& top, LlamaConfig& config) {
  const bool attention_bias = top.boolean("attention_bias", false);
  switch (config.family) {
    case ModelFamily::kLlama:
      config.qkv_bias = config.o_bias = attention_bias;
      config.mlp_bias = top.boolean("mlp_bias", false);
      break;
    case ModelFamily::kMistral:
      break;
    case ModelFamily::kQwen2:
      config.qkv_bias = true;
      break;
    case ModelFamily::kQwen3:
      config.qkv_bias = config.o_bias = attention_bias;
      config.qk_norm = true;
      break;
  }
}

int64_t window_size(const Fields& top, int64_t fallback) {
  if (!top.get("sliding_window")) return fallback;
  return top.positive("sliding_window");
}

// Qwen2/Qwen3: windows only with use_sliding_window, on the layers that
// layer_types marks "sliding_attention" (or, without layer_types, from
// max_window_layers on).
std::vector<int64_t> qwen_windows(const Fields& top, int64_t layers) {
  std::vector<int64_t> windows(static_cast<size_t>(layers), 0);
  const Json* types = top.get("layer_types");
  if (types) {
    if (!types->is_array() || types->size() != static_cast<size_t>(layers))
      top.fail("layer_types", "must list one attention type per layer (" + std::to_string(layers) + "), got " +
                                  io::json_excerpt(*types));
    for (const auto& type : *types)
      if (type != "full_attention" && type != "sliding_attention")
        top.fail("layer_types", "holds " + io::json_excerpt(type) +
                                    ": only 'full_attention' and 'sliding_attention' are supported");
  }
  if (!top.boolean("use_sliding_window", false)) return windows;
  const int64_t window = window_size(top, 4096);
  const int64_t first_windowed = top.integer("max_window_layers").value_or(28);
  for (int64_t l = 0; l < layers; ++l) {
    const bool sliding = types ? (*types)[static_cast<size_t>(l)] == "sliding_attention" : l >= first_windowed;
    if (sliding) windows[static_cast<size_t>(l)] = window;
  }
  return windows;
}

void read_attention_windows(const Fields& top, LlamaConfig& config) {
  const int64_t layers = config.num_hidden_layers;
  switch (config.family) {
    case ModelFamily::kLlama:
      config.attention_windows.assign(static_cast<size_t>(layers), 0);
      break;
    case ModelFamily::kMistral:  // MistralConfig defaults to 4096 when the key is absent
      config.attention_windows.assign(static_cast<size_t>(layers),
                                      top.contains("sliding_window") ? window_size(top, 0) : 4096);
      break;
    case ModelFamily::kQwen2:
    case ModelFamily::kQwen3:
      config.attention_windows = qwen_windows(top, layers);
      break;
  }
}

// The rope type of a rope_parameters (5.x) or rope_scaling (4.x) object;
// transformers before 4.42 called the key "type".
void read_rope_type(const Fields& rope, RopeScaling& scaling) {
  const char* key = rope.get("rope_type") || !rope.get("type") ? "rope_type" : "type";
  const std::string type = rope.string(key).value_or("default");
  if (type == "default") {
    scaling.type = RopeScaling::Type::kDefault;
  } else if (type == "linear") {
    scaling.type = RopeScaling::Type::kLinear;
    scaling.factor = rope.positive_number("factor");
  } else if (type == "llama3") {
    scaling.type = RopeScaling::Type::kLlama3;
    scaling.factor = rope.positive_number("factor");
    scaling.low_freq_factor = rope.positive_number("low_freq_factor");
    scaling.high_freq_factor = rope.positive_number("high_freq_factor");
    scaling.original_max_position_embeddings = rope.positive("original_max_position_embeddings");
    if (scaling.high_freq_factor <= scaling.low_freq_factor) {
      rope.fail("high_freq_factor", "must be larger than low_freq_factor");
    }
  } else {
    rope.fail(key, "is " + in_quotes(type) + ": unsupported rope type (supported: default, linear, llama3)");
  }
}

// transformers 5.x keeps rope_theta and the scaling in rope_parameters and
// prefers it over the 4.x top-level fields, as we do.
void read_rope(const Fields& top, LlamaConfig& config) {
  if (top.get("rope_parameters")) {
    const Fields rope = top.object("rope_parameters");
    config.rope_theta = rope.positive_number("rope_theta", top.positive_number("rope_theta", 10000.0));
    read_rope_type(rope, config.rope_scaling);
    return;
  }
  config.rope_theta = top.positive_number("rope_theta", 10000.0);
  if (top.get("rope_scaling")) read_rope_type(top.object("rope_scaling"), config.rope_scaling);
}

void read_dtype(const Fields& top, LlamaConfig& config) {
  const char* key = top.get("dtype") || !top.get("torch_dtype") ? "dtype" : "torch_dtype";
  config.dtype = top.string(key).value_or("");
  if (!config.dtype.empty() && config.dtype != "bfloat16" && config.dtype != "float16" && config.dtype != "float32") {
    top.fail(key, "is " + in_quotes(config.dtype) + ": expected bfloat16, float16 or float32");
  }
}

int64_t token_id(const Json& value, const Fields& top, const char* key) {
  if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<int64_t>() < 0) ||
      (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})) {
    top.fail(key, "must hold non-negative token ids, got " + io::json_excerpt(value));
  }
  return value.get<int64_t>();
}

void read_tokens(const Fields& top, LlamaConfig& config) {
  if (const Json* bos = top.get("bos_token_id")) config.bos_token_id = token_id(*bos, top, "bos_token_id");
  const Json* eos = top.get("eos_token_id");
  if (!eos) return;
  if (!eos->is_array()) {
    config.eos_token_ids.push_back(token_id(*eos, top, "eos_token_id"));
    return;
  }
  for (const auto& id : *eos) config.eos_token_ids.push_back(token_id(id, top, "eos_token_id"));
}

constexpr int64_t kPatchFormatVersion = 1;

// The entry's "layers": per decoder layer, which sublayers it has (written
// only by sublayer prunes).
void read_layer_specs(const Fields& entry, LlamaConfig& config) {
  const Json* layers = entry.get("layers");
  if (!layers || !config.layer_specs.empty()) return;  // Nemotron-NAS: block_configs said it
  if (!layers->is_array() || layers->size() != static_cast<size_t>(config.num_hidden_layers))
    entry.fail("layers", "must list one {attention, mlp} object per layer (" +
                             std::to_string(config.num_hidden_layers) + "), got " + io::json_excerpt(*layers));
  for (size_t i = 0; i < layers->size(); ++i) {
    const Fields layer = entry.element((*layers)[i], "layers[" + std::to_string(i) + "]");
    config.layer_specs.push_back({layer.boolean("attention", true), layer.boolean("mlp", true)});
  }
}

void read_patches(const Fields& top, LlamaConfig& config) {
  if (!top.get("linearpatch")) return;
  const Fields entry = top.object("linearpatch");
  const auto version = entry.integer("format_version");
  if (!version) entry.fail("format_version", "is missing");
  if (*version != kPatchFormatVersion) {
    entry.fail("format_version",
               "is " + std::to_string(*version) + ": this build reads version " + std::to_string(kPatchFormatVersion));
  }
  const Json& patches = entry.required("patches");
  if (!patches.is_array()) entry.fail("patches", "must be an array, got " + io::json_excerpt(patches));
  for (size_t i = 0; i < patches.size(); ++i) {
    const Fields patch = entry.element(patches[i], "patches[" + std::to_string(i) + "]");
    ResidualPatch result;
    result.layer = patch.integer("layer").value_or(-1);
    if (result.layer < 0 || result.layer > config.num_hidden_layers) {
      patch.fail("layer", "must be a layer index in [0, " + std::to_string(config.num_hidden_layers) + "]");
    }
    result.tensor = patch.string("tensor").value_or("");
    if (result.tensor.empty()) patch.fail("tensor", "must name the patch tensor");
    config.patches.push_back(std::move(result));
  }
  read_layer_specs(entry, config);
}

// int64 arithmetic that remembers overflow instead of wrapping, so that
// hostile sizes cannot make parameter_count() undefined.
class CheckedInt {
 public:
  CheckedInt(int64_t value) : value_(value) {}  // NOLINT: implicit on purpose, for readable formulas
  CheckedInt operator+(CheckedInt other) const {
    CheckedInt result(0);
    result.overflow_ = overflow_ || other.overflow_ || __builtin_add_overflow(value_, other.value_, &result.value_);
    return result;
  }
  CheckedInt operator*(CheckedInt other) const {
    CheckedInt result(0);
    result.overflow_ = overflow_ || other.overflow_ || __builtin_mul_overflow(value_, other.value_, &result.value_);
    return result;
  }
  std::optional<int64_t> value() const { return overflow_ ? std::nullopt : std::optional<int64_t>(value_); }

 private:
  int64_t value_;
  bool overflow_ = false;
};

CheckedInt checked_numel(const std::vector<int64_t>& shape) {
  CheckedInt n = 1;
  for (const int64_t d : shape) n = n * d;
  return n;
}

std::optional<int64_t> checked_parameter_count(const LlamaConfig& c) {
  CheckedInt total = 0;
  try {
    for (const auto& spec : global_tensor_specs(c)) total = total + checked_numel(spec.shape);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      for (const auto& spec : layer_tensor_specs(c, l)) total = total + checked_numel(spec.shape);
  } catch (const SizeOverflow&) {
    return std::nullopt;
  }
  const CheckedInt d = c.hidden_size;
  return (total + d * d * static_cast<int64_t>(c.patches.size())).value();
}

}  // namespace

std::string model_type_name(ModelFamily family) { return family_info(family).model_type; }
std::string causal_lm_class_name(ModelFamily family) { return family_info(family).causal_lm_class; }

std::optional<ModelFamily> family_from_model_type(std::string_view model_type) {
  for (const auto& info : kFamilies)
    if (model_type == info.model_type) return info.family;
  return std::nullopt;
}

std::string supported_model_types() {
  std::string names;
  for (const auto& info : kFamilies) names += (names.empty() ? "" : ", ") + std::string(info.model_type);
  return names;
}

int64_t LlamaConfig::narrowest_window() const {
  int64_t narrowest = 0;
  for (const int64_t w : attention_windows)
    if (w > 0 && (narrowest == 0 || w < narrowest)) narrowest = w;
  return narrowest;
}

LayerSpec LlamaConfig::layer_spec(int64_t layer) const {
  return layer_specs.empty() ? LayerSpec{} : layer_specs.at(static_cast<size_t>(layer));
}

bool LlamaConfig::has_partial_layers() const {
  return std::any_of(layer_specs.begin(), layer_specs.end(), [](const LayerSpec& s) { return !(s == LayerSpec{}); });
}

int64_t LlamaConfig::parameter_count() const {
  const auto count = checked_parameter_count(*this);
  if (!count) throw Error("the parameter count of this config overflows 64 bits");
  return *count;
}

LlamaConfig parse_llama_config(std::string_view json_text, const std::string& source) {
  const auto root = parse_config_json<Json>(json_text, source);
  const Fields top(root, source, "");
  LlamaConfig config;
  config.family = read_family(top);
  config.model_type = top.string("model_type") == std::string(kNemotronModelType) ? kNemotronModelType
                                                                                 : model_type_name(config.family);
  read_sizes(top, config);
  read_layer_options(top, config);
  read_attention_windows(top, config);
  read_rope(top, config);
  read_dtype(top, config);
  config.tie_word_embeddings = top.boolean("tie_word_embeddings", false);
  read_tokens(top, config);
  read_patches(top, config);
  if (!checked_parameter_count(config)) {
    throw InputError(source + ": the sizes describe more parameters than 64 bits can count");
  }
  return config;
}

}  // namespace lp

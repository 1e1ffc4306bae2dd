#include "linearpatch/config/tensor_table.h"

#include <algorithm>

#include "linearpatch/core/error.h"

namespace lp {
namespace {

// A shape's dimensions, resolved against the config.
enum class Dim { kHidden, kIntermediate, kQ, kKv, kHead, kVocab };

// When a row of a family's table is present: always, or when the config's
// flag says so (read_layer_options decides the flags from config.json, as
// each family's transformers code does).
enum class When { kAlways, kQkvBias, kOBias, kQkNorm, kMlpBias };

struct Row {
  LayerTensor id;
  const char* suffix;
  Sublayer owner;
  TensorRole role;
  std::vector<Dim> shape;
  When when;
};

using A = Sublayer;
using R = TensorRole;
using D = Dim;
using T = LayerTensor;

// LLaMA's decoder layer in state_dict order, the rows other families
// share; attention_bias and mlp_bias add the bias rows.
const std::vector<Row>& llama_rows() {
  static const std::vector<Row> rows = {
      {T::kQProj, "self_attn.q_proj.weight", A::kAttention, R::kProjection, {D::kQ, D::kHidden}, When::kAlways},
      {T::kQBias, "self_attn.q_proj.bias", A::kAttention, R::kBias, {D::kQ}, When::kQkvBias},
      {T::kKProj, "self_attn.k_proj.weight", A::kAttention, R::kProjection, {D::kKv, D::kHidden}, When::kAlways},
      {T::kKBias, "self_attn.k_proj.bias", A::kAttention, R::kBias, {D::kKv}, When::kQkvBias},
      {T::kVProj, "self_attn.v_proj.weight", A::kAttention, R::kProjection, {D::kKv, D::kHidden}, When::kAlways},
      {T::kVBias, "self_attn.v_proj.bias", A::kAttention, R::kBias, {D::kKv}, When::kQkvBias},
      {T::kOProj, "self_attn.o_proj.weight", A::kAttention, R::kProjection, {D::kHidden, D::kQ}, When::kAlways},
      {T::kOBias, "self_attn.o_proj.bias", A::kAttention, R::kBias, {D::kHidden}, When::kOBias},
      {T::kGateProj, "mlp.gate_proj.weight", A::kMlp, R::kProjection, {D::kIntermediate, D::kHidden}, When::kAlways},
      {T::kGateBias, "mlp.gate_proj.bias", A::kMlp, R::kBias, {D::kIntermediate}, When::kMlpBias},
      {T::kUpProj, "mlp.up_proj.weight", A::kMlp, R::kProjection, {D::kIntermediate, D::kHidden}, When::kAlways},
      {T::kUpBias, "mlp.up_proj.bias", A::kMlp, R::kBias, {D::kIntermediate}, When::kMlpBias},
      {T::kDownProj, "mlp.down_proj.weight", A::kMlp, R::kProjection, {D::kHidden, D::kIntermediate}, When::kAlways},
      {T::kDownBias, "mlp.down_proj.bias", A::kMlp, R::kBias, {D::kHidden}, When::kMlpBias},
      {T::kInputNorm, "input_layernorm.weight", A::kAttention, R::kSublayerNorm, {D::kHidden}, When::kAlways},
      {T::kPostAttentionNorm, "post_attention_layernorm.weight", A::kMlp, R::kSublayerNorm, {D::kHidden},
       When::kAlways},
  };
  return rows;
}

std::vector<Row> without(std::vector<Row> rows, std::initializer_list<T> ids) {
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [&](const Row& r) { return std::find(ids.begin(), ids.end(), r.id) != ids.end(); }),
             rows.end());
  return rows;
}

std::vector<Row> with_after(std::vector<Row> rows, T after, std::vector<Row> extra) {
  const auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.id == after; });
  rows.insert(it + 1, extra.begin(), extra.end());
  return rows;
}

// Mistral: no biases anywhere.
const std::vector<Row>& mistral_rows() {
  static const auto rows = without(llama_rows(), {T::kQBias, T::kKBias, T::kVBias, T::kOBias, T::kGateBias,
                                                  T::kUpBias, T::kDownBias});
  return rows;
}

// Qwen2: q/k/v biases, none on o_proj or the MLP.
const std::vector<Row>& qwen2_rows() {
  static const auto rows = without(llama_rows(), {T::kOBias, T::kGateBias, T::kUpBias, T::kDownBias});
  return rows;
}

// Qwen3: per-head q/k RMSNorms after o_proj in state_dict order; optional
// biases on the four attention projections, none on the MLP.
const std::vector<Row>& qwen3_rows() {
  static const auto rows =
      with_after(without(llama_rows(), {T::kGateBias, T::kUpBias, T::kDownBias}), T::kOBias,
                 {{T::kQNorm, "self_attn.q_norm.weight", A::kAttention, R::kHeadNorm, {D::kHead}, When::kQkNorm},
                  {T::kKNorm, "self_attn.k_norm.weight", A::kAttention, R::kHeadNorm, {D::kHead}, When::kQkNorm}});
  return rows;
}

const std::vector<Row>& family_rows(ModelFamily family) {
  switch (family) {
    case ModelFamily::kLlama: return llama_rows();
    case ModelFamily::kMistral: return mistral_rows();
    case ModelFamily::kQwen2: return qwen2_rows();
    case ModelFamily::kQwen3: return qwen3_rows();
  }
  throw Error("internal: unknown model family");
}

bool present(When when, const LlamaConfig& c) {
  switch (when) {
    case When::kAlways: return true;
    case When::kQkvBias: return c.qkv_bias;
    case When::kOBias: return c.o_bias;
    case When::kQkNorm: return c.qk_norm;
    case When::kMlpBias: return c.mlp_bias;
  }
  return false;
}

int64_t times(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) throw SizeOverflow("a tensor dimension overflows 64 bits");
  return product;
}

int64_t resolve(Dim dim, const LlamaConfig& c) {
  switch (dim) {
    case Dim::kHidden: return c.hidden_size;
    case Dim::kIntermediate: return c.intermediate_size;
    case Dim::kQ: return times(c.num_attention_heads, c.head_dim);
    case Dim::kKv: return times(c.num_key_value_heads, c.head_dim);
    case Dim::kHead: return c.head_dim;
    case Dim::kVocab: return c.vocab_size;
  }
  return 0;
}

bool has_sublayer(const LlamaConfig& c, int64_t layer, Sublayer sublayer) {
  const auto spec = c.layer_spec(layer);
  return sublayer == Sublayer::kAttention ? spec.attention : spec.mlp;
}

}  // namespace

std::string sublayer_name(Sublayer sublayer) { return sublayer == Sublayer::kAttention ? "attention" : "mlp"; }

std::optional<Sublayer> sublayer_from_name(const std::string& name) {
  if (name == "attention") return Sublayer::kAttention;
  if (name == "mlp") return Sublayer::kMlp;
  return std::nullopt;
}

std::string describe_sites(const std::vector<Site>& sites) {
  std::string text;
  for (const auto& site : sites)
    text += (text.empty() ? "" : ", ") + std::to_string(site.layer) + "." + sublayer_name(site.sublayer);
  return text.empty() ? "none" : text;
}

namespace {
int64_t boundary_before(const Site& site) { return 2 * site.layer + (site.sublayer == Sublayer::kMlp ? 1 : 0); }
}  // namespace

std::vector<Site> SiteRun::sites() const {
  std::vector<Site> sites;
  for (int64_t b = begin; b < end; ++b) sites.push_back({b / 2, b % 2 ? Sublayer::kMlp : Sublayer::kAttention});
  return sites;
}

std::vector<SiteRun> site_runs(std::vector<Site> removed) {
  std::sort(removed.begin(), removed.end());
  std::vector<SiteRun> runs;
  for (const auto& site : removed) {
    const int64_t b = boundary_before(site);
    if (!runs.empty() && runs.back().end == b) ++runs.back().end;
    else if (runs.empty() || runs.back().end < b) runs.push_back({b, b + 1});
  }
  return runs;
}

WholeAndPartial split_whole_layers(std::vector<Site> removed) {
  std::sort(removed.begin(), removed.end());
  removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
  WholeAndPartial split;
  for (size_t i = 0; i < removed.size(); ++i) {
    if (i + 1 < removed.size() && removed[i + 1].layer == removed[i].layer) {
      split.layers.push_back(removed[i].layer);
      ++i;
    } else {
      split.partial.push_back(removed[i]);
    }
  }
  return split;
}

std::vector<LayerTensorSpec> layer_tensor_specs(const LlamaConfig& config) {
  std::vector<LayerTensorSpec> specs;
  for (const auto& row : family_rows(config.family)) {
    if (!present(row.when, config)) continue;
    std::vector<int64_t> shape;
    for (const Dim d : row.shape) shape.push_back(resolve(d, config));
    specs.push_back({row.id, row.suffix, row.owner, row.role, std::move(shape)});
  }
  return specs;
}

std::vector<LayerTensorSpec> layer_tensor_specs(const LlamaConfig& config, int64_t layer) {
  auto specs = layer_tensor_specs(config);
  specs.erase(std::remove_if(specs.begin(), specs.end(),
                             [&](const LayerTensorSpec& s) { return !has_sublayer(config, layer, s.owner); }),
              specs.end());
  return specs;
}

std::vector<GlobalTensorSpec> global_tensor_specs(const LlamaConfig& config) {
  const int64_t C = config.hidden_size, V = config.vocab_size;
  std::vector<GlobalTensorSpec> specs = {{kEmbeddingTensor, TensorRole::kEmbedding, {V, C}},
                                         {"model.norm.weight", TensorRole::kFinalNorm, {C}}};
  if (!config.tie_word_embeddings) specs.push_back({kHeadTensor, TensorRole::kProjection, {V, C}});
  return specs;
}

bool is_ignored_layer_suffix(const std::string& suffix) { return suffix == "self_attn.rotary_emb.inv_freq"; }

std::optional<Sublayer> owner_of_suffix(const std::string& suffix) {
  for (const auto& rows : {llama_rows(), qwen3_rows()})
    for (const auto& row : rows)
      if (suffix == row.suffix) return row.owner;
  return std::nullopt;
}

std::optional<LayerTensor> layer_tensor_from_suffix(const std::string& suffix) {
  for (const auto& rows : {llama_rows(), qwen3_rows()})
    for (const auto& row : rows)
      if (suffix == row.suffix) return row.id;
  return std::nullopt;
}

const char* layer_tensor_suffix(LayerTensor id) {
  for (const auto& rows : {llama_rows(), qwen3_rows()})
    for (const auto& row : rows)
      if (row.id == id) return row.suffix;
  throw Error("internal: no tensor table row for this id");
}

int64_t sublayer_parameter_count(const LlamaConfig& config, Sublayer sublayer) {
  int64_t count = 0;
  for (const auto& spec : layer_tensor_specs(config)) {
    if (spec.owner != sublayer) continue;
    int64_t n = 1;
    for (const int64_t d : spec.shape) n = times(n, d);
    count += n;
  }
  return count;
}

}  // namespace lp

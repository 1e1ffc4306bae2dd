// Every tensor of a checkpoint of a supported family, in one table per
// family: its HF name, its shape as a function of the config, the sublayer
// that owns it and when it is present. The loader, the layer weights, the
// synthetic and test writers, the parameter count, the pruned-checkpoint
// renamer and the sublayer removal all read these tables; adding a family
// means adding its table (src/config/tensor_table.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "linearpatch/config/llama_config.h"

namespace lp {

// The two residual branches of a decoder layer. A layer's RMSNorms belong
// to the branch they feed: input_layernorm to attention,
// post_attention_layernorm to the MLP.
enum class Sublayer { kAttention, kMlp };
std::string sublayer_name(Sublayer sublayer);  // "attention", "mlp"
std::optional<Sublayer> sublayer_from_name(const std::string& name);

// One sublayer of one decoder layer: the unit that sublayer pruning
// removes, repairs and writes out.
struct Site {
  int64_t layer = 0;
  Sublayer sublayer = Sublayer::kAttention;
  bool operator==(const Site& o) const { return layer == o.layer && sublayer == o.sublayer; }
  bool operator<(const Site& o) const { return layer != o.layer ? layer < o.layer : sublayer < o.sublayer; }
};
std::string describe_sites(const std::vector<Site>& sites);  // "3.attention, 5.mlp"

// A maximal run of removed sublayers in model order (layer k's attention,
// its MLP, layer k + 1's attention, ...), what one stream patch repairs.
// Boundaries between sublayers are numbered in that order: 2k is the input
// of layer k, 2k + 1 the stream between its attention and its MLP, 2L the
// final norm's input.
struct SiteRun {
  int64_t begin = 0;  // the boundary before the run's first sublayer
  int64_t end = 0;    // the boundary after its last
  // The layer whose input is the stream after the run: it holds the first
  // sublayer kept after it (the layer count: the final norm's input). A
  // removed sublayer adds nothing, so the stream there is the run's.
  int64_t patched_layer() const { return end / 2; }
  bool whole_layers() const { return begin % 2 == 0 && end % 2 == 0; }
  std::vector<Site> sites() const;
};
// The runs of `removed` (any order; both sites of a removed layer listed), ascending.
std::vector<SiteRun> site_runs(std::vector<Site> removed);

// Removed sites as a pruned model holds them: the layers that lose both
// sublayers go whole (ascending), the other sites stay (sorted).
struct WholeAndPartial {
  std::vector<int64_t> layers;
  std::vector<Site> partial;
};
WholeAndPartial split_whole_layers(std::vector<Site> removed);

// Every decoder-layer tensor any family has; a family's table lists those
// its layers can hold.
enum class LayerTensor {
  kInputNorm,
  kQProj, kQBias, kKProj, kKBias, kVProj, kVBias, kOProj, kOBias,
  kQNorm, kKNorm,
  kGateProj, kGateBias, kUpProj, kUpBias, kDownProj, kDownBias,
  kPostAttentionNorm,
  kCount
};
constexpr size_t kLayerTensorCount = static_cast<size_t>(LayerTensor::kCount);

// What a tensor is, for writers that initialise weights (transformers:
// projections and embeddings random, norms 1, biases 0).
enum class TensorRole { kEmbedding, kProjection, kBias, kSublayerNorm, kHeadNorm, kFinalNorm };

struct LayerTensorSpec {
  LayerTensor id;
  std::string suffix;  // "self_attn.q_proj.weight": the name after "model.layers.<k>."
  Sublayer owner;
  TensorRole role;
  std::vector<int64_t> shape;
};

struct GlobalTensorSpec {
  std::string name;  // "model.embed_tokens.weight"
  TensorRole role;
  std::vector<int64_t> shape;
};

// Thrown by the spec functions when a shape does not fit 64 bits (hostile
// configs); parse_llama_config turns it into an InputError.
struct SizeOverflow : std::overflow_error {
  using std::overflow_error::overflow_error;
};

// The decoder-layer tensors a layer of `config` holds when both its
// sublayers are present, in the order of the family's state_dict.
std::vector<LayerTensorSpec> layer_tensor_specs(const LlamaConfig& config);
// The same for layer `layer`, without the tensors of its absent sublayers.
std::vector<LayerTensorSpec> layer_tensor_specs(const LlamaConfig& config, int64_t layer);
// Embeddings, final norm and (unless tied) the head, in state_dict order.
std::vector<GlobalTensorSpec> global_tensor_specs(const LlamaConfig& config);
// Names a checkpoint may hold that no forward pass reads (rotary buffers
// old transformers saved), per layer suffix; loaders skip them.
bool is_ignored_layer_suffix(const std::string& suffix);
// The head's name and the tensor it is tied to when tie_word_embeddings.
constexpr const char* kHeadTensor = "lm_head.weight";
constexpr const char* kEmbeddingTensor = "model.embed_tokens.weight";
// The sublayer owning a decoder-layer tensor of any family, by suffix;
// nullopt for names no table knows.
std::optional<Sublayer> owner_of_suffix(const std::string& suffix);
// The table's entry for `id` (suffix etc.), present or not in `config`.
const char* layer_tensor_suffix(LayerTensor id);
// The id of a decoder-layer tensor of any family, by suffix.
std::optional<LayerTensor> layer_tensor_from_suffix(const std::string& suffix);

// Elements of each sublayer of one full layer, for parameter budgets.
int64_t sublayer_parameter_count(const LlamaConfig& config, Sublayer sublayer);

}  // namespace lp

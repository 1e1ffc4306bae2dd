// LLaMA-family decoder (LlamaForCausalLM semantics of HF transformers) on
// libtorch: embedding, RMSNorm, RoPE (default / linear / llama3 scaling),
// grouped-query causal attention, SwiGLU MLP, final norm, tied or separate
// lm_head, plus the residual-stream patches of pruned checkpoints.
//
// Weights stay in their storage dtype (bf16 checkpoints are mapped, not
// copied) and are converted to the compute dtype one matrix at a time, so a
// model costs its checkpoint size in memory, not twice that. Shapes:
// B batch, T tokens, C hidden, V vocab.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "linearpatch/config/llama_config.h"
#include "linearpatch/config/tensor_table.h"

namespace lp {
namespace io {
class Checkpoint;
}

// Sees the residual stream during a forward pass; lets calibration collect
// statistics without hooks (the libtorch C++ API has none).
class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  // Announces which batch of windows the following calls belong to. Runners
  // that process one batch through all layers before the next need not
  // call it; layer-major runners (weight streaming) interleave batches.
  virtual void begin_batch(int64_t batch) {}
  // `hidden` [B, T, C] is the input of decoder layer `layer` (0-based, in the
  // numbering of the model being run), after any patch at that position;
  // layer == num_layers() is the input of the final norm.
  virtual void on_layer_input(int64_t layer, const at::Tensor& hidden) = 0;
  // `mlp_output` [B, T, C] is what decoder layer `layer`'s MLP adds to the
  // stream (after any MLP-output patch); its input to the next layer is
  // this plus the stream after attention.
  virtual void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) {}
};

// Linear maps a pruned model applies (x <- x @ M, M [C, C] float32), keyed
// by the ORIGINAL layer numbering of the dense model:
//   stream_input[e]: on the residual stream entering layer e (e == L, the
//                    layer count: the input of the final norm) — where a
//                    LinearPatch repairs the gap that ends at e;
//   mlp_output[l]:   on the MLP output of kept layer l before it joins the
//                    stream — a map that folds exactly into down_proj;
//   attention_output[l]: on the attention output of kept layer l (o_proj's
//                    result) — folds exactly into o_proj.
struct LayerPatches {
  std::map<int64_t, at::Tensor> stream_input;
  std::map<int64_t, at::Tensor> mlp_output;
  std::map<int64_t, at::Tensor> attention_output{};
  bool empty() const { return stream_input.empty() && mlp_output.empty() && attention_output.empty(); }
};

struct ModelOptions {
  // One device ("cpu", "cuda", "cuda:1"), or several of one kind
  // ("cuda:0", "cuda:1", ...) over which the decoder layers are placed in
  // contiguous ranges by free memory (see placement()). Several "cpu"
  // entries place ranges alike on the one CPU: the multi-device code path,
  // testable without GPUs.
  std::vector<std::string> devices = {"cpu"};
  std::string compute_dtype = "auto";  // "auto" (f32 on CPU, bf16 on GPU), "float32", "bfloat16", "float16"
  // Device memory the weights may take on each device (0: no limit). When
  // the decoder layers do not fit, they stay in host memory (mapped from
  // the checkpoint) and are uploaded one layer at a time to the first
  // device: see streams_layers().
  uint64_t max_device_bytes = 0;
};

// Decoder layers [begin, end) (the model's own numbering) and what else
// one device holds.
struct DeviceLayers {
  std::string device;
  int64_t begin = 0, end = 0;
  bool embeddings = false;  // the embedding table
  bool head = false;        // the final norm and the head
};

// Tensors by their HF names (model.layers.3.mlp.up_proj.weight, ...).
using TensorMap = std::map<std::string, at::Tensor>;

class LlamaModel {
 public:
  // Builds from config + weights; validates every expected tensor's presence
  // and shape (InputError naming the tensor, expected and actual shape) and
  // rejects unexpected tensors.
  LlamaModel(LlamaConfig config, TensorMap weights, const ModelOptions& options = {});
  // A model is a cheap handle: copies share the (immutable) weights.
  LlamaModel(const LlamaModel&);
  LlamaModel& operator=(const LlamaModel&);
  LlamaModel(LlamaModel&&) noexcept;
  LlamaModel& operator=(LlamaModel&&) noexcept;
  ~LlamaModel();

  // Opens a checkpoint directory (dense or pruned+patched).
  static LlamaModel load(const std::filesystem::path& dir, const ModelOptions& options = {});
  // The same from an opened checkpoint, for callers that also read it
  // (the pruned-checkpoint writer); its mapping is shared, not reopened.
  static LlamaModel load(std::shared_ptr<const io::Checkpoint> checkpoint, const ModelOptions& options = {});

  const LlamaConfig& config() const;
  int64_t num_layers() const;
  // True when decoder layers live in host memory and are uploaded on use;
  // callers should then run all their windows through one layer before the
  // next (see run_calibration), since each switch of layer is an upload.
  bool streams_layers() const;
  // Seconds forward passes have waited for decoder layers still being
  // uploaded in the background (GPU); 0 when everything was resident.
  double upload_wait_seconds() const;
  int64_t hidden_size() const;
  // Where results come out: the device of the final norm and head, which
  // forward()'s logits and a full run_layers() are on. On one device, that.
  at::Device device() const;
  // Every device holding weights, in layer order (several for a model
  // placed across devices; entries repeat for several "cpu" entries).
  std::vector<at::Device> devices() const;
  // The device of layer `position`'s weights, and of the stream and patch
  // entering it; position == num_layers(): the final norm's.
  at::Device layer_device(int64_t position) const;
  // Per device of devices(): its layers and other weights.
  std::vector<DeviceLayers> placement() const;
  // Bytes of all weights and patches, as stored.
  uint64_t weight_bytes() const;
  // A model with every weight and patch on `device` alone (tensors already
  // there are shared, not copied): a replica for data parallelism.
  LlamaModel replica(const at::Device& device) const;
  at::ScalarType compute_dtype() const;

  // ids [B, T] (int64) -> logits [B, T, V] in float32.
  at::Tensor forward(const at::Tensor& ids, ForwardObserver* observer = nullptr) const;

  // The pieces of forward(), for callers that cache or skip parts of it.
  at::Tensor embed(const at::Tensor& ids) const;  // [B, T, C] compute dtype, on the embeddings' device
  // Runs decoder layers [begin, end), applying the patch (if any) at each
  // layer's input; when end == num_layers() the patch at the final-norm
  // input too. `observer` sees each of those positions exactly once, so
  // split runs ([0, k) then [k, L)) observe what one full run observes,
  // each on layer_device(position). `hidden` may be on any device; the
  // result is on layer_device(end), where the next run or the head wants it.
  at::Tensor run_layers(at::Tensor hidden, int64_t begin, int64_t end,
                        ForwardObserver* observer = nullptr) const;
  // These two and lm_head_at take their input from any device and compute on device().
  at::Tensor final_norm(const at::Tensor& hidden) const;  // [.., C] compute dtype
  at::Tensor lm_head(const at::Tensor& normed) const;     // [.., V] float32
  // [.., V] in the compute dtype, as the product gives them (no float32
  // copy of the whole vocabulary): for a top-K that converts only K values.
  at::Tensor lm_head_compute_dtype(const at::Tensor& normed) const;
  // Logits at the given vocabulary ids only: normed [.., C], ids [.., K] ->
  // [.., K] float32, at K/V of the cost of lm_head (distillation on the
  // teacher's top-K tokens needs no others).
  at::Tensor lm_head_at(const at::Tensor& normed, const at::Tensor& ids) const;

  // Patches of this model (its own numbering): residual stream entering
  // layer k is h @ P; MLP output of layer k is m @ T.
  const std::map<int64_t, at::Tensor>& patches() const;
  const std::map<int64_t, at::Tensor>& mlp_patches() const;

  // A weight by its HF name (this model's layer numbering), as stored.
  at::Tensor weight(const std::string& name) const;
  // A model sharing all weights but `replacements` (HF names, this model's
  // numbering, same shapes). `untie` gives the head its own copy of the
  // current embeddings first, so replacing the embeddings leaves it alone.
  LlamaModel with_replaced_weights(const TensorMap& replacements, bool untie = false) const;

  // The inside of decoder layer `layer` for its input `hidden` [B, T, C]:
  // the stream after attention (h_mid), the MLP activation a =
  // silu(gate(x)) * up(x) [B, T, F] that down_proj maps, and the output;
  // all on device(), so they combine with other results.
  struct LayerTrace {
    at::Tensor after_attention, mlp_activation, output;
  };
  LayerTrace trace_layer(int64_t layer, const at::Tensor& hidden) const;

  // A model sharing these weights with only `kept_layers` (ascending,
  // original numbering) and `patches` / `mlp_patches` / `attention_patches`
  // keyed by the new layer numbering. Tensors that require gradients keep
  // them (training).
  LlamaModel with_layers(const std::vector<int64_t>& kept_layers, std::map<int64_t, at::Tensor> patches,
                         std::map<int64_t, at::Tensor> mlp_patches = {},
                         std::map<int64_t, at::Tensor> attention_patches = {}) const;
  // The same in the numbering of this model: `removed` layers go (any
  // order), `patches` are keyed by this model's layer numbers. Throws Error
  // when a patch sits on a removed layer.
  LlamaModel without_layers(const std::vector<int64_t>& removed, const LayerPatches& patches) const;
  // A model sharing these weights without the sublayers `sites` (this
  // model's numbering, which stays: a layer without attention passes its
  // input to its MLP, one without an MLP passes the stream after attention
  // on; config().layer_specs says which are gone). Throws Error for a site
  // out of range.
  LlamaModel without_sublayers(const std::vector<Site>& sites) const;
  // The pruned model of a plan's sites (this model's numbering, any order):
  // a layer that loses both sublayers goes, as in without_layers, whose
  // patches and numbering rules apply; a layer that loses one keeps the
  // other, as in without_sublayers.
  LlamaModel without_sites(const std::vector<Site>& sites, const LayerPatches& patches) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Opens a checkpoint of a supported family: config.json is read and
// checked before any weight file, so an unsupported architecture is refused
// as such.
std::shared_ptr<const io::Checkpoint> open_checkpoint(const std::filesystem::path& dir);
// `dir`'s config.json, parsed and checked as load() checks it, without
// opening a weight file: jobs are judged on it before the weights are read.
LlamaConfig read_llama_config(const std::filesystem::path& dir);

// The HF tensor name of a decoder layer's parameter, e.g.
// layer_tensor_name(3, "mlp.up_proj.weight") == "model.layers.3.mlp.up_proj.weight".
std::string layer_tensor_name(int64_t layer, const std::string& suffix);
// The inverse: (3, "mlp.up_proj.weight") for the name above, (-1, name) for
// tensors outside the decoder layers.
std::pair<int64_t, std::string> split_layer_tensor_name(const std::string& name);
// Name under which pruned checkpoints store the patch entering layer k.
std::string patch_tensor_name(int64_t layer);

}  // namespace lp

#include "linearpatch/model/llama.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "linearpatch/config/tensor_table.h"
#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/device.h"
#include "linearpatch/model/placement.h"
#include "model/attention.h"
#include "model/layer_weights.h"
#include "model/rope.h"
#include "model/tensor_bridge.h"

namespace lp {

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::pair<int64_t, std::string> split_layer_tensor_name(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return {-1, name};
  const auto dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return {-1, name};
  const auto digits = name.substr(prefix.size(), dot - prefix.size());
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return {-1, name};
  return {std::stoll(digits), name.substr(dot + 1)};
}

std::string patch_tensor_name(int64_t layer) {
  return "model.linear_patches." + std::to_string(layer) + ".weight";
}

namespace {

uint64_t total_bytes(const TensorMap& weights) {
  uint64_t bytes = 0;
  for (const auto& [name, tensor] : weights) bytes += tensor.nbytes();
  return bytes;
}

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream ss;
  ss << "[";
  for (size_t i = 0; i < shape.size(); ++i) ss << (i ? ", " : "") << shape[i];
  ss << "]";
  return ss.str();
}

// Takes tensors out of the map by name, checking shapes, so whatever is left
// at the end is unexpected.
class WeightTaker {
 public:
  explicit WeightTaker(TensorMap& weights) : weights_(weights) {}

  at::Tensor take(const std::string& name, std::vector<int64_t> shape) {
    auto it = weights_.find(name);
    if (it == weights_.end()) throw InputError("missing tensor '" + name + "'");
    at::Tensor tensor = std::move(it->second);
    weights_.erase(it);
    if (tensor.sizes() != at::IntArrayRef(shape))
      throw InputError("tensor '" + name + "' has shape " + shape_string(tensor.sizes()) +
                       ", expected " + shape_string(shape) + " from config.json");
    if (!at::isFloatingType(tensor.scalar_type()))
      throw InputError("tensor '" + name + "' has non-floating dtype " +
                       std::string(c10::toString(tensor.scalar_type())));
    return tensor;
  }

  void drop(const std::string& name) { weights_.erase(name); }
  // Buffers of layer `layer` that no forward pass reads.
  void drop_ignored(int64_t layer) {
    const auto prefix = layer_tensor_name(layer, "");
    for (auto it = weights_.lower_bound(prefix); it != weights_.end() && it->first.compare(0, prefix.size(), prefix) == 0;)
      it = is_ignored_layer_suffix(it->first.substr(prefix.size())) ? weights_.erase(it) : std::next(it);
  }

 private:
  TensorMap& weights_;
};

at::ScalarType resolve_compute_dtype(const std::string& name, const at::Device& device) {
  if (name == "auto") return device.is_cpu() ? at::kFloat : at::kBFloat16;
  if (name == "float32" || name == "fp32" || name == "f32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "f16") return at::kHalf;
  throw UsageError("unknown compute dtype '" + name + "' (use auto, float32, bfloat16 or float16)");
}

uint64_t layer_bytes(const LayerWeights& layer) {
  uint64_t bytes = 0;
  LayerWeights(layer).for_each([&](const at::Tensor& t) { bytes += t.nbytes(); });
  return bytes;
}

std::string gib(uint64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30)); }

std::string describe_placement(const std::vector<DeviceLayers>& placement) {
  std::string text;
  for (const auto& p : placement) {
    if (!text.empty()) text += ", ";
    text += fmt::format("{} layers [{}, {})", p.device, p.begin, p.end);
    if (p.embeddings) text += " + embeddings";
    if (p.head) text += " + head";
  }
  return text;
}

// What a device may hold of weights: free memory less the working
// reserve, and at most `max_bytes` when that is set.
uint64_t weight_capacity(const at::Device& device, uint64_t max_bytes) {
  uint64_t capacity = max_bytes > 0 ? max_bytes : std::numeric_limits<uint64_t>::max();
  if (const auto memory = device_memory(device)) {
    const uint64_t reserve = working_reserve(*memory);
    capacity = std::min(capacity, memory->free > reserve ? memory->free - reserve : 0);
  }
  return capacity;
}

}  // namespace

struct LlamaModel::Impl {
  // A device holding weights. The model's slots are in layer order: the
  // first holds the embeddings, the last the final norm and the head.
  struct Slot {
    at::Device device = at::kCPU;
    at::Tensor inv_freq;                           // [head_dim / 2] float32, on `device`
    std::shared_ptr<BackgroundUploader> arriving;  // set while its layers are uploaded in the background
  };

  LlamaConfig config;
  std::vector<Slot> slots;
  at::ScalarType dtype = at::kFloat;
  at::Tensor embed_tokens, norm, lm_head;  // on the first slot; norm and head on the last
  std::vector<std::shared_ptr<const LayerWeights>> layers;
  std::vector<size_t> layer_slot;             // per layer, its slot
  std::map<int64_t, at::Tensor> patches;      // float32, on its layer's device: stream entering layer k
  std::map<int64_t, at::Tensor> mlp_patches;  // float32, on its layer's device: MLP output of layer k
  std::map<int64_t, at::Tensor> attention_patches;  // float32, on its layer's device: attention output of layer k
  std::shared_ptr<UploadCache> uploads;       // set when decoder layers stay in host memory (one slot)

  size_t slot_of(int64_t position) const {
    const bool head = position >= static_cast<int64_t>(layers.size());
    return head ? slots.size() - 1 : layer_slot[static_cast<size_t>(position)];
  }
  const at::Device& device_of(int64_t position) const { return slots[slot_of(position)].device; }
  const at::Device& head_device() const { return slots.back().device; }
  // `x` where `position` computes: a copy only where two devices' ranges meet.
  at::Tensor to_position(const at::Tensor& x, int64_t position) const {
    if (slots.size() == 1) return x;
    const auto& device = device_of(position);
    return x.device() == device ? x : x.to(device);
  }
  at::Tensor to_head(const at::Tensor& x) const { return to_position(x, static_cast<int64_t>(layers.size())); }

  std::shared_ptr<const LayerWeights> layer(int64_t l) const {
    const auto& w = layers[l];
    const auto& home = slots[layer_slot[static_cast<size_t>(l)]];
    if (w->device() == home.device) return w;
    if (uploads) return uploads->get(w, home.device);
    return home.arriving->get(w);
  }

  at::Tensor cast(const at::Tensor& w) const {
    return w.scalar_type() == dtype ? w : w.to(dtype);
  }
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const {
    return at::linear(x, cast(w), b.defined() ? cast(b) : b);
  }
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  // Layer `l`'s (this model's numbering) stream after attention.
  at::Tensor attention_block(int64_t l, const LayerWeights& w, const at::Tensor& h, const RopeTables& rope) const;
  at::Tensor mlp_activation(const LayerWeights& w, const at::Tensor& h_mid) const;
  // down_proj(mlp_activation): what the MLP adds to the stream; zeros when the layer has none.
  at::Tensor mlp_output(const LayerWeights& w, const at::Tensor& h_mid) const;
  // Decoder layer `l` (this model's numbering) on h; the observer, if
  // any, sees the MLP output.
  at::Tensor layer_forward(int64_t l, const at::Tensor& h, const RopeTables& rope, ForwardObserver* observer) const;
  // The slot holding `name` (HF naming), or null when there is none.
  at::Tensor* slot(const std::string& name);
  // Puts the host weights on their devices (`placement`: per slot, its
  // layers), starting background uploads where the device allows.
  void place(const std::vector<LayerRange>& placement);
};

at::Tensor LlamaModel::Impl::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
#if defined(LP_FUSED_RMS_NORM) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
  // On a GPU, one kernel instead of eight (0.09 ms against 0.86 ms for 8 x 2048
  // x 4096 bf16 on an H200, scripts/gpu_op_probe.py). It scales by the weight
  // before rounding to the compute dtype once, where transformers rounds twice:
  // at most one unit in the last place apart. The CPU keeps transformers' steps.
  if (x.is_cuda()) {
    const int64_t channels = x.size(-1);
    return at::rms_norm(x, at::IntArrayRef(&channels, 1), cast(weight), config.rms_norm_eps);
  }
#endif
  // As HF LlamaRMSNorm: normalise in float32, cast back, then scale.
  auto x32 = x.to(at::kFloat);
  auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  auto normed = (x32 * at::rsqrt(variance + config.rms_norm_eps)).to(dtype);
  return cast(weight) * normed;
}

// h + o_proj(attention(norm(h))): the stream after the attention half.
at::Tensor LlamaModel::Impl::attention_block(int64_t l, const LayerWeights& w, const at::Tensor& h,
                                             const RopeTables& rope) const {
  const int64_t B = h.size(0), T = h.size(1);
  const int64_t n_heads = config.num_attention_heads, n_kv = config.num_key_value_heads;
  const int64_t D = config.head_dim;
  using LT = LayerTensor;
  if (!w.has(Sublayer::kAttention)) return h;  // a removed sublayer: the stream passes through
  auto x = rms_norm(h, w[LT::kInputNorm]);
  at::Tensor q, k, v;
  if (w.qkv_proj.defined()) {  // one product, its columns split (views, no copies)
    const auto qkv = linear(x, w.qkv_proj, w.qkv_bias);
    const int64_t q_dim = w[LT::kQProj].size(0), kv_dim = w[LT::kKProj].size(0);
    q = qkv.narrow(-1, 0, q_dim);
    k = qkv.narrow(-1, q_dim, kv_dim);
    v = qkv.narrow(-1, q_dim + kv_dim, kv_dim);
  } else {
    q = linear(x, w[LT::kQProj], w[LT::kQBias]);
    k = linear(x, w[LT::kKProj], w[LT::kKBias]);
    v = linear(x, w[LT::kVProj], w[LT::kVBias]);
  }
  q = q.view({B, T, n_heads, D});
  k = k.view({B, T, n_kv, D});
  v = v.view({B, T, n_kv, D}).transpose(1, 2);
  if (w[LT::kQNorm].defined()) {  // Qwen3: each head normalised before RoPE
    q = rms_norm(q, w[LT::kQNorm]);
    k = rms_norm(k, w[LT::kKNorm]);
  }
  q = apply_rope(q.transpose(1, 2), rope);
  k = apply_rope(k.transpose(1, 2), rope);
  auto out = linear(causal_attention(q, k, v, w.attention_window), w[LT::kOProj], w[LT::kOBias]);
  if (const auto patch = attention_patches.find(l); patch != attention_patches.end())
    out = at::matmul(out.to(at::kFloat), patch->second).to(dtype);
  return h + out;
}

// silu(gate(x)) * up(x) for x = norm(h_mid): what down_proj maps.
at::Tensor LlamaModel::Impl::mlp_activation(const LayerWeights& w, const at::Tensor& h_mid) const {
  using T = LayerTensor;
  auto y = rms_norm(h_mid, w[T::kPostAttentionNorm]);
  return at::silu(linear(y, w[T::kGateProj], w[T::kGateBias])) * linear(y, w[T::kUpProj], w[T::kUpBias]);
}

at::Tensor LlamaModel::Impl::mlp_output(const LayerWeights& w, const at::Tensor& h_mid) const {
  if (!w.has(Sublayer::kMlp)) return at::zeros_like(h_mid);
  return linear(mlp_activation(w, h_mid), w[LayerTensor::kDownProj], w[LayerTensor::kDownBias]);
}

at::Tensor LlamaModel::Impl::layer_forward(int64_t l, const at::Tensor& h, const RopeTables& rope,
                                           ForwardObserver* observer) const {
  const auto w = layer(l);
  auto h_mid = attention_block(l, *w, h, rope);
  if (!w->has(Sublayer::kMlp) && !observer && !mlp_patches.count(l)) return h_mid;
  auto mlp_out = mlp_output(*w, h_mid);
  if (const auto patch = mlp_patches.find(l); patch != mlp_patches.end())
    mlp_out = at::matmul(mlp_out.to(at::kFloat), patch->second).to(dtype);
  if (observer) observer->on_mlp_output(l, mlp_out);
  return h_mid + mlp_out;
}

at::Tensor* LlamaModel::Impl::slot(const std::string& name) {
  if (name == "model.embed_tokens.weight") return &embed_tokens;
  if (name == "model.norm.weight") return &norm;
  if (name == "lm_head.weight") return &lm_head;
  const auto [layer, suffix] = split_layer_tensor_name(name);
  if (layer < 0 || layer >= static_cast<int64_t>(layers.size())) return nullptr;
  // Edited copies start from the device-resident layer (streamed models:
  // the host copy), so they need no upload of their own.
  auto copy = std::make_shared<LayerWeights>(uploads ? *layers[layer] : *this->layer(layer));
  at::Tensor* field = copy->field(suffix);
  if (!field) return nullptr;
  copy->unstack_group_of(suffix);
  layers[layer] = copy;
  return field;
}

namespace {

struct PlacementDecision {
  std::vector<at::Device> devices;  // the slots, in layer order
  std::vector<LayerRange> layers;   // per slot
  bool stream = false;              // one slot; its layers stay in host memory
};

// One device holds everything unless the weights exceed its budget (then
// its layers stream), as it always did; several share the layers as
// place_layers() decides within their free memory, and when the weights do
// not fit there, layers stream through the first.
PlacementDecision decide_placement(const std::vector<at::Device>& devices, uint64_t weight_bytes,
                                   PlacementRequest request, const ModelOptions& options) {
  const LayerRange all{0, static_cast<int64_t>(request.layer_bytes.size())};
  if (devices.size() == 1)
    return {devices, {all}, options.max_device_bytes > 0 && weight_bytes > options.max_device_bytes};
  for (const auto& device : devices) request.capacities.push_back(weight_capacity(device, options.max_device_bytes));
  const auto placement = place_layers(request);
  if (!placement) {
    spdlog::warn("the weights ({}) do not fit on {} devices: layers stream through {}", gib(weight_bytes),
                 devices.size(), devices.front().str());
    return {{devices.front()}, {all}, true};
  }
  PlacementDecision decision;
  for (size_t d = placement->embed_device; d <= placement->head_device; ++d) {
    decision.devices.push_back(devices[d]);
    decision.layers.push_back(placement->layers[d]);
  }
  return decision;
}

}  // namespace

void LlamaModel::Impl::place(const std::vector<LayerRange>& placement) {
  for (size_t s = 0; s < slots.size(); ++s) {
    std::vector<std::shared_ptr<const LayerWeights>> own;
    for (int64_t l = placement[s].start; l < placement[s].end; ++l) {
      layer_slot[static_cast<size_t>(l)] = s;
      own.push_back(layers[static_cast<size_t>(l)]);
    }
    auto& home = slots[s];
    // Streamed layers stay where they are (mapped from the file); on a
    // CUDA device the others are uploaded by a background thread, so
    // loading overlaps the first forward pass.
    if (uploads) continue;
    if (BackgroundUploader::available(home.device)) {
      home.arriving = std::make_shared<BackgroundUploader>(std::move(own), home.device);
      continue;
    }
    for (int64_t l = placement[s].start; l < placement[s].end; ++l) {
      auto& layer = layers[static_cast<size_t>(l)];
      layer = std::make_shared<const LayerWeights>(layer->to(home.device));
    }
  }
}

LlamaModel::LlamaModel(LlamaConfig config, TensorMap weights, const ModelOptions& options) {
  if (config.attention_windows.empty()) config.attention_windows.assign(static_cast<size_t>(config.num_hidden_layers), 0);
  if (static_cast<int64_t>(config.attention_windows.size()) != config.num_hidden_layers)
    throw Error("internal: " + std::to_string(config.attention_windows.size()) + " attention windows for " +
                std::to_string(config.num_hidden_layers) + " layers");
  auto impl = std::make_shared<Impl>();
  const auto devices = resolve_devices(options.devices);
  impl->dtype = resolve_compute_dtype(options.compute_dtype, devices.front());
  // The float32 matrix products around a half-precision stream (patches,
  // rotations) lose nothing to TF32's 10-bit mantissa that bfloat16's 7 bits
  // have not lost already; float32 runs keep exact float32.
  if (devices.front().is_cuda() && impl->dtype != at::kFloat) at::globalContext().setAllowTF32CuBLAS(true);
  const auto& c = config;
  const int64_t C = c.hidden_size;

  // Everything is taken (and checked) in host memory first; devices are
  // chosen from the sizes, then weights move there.
  const uint64_t weight_bytes = total_bytes(weights);
  WeightTaker taker(weights);
  for (const auto& spec : global_tensor_specs(c)) {
    at::Tensor tensor = taker.take(spec.name, spec.shape);
    if (spec.name == kEmbeddingTensor) impl->embed_tokens = tensor;
    else if (spec.name == kHeadTensor) impl->lm_head = tensor;
    else impl->norm = tensor;
  }
  if (c.tie_word_embeddings) {
    impl->lm_head = impl->embed_tokens;
    taker.drop(kHeadTensor);  // some tied checkpoints store the copy anyway
  }
  std::vector<uint64_t> sizes;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto w = std::make_shared<LayerWeights>();
    for (const auto& spec : layer_tensor_specs(c, l)) (*w)[spec.id] = taker.take(layer_tensor_name(l, spec.suffix), spec.shape);
    w->attention_window = c.attention_windows.at(static_cast<size_t>(l));
    taker.drop_ignored(l);
    sizes.push_back(layer_bytes(*w));
    impl->layers.push_back(std::move(w));
  }
  for (const auto& patch : c.patches) impl->patches[patch.layer] = taker.take(patch.tensor, {C, C});

  if (!weights.empty()) {
    std::string names;
    int shown = 0;
    for (const auto& [name, tensor] : weights) {
      if (shown++ == 5) {
        names += ", ...";
        break;
      }
      names += (names.empty() ? "'" : ", '") + name + "'";
    }
    throw InputError(std::to_string(weights.size()) + " unexpected tensor(s) not described by config.json: " + names);
  }

  const auto decision = decide_placement(
      devices, weight_bytes, {sizes, impl->embed_tokens.nbytes(), impl->norm.nbytes() + impl->lm_head.nbytes(), {}},
      options);
  if (decision.stream) impl->uploads = std::make_shared<UploadCache>();
  const auto inv_freq = rope_inverse_frequencies(c);
  for (const auto& device : decision.devices) impl->slots.push_back({device, inv_freq.to(device), nullptr});
  impl->layer_slot.assign(impl->layers.size(), 0);
  const auto& head = impl->head_device();
  impl->embed_tokens = impl->embed_tokens.to(impl->slots.front().device);
  impl->norm = impl->norm.to(head);
  impl->lm_head = (c.tie_word_embeddings ? impl->embed_tokens : impl->lm_head).to(head);
  impl->place(decision.layers);
  for (auto& [position, patch] : impl->patches) patch = patch.to(impl->device_of(position), at::kFloat);
  impl->config = std::move(config);
  impl_ = std::move(impl);
  if (impl_->slots.size() > 1) spdlog::info("placement: {}", describe_placement(placement()));
}

LlamaModel::~LlamaModel() = default;
LlamaModel::LlamaModel(const LlamaModel&) = default;
LlamaModel& LlamaModel::operator=(const LlamaModel&) = default;
LlamaModel::LlamaModel(LlamaModel&&) noexcept = default;
LlamaModel& LlamaModel::operator=(LlamaModel&&) noexcept = default;

LlamaModel LlamaModel::load(const std::filesystem::path& dir, const ModelOptions& options) {
  return load(open_checkpoint(dir), options);
}

std::shared_ptr<const io::Checkpoint> open_checkpoint(const std::filesystem::path& dir) {
  return std::make_shared<const io::Checkpoint>(
      dir, [](const std::string& text, const std::filesystem::path& path) { parse_llama_config(text, path.string()); });
}

LlamaConfig read_llama_config(const std::filesystem::path& dir) {
  return parse_llama_config(io::read_checkpoint_config(dir), (dir / "config.json").string());
}

LlamaModel LlamaModel::load(std::shared_ptr<const io::Checkpoint> checkpoint, const ModelOptions& options) {
  const auto& dir = checkpoint->dir();
  auto config = parse_llama_config(checkpoint->config_text(), (dir / "config.json").string());
  TensorMap weights;
  for (const auto& name : checkpoint->tensor_names())
    weights.emplace(name, view_tensor(checkpoint->tensor(name), checkpoint));
  try {
    return LlamaModel(std::move(config), std::move(weights), options);
  } catch (const InputError& e) {
    throw InputError(dir.string() + ": " + e.what());
  }
}

const LlamaConfig& LlamaModel::config() const { return impl_->config; }
bool LlamaModel::streams_layers() const { return impl_->uploads != nullptr; }
double LlamaModel::upload_wait_seconds() const {
  double seconds = 0;
  for (const auto& slot : impl_->slots)
    if (slot.arriving) seconds += slot.arriving->wait_seconds();
  return seconds;
}
int64_t LlamaModel::num_layers() const { return static_cast<int64_t>(impl_->layers.size()); }
int64_t LlamaModel::hidden_size() const { return impl_->config.hidden_size; }
at::Device LlamaModel::device() const { return impl_->head_device(); }
at::Device LlamaModel::layer_device(int64_t position) const {
  TORCH_CHECK(position >= 0 && position <= num_layers(), "layer_device: no position ", position);
  return impl_->device_of(position);
}

std::vector<at::Device> LlamaModel::devices() const {
  std::vector<at::Device> devices;
  for (const auto& slot : impl_->slots) devices.push_back(slot.device);
  return devices;
}

std::vector<DeviceLayers> LlamaModel::placement() const {
  std::vector<DeviceLayers> placement;
  int64_t next = 0;
  for (size_t s = 0; s < impl_->slots.size(); ++s) {
    DeviceLayers p{impl_->slots[s].device.str(), next, next, s == 0, s + 1 == impl_->slots.size()};
    while (p.end < num_layers() && impl_->layer_slot[static_cast<size_t>(p.end)] == s) ++p.end;
    next = p.end;
    placement.push_back(std::move(p));
  }
  return placement;
}

uint64_t LlamaModel::weight_bytes() const {
  const auto& m = *impl_;
  uint64_t bytes = m.embed_tokens.nbytes() + m.norm.nbytes();
  if (!m.lm_head.is_same(m.embed_tokens)) bytes += m.lm_head.nbytes();
  for (const auto& layer : m.layers) bytes += layer_bytes(*layer);
  for (const auto* patches : {&m.patches, &m.mlp_patches, &m.attention_patches})
    for (const auto& [position, patch] : *patches) bytes += patch.nbytes();
  return bytes;
}

LlamaModel LlamaModel::replica(const at::Device& device) const {
  auto impl = std::make_shared<Impl>(*impl_);
  impl->slots = {{device, impl_->slots.front().inv_freq.to(device), nullptr}};
  impl->uploads.reset();
  impl->layer_slot.assign(impl->layers.size(), 0);
  for (size_t l = 0; l < impl->layers.size(); ++l) {
    // Streamed layers are copied from host memory, the others from their device.
    const auto source = impl_->uploads ? impl_->layers[l] : impl_->layer(static_cast<int64_t>(l));
    impl->layers[l] = std::make_shared<const LayerWeights>(source->to(device));
  }
  impl->embed_tokens = impl_->embed_tokens.to(device);
  impl->norm = impl_->norm.to(device);
  impl->lm_head = impl_->config.tie_word_embeddings ? impl->embed_tokens : impl_->lm_head.to(device);
  for (auto* patches : {&impl->patches, &impl->mlp_patches, &impl->attention_patches})
    for (auto& [position, patch] : *patches) patch = patch.to(device);
  LlamaModel result = *this;
  result.impl_ = std::move(impl);
  return result;
}
at::ScalarType LlamaModel::compute_dtype() const { return impl_->dtype; }
const std::map<int64_t, at::Tensor>& LlamaModel::patches() const { return impl_->patches; }
const std::map<int64_t, at::Tensor>& LlamaModel::mlp_patches() const { return impl_->mlp_patches; }

at::Tensor LlamaModel::embed(const at::Tensor& ids) const {
  // A tokenizer that does not belong to the model can produce ids past the
  // embedding table; at::embedding would only say "index out of range".
  if (ids.numel() > 0) {
    const int64_t low = ids.min().item<int64_t>(), high = ids.max().item<int64_t>();
    if (low < 0 || high >= impl_->config.vocab_size)
      throw InputError("token id " + std::to_string(low < 0 ? low : high) + " is outside the model's vocabulary of " +
                       std::to_string(impl_->config.vocab_size) + " tokens: the tokenizer does not match the model");
  }
  auto device_ids = ids.to(impl_->slots.front().device, at::kLong);
  return impl_->cast(at::embedding(impl_->embed_tokens, device_ids));
}

at::Tensor LlamaModel::run_layers(at::Tensor hidden, int64_t begin, int64_t end,
                                  ForwardObserver* observer) const {
  const int64_t L = num_layers();
  TORCH_CHECK(0 <= begin && begin <= end && end <= L, "run_layers: bad range [", begin, ", ", end, ")");
  auto visit = [&](int64_t position) {
    hidden = impl_->to_position(hidden, position);
    auto it = impl_->patches.find(position);
    if (it != impl_->patches.end())
      hidden = at::matmul(hidden.to(at::kFloat), it->second).to(impl_->dtype);
    if (observer) observer->on_layer_input(position, hidden);
  };
  // Per device, computed when its first layer runs.
  std::vector<std::optional<RopeTables>> ropes(impl_->slots.size());
  auto rope = [&](int64_t layer) -> const RopeTables& {
    const size_t s = impl_->slot_of(layer);
    if (!ropes[s]) ropes[s] = rope_tables(impl_->slots[s].inv_freq, hidden.size(1), impl_->dtype);
    return *ropes[s];
  };
  for (int64_t l = begin; l < end; ++l) {
    visit(l);
    hidden = impl_->layer_forward(l, hidden, rope(l), observer);
  }
  if (end == L) visit(L);
  else hidden = impl_->to_position(hidden, end);
  return hidden;
}

at::Tensor LlamaModel::final_norm(const at::Tensor& hidden) const {
  return impl_->rms_norm(impl_->to_head(hidden), impl_->norm);
}

at::Tensor LlamaModel::lm_head(const at::Tensor& normed) const { return lm_head_compute_dtype(normed).to(at::kFloat); }

at::Tensor LlamaModel::lm_head_compute_dtype(const at::Tensor& normed) const {
  return at::linear(impl_->to_head(normed), impl_->cast(impl_->lm_head));
}

at::Tensor LlamaModel::lm_head_at(const at::Tensor& normed, const at::Tensor& ids) const {
  const int64_t C = hidden_size(), K = ids.size(-1);
  const auto rows = impl_->to_head(normed).reshape({-1, C});
  const auto wanted = ids.reshape({-1, K}).to(rows.device(), at::kLong);
  const auto weight = impl_->cast(impl_->lm_head);
  // The gathered head rows [rows, K, C] are built in chunks of ~1 GiB.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 30) / (K * C * static_cast<int64_t>(weight.element_size())));
  std::vector<at::Tensor> pieces;
  for (int64_t r0 = 0; r0 < rows.size(0); r0 += chunk) {
    const int64_t n = std::min(chunk, rows.size(0) - r0);
    const auto heads = weight.index_select(0, wanted.narrow(0, r0, n).reshape({-1})).view({n, K, C});
    pieces.push_back(at::bmm(heads, rows.narrow(0, r0, n).unsqueeze(-1)).squeeze(-1));
  }
  auto out_shape = ids.sizes().vec();
  return at::cat(pieces, 0).reshape(out_shape).to(at::kFloat);
}

at::Tensor LlamaModel::forward(const at::Tensor& ids, ForwardObserver* observer) const {
  auto hidden = run_layers(embed(ids), 0, num_layers(), observer);
  return lm_head(final_norm(hidden));
}

at::Tensor LlamaModel::weight(const std::string& name) const {
  if (name == "model.embed_tokens.weight") return impl_->embed_tokens;
  if (name == "model.norm.weight") return impl_->norm;
  if (name == "lm_head.weight") return impl_->lm_head;
  const auto [layer, suffix] = split_layer_tensor_name(name);
  if (layer >= 0 && layer < num_layers()) {
    LayerWeights view = *impl_->layers[layer];  // shallow: tensors are shared handles
    if (const at::Tensor* field = view.field(suffix)) return *field;
  }
  throw Error("internal: no weight named '" + name + "'");
}

LlamaModel LlamaModel::with_replaced_weights(const TensorMap& replacements, bool untie) const {
  auto impl = std::make_shared<Impl>(*impl_);
  if (untie && impl->config.tie_word_embeddings) {
    impl->lm_head = impl->embed_tokens.to(impl->head_device());
    impl->config.tie_word_embeddings = false;
  }
  for (const auto& [name, value] : replacements) {
    at::Tensor* target = impl->slot(name);
    if (!target) throw Error("internal: no weight named '" + name + "' to replace");
    if (target->sizes() != value.sizes())
      throw Error("internal: replacement for '" + name + "' has shape " + shape_string(value.sizes()) + ", expected " +
                  shape_string(target->sizes()));
    const bool tied_head = impl->config.tie_word_embeddings && name == "model.embed_tokens.weight";
    *target = value.to(target->device(), target->scalar_type());
    if (tied_head) impl->lm_head = target->to(impl->head_device());
  }
  LlamaModel result = *this;
  result.impl_ = std::move(impl);
  return result;
}

LlamaModel::LayerTrace LlamaModel::trace_layer(int64_t layer, const at::Tensor& hidden) const {
  TORCH_CHECK(layer >= 0 && layer < num_layers(), "trace_layer: no layer ", layer);
  const auto w = impl_->layer(layer);
  const auto input = impl_->to_position(hidden, layer);
  const auto rope = rope_tables(impl_->slots[impl_->slot_of(layer)].inv_freq, input.size(1), impl_->dtype);
  LayerTrace trace;
  trace.after_attention = impl_->attention_block(layer, *w, input, rope);
  if (w->has(Sublayer::kMlp)) trace.mlp_activation = impl_->mlp_activation(*w, trace.after_attention);
  trace.output = trace.after_attention + impl_->mlp_output(*w, trace.after_attention);
  for (auto* t : {&trace.after_attention, &trace.mlp_activation, &trace.output}) *t = impl_->to_head(*t);
  return trace;
}

LlamaModel LlamaModel::with_layers(const std::vector<int64_t>& kept_layers, std::map<int64_t, at::Tensor> patches,
                                   std::map<int64_t, at::Tensor> mlp_patches,
                                   std::map<int64_t, at::Tensor> attention_patches) const {
  auto impl = std::make_shared<Impl>(*impl_);
  impl->layers.clear();
  impl->layer_slot.clear();
  impl->config.attention_windows.clear();
  impl->config.layer_specs.clear();
  int64_t previous = -1;
  for (int64_t l : kept_layers) {
    if (l <= previous || l >= num_layers())
      throw Error("internal: kept layers must be ascending and in range");
    impl->layers.push_back(impl_->layers[l]);
    impl->layer_slot.push_back(impl_->layer_slot[static_cast<size_t>(l)]);
    impl->config.attention_windows.push_back(impl_->layers[l]->attention_window);
    if (impl_->config.has_partial_layers()) impl->config.layer_specs.push_back(impl_->config.layer_spec(l));
    previous = l;
  }
  const int64_t C = hidden_size();
  for (auto& [position, patch] : patches) {
    TORCH_CHECK(position >= 0 && position <= static_cast<int64_t>(kept_layers.size()),
                "patch position ", position, " out of range");
    TORCH_CHECK(patch.sizes() == at::IntArrayRef({C, C}), "patch must be [hidden, hidden]");
    patch = patch.to(impl->device_of(position), at::kFloat);
  }
  for (auto* by_layer : {&mlp_patches, &attention_patches})
    for (auto& [layer, patch] : *by_layer) {
      TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(kept_layers.size()), "sublayer-output patch of layer ",
                  layer, " out of range");
      TORCH_CHECK(patch.sizes() == at::IntArrayRef({C, C}), "sublayer-output patch must be [hidden, hidden]");
      patch = patch.to(impl->device_of(layer), at::kFloat);
    }
  impl->config.patches.clear();
  for (const auto& [position, patch] : patches)
    impl->config.patches.push_back({position, patch_tensor_name(position)});
  impl->patches = std::move(patches);
  impl->mlp_patches = std::move(mlp_patches);
  impl->attention_patches = std::move(attention_patches);
  impl->config.num_hidden_layers = static_cast<int64_t>(kept_layers.size());
  LlamaModel result = *this;
  result.impl_ = std::move(impl);
  return result;
}

LlamaModel LlamaModel::without_layers(const std::vector<int64_t>& removed, const LayerPatches& patches) const {
  const int64_t L = num_layers();
  std::vector<int64_t> new_index(static_cast<size_t>(L + 1), -1);  // this numbering -> new, -1 when removed
  std::vector<int64_t> kept;
  for (int64_t l = 0; l < L; ++l) {
    if (std::find(removed.begin(), removed.end(), l) != removed.end()) continue;
    new_index[static_cast<size_t>(l)] = static_cast<int64_t>(kept.size());
    kept.push_back(l);
  }
  new_index[static_cast<size_t>(L)] = static_cast<int64_t>(kept.size());
  auto renumber = [&](const std::map<int64_t, at::Tensor>& by_layer, int64_t limit, const char* what) {
    std::map<int64_t, at::Tensor> out;
    for (const auto& [layer, patch] : by_layer) {
      if (layer < 0 || layer > limit || new_index[static_cast<size_t>(layer)] < 0)
        throw Error("internal: " + std::string(what) + " patch at layer " + std::to_string(layer) +
                    ", which is removed or does not exist");
      out[new_index[static_cast<size_t>(layer)]] = patch;
    }
    return out;
  };
  return with_layers(kept, renumber(patches.stream_input, L, "stream"), renumber(patches.mlp_output, L - 1, "MLP"),
                     renumber(patches.attention_output, L - 1, "attention"));
}

LlamaModel LlamaModel::without_sublayers(const std::vector<Site>& sites) const {
  if (sites.empty()) return *this;
  auto impl = std::make_shared<Impl>(*impl_);
  auto& specs = impl->config.layer_specs;
  if (specs.empty()) specs.assign(impl->layers.size(), LayerSpec{});
  for (const auto& site : sites) {
    if (site.layer < 0 || site.layer >= num_layers())
      throw Error("internal: sublayer site " + describe_sites({site}) + " out of range");
    auto copy = std::make_shared<LayerWeights>(*impl->layers[static_cast<size_t>(site.layer)]);
    for (const auto& spec : layer_tensor_specs(impl->config))
      if (spec.owner == site.sublayer) (*copy)[spec.id] = at::Tensor();
    if (site.sublayer == Sublayer::kAttention) copy->qkv_proj = copy->qkv_bias = at::Tensor();
    impl->layers[static_cast<size_t>(site.layer)] = std::move(copy);
    auto& spec = specs[static_cast<size_t>(site.layer)];
    (site.sublayer == Sublayer::kAttention ? spec.attention : spec.mlp) = false;
  }
  LlamaModel result = *this;
  result.impl_ = std::move(impl);
  return result;
}

LlamaModel LlamaModel::without_sites(const std::vector<Site>& sites, const LayerPatches& patches) const {
  const auto split = split_whole_layers(sites);
  return without_sublayers(split.partial).without_layers(split.layers, patches);
}

}  // namespace lp

#include "linearpatch/calib/calibration.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "linearpatch/core/progress.h"
#include "linearpatch/model/device.h"

namespace lp {
namespace {

class ObserverFanOut : public ForwardObserver {
 public:
  explicit ObserverFanOut(const std::vector<ForwardObserver*>& observers) : observers_(observers) {}
  void begin_batch(int64_t batch) override {
    for (auto* observer : observers_) observer->begin_batch(batch);
  }
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    for (auto* observer : observers_) observer->on_layer_input(layer, hidden);
  }
  void on_mlp_output(int64_t layer, const at::Tensor& mlp_output) override {
    for (auto* observer : observers_) observer->on_mlp_output(layer, mlp_output);
  }

 private:
  const std::vector<ForwardObserver*>& observers_;
};

// A run that stops before the last layer still shows its observers the
// stream it stops at (the input of layer end_layer, patched as a full run
// would patch it).
void observe_stop(const LlamaModel& model, int64_t end_layer, const at::Tensor& hidden, ObserverFanOut& fan_out) {
  if (end_layer == model.num_layers()) return;
  const auto patch = model.patches().find(end_layer);
  fan_out.on_layer_input(end_layer, patch == model.patches().end()
                                        ? hidden
                                        : at::matmul(hidden.to(at::kFloat), patch->second).to(hidden.scalar_type()));
}

// Where each batch's run starts: the embeddings, or a kept stream.
struct Start {
  const StreamStash* stash = nullptr;
  int64_t position = 0;
  at::Tensor stream(const LlamaModel& model, const at::Tensor& ids, int64_t batch) const {
    return stash ? stash->at(batch, position) : model.embed(ids);
  }
};

void window_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, int64_t end_layer,
                  const Start& start, ObserverFanOut& fan_out, const std::string& what) {
  const int64_t N = windows.size(0);
  Progress progress(what, N, "windows");
  for (int64_t w0 = 0, batch = 0; w0 < N; w0 += batch_size, ++batch) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    fan_out.begin_batch(batch);
    const auto hidden = model.run_layers(start.stream(model, ids, batch), start.position, end_layer, &fan_out);
    observe_stop(model, end_layer, hidden, fan_out);
    progress.advance(ids.size(0));
  }
  progress.finish();
}

// With streamed weights every layer is uploaded once: all batches pass
// through it before the next layer arrives. Activations of all windows stay
// on the device, which is what the layer-by-layer memory budget pays for.
void layer_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, int64_t end_layer,
                 const Start& start, ObserverFanOut& fan_out, const std::string& what) {
  const int64_t N = windows.size(0), L = end_layer;
  std::vector<at::Tensor> hidden;
  for (int64_t w0 = 0, batch = 0; w0 < N; w0 += batch_size, ++batch)
    hidden.push_back(start.stream(model, windows.narrow(0, w0, std::min(batch_size, N - w0)), batch));
  Progress progress(what + " (layer by layer)", L - start.position, "layers");
  for (int64_t l = start.position; l < L; ++l) {
    for (size_t b = 0; b < hidden.size(); ++b) {
      fan_out.begin_batch(static_cast<int64_t>(b));
      hidden[b] = model.run_layers(hidden[b], l, l + 1, &fan_out);
      if (l + 1 == L) observe_stop(model, end_layer, hidden[b], fan_out);
    }
    progress.advance();
  }
  progress.finish();
}

}  // namespace

void run_calibration(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size,
                     const std::vector<ForwardObserver*>& observers, const std::string& what, int64_t end_layer,
                     const StreamStash* resume, int64_t first_layer_read) {
  c10::InferenceMode guard;
  ObserverFanOut fan_out(observers);
  if (end_layer < 0 || end_layer > model.num_layers()) end_layer = model.num_layers();
  Start start;
  if (resume) {
    start.position = resume->nearest_at_or_below(std::min(first_layer_read, end_layer));
    if (start.position > 0) start.stash = resume;
    else start.position = 0;
  }
  if (model.streams_layers()) layer_major(model, windows, batch_size, end_layer, start, fan_out, what);
  else window_major(model, windows, batch_size, end_layer, start, fan_out, what);
  synchronize_device(model.device());  // so the caller's clock includes queued GPU work
}

}  // namespace lp

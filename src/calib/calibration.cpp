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

void window_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, int64_t end_layer,
                  ObserverFanOut& fan_out, const std::string& what) {
  const int64_t N = windows.size(0);
  Progress progress(what, N, "windows");
  for (int64_t w0 = 0, batch = 0; w0 < N; w0 += batch_size, ++batch) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    fan_out.begin_batch(batch);
    observe_stop(model, end_layer, model.run_layers(model.embed(ids), 0, end_layer, &fan_out), fan_out);
    progress.advance(ids.size(0));
  }
  progress.finish();
}

// With streamed weights every layer is uploaded once: all batches pass
// through it before the next layer arrives. Activations of all windows stay
// on the device, which is what the layer-by-layer memory budget pays for.
void layer_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, int64_t end_layer,
                 ObserverFanOut& fan_out, const std::string& what) {
  const int64_t N = windows.size(0), L = end_layer;
  std::vector<at::Tensor> hidden;
  for (int64_t w0 = 0; w0 < N; w0 += batch_size) hidden.push_back(model.embed(windows.narrow(0, w0, std::min(batch_size, N - w0))));
  Progress progress(what + " (layer by layer)", L, "layers");
  for (int64_t l = 0; l < L; ++l) {
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
                     const std::vector<ForwardObserver*>& observers, const std::string& what, int64_t end_layer) {
  c10::InferenceMode guard;
  ObserverFanOut fan_out(observers);
  if (end_layer < 0 || end_layer > model.num_layers()) end_layer = model.num_layers();
  if (model.streams_layers()) layer_major(model, windows, batch_size, end_layer, fan_out, what);
  else window_major(model, windows, batch_size, end_layer, fan_out, what);
  synchronize_device(model.device());  // so the caller's clock includes queued GPU work
}

}  // namespace lp

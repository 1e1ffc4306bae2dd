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

 private:
  const std::vector<ForwardObserver*>& observers_;
};

void window_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, ObserverFanOut& fan_out,
                  const std::string& what) {
  const int64_t N = windows.size(0);
  Progress progress(what, N, "windows");
  for (int64_t w0 = 0, batch = 0; w0 < N; w0 += batch_size, ++batch) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    fan_out.begin_batch(batch);
    model.run_layers(model.embed(ids), 0, model.num_layers(), &fan_out);
    progress.advance(ids.size(0));
  }
  progress.finish();
}

// With streamed weights every layer is uploaded once: all batches pass
// through it before the next layer arrives. Activations of all windows stay
// on the device, which is what the layer-by-layer memory budget pays for.
void layer_major(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size, ObserverFanOut& fan_out,
                 const std::string& what) {
  const int64_t N = windows.size(0), L = model.num_layers();
  std::vector<at::Tensor> hidden;
  for (int64_t w0 = 0; w0 < N; w0 += batch_size) hidden.push_back(model.embed(windows.narrow(0, w0, std::min(batch_size, N - w0))));
  Progress progress(what + " (layer by layer)", L, "layers");
  for (int64_t l = 0; l < L; ++l) {
    for (size_t b = 0; b < hidden.size(); ++b) {
      fan_out.begin_batch(static_cast<int64_t>(b));
      hidden[b] = model.run_layers(hidden[b], l, l + 1, &fan_out);
    }
    progress.advance();
  }
  progress.finish();
}

}  // namespace

void run_calibration(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size,
                     const std::vector<ForwardObserver*>& observers, const std::string& what) {
  c10::InferenceMode guard;
  ObserverFanOut fan_out(observers);
  if (model.streams_layers()) layer_major(model, windows, batch_size, fan_out, what);
  else window_major(model, windows, batch_size, fan_out, what);
  synchronize_device(model.device());  // so the caller's clock includes queued GPU work
}

}  // namespace lp

#include "linearpatch/calib/calibration.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "linearpatch/core/progress.h"

namespace lp {
namespace {

class ObserverFanOut : public ForwardObserver {
 public:
  explicit ObserverFanOut(const std::vector<ForwardObserver*>& observers) : observers_(observers) {}
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    for (auto* observer : observers_) observer->on_layer_input(layer, hidden);
  }

 private:
  const std::vector<ForwardObserver*>& observers_;
};

}  // namespace

void run_calibration(const LlamaModel& model, const at::Tensor& windows, int64_t batch_size,
                     const std::vector<ForwardObserver*>& observers, const std::string& what) {
  c10::InferenceMode guard;
  ObserverFanOut fan_out(observers);
  const int64_t N = windows.size(0);
  Progress progress(what, N, "windows");
  for (int64_t w0 = 0; w0 < N; w0 += batch_size) {
    const auto ids = windows.narrow(0, w0, std::min(batch_size, N - w0));
    model.run_layers(model.embed(ids), 0, model.num_layers(), &fan_out);
    progress.advance(ids.size(0));
  }
  progress.finish();
}

}  // namespace lp

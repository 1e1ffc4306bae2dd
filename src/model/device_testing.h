// Test seams of lp_core. Private to lp_core and its tests.
#pragma once

namespace lp {

// Lets resolve_devices() accept "meta" entries after "cpu" ones. Meta
// tensors hold no data and most operations refuse to mix them with CPU
// tensors, so a model placed on {"cpu", "meta"} fails wherever a stream,
// patch or table is on the wrong device, as it would across GPUs.
void allow_meta_devices_for_tests();

// Lets LayerWeights::to() stack q/k/v on the CPU too, as it
// does on CUDA devices, so the stacked forward is tested without a GPU.
void stack_projections_on_cpu_for_tests(bool on);

}  // namespace lp

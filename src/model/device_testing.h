// A test seam of resolve_devices(). Private to lp_core and its tests.
#pragma once

namespace lp {

// Lets resolve_devices() accept "meta" entries after "cpu" ones. Meta
// tensors hold no data and most operations refuse to mix them with CPU
// tensors, so a model placed on {"cpu", "meta"} fails wherever a stream,
// patch or table is on the wrong device, as it would across GPUs.
void allow_meta_devices_for_tests();

}  // namespace lp

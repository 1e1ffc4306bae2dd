// Process-wide allocator settings for tensor work; call once at the start of
// main(), before the first large allocation.
#pragma once

namespace lp {

// glibc hands allocations above 32 MB straight to mmap and back to the kernel
// on free, and trims freed heap tops; libtorch allocates and frees
// activation-sized buffers in every layer, so the page faults of re-touching
// them then cost more than the arithmetic (measured: 2.2x slower CPU eval;
// a 64-window perplexity of the demo model took 75 s instead of 11 s, 32 s
// of it system time). Keeps buffers below 1 GB in the heap for reuse.
void keep_tensor_buffers_in_heap();

}  // namespace lp

#include "linearpatch/core/allocator.h"

#include <malloc.h>

namespace lp {

void keep_tensor_buffers_in_heap() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace lp

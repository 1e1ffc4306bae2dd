#include "linearpatch/core/version.h"

namespace lp {

const char* version() { return LP_VERSION; }

}  // namespace lp

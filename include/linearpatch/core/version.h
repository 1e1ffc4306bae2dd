#pragma once

namespace lp {

const char* version();  // "0.1.0"

}  // namespace lp

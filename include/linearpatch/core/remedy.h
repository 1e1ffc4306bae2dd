// Errors whose fix is a choice the caller can make, tagged with that choice
// in the library's terms: the command line names the flag for it (library
// messages never name flags).
#pragma once

#include <string>

#include "linearpatch/core/error.h"

namespace lp {

enum class Remedy { kReplaceOutput, kAllowEdges };

class RemediableUsageError : public UsageError {
 public:
  RemediableUsageError(const std::string& what, Remedy remedy) : UsageError(what), remedy_(remedy) {}
  Remedy remedy() const { return remedy_; }

 private:
  Remedy remedy_;
};

}  // namespace lp

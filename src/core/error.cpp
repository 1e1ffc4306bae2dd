#include "linearpatch/core/error.h"

#include <exception>

namespace lp {

void rethrow_with_context(const std::string& stage) {
  try {
    throw;
  } catch (const Interrupted&) {
    throw;
  } catch (const UsageError& e) {
    throw UsageError(stage + ": " + e.what());
  } catch (const InputError& e) {
    throw InputError(stage + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(stage + ": " + e.what());
  }
}

}  // namespace lp

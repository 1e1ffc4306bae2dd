// Runs code that must throw a given lp error and hands back its message, so
// tests can assert on what the message names.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "linearpatch/core/error.h"

namespace lp::test {

// The message of the `E` that `fn` throws; a test failure and "" when it
// throws nothing or another exception type.
template <typename E = InputError, typename F>
std::string error_message(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "threw nothing";
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace lp::test

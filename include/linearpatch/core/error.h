// Error types of linearpatch. Every failure the user can cause is one of these
// exceptions, thrown with enough context (file, tensor, offset, expected vs
// actual) to act on, and caught once in main(), which maps the type to the
// exit status documented in README.md.
#pragma once

#include <stdexcept>
#include <string>

namespace lp {

// Base of every linearpatch error; main() exits with status 1 for it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Invalid command-line arguments or option combinations (exit status 2).
class UsageError : public Error {
 public:
  using Error::Error;
};

// A user-supplied file is missing, malformed or unsupported (exit status 3).
class InputError : public Error {
 public:
  using Error::Error;
};

// A quality gate the user set was not met, e.g. eval --max-ppl-ratio
// (exit status 4): results were produced, but the job should fail.
class GateFailed : public Error {
 public:
  using Error::Error;
};

// The run was stopped by SIGINT/SIGTERM (exit status 130).
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

// Adds "while <stage>: " in front of a message, keeping the error type.
[[noreturn]] void rethrow_with_context(const std::string& stage);

}  // namespace lp

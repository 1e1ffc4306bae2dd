#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <new>

#include "linearpatch/core/error.h"
#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

// JIT matching recurses on its own stack; a long run of letters or spaces
// needs more than PCRE2's 32 KiB default. Matches that still overflow fall
// back to the interpreter, which keeps its backtracking state on the heap.
constexpr size_t kJitStackStart = 64 * 1024;
constexpr size_t kJitStackMax = 8 * 1024 * 1024;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct RegexScratch::Impl {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);

  Impl() {
    if (!data || !context) throw std::bad_alloc();
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~Impl() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

RegexScratch::RegexScratch() : impl_(std::make_unique<Impl>()) {}
RegexScratch::~RegexScratch() = default;

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::string where;

  ~Impl() { pcre2_code_free(code); }

  // Leftmost match starting at or after `start`; false when there is none.
  bool search(std::string_view text, size_t start, RegexScratch::Impl& s, Span& found) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    int rc = jit ? pcre2_jit_match(code, subject, text.size(), start, 0, s.data, s.context)
                 : pcre2_match(code, subject, text.size(), start, 0, s.data, s.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_JIT, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0)
      throw Error(where + ": regex search failed at byte " + std::to_string(start) + ": " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
    found = {ovector[0], ovector[1]};
    return true;
  }
};

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  impl_->where = where;
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (!impl_->code)
    throw InputError(where + ": invalid regex at offset " + std::to_string(offset) + ": " + pcre2_message(error));
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text, RegexScratch& scratch, std::vector<Span>& out) const {
  size_t start = 0;
  bool have_previous = false;
  size_t previous_end = 0;
  Span found{};
  while (start <= text.size() && impl_->search(text, start, *scratch.impl_, found)) {
    if (found.begin == found.end && have_previous && found.end == previous_end) {
      if (start >= text.size()) break;
      start += utf8_decode(text, start).size;
      continue;
    }
    out.push_back(found);
    start = found.end;
    previous_end = found.end;
    have_previous = true;
  }
}

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::regex(const std::string& pattern, const std::string& where) {
  Pattern p;
  p.regex_ = std::make_shared<const Regex>(pattern, where);
  return p;
}

void Pattern::find_all(std::string_view text, RegexScratch& scratch, std::vector<Span>& out) const {
  if (regex_) {
    regex_->find_all(text, scratch, out);
    return;
  }
  if (literal_.empty()) return;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos;
       pos = text.find(literal_, pos + literal_.size()))
    out.push_back({pos, pos + literal_.size()});
}

}  // namespace lp::detail

// The tokenizer.json pre-tokenizers LLaMA-family files use: Split (a regex or
// string with an HF split behaviour), ByteLevel and Metaspace, alone or in a
// Sequence. Each turns a text segment into the pieces the model encodes one
// at a time. ByteLevel's byte -> character mapping is left to the model (it
// is a pure per-byte relabelling), so ByteLevel must come last.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_reader.h"
#include "tokenizer/regex.h"

namespace lp::detail {

struct Piece {
  std::string_view text;
  bool at_start;  // begins at offset 0 of the input (Metaspace "first")
};

struct PreTokenizeScratch {
  RegexScratch regex;
  std::vector<Span> matches;
  std::vector<Piece> pieces;
  std::vector<Piece> next;
  std::deque<std::string> arena;  // text rewritten by Metaspace or ByteLevel's prefix space
};

class PreTokenizeStep {
 public:
  virtual ~PreTokenizeStep() = default;
  virtual void apply(Piece piece, PreTokenizeScratch& scratch, std::vector<Piece>& out) const = 0;
};

class PreTokenizer {
 public:
  // From the "pre_tokenizer" node; a null node keeps each segment whole.
  static PreTokenizer from_json(const JsonNode& node);

  // Whether the pieces are to be read through the GPT-2 byte alphabet.
  bool byte_level() const { return byte_level_; }

  // Leaves the pieces of `text` in scratch.pieces, viewing `text` or scratch.arena.
  void run(std::string_view text, bool at_start, PreTokenizeScratch& scratch) const;

 private:
  void add(const JsonNode& node);

  std::vector<std::shared_ptr<const PreTokenizeStep>> steps_;
  bool byte_level_ = false;
};

}  // namespace lp::detail

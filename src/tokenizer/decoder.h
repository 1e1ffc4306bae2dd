// The tokenizer.json decoders LLaMA-family files use (ByteLevel, Metaspace,
// and LLaMA-2's Replace + ByteFallback + Fuse + Strip sequence), run as HF's
// decode_chain over the id strings. Unlike HF, bytes that do not form UTF-8
// are returned as they are rather than as U+FFFD, so that decode(encode(x))
// gives back any byte string x.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_reader.h"
#include "tokenizer/regex.h"

namespace lp::detail {

class DecodeStep {
 public:
  virtual ~DecodeStep() = default;
  virtual void apply(std::vector<std::string>& tokens, RegexScratch& scratch) const = 0;
};

class Decoder {
 public:
  // From the "decoder" node; a null node concatenates the token strings.
  static Decoder from_json(const JsonNode& node);

  std::string decode(std::vector<std::string> tokens) const;

 private:
  void add(const JsonNode& node);

  std::vector<std::shared_ptr<const DecodeStep>> steps_;
};

}  // namespace lp::detail

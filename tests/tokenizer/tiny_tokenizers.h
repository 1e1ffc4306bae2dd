// Hand-made tokenizer.json files, small enough to reason about by hand: a
// LLaMA-3-style byte-level BPE (the real LLaMA-3 split regex, 256 byte
// tokens, a few merges, two specials) and a LLaMA-2-style BPE with byte
// fallback. Tests change single fields to cover the variants.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lp::test {

inline const char* kLlama3SplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's byte alphabet, written out independently of the implementation.
inline std::string byte_level_spelling(uint8_t b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  uint32_t cp = b;
  if (!printable) {
    cp = 256;
    for (int other = 0; other < b; ++other) {
      const bool p = (other >= '!' && other <= '~') || (other >= 0xA1 && other <= 0xAC) || other >= 0xAE;
      if (!p) ++cp;
    }
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

inline nlohmann::json added_token(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

inline nlohmann::json bos_template(const std::string& bos, int id) {
  return {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", nlohmann::json::array()},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {id}}, {"tokens", {bos}}}}}}};
}

// Ids: byte b -> b; merges below -> 256 + rank; "Ġzebra" -> 266 (no merge
// path: only ignore_merges finds it); <|bos|> 267, <|eot|> 268.
inline const std::vector<std::pair<std::string, std::string>>& tiny_byte_level_merges() {
  static const std::vector<std::pair<std::string, std::string>> merges = {
      {"Ġ", "t"}, {"h", "e"},  {"t", "h"},   {"Ġt", "he"},  {"Ġ", "Ġ"},
      {"l", "l"}, {"e", "ll"}, {"h", "ell"}, {"hell", "o"}, {"Ġ", "a"}};
  return merges;
}

inline nlohmann::json tiny_byte_level(bool merges_as_pairs = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_spelling(static_cast<uint8_t>(b))] = b;
  nlohmann::json merges = nlohmann::json::array();
  int next = 256;
  for (const auto& [left, right] : tiny_byte_level_merges()) {
    vocab[left + right] = next++;
    merges.push_back(merges_as_pairs ? nlohmann::json::array({left, right}) : nlohmann::json(left + " " + right));
  }
  vocab["Ġzebra"] = next;
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added_token(267, "<|bos|>", true), added_token(268, "<|eot|>", true)}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3SplitRegex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", bos_template("<|bos|>", 267)},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", true},
        {"vocab", vocab},
        {"merges", merges}}}};
}

// Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then the characters
// ▁ a b h i x (259..264) and the merges below (265 + rank).
inline const std::vector<std::pair<std::string, std::string>>& tiny_byte_fallback_merges() {
  static const std::vector<std::pair<std::string, std::string>> merges = {{"b", "▁"},  {"▁", "a"}, {"a", "b"},
                                                                          {"▁a", "b"}, {"h", "i"}, {"▁", "hi"}};
  return merges;
}

inline nlohmann::json tiny_byte_fallback() {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int next = 259;
  for (const char* c : {"▁", "a", "b", "h", "i", "x"}) vocab[c] = next++;
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [left, right] : tiny_byte_fallback_merges()) {
    vocab[left + right] = next++;
    merges.push_back(left + " " + right);
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", {added_token(0, "<unk>", true), added_token(1, "<s>", true), added_token(2, "</s>", true)}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "▁"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", bos_template("<s>", 1)},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", "<unk>"},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

// The same model with a Metaspace pre-tokenizer instead of the normalizer.
inline nlohmann::json tiny_metaspace(const std::string& prepend_scheme, bool split) {
  nlohmann::json t = tiny_byte_fallback();
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", prepend_scheme}, {"split", split}};
  t["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", prepend_scheme}, {"split", split}};
  return t;
}

}  // namespace lp::test

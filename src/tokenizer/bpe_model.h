// The BPE model of tokenizer.json, as HF tokenizers runs it: per pre-token,
// characters (or GPT-2 byte characters) to ids, byte fallback / unknown
// handling, then merges applied lowest rank first, leftmost first on ties.
// Results are cached per pre-token, which is what makes multi-megabyte
// calibration text cheap: most words repeat.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_reader.h"

namespace lp::detail {

struct BpeScratch {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  std::string key;
  std::string spelled;  // the piece in the GPT-2 byte alphabet
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

class BpeModel {
 public:
  // Parses the "model" node of type BPE; `byte_level` when the pre-tokenizer
  // ends with ByteLevel. Throws InputError naming the offending node.
  static std::unique_ptr<BpeModel> from_json(const JsonNode& node, bool byte_level);

  void encode(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  // The vocabulary entry for `id`, nullptr when the vocabulary has none.
  const std::string* id_to_token(int32_t id) const;
  int32_t id_limit() const { return id_limit_; }  // largest id + 1
  size_t vocab_entries() const { return vocab_.size(); }
  bool byte_level() const { return byte_level_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };

  BpeModel() = default;
  void read_vocab(const JsonNode& vocab);
  void read_merges(const JsonNode& merges);
  void choose_word_marker();
  void encode_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& scratch) const;
  void encode_uncached(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const;
  void add_symbols(std::string_view piece, BpeScratch& scratch) const;
  void merge_symbols(BpeScratch& scratch) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<int32_t, const std::string*> tokens_;  // into vocab_'s keys
  int32_t id_limit_ = 0;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single-character tokens
  std::array<int32_t, 256> byte_char_ids_{};        // byte-level: id of each byte's character
  std::array<int32_t, 256> fallback_ids_{};         // <0xNN> tokens
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
  std::string word_marker_;  // see choose_word_marker()

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace lp::detail

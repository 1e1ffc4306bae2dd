#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "linearpatch/core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace lp::detail {
namespace {

// Far above any real vocabulary, and low enough that ids plus added tokens
// stay within int32_t.
constexpr int64_t kMaxTokenId = 1 << 30;

// Bounds on the pre-token cache: calibration text has a few hundred thousand
// distinct words at most, and long pieces rarely repeat.
constexpr size_t kCacheEntries = 1 << 19;
constexpr size_t kCacheMaxPieceBytes = 256;

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

bool candidate_after(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonNode& node, bool byte_level) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->byte_level_ = byte_level;
  if (auto dropout = node.find("dropout")) {
    if (!dropout->value().is_number()) dropout->fail("expected a number");
    if (dropout->value().get<double>() != 0.0) dropout->fail("BPE dropout is not supported (encoding would be random)");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto value = node.find(affix); value && !value->string().empty())
      value->fail("not supported (LLaMA-family BPE files leave it null)");
  }
  model->byte_fallback_ = node.boolean_or("byte_fallback", false);
  model->fuse_unk_ = node.boolean_or("fuse_unk", false);
  model->ignore_merges_ = node.boolean_or("ignore_merges", false);
  model->read_vocab(node.at("vocab"));
  model->read_merges(node.at("merges"));
  if (auto unk = node.find("unk_token")) {
    auto id = model->token_to_id(unk->string());
    if (!id) unk->fail("unknown token \"" + unk->string() + "\" is not in the vocabulary");
    model->unk_id_ = *id;
  }
  model->choose_word_marker();
  return model;
}

// Without a pre-tokenizer (LLaMA-2's tokenizer.json) the whole text is one
// piece: slow, and nothing for the cache to reuse. When no token has "▁"
// right after another character, no merge can ever join the text on both
// sides of such a position, so the piece can be encoded word by word with
// identical results. ignore_merges looks up the whole piece, so it rules
// this out, as does a "▁" that is not itself a token.
void BpeModel::choose_word_marker() {
  const std::string marker = "\xE2\x96\x81";  // U+2581 ▁
  if (byte_level_ || ignore_merges_ || !token_to_id(marker)) return;
  for (const auto& [token, id] : vocab_) {
    for (size_t pos = token.find(marker, 1); pos != std::string::npos; pos = token.find(marker, pos + 1))
      if (pos < marker.size() || token.compare(pos - marker.size(), marker.size(), marker) != 0) return;
  }
  word_marker_ = marker;
}

void BpeModel::read_vocab(const JsonNode& vocab) {
  if (!vocab.value().is_object()) vocab.fail("expected an object of token -> id");
  vocab_.reserve(vocab.value().size());
  for (const auto& [token, id_value] : vocab.value().items()) {
    if (!id_value.is_number_integer() || id_value.get<int64_t>() < 0 || id_value.get<int64_t>() >= kMaxTokenId)
      vocab.fail("token \"" + token + "\": id must be an integer in [0, " + std::to_string(kMaxTokenId) + ")");
    const auto token_id = static_cast<int32_t>(id_value.get<int64_t>());
    const auto entry = vocab_.emplace(token, token_id).first;  // keys are unique: parse_json refuses duplicates
    tokens_[token_id] = &entry->first;
    id_limit_ = std::max(id_limit_, token_id + 1);
    const Utf8Char c = token.empty() ? Utf8Char{0, 0, false} : utf8_decode(token, 0);
    if (c.valid && c.size == token.size()) char_ids_[c.code_point] = token_id;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    fallback_ids_[b] = token_to_id(name).value_or(-1);
    byte_char_ids_[b] = token_to_id(std::string(byte_level_char(static_cast<uint8_t>(b)))).value_or(-1);
  }
}

void BpeModel::read_merges(const JsonNode& merges) {
  const size_t count = merges.size();
  merges_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const JsonNode merge = merges.element(i);
    std::string left;
    std::string right;
    if (merge.value().is_string()) {
      const std::string text = merge.string();
      const size_t space = text.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == text.size() ||
          text.find(' ', space + 1) != std::string::npos)
        merge.fail("expected \"left right\", found \"" + text + "\"");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else {
      if (merge.size() != 2) merge.fail("expected a pair [\"left\", \"right\"]");
      left = merge.element(0).string();
      right = merge.element(1).string();
    }
    const auto left_id = token_to_id(left);
    const auto right_id = token_to_id(right);
    const auto new_id = token_to_id(left + right);
    if (!left_id || !right_id || !new_id)
      merge.fail("merge \"" + left + "\" + \"" + right + "\": \"" +
                 (!left_id    ? left
                  : !right_id ? right
                              : left + right) +
                 "\" is not in the vocabulary");
    // A repeated pair takes its last rank, as HF's HashMap collect does.
    merges_[pair_key(*left_id, *right_id)] = {static_cast<uint32_t>(i), *new_id};
  }
}

std::optional<int32_t> BpeModel::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : it->second;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const {
  if (word_marker_.empty()) {
    encode_word(piece, out, scratch);
    return;
  }
  const size_t m = word_marker_.size();
  size_t word_start = 0;
  for (size_t pos = piece.find(word_marker_, 1); pos != std::string_view::npos;
       pos = piece.find(word_marker_, pos + 1)) {
    if (pos >= m && piece.compare(pos - m, m, word_marker_) == 0) continue;
    encode_word(piece.substr(word_start, pos - word_start), out, scratch);
    word_start = pos;
  }
  encode_word(piece.substr(word_start), out, scratch);
}

void BpeModel::encode_word(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const {
  if (piece.empty()) return;
  scratch.key.assign(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(scratch.key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  encode_uncached(piece, out, scratch);
  if (piece.size() > kCacheMaxPieceBytes) return;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() < kCacheEntries)
    cache_.emplace(scratch.key, std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
}

void BpeModel::encode_uncached(std::string_view piece, std::vector<int32_t>& out, BpeScratch& scratch) const {
  // Symbols are indexed with int32_t.
  if (piece.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw Error("cannot tokenize a piece of " + std::to_string(piece.size()) + " bytes without a pre-tokenizer split");
  if (ignore_merges_) {
    const std::string* word = &scratch.key;
    if (byte_level_) {
      scratch.spelled.clear();
      for (const char c : piece) scratch.spelled.append(byte_level_char(static_cast<uint8_t>(c)));
      word = &scratch.spelled;
    }
    if (auto it = vocab_.find(*word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  add_symbols(piece, scratch);
  merge_symbols(scratch);
  for (const auto& symbol : scratch.symbols)
    if (symbol.alive) out.push_back(symbol.id);
}

// HF's BPE::merge_word, up to the merges: one symbol per character, <0xNN>
// symbols for characters outside the vocabulary when byte_fallback is set,
// else the unknown token (runs fused when fuse_unk is set), else nothing.
void BpeModel::add_symbols(std::string_view piece, BpeScratch& scratch) const {
  auto& symbols = scratch.symbols;
  symbols.clear();
  auto push = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  };
  bool unk_pending = false;
  for (size_t pos = 0; pos < piece.size();) {
    std::string_view spelling;
    int32_t id = -1;
    if (byte_level_) {
      const auto byte = static_cast<uint8_t>(piece[pos]);
      spelling = byte_level_char(byte);
      id = byte_char_ids_[byte];
      pos += 1;
    } else {
      const Utf8Char c = utf8_decode(piece, pos);
      spelling = piece.substr(pos, c.size);
      if (c.valid) {
        auto it = char_ids_.find(c.code_point);
        if (it != char_ids_.end()) id = it->second;
      }
      pos += c.size;
    }
    if (id >= 0) {
      if (unk_pending) push(unk_id_);
      unk_pending = false;
      push(id);
      continue;
    }
    if (byte_fallback_ && std::all_of(spelling.begin(), spelling.end(),
                                      [this](char b) { return fallback_ids_[static_cast<uint8_t>(b)] >= 0; })) {
      for (const char b : spelling) push(fallback_ids_[static_cast<uint8_t>(b)]);
      continue;
    }
    if (unk_id_ < 0) continue;
    if (unk_pending && !fuse_unk_) push(unk_id_);
    unk_pending = true;
  }
  if (unk_pending) push(unk_id_);
  if (!symbols.empty()) symbols.back().next = -1;
}

void BpeModel::merge_symbols(BpeScratch& scratch) const {
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  heap.clear();
  auto consider = [&](int32_t pos) {
    const int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    if (const Merge* m = find_merge(symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id)) {
      heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(heap.begin(), heap.end(), candidate_after);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), candidate_after);
    const BpeScratch::Candidate top = heap.back();
    heap.pop_back();
    auto& left = symbols[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    auto& right = symbols[static_cast<size_t>(left.next)];
    const Merge* current = find_merge(left.id, right.id);
    if (!current || current->new_id != top.new_id) continue;  // stale: a neighbour merged since
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
}

}  // namespace lp::detail

// Text -> token ids for LLaMA-family checkpoints.
//
// Supported:
//  * tokenizer.json, byte-level BPE (LLaMA-3 style): Split(Regex) pre-tokenizer
//    run with PCRE2 (UTF + UCP, the HF regex semantics), ByteLevel, BPE with
//    ignore_merges, added/special tokens matched in the text.
//  * tokenizer.json, Metaspace / Prepend+Replace normalizer + BPE with
//    byte_fallback (LLaMA-2 style).
//  * tokenizer.json, NFC normalizer + byte-level BPE (Qwen2/Qwen3 style; NFC
//    with HF's Unicode 9.0 tables).
//  * tokenizer.model (sentencepiece), loaded through an isolated shim (see
//    src/tokenizer/spm_shim.h for why).
// Anything else in tokenizer.json is refused with an error naming the node.
// Ids match HF tokenizers (and sentencepiece for tokenizer.model) exactly;
// tests/tokenizer holds the evidence. Text need not be valid UTF-8: bytes
// that form no character are tokenized on their own (as <0xNN> or byte-level
// tokens) rather than dropped or replaced.
//
// A Tokenizer is immutable after loading; encode() and decode() may be
// called from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lp {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // `add_special` applies the post-processor exactly as HF does (BOS for
  // LLaMA-2 and most LLaMA-3 files, nothing for a file whose post-processor
  // is only ByteLevel); special-token text inside `text` is matched either
  // way, as HF tokenizers does. tokenizer.model adds BOS (and EOS) per
  // tokenizer_config.json's add_bos_token/add_eos_token, default BOS only.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  // Special tokens are kept (HF's skip_special_tokens=false); ids without a
  // token are skipped, as HF does. Bytes that do not form UTF-8 are returned
  // as they are, so decode(encode(x, false)) == x for byte-level tokenizers.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;  // largest id + 1
  // The ids encode(text, true) puts in front of every text, which is what a
  // token stream made from text must start with: tokenizer.json, the
  // post-processor's (BOS for LLaMA-2 and most LLaMA-3 files; nothing for
  // Qwen2/Qwen3, or a file whose post-processor is only ByteLevel);
  // tokenizer.model, BOS unless tokenizer_config.json sets add_bos_token
  // false. Never config.json's bos_token_id, which Qwen checkpoints name
  // although their tokenizer adds no BOS.
  virtual std::vector<int32_t> prefix_ids() const = 0;
  // prefix_ids() for reports: "BOS <|begin_of_text|> (id 128000)", each id
  // so, comma-separated; "none" when empty.
  virtual std::string prefix_description() const = 0;
  // The id of the BOS / EOS token, whether or not encode() adds it (see
  // prefix_ids() for that): from the post-processor, else
  // tokenizer_config.json's bos_token / eos_token, else config.json's
  // bos_token_id / eos_token_id (tokenizer.model: the model's, unless
  // tokenizer_config.json names others).
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::string description() const = 0;  // e.g. "tokenizer.json (byte-level BPE, 128256 tokens)"
};

// Loads from a model (or tokenizer-only) directory: tokenizer.json when
// present, else tokenizer.model; tokenizer_config.json supplies BOS/EOS when
// the post-processor does not. Throws InputError when nothing usable exists.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

// From in-memory JSON (tests, fuzzing). `config_json` may be empty.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view tokenizer_json, std::string_view config_json,
                                               const std::string& source);

// Why tokenizer.model files cannot be loaded in this process (built without
// LP_WITH_SPM, shim not found, sanitizer runtime present); nullopt when they can.
std::optional<std::string> sentencepiece_unavailable_reason();

}  // namespace lp

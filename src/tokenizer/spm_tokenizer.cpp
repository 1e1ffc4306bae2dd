#include "tokenizer/spm_tokenizer.h"

#include <utility>

#include "linearpatch/core/error.h"
#include "tokenizer/spm_library.h"

namespace lp::detail {
namespace {

constexpr size_t kErrorSize = 512;

using ModelHandle = std::unique_ptr<LpSpm, LpSpmFreeFn>;

class SpmTokenizer final : public Tokenizer {
 public:
  SpmTokenizer(const SpmApi& api, ModelHandle model, const SpecialConfig& config, std::string source);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::vector<int32_t> prefix_ids() const override;
  std::string prefix_description() const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::string description() const override {
    return "tokenizer.model (sentencepiece, " + std::to_string(vocab_size_) + " tokens)";
  }

 private:
  std::optional<int32_t> piece_to_id(const std::string& piece) const;
  std::string id_to_piece(int32_t id) const;

  const SpmApi& api_;
  ModelHandle model_;
  std::string source_;
  int32_t vocab_size_;
  std::optional<int32_t> bos_;
  std::optional<int32_t> eos_;
  bool add_bos_;
  bool add_eos_;
};

std::optional<int32_t> valid_id(int32_t id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; }

// BOS/EOS come from the model unless tokenizer_config.json names other
// tokens; HF's LlamaTokenizer adds BOS and not EOS unless told otherwise.
SpmTokenizer::SpmTokenizer(const SpmApi& api, ModelHandle model, const SpecialConfig& config, std::string source)
    : api_(api),
      model_(std::move(model)),
      source_(std::move(source)),
      vocab_size_(api.vocab_size(model_.get())),
      add_bos_(config.add_bos_token.value_or(true)),
      add_eos_(config.add_eos_token.value_or(false)) {
  const auto lookup = [this](const std::string& piece) { return piece_to_id(piece); };
  bos_ = resolve_named_token(config.bos_token, "BOS", lookup);
  if (!bos_) bos_ = valid_id(api.bos_id(model_.get()));
  eos_ = resolve_named_token(config.eos_token, "EOS", lookup);
  if (!eos_) eos_ = valid_id(api.eos_id(model_.get()));
}

std::optional<int32_t> SpmTokenizer::piece_to_id(const std::string& piece) const {
  return valid_id(api_.piece_to_id(model_.get(), piece.data(), piece.size()));
}

std::string SpmTokenizer::id_to_piece(int32_t id) const {
  std::string piece(64, '\0');
  for (;;) {
    const int64_t n = api_.id_to_piece(model_.get(), id, piece.data(), piece.size());
    const bool fits = static_cast<size_t>(n) <= piece.size();
    piece.resize(static_cast<size_t>(n));
    if (fits) return piece;
  }
}

std::vector<int32_t> SpmTokenizer::prefix_ids() const {
  if (add_bos_ && bos_) return {*bos_};
  return {};
}

std::string SpmTokenizer::prefix_description() const {
  return describe_prefix(prefix_ids(), bos_, [this](int32_t id) { return id_to_piece(id); });
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids(text.size() + 16);
  char error[kErrorSize] = "";
  for (;;) {
    const int64_t n = api_.encode(model_.get(), text.data(), text.size(), ids.data(), ids.size(), error, kErrorSize);
    if (n < 0) throw Error(source_ + ": sentencepiece could not encode the text: " + error);
    const bool fits = static_cast<size_t>(n) <= ids.size();
    ids.resize(static_cast<size_t>(n));
    if (fits) break;
  }
  if (add_special && add_bos_ && bos_) ids.insert(ids.begin(), *bos_);
  if (add_special && add_eos_ && eos_) ids.push_back(*eos_);
  return ids;
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  for (const int32_t id : ids)
    if (id < 0 || id >= vocab_size_)
      throw Error(source_ + ": cannot decode token id " + std::to_string(id) + " (vocabulary has " +
                  std::to_string(vocab_size_) + " tokens)");
  std::string text(ids.size() * 8 + 16, '\0');
  char error[kErrorSize] = "";
  for (;;) {
    const int64_t n = api_.decode(model_.get(), ids.data(), ids.size(), text.data(), text.size(), error, kErrorSize);
    if (n < 0) throw Error(source_ + ": sentencepiece could not decode: " + error);
    const bool fits = static_cast<size_t>(n) <= text.size();
    text.resize(static_cast<size_t>(n));
    if (fits) return text;
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const std::string& model, const SpecialConfig& config,
                                              const std::string& source) {
  const SpmApi* api = spm_api();
  if (!api)
    throw InputError("cannot load " + source +
                     ": sentencepiece support is unavailable: " + spm_unavailable_reason().value_or("unknown reason"));
  char error[kErrorSize] = "";
  ModelHandle handle(api->load(model.data(), model.size(), error, kErrorSize), api->free);
  if (!handle) throw InputError(source + ": not a sentencepiece model, or a damaged one: " + error);
  return std::make_unique<SpmTokenizer>(*api, std::move(handle), config, source);
}

}  // namespace lp::detail

// The sentencepiece module (see spm_shim.h for why it is separate). Built as
// lp_spm_shim, never linked into anything.
#include "tokenizer/spm_shim.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#define LP_SPM_EXPORT extern "C" __attribute__((visibility("default")))

struct LpSpm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void set_error(char* error, size_t error_size, const std::string& message) {
  if (error_size == 0) return;
  const size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

int64_t copy_out(const void* data, size_t count, size_t element_size, void* out, size_t capacity) {
  if (count <= capacity && count > 0) std::memcpy(out, data, count * element_size);
  return static_cast<int64_t>(count);
}

}  // namespace

LP_SPM_EXPORT LpSpm* lp_spm_load(const char* data, size_t size, char* error, size_t error_size) {
  try {
    auto model = std::make_unique<LpSpm>();
    const auto status = model->processor.LoadFromSerializedProto(std::string_view(data, size));
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    return model.release();
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown exception in sentencepiece");
  }
  return nullptr;
}

LP_SPM_EXPORT void lp_spm_free(LpSpm* model) { delete model; }

LP_SPM_EXPORT int64_t lp_spm_encode(const LpSpm* model, const char* text, size_t size, int32_t* ids, size_t capacity,
                                    char* error, size_t error_size) {
  try {
    std::vector<int> result;
    const auto status = model->processor.Encode(std::string_view(text, size), &result);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return -1;
    }
    static_assert(sizeof(int) == sizeof(int32_t));
    return copy_out(result.data(), result.size(), sizeof(int32_t), ids, capacity);
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  }
  return -1;
}

LP_SPM_EXPORT int64_t lp_spm_decode(const LpSpm* model, const int32_t* ids, size_t count, char* text, size_t capacity,
                                    char* error, size_t error_size) {
  try {
    const std::vector<int> input(ids, ids + count);
    std::string result;
    const auto status = model->processor.Decode(input, &result);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return -1;
    }
    return copy_out(result.data(), result.size(), 1, text, capacity);
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  }
  return -1;
}

LP_SPM_EXPORT int32_t lp_spm_vocab_size(const LpSpm* model) { return model->processor.GetPieceSize(); }
LP_SPM_EXPORT int32_t lp_spm_bos_id(const LpSpm* model) { return model->processor.bos_id(); }
LP_SPM_EXPORT int32_t lp_spm_eos_id(const LpSpm* model) { return model->processor.eos_id(); }

LP_SPM_EXPORT int32_t lp_spm_piece_to_id(const LpSpm* model, const char* piece, size_t size) {
  try {
    const std::string_view text(piece, size);
    const int id = model->processor.PieceToId(text);
    // Unknown pieces map to the unknown id; tell them apart from "<unk>" itself.
    if (model->processor.IsUnknown(id) && model->processor.IdToPiece(id) != text) return -1;
    return id;
  } catch (const std::exception&) {
    return -1;
  }
}

LP_SPM_EXPORT int64_t lp_spm_id_to_piece(const LpSpm* model, int32_t id, char* piece, size_t capacity) {
  try {
    const std::string& text = model->processor.IdToPiece(id);
    return copy_out(text.data(), text.size(), 1, piece, capacity);
  } catch (const std::exception&) {
    return 0;
  }
}

static_assert(std::is_same_v<decltype(&lp_spm_load), LpSpmLoadFn>);
static_assert(std::is_same_v<decltype(&lp_spm_free), LpSpmFreeFn>);
static_assert(std::is_same_v<decltype(&lp_spm_encode), LpSpmEncodeFn>);
static_assert(std::is_same_v<decltype(&lp_spm_decode), LpSpmDecodeFn>);
static_assert(std::is_same_v<decltype(&lp_spm_vocab_size), LpSpmIntFn>);
static_assert(std::is_same_v<decltype(&lp_spm_piece_to_id), LpSpmPieceToIdFn>);
static_assert(std::is_same_v<decltype(&lp_spm_id_to_piece), LpSpmIdToPieceFn>);

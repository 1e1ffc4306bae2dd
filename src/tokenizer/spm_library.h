// Finds and opens lp_spm_shim (see spm_shim.h) once per process: the path in
// $LINEARPATCH_SPM_SHIM when set, else the first that exists of the running
// executable's directory, ../<install libdir>/linearpatch next to it, the
// build tree the binary was built in, the install prefix.
#pragma once

#include <optional>
#include <string>

#include "tokenizer/spm_shim.h"

namespace lp::detail {

struct SpmApi {
  LpSpmLoadFn load;
  LpSpmFreeFn free;
  LpSpmEncodeFn encode;
  LpSpmDecodeFn decode;
  LpSpmIntFn vocab_size;
  LpSpmIntFn bos_id;
  LpSpmIntFn eos_id;
  LpSpmPieceToIdFn piece_to_id;
  LpSpmIdToPieceFn id_to_piece;
};

// The shim's functions, or nullptr when it cannot be used here; then
// spm_unavailable_reason() says why.
const SpmApi* spm_api();
std::optional<std::string> spm_unavailable_reason();

}  // namespace lp::detail

// C interface of lp_spm_shim, the module that holds all sentencepiece use.
//
// Why a module: Debian's libsentencepiece bundles protobuf-lite 3.14 symbols
// while libtorch loads protobuf 3.21; a binary linking both crashes before
// main(). Opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), the module binds to
// its own copy and the two never meet. Only plain C types cross the boundary
// and no exception leaves the module.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

struct LpSpm;

// Parses a serialized ModelProto; nullptr with a message in `error` on failure.
using LpSpmLoadFn = LpSpm* (*)(const char* data, size_t size, char* error, size_t error_size);
using LpSpmFreeFn = void (*)(LpSpm* model);

// Writes up to `capacity` ids and returns how many the text needs, or -1
// with a message in `error`. A result above `capacity` means: call again
// with a larger buffer.
using LpSpmEncodeFn = int64_t (*)(const LpSpm* model, const char* text, size_t size, int32_t* ids, size_t capacity,
                                  char* error, size_t error_size);

// Same protocol for the bytes of the decoded text. Ids must be in range.
using LpSpmDecodeFn = int64_t (*)(const LpSpm* model, const int32_t* ids, size_t count, char* text, size_t capacity,
                                  char* error, size_t error_size);

// Vocabulary size, and special ids (-1 when the model has none).
using LpSpmIntFn = int32_t (*)(const LpSpm* model);

// Id of a piece, -1 when it is not in the vocabulary.
using LpSpmPieceToIdFn = int32_t (*)(const LpSpm* model, const char* piece, size_t size);

// The piece of an id in range, with encode's buffer protocol.
using LpSpmIdToPieceFn = int64_t (*)(const LpSpm* model, int32_t id, char* piece, size_t capacity);

}  // extern "C"

// Writes a pruned (and optionally patched) checkpoint. Format, documented
// for users in docs/checkpoint-format.md:
//  * decoder layers renumbered 0..L'-1, tensors of removed layers dropped,
//    all other tensors byte-identical to the source (copied kernel-side);
//  * each patch as `model.linear_patches.<k>.weight`, float32 [C, C],
//    applied as h <- h @ P to the residual stream entering new layer k;
//  * config.json: num_hidden_layers and per-layer arrays updated, and a
//    "linearpatch" entry (format_version, patches, removed layers,
//    provenance);
//  * the source's other files (tokenizer, generation config, chat
//    template, ...) copied;
//  * weights sharded like the source (or by max_shard_bytes); or, when the
//    layers were copied early (EarlyLayerCopies), one file for embeddings,
//    norm, head and patches followed by one file per kept layer;
//  * with patches: modeling_linearpatch.py and an auto_map naming the
//    family's patched class (LinearPatchQwen2ForCausalLM, ...) for
//    transformers' trust_remote_code; without: the family's plain class.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "linearpatch/io/safetensors.h"
#include "linearpatch/prune/early_layer_copies.h"
#include "linearpatch/prune/prune_plan.h"

namespace lp {
namespace io {
class Checkpoint;
}

struct WrittenCheckpoint {
  std::vector<std::string> files;  // weight files written
  int64_t parameters = 0;          // elements of all tensors written
  uint64_t bytes = 0;
  // Copying the weights, then waiting for their flushes to the disk (io::WriteTimes).
  double copy_seconds = 0, sync_seconds = 0;
  uint64_t bytes_copied_early = 0;  // by EarlyLayerCopies before this write began
};

// What changes besides removing the plan's layers.
struct CheckpointEdits {
  // New layer position -> [C, C] float32 patch. When non-empty, the
  // checkpoint also gets the transformers modeling file and an auto_map, so
  // `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`
  // loads it exactly.
  std::map<int64_t, at::Tensor> patches;
  // Tensors (original names) whose values changed, e.g. by folding a patch
  // into the weights; written in the source's dtype.
  std::map<std::string, at::Tensor> replaced;
  // Write lm_head.weight as a copy of the source embeddings and set
  // tie_word_embeddings false (needed when the embeddings were replaced).
  bool untie_embeddings = false;
  // A JSON object merged into the config's "linearpatch" entry.
  std::string provenance_json;
  // Sublayers removed: write a Nemotron-NAS (DeciLM) checkpoint, which
  // vLLM and llama.cpp read natively, instead of the exact form (our
  // modeling file). Only without stream patches.
  bool nemotron_nas = false;
};

// `max_shard_bytes` 0 shards like the source. `dir` must exist and hold
// nothing but `early_copies`' files (the temporary directory of an
// AtomicOutputDir). With `early_copies` (started on this source and dir),
// the layers are written one file each and max_shard_bytes is not used.
WrittenCheckpoint write_pruned_checkpoint(const io::Checkpoint& source, const PrunePlan& plan,
                                          const CheckpointEdits& edits, uint64_t max_shard_bytes,
                                          const std::filesystem::path& dir, const io::WriteOptions& options = {},
                                          EarlyLayerCopies* early_copies = nullptr);

// The new name of `name` under `plan`, or "" when it belongs to a removed layer.
std::string renamed_tensor(const std::string& name, const PrunePlan& plan);

}  // namespace lp

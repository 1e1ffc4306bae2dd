// The jobs behind `linearpatch score` and `linearpatch prune`, end to end:
// calibrate, score blocks, compute the LinearPatch, (distill,) write the
// checkpoint atomically, and describe everything in a JSON report.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "linearpatch/distill/distill.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/patch/rotation.h"
#include "linearpatch/prune/block_selection.h"

namespace lp {

struct CalibrationOptions {
  std::vector<std::filesystem::path> files;
  int64_t samples = 128;
  int64_t seq_len = 2048;
  uint64_t seed = 0;
  int64_t batch_size = 1;
};

struct SelectionOptions {
  int64_t layers = 0;  // n; 0 in `score` means every n
  Metric metric = Metric::kCosine;
  bool allow_edges = false;
  std::optional<int64_t> start;  // force the block [start, start + n)
  int64_t kl_samples = 8;        // windows for patched-kl
};

struct PatchOptions {
  bool enabled = true;  // false: plain removal (--patch none)
  RotationKind rotation = RotationKind::kAuto;
};

struct DistillJob {
  std::vector<std::filesystem::path> files;  // empty: the calibration files
  int64_t samples = 5000;                    // training windows of the calibration length
  int64_t val_samples = 16;                  // held-out windows from the last 10 % of the text
  DistillOptions options;
};

// What the written checkpoint holds: the exact patch (an extra tensor, with
// a transformers modeling file), or plain LlamaForCausalLM weights with the
// patch folded in approximately (see patch/fold.h).
struct EmitOptions {
  bool vanilla = false;
  std::string fold = "auto";  // auto (lowest calibration KL), scalar, least-squares
  int64_t fold_samples = 32;  // calibration windows the least-squares fit uses
};

struct ScoreJob {
  std::filesystem::path model_dir;
  ModelOptions model;
  CalibrationOptions calibration;
  SelectionOptions selection;
  PatchOptions patch;
  bool patched_kl = true;  // also rank by patched-kl when n is given
};

struct PruneJob {
  std::filesystem::path model_dir;
  ModelOptions model;
  CalibrationOptions calibration;
  SelectionOptions selection;
  PatchOptions patch;
  std::optional<DistillJob> distill;
  EmitOptions emit;
  std::filesystem::path output_dir;
  bool overwrite = false;
  uint64_t max_shard_bytes = 0;  // 0: like the source
  bool sync = true;              // fsync the output before renaming it into place
};

using Report = nlohmann::ordered_json;

Report run_score(const ScoreJob& job);
// Writes the checkpoint to job.output_dir (atomically) and returns the report.
Report run_prune(const PruneJob& job);

// Human summary of a prune report (what the CLI prints on stderr).
std::string summarize_prune_report(const Report& report);

}  // namespace lp

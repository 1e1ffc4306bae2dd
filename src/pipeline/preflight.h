// What score and prune judge before any weight file is opened: config.json
// (layer counts and ranges against the options), the device list, the
// tokenizer, the task files, and for prune the output path and the free
// space of its filesystem. A job that cannot succeed ends here, in about a
// second whatever the model's size, and writes nothing. Private to the
// pipeline module.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "linearpatch/config/llama_config.h"
#include "linearpatch/eval/tasks.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {

struct Preflight {
  LlamaConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<Task> tasks;  // prune's eval tasks, every row checked
};

Preflight preflight(const ScoreJob& job);
Preflight preflight(const PruneJob& job);

// The most disk space the output takes while it is written (its temporary
// copy; with overwrite the old output stays until the rename). From file
// sizes alone: decoder-layer bytes are the weights' share of the config's
// decoder parameters. A sharded source without a shard size copies every
// layer before the plan is known, so all of them count; otherwise the kept
// ones. Plus one float32 matrix per removed layer (an upper bound on the
// patches), the side files, and 1 % + 1 MiB for headers and metadata.
uint64_t estimated_output_bytes(const PruneJob& job, const LlamaConfig& config, const io::CheckpointFileSizes& files);

}  // namespace lp

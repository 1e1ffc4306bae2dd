// The jobs behind `linearpatch score` and `linearpatch prune`, end to end:
//   calibrate -> select -> repair -> [distill] -> emit -> write -> [evaluate]
// Options are validated against the model before any work; the checkpoint
// is written atomically; the result is typed (see results.h for its JSON
// and human forms).
#pragma once

#include "linearpatch/pipeline/jobs.h"
#include "linearpatch/pipeline/results.h"

namespace lp {

ScoreResult run_score(const ScoreJob& job);
// Writes the checkpoint to job.output_dir (atomically) and describes it.
PruneResult run_prune(const PruneJob& job);

}  // namespace lp

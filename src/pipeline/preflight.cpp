#include "pipeline/preflight.h"

#include "linearpatch/core/output_dir.h"
#include "linearpatch/model/device.h"
#include "linearpatch/model/llama.h"

namespace lp {
namespace {

Preflight common(const std::filesystem::path& model_dir, const ModelOptions& model) {
  Preflight checked;
  checked.config = read_llama_config(model_dir);
  resolve_devices(model.devices);
  return checked;
}

}  // namespace

Preflight preflight(const ScoreJob& job) {
  auto checked = common(job.model_dir, job.model);
  validate(job, checked.config);
  checked.tokenizer = load_tokenizer(job.model_dir);
  return checked;
}

Preflight preflight(const PruneJob& job) {
  auto checked = common(job.model_dir, job.model);
  validate(job, checked.config);
  check_output_path(job.output_dir, job.overwrite, {job.model_dir});
  checked.tokenizer = load_tokenizer(job.model_dir);
  for (const auto& spec : job.eval_tasks) checked.tasks.push_back(load_task(spec));
  const auto files = io::checkpoint_file_sizes(job.model_dir);
  require_free_space(job.output_dir, estimated_output_bytes(job, checked.config, files), "the pruned checkpoint");
  return checked;
}

uint64_t estimated_output_bytes(const PruneJob& job, const LlamaConfig& config, const io::CheckpointFileSizes& files) {
  auto outside_layers = config;
  outside_layers.num_hidden_layers = 0;
  outside_layers.attention_windows.clear();
  const double total = static_cast<double>(config.parameter_count());
  const double outside = static_cast<double>(outside_layers.parameter_count());
  const double per_parameter = total > 0 ? static_cast<double>(files.weight_bytes) / total : 0.0;
  const double layers = (total - outside) * per_parameter;
  const auto L = static_cast<double>(config.num_hidden_layers);
  const auto n = static_cast<double>(job.selection.layers);
  const bool copied_early = files.sharded && job.max_shard_bytes == 0;
  const double kept = copied_early || L <= 0 ? layers : layers * (L - n) / L;
  const double hidden = static_cast<double>(config.hidden_size);
  const double patches = n * hidden * hidden * 4;
  const double weights = outside * per_parameter + kept + patches;
  return static_cast<uint64_t>(weights * 1.01) + files.other_bytes + (uint64_t{1} << 20);
}

}  // namespace lp

// linearpatch synth: a LLaMA checkpoint with random weights in the real HF
// format, so pruning can be measured at sizes (8B, 70B) no fixture has.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/common.h"
#include "cli/usage.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/output_dir.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/model/synthetic.h"

namespace lp::cli {
namespace {

struct SynthArgs {
  std::string shape;
  int64_t layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, vocab = 0;
  bool tie = false;
  std::string family;
  int64_t head_dim = 0;
  std::string dtype = "bf16";
  std::string out;
  bool force = false;
  uint64_t seed = 0;
  std::string max_shard_size = "5GB";
  int threads = 0;
  bool json = false;
};

std::string storage_dtype_name(const std::string& flag) {
  if (flag == "bf16" || flag == "bfloat16") return "bfloat16";
  if (flag == "f16" || flag == "fp16" || flag == "float16") return "float16";
  if (flag == "f32" || flag == "fp32" || flag == "float32") return "float32";
  throw UsageError("--dtype must be bf16, f16 or f32, not '" + flag + "'");
}

// The named shape with the size options given on top, or the sizes alone.
LlamaConfig requested_config(const SynthArgs& a, const CLI::App& cmd) {
  const auto given = [&](const std::string& name) {
    return cmd.count(name) > 0 || (name == "--num-layers" && cmd.count("--layers") > 0);
  };
  const bool named = !a.shape.empty();
  if (!named) {
    std::string missing;
    for (const char* name : {"--num-layers", "--hidden", "--intermediate", "--heads", "--vocab"})
      if (!given(name)) missing += std::string(missing.empty() ? "" : ", ") + name;
    if (!missing.empty()) throw UsageError("without --shape, give " + missing);
  }
  const LlamaConfig base = named ? synthetic_shape(a.shape) : LlamaConfig{};
  auto pick = [&](const char* option, int64_t value, int64_t fallback) { return given(option) ? value : fallback; };
  const int64_t heads = pick("--heads", a.heads, base.num_attention_heads);
  const auto family = a.family.empty() ? base.family : *family_from_model_type(a.family);
  // A shape's head_dim holds only for its own hidden size and head count.
  const bool shape_heads = named && !cmd.count("--hidden") && !cmd.count("--heads");
  auto c = synthetic_config(
      pick("--num-layers", a.layers, base.num_hidden_layers), pick("--hidden", a.hidden, base.hidden_size),
      pick("--intermediate", a.intermediate, base.intermediate_size), heads,
      pick("--kv-heads", a.kv_heads, named ? base.num_key_value_heads : heads),
      pick("--vocab", a.vocab, base.vocab_size), cmd.count("--tie") ? a.tie : base.tie_word_embeddings, family,
      pick("--head-dim", a.head_dim, shape_heads ? base.head_dim : 0));
  if (named) {
    c.rope_theta = base.rope_theta;
    c.rope_scaling = base.rope_scaling;
    c.max_position_embeddings = base.max_position_embeddings;
  }
  c.dtype = storage_dtype_name(a.dtype);
  return c;
}

}  // namespace

Command register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand(
      "synth",
      "Write a LLaMA checkpoint with random weights and a byte-level tokenizer (for benchmarks at any size); "
      "size options override those of --shape");
  cmd->add_option("--shape", args->shape, "Named architecture with its published sizes")
      ->check(one_of(synthetic_shape_names()));
  // --num-layers: the total, as config.json's num_hidden_layers (--layers
  // means "to remove" elsewhere; still accepted here, unlisted).
  auto* num_layers = cmd->add_option("--num-layers", args->layers, "Decoder layers in total")->check(at_least(1));
  cmd->add_option("--layers", args->layers)->group("")->check(at_least(1))->excludes(num_layers);
  cmd->add_option("--hidden", args->hidden, "Hidden size")->check(at_least(1));
  cmd->add_option("--intermediate", args->intermediate, "MLP intermediate size")->check(at_least(1));
  cmd->add_option("--heads", args->heads, "Attention heads")->check(at_least(1));
  cmd->add_option("--kv-heads", args->kv_heads, "Key/value heads (default: the shape's, else --heads)")->check(at_least(1));
  cmd->add_option("--vocab", args->vocab, "Vocabulary size (at least 258)")->check(at_least(258));
  cmd->add_option("--family", args->family, "Architecture family (default: the shape's, else llama)")
      ->check(one_of({"llama", "mistral", "qwen2", "qwen3"}));
  cmd->add_option("--head-dim", args->head_dim, "Attention head size (default: the shape's, else --hidden / --heads)")
      ->check(at_least(1));
  cmd->add_flag("--tie,!--no-tie", args->tie, "Tie the output head to the embedding");
  cmd->add_option("--dtype", args->dtype, "Storage dtype: bf16, f16 or f32")->capture_default_str();
  cmd->add_option("-o,--out", args->out, "Output checkpoint directory (must not exist unless --force)")->required();
  cmd->add_flag("--force", args->force, "Replace an existing output directory");
  cmd->add_option("--seed", args->seed, "Seed of the weights (same seed and shape, same bytes)")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_option("--max-shard-size", args->max_shard_size, "Largest weight file, e.g. 5GB")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads drawing the weights (0: all cores)")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_flag("--json", args->json, "Print one JSON object on stdout instead of the summary");
  return {cmd, [args, cmd] {
            SyntheticSpec spec;
            spec.config = requested_config(*args, *cmd);
            spec.seed = args->seed;
            spec.max_shard_bytes = parse_byte_size(args->max_shard_size);
            if (args->threads > 0) at::set_num_threads(args->threads);
            AtomicOutputDir out(args->out, args->force, {});
            const auto& c = spec.config;
            spdlog::info(
                "synthetic checkpoint: {} layers, hidden {}, intermediate {}, {} heads / {} KV heads, vocab {}, "
                "{}{} -> {}",
                c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
                c.vocab_size, c.dtype, c.tie_word_embeddings ? ", tied" : "", out.final_path().string());
            Stopwatch clock;
            const auto summary = write_synthetic_checkpoint(out.path(), spec);
            out.commit();
            const double seconds = clock.seconds();
            Json report;
            report["out"] = out.final_path().string();
            report["shape"] = args->shape.empty() ? "custom" : args->shape;
            report["parameters"] = summary.parameters;
            report["bytes"] = summary.tensor_bytes;
            report["files"] = summary.files;
            report["seconds"] = seconds;
            report["gb_per_s"] = seconds > 0 ? summary.tensor_bytes / seconds / 1e9 : 0.0;
            if (args->json)
              print_json(report);
            else
              std::cout << "wrote " << out.final_path().string() << ": " << summary.parameters << " parameters, "
                        << summary.files.size() << " files, " << seconds << " s" << std::endl;
          }};
}

}  // namespace lp::cli

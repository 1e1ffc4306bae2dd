// Sublayer units (attention / MLP branches) through the score and prune
// jobs on the demo model (10 layers): rankings name real, eligible sites,
// and the chosen units are the ranking's first.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/eval/held_out_kl.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/pipeline/prune_pipeline.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {


CalibrationOptions unit_calibration() {
  CalibrationOptions c;
  c.files = {test::demo_calibration_text()};
  c.samples = 6;
  c.seq_len = 64;
  c.batch_size = 3;
  c.held_out_samples = 2;
  return c;
}

TEST(UnitPipeline, ScoreRanksEveryEligibleSiteAndChoosesTheFirst) {
  ScoreJob job;
  job.model_dir = test::demo_model_dir();
  job.calibration = unit_calibration();
  job.selection.unit = Unit::kMlp;
  job.selection.layers = 3;
  const auto r = run_score(job);
  const auto eligible = eligible_sites(read_llama_config(job.model_dir), Unit::kMlp, false);
  ASSERT_EQ(r.sites.site_cosine.size(), eligible.size());
  std::vector<Site> ranked;
  for (size_t i = 0; i < r.sites.site_cosine.size(); ++i) {
    ranked.push_back(r.sites.site_cosine[i].first);
    if (i > 0) {
      EXPECT_GE(r.sites.site_cosine[i - 1].second, r.sites.site_cosine[i].second) << "most similar first";
    }
  }
  auto first = std::vector<Site>(ranked.begin(), ranked.begin() + 3);
  std::sort(ranked.begin(), ranked.end());
  EXPECT_EQ(ranked, eligible) << "every eligible MLP once";
  std::sort(first.begin(), first.end());
  EXPECT_EQ(r.sites.removed_sites, first);
  const auto report = to_json(r);
  EXPECT_EQ(report["unit"], "mlp");
  EXPECT_EQ(report["ranked"].size(), eligible.size());
  EXPECT_FALSE(report.contains("cosine_matrix"));
  EXPECT_NE(summarize(r).find(describe_sites(first)), std::string::npos) << summarize(r);
}

TEST(UnitPipeline, ScoreRefusesWhatPruneRefuses) {
  const auto config = read_llama_config(test::demo_model_dir());
  ScoreJob job;
  job.calibration = unit_calibration();
  job.selection.unit = Unit::kAttention;
  EXPECT_NO_THROW(validate(job, config)) << "cosine without a count ranks every site";
  auto bad = job;
  bad.selection.metric = Metric::kIterative;
  EXPECT_THROW(validate(bad, config), UsageError) << "iterative removes a number of units";
  bad.selection.layers = 2;
  EXPECT_NO_THROW(validate(bad, config));
  bad.selection.layers = 9;  // attention of layers 1..8
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.metric = Metric::kPatchedKl;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.unit = Unit::kSublayer;
  EXPECT_THROW(validate(bad, config), UsageError) << "sublayer units are ranked by KL per parameter";
  bad = job;
  bad.selection.unit = Unit::kLayer;
  bad.selection.metric = Metric::kIterative;
  bad.selection.layers = 2;
  EXPECT_THROW(validate(bad, config), UsageError) << "layers are ranked as blocks";
}

PruneJob unit_budget_job(const std::filesystem::path& out, Unit unit, Metric metric) {
  PruneJob job;
  job.model_dir = test::demo_model_dir();
  job.calibration = unit_calibration();
  job.selection.unit = unit;
  job.selection.metric = metric;
  job.repair.kind = RepairChoice::kNone;
  job.budget.emplace();
  job.output_dir = out;
  return job;
}

int64_t attention_removed(const std::vector<Site>& sites) {
  return std::count_if(sites.begin(), sites.end(), [](const Site& s) { return s.sublayer == Sublayer::kAttention; });
}

// A parameter target between two counts of attention units: the larger
// count is chosen, the first of the cosine ranking, and the written model
// is within the target while one unit fewer would not be.
TEST(UnitPipeline, ParameterTargetChoosesTheFewestUnitsReachingIt) {
  test::TempDir dir;
  const auto config = read_llama_config(test::demo_model_dir());
  const double dense = static_cast<double>(config.parameter_count());
  const double unit = static_cast<double>(sublayer_parameter_count(config, Sublayer::kAttention));
  auto job = unit_budget_job(dir / "params", Unit::kAttention, Metric::kCosine);
  job.budget->target_params = dense - 2.5 * unit;
  const auto r = run_prune(job);
  ASSERT_TRUE(r.budget);
  EXPECT_EQ(r.budget->chosen_layers, 3);
  EXPECT_EQ(r.budget->bound_by, "target_params");
  ASSERT_EQ(r.selection.removed_sites.size(), 3u);
  std::vector<Site> first;
  for (size_t i = 0; i < 3; ++i) first.push_back(r.selection.site_cosine[i].first);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(r.selection.removed_sites, first);
  EXPECT_LE(static_cast<double>(r.parameters_after), *job.budget->target_params);
  EXPECT_GT(static_cast<double>(r.parameters_after) + unit, *job.budget->target_params);
  EXPECT_EQ(to_json(r)["budget"]["chosen_units"], 3);
  EXPECT_TRUE(r.sublayer_repairs.empty()) << "--patch none";
}

// Sublayer units by KL per parameter under a KV target alone: only
// attention brings it closer, and the steps end when the layers keeping
// attention are at most the KV fraction.
TEST(UnitPipeline, KvTargetStopsTheGreedyAtTheFirstStepReachingIt) {
  test::TempDir dir;
  auto job = unit_budget_job(dir / "kv", Unit::kSublayer, Metric::kIterative);
  job.budget->target_kv = 0.8;  // 10 layers: at least 2 attention sublayers go
  job.repair.kind = RepairChoice::kMlpLstsq;
  const auto r = run_prune(job);
  ASSERT_TRUE(r.budget);
  EXPECT_EQ(r.budget->bound_by, "target_kv");
  EXPECT_EQ(attention_removed(r.selection.removed_sites), 2);
  EXPECT_EQ(r.selection.removed_sites.size(), 2u) << "no MLP removed on the way";
  ASSERT_FALSE(r.selection.site_steps.empty());
  for (const auto& [site, score] : r.selection.site_steps.front().candidates)
    EXPECT_EQ(site.sublayer, Sublayer::kAttention) << describe_sites({site});
  EXPECT_EQ(r.budget->chosen_layers, 2);
  EXPECT_EQ(r.selection.site_steps.size(), r.selection.removed_sites.size());
  const auto written = read_llama_config(job.output_dir);
  int64_t with_attention = 0;
  for (int64_t l = 0; l < written.num_hidden_layers; ++l) with_attention += written.layer_spec(l).attention ? 1 : 0;
  EXPECT_EQ(with_attention, 8) << "80 % of the KV cache kept";
  // A removed MLP is repaired beside a kept attention, a removed attention
  // after and before kept MLPs; each is folded, none is a stream patch.
  const auto& sites = r.selection.removed_sites;
  const auto gone = [&](int64_t layer, Sublayer s) { return std::count(sites.begin(), sites.end(), Site{layer, s}) > 0; };
  size_t repairable = 0;
  for (const auto& site : sites)
    repairable += site.sublayer == Sublayer::kMlp ? !gone(site.layer, Sublayer::kAttention)
                                                  : site.layer > 0 && !gone(site.layer - 1, Sublayer::kMlp) &&
                                                        !gone(site.layer, Sublayer::kMlp);
  EXPECT_EQ(r.sublayer_repairs.size(), repairable);
  for (const auto& repair : r.sublayer_repairs) EXPECT_NE(repair.find("folded into"), std::string::npos) << repair;
  EXPECT_TRUE(LlamaModel::load(job.output_dir).patches().empty());
}

// LinearPatch stream patches for attention units: the exact checkpoint,
// read back by our loader, has the in-memory pruned model's held-out
// perplexity; its config names the sublayers each patch replaces.
TEST(UnitPipeline, StreamPatchesOfUnitsReloadWithTheSamePerplexity) {
  test::TempDir dir;
  PruneJob job;
  job.model_dir = test::demo_model_dir();
  job.calibration = unit_calibration();
  job.selection.unit = Unit::kAttention;
  job.selection.metric = Metric::kIterative;
  job.selection.layers = 2;
  job.repair.kind = RepairChoice::kLinearPatch;
  job.output_dir = dir / "exact";
  const auto r = run_prune(job);
  ASSERT_TRUE(r.held_out);
  ASSERT_EQ(r.sublayer_repairs.size(), 2u);
  for (const auto& repair : r.sublayer_repairs)
    EXPECT_NE(repair.find("linearpatch: on the stream entering layer"), std::string::npos) << repair;

  const auto written = LlamaModel::load(job.output_dir);
  EXPECT_EQ(written.patches().size(), 2u);
  const auto dense = LlamaModel::load(job.model_dir);
  const auto& c = job.calibration;
  const auto tokens = tokenize_corpus(*load_tokenizer(job.model_dir), c.files);
  HeldOutKl held_out(dense, split_windows(tokens, c.seq_len, c.samples, c.held_out_samples, c.seed).held_out, 3);
  EXPECT_NEAR(held_out.quality(written).ppl, r.held_out->ppl, 1e-5 * r.held_out->ppl);

  const auto config = nlohmann::json::parse(test::read_file(job.output_dir / "config.json"));
  const auto& patches = config["linearpatch"]["patches"];
  ASSERT_EQ(patches.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& site = r.selection.removed_sites[i];
    EXPECT_EQ(patches[i]["layer"], site.layer) << "no layer removed: the numbering stays";
    EXPECT_EQ(patches[i]["replaces_sublayers"], nlohmann::json::array({{{"layer", site.layer}, {"sublayer", "attention"}}}));
  }
}

TEST(UnitPipeline, TargetsNoCountMeetsFailBeforeAnyOutput) {
  test::TempDir dir;
  auto kv = unit_budget_job(dir / "kv", Unit::kAttention, Metric::kCosine);
  kv.selection.layers = 2;  // the cap: 8 of 10 layers keep attention
  kv.budget->target_kv = 0.7;
  EXPECT_THROW(run_prune(kv), GateFailed);
  EXPECT_FALSE(std::filesystem::exists(kv.output_dir));
  auto params = unit_budget_job(dir / "params", Unit::kMlp, Metric::kCosine);
  params.budget->target_params = 0.1;
  EXPECT_THROW(run_prune(params), GateFailed);
  EXPECT_FALSE(std::filesystem::exists(params.output_dir));
}

TEST(UnitPipeline, UnitBudgetsRefuseQualityLimitsAndMisplacedKvTargets) {
  const auto config = read_llama_config(test::demo_model_dir());
  auto job = unit_budget_job("unused", Unit::kAttention, Metric::kCosine);
  job.budget->target_kv = 0.75;
  EXPECT_NO_THROW(validate(job, config));
  auto bad = job;
  bad.budget->max_kl = 0.1;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.unit = Unit::kMlp;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.selection.unit = Unit::kLayer;
  EXPECT_THROW(validate(bad, config), UsageError);
  bad = job;
  bad.budget->target_kv = 1;
  EXPECT_THROW(validate(bad, config), UsageError);
}

}  // namespace
}  // namespace lp

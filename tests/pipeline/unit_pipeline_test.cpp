// Sublayer units (attention / MLP branches) through the score and prune
// jobs on the demo model (10 layers): rankings name real, eligible sites,
// and the chosen units are the ranking's first.
#include <gtest/gtest.h>

#include <algorithm>

#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/pipeline/prune_pipeline.h"
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

}  // namespace
}  // namespace lp

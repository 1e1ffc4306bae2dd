// Depth budgets of `prune` on the demo model (10 layers): the curve a
// budget search reports agrees with fixed-depth runs, the depth chosen is
// the deepest on the curve meeting every budget, and a budget no depth
// meets fails before anything is written. Limits are taken from a first
// run's curve, never written in.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/pipeline/prune_pipeline.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

PruneJob budget_job(const fs::path& out, Metric metric, int64_t deepest) {
  PruneJob job;
  job.model_dir = test::repo_dir() / "data" / "models" / "demo-llama3-d";
  job.calibration.files = {test::repo_dir() / "data" / "text" / "brown.calib.txt"};
  job.calibration.samples = 6;
  job.calibration.seq_len = 64;
  job.calibration.batch_size = 3;
  job.calibration.held_out_samples = 2;
  job.selection.metric = metric;
  job.selection.layers = deepest;
  job.budget.emplace();
  job.output_dir = out;
  return job;
}

const CurvePoint& at_depth(const PruneResult& r, int64_t layers) {
  for (const auto& p : r.curve)
    if (p.layers == layers) return p;
  throw std::runtime_error("depth " + std::to_string(layers) + " not on the curve");
}

// Iterative curves are nested: the chosen depth is the number of leading
// points meeting the limit.
int64_t leading_passes(const PruneResult& r, const std::function<bool(const CurvePoint&)>& meets) {
  int64_t n = 0;
  while (n < static_cast<int64_t>(r.curve.size()) && meets(r.curve[static_cast<size_t>(n)])) ++n;
  return n;
}

// One iterative run to depth 3 whose limit never binds, with the cosine
// curve beside it, shared by the tests that derive their limits from it.
class DepthBudget : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    auto job = budget_job(*dir_ / "curve", Metric::kIterative, 3);
    job.budget->max_kl = 1e9;
    job.compare_metrics = {Metric::kCosine};
    curve_ = new PruneResult(run_prune(job));
  }
  static void TearDownTestSuite() {
    delete curve_;
    delete dir_;
  }
  static const PruneResult& curve() { return *curve_; }
  // A folder of the current test's own.
  static fs::path dir() {
    const auto path = *dir_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(path);
    return path;
  }

 private:
  static inline test::TempDir* dir_ = nullptr;
  static inline PruneResult* curve_ = nullptr;
};

void expect_close(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), 0.005 * std::abs(b)) << what << ": " << a << " vs " << b;
}

void expect_gate_failure(const PruneJob& job, const std::string& needle) {
  try {
    run_prune(job);
    ADD_FAILURE() << "no error; expected a failed budget mentioning '" << needle << "'";
  } catch (const GateFailed& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(job.output_dir));
}

TEST_F(DepthBudget, IterativeCurveEqualsFixedDepthRuns) {
  ASSERT_EQ(curve().curve.size(), 3u);
  ASSERT_EQ(curve().compared_curves.size(), 1u);
  const auto& cosine = curve().compared_curves.front().second;
  ASSERT_EQ(cosine.size(), 3u) << "every depth the search visited";
  for (size_t k = 0; k < cosine.size(); ++k) {
    EXPECT_EQ(cosine[k].layers, static_cast<int64_t>(k + 1));
    EXPECT_EQ(cosine[k].removed.back() - cosine[k].removed.front(), static_cast<int64_t>(k)) << "one block";
  }
  EXPECT_EQ(curve().budget->chosen_layers, 3);
  EXPECT_EQ(curve().budget->bound_by, "layers");
  EXPECT_EQ(LlamaModel::load(curve().output).num_layers(), 7);
  for (int64_t k = 1; k <= 3; ++k) {
    const auto& point = at_depth(curve(), k);
    if (k > 1) {  // nested
      const auto& shallower = at_depth(curve(), k - 1).removed;
      for (const auto layer : shallower) EXPECT_NE(std::count(point.removed.begin(), point.removed.end(), layer), 0);
    }
    auto fixed = budget_job(dir() / std::to_string(k), Metric::kIterative, k);
    fixed.budget.reset();
    const auto r = run_prune(fixed);
    EXPECT_EQ(r.selection.removed, point.removed) << "depth " << k;
    ASSERT_TRUE(r.held_out);
    expect_close(point.held_out.ppl_ratio, r.held_out->ppl_ratio, "perplexity ratio at depth " + std::to_string(k));
    expect_close(point.held_out.kl, r.held_out->kl, "KL at depth " + std::to_string(k));
    EXPECT_EQ(point.parameters, r.parameters_after) << "depth " << k;
  }
}

TEST_F(DepthBudget, QualityLimitsChooseTheDeepestDepthMeetingThem) {
  const auto ratio = [](const CurvePoint& p) { return p.held_out.ppl_ratio; };
  const auto kl = [](const CurvePoint& p) { return p.held_out.kl; };
  struct Case {
    std::string name;
    std::function<double(const CurvePoint&)> value;
    int64_t depth;  // the limit is this depth's value: it binds there
  };
  for (const auto& c : {Case{"max_ppl_ratio", ratio, 1}, Case{"max_kl", kl, 2}}) {
    const double limit = c.value(at_depth(curve(), c.depth));
    auto job = budget_job(dir() / c.name, Metric::kIterative, 3);
    (c.name == "max_kl" ? job.budget->max_kl : job.budget->max_ppl_ratio) = limit;
    const auto r = run_prune(job);
    const auto expected = leading_passes(curve(), [&](const CurvePoint& p) { return c.value(p) <= limit; });
    ASSERT_GE(expected, c.depth);
    EXPECT_EQ(r.budget->chosen_layers, expected) << c.name << " at depth " << c.depth;
    EXPECT_EQ(r.selection.removed, at_depth(curve(), expected).removed);
    EXPECT_EQ(r.budget->bound_by, expected == 3 ? "layers" : c.name);
    EXPECT_EQ(LlamaModel::load(job.output_dir).num_layers(), 10 - expected);
  }
}

TEST_F(DepthBudget, ABudgetNoDepthMeetsFailsBeforeWriting) {
  const double best = curve().curve.front().held_out.ppl_ratio;
  ASSERT_GT(best, 1);
  auto job = budget_job(dir() / "out", Metric::kIterative, 0);
  job.budget->max_ppl_ratio = 1 + (best - 1) / 2;
  expect_gate_failure(job, "the best reached is");

  auto too_small = budget_job(dir() / "small", Metric::kCosine, 0);
  too_small.budget->target_params = 1000;
  expect_gate_failure(too_small, "no depth reaches the parameter target");
}

TEST_F(DepthBudget, ParameterTargetRemovesJustEnough) {
  auto job = budget_job(dir() / "out", Metric::kIterative, 0);
  job.budget->target_params = static_cast<double>(at_depth(curve(), 2).parameters);
  const auto r = run_prune(job);
  EXPECT_EQ(r.budget->chosen_layers, 2);
  EXPECT_EQ(r.budget->bound_by, "target_params");
  EXPECT_EQ(r.curve.size(), 2u) << "a size target alone stops where it is met";
  EXPECT_LE(r.parameters_after, *job.budget->target_params);

  // As a fraction of the dense model, with a quality limit that binds deeper.
  auto both = budget_job(dir() / "both", Metric::kIterative, 3);
  both.budget->target_params = static_cast<double>(at_depth(curve(), 1).parameters) / r.parameters_before;
  both.budget->max_kl = at_depth(curve(), 2).held_out.kl;
  const auto b = run_prune(both);
  const auto expected = leading_passes(curve(), [&](const CurvePoint& p) { return p.held_out.kl <= *both.budget->max_kl; });
  EXPECT_EQ(b.budget->chosen_layers, expected);
}

TEST_F(DepthBudget, ContiguousMetricSearchesDepthsEachItsOwnBlock) {
  auto loose_job = budget_job(dir() / "loose", Metric::kCosine, 0);
  loose_job.budget->max_kl = 1e9;
  const auto loose = run_prune(loose_job);
  EXPECT_EQ(loose.budget->chosen_layers, 8);
  EXPECT_EQ(loose.budget->bound_by, "layers");
  // Binary search: a few depths, not all eight.
  auto job = budget_job(dir() / "out", Metric::kCosine, 0);
  job.budget->max_ppl_ratio = at_depth(loose, 1).held_out.ppl_ratio * 1.0001;
  const auto r = run_prune(job);
  const int64_t chosen = r.budget->chosen_layers;
  EXPECT_LE(r.curve.size(), 5u);
  EXPECT_LE(at_depth(r, chosen).held_out.ppl_ratio, *job.budget->max_ppl_ratio);
  for (const auto& p : r.curve) {
    if (p.layers == chosen + 1) {
      EXPECT_GT(p.held_out.ppl_ratio, *job.budget->max_ppl_ratio);
    }
  }
  // The chosen block is the cosine metric's best for that depth.
  EXPECT_EQ(r.selection.removed, at_depth(r, chosen).removed);
  ASSERT_FALSE(r.selection.candidates.empty());
  EXPECT_EQ(r.selection.removed.front(), r.selection.candidates.front().start);
  EXPECT_EQ(r.selection.removed.size(), static_cast<size_t>(chosen));
}

TEST_F(DepthBudget, RetainedPerformanceIsJudgedOnTheTaskRows) {
  const auto dir = DepthBudget::dir();
  write_text_file(dir / "rows.jsonl",
                  R"({"context": "The cat sat on the", "choices": [" mat", " moon", " idea"], "gold": 0})" "\n"
                  R"({"context": "One, two,", "choices": [" three", " seven"], "gold": 0})" "\n"
                  R"({"context": "The sun rises in the", "choices": [" east", " west"], "gold": 0})" "\n"
                  R"({"context": "He opened the", "choices": [" door", " of"], "gold": 0})" "\n");
  auto job = budget_job(dir / "curve", Metric::kIterative, 3);
  job.eval_tasks = {{"mc", dir / "rows.jsonl"}};
  job.budget->max_kl = 1e9;
  const auto curve = run_prune(job);
  ASSERT_EQ(curve.curve.size(), 3u);
  ASSERT_TRUE(curve.curve.front().tasks);
  const auto retained = [](const CurvePoint& p) { return p.tasks->retained.average.value_or(-1); };
  const double limit = retained(curve.curve.front());
  if (!(limit > 0)) GTEST_SKIP() << "the demo model scores 0 on these rows once a layer is gone";
  auto gated = budget_job(dir / "gated", Metric::kIterative, 3);
  gated.eval_tasks = job.eval_tasks;
  gated.budget->min_retained = limit;
  const auto r = run_prune(gated);
  const auto expected = leading_passes(curve, [&](const CurvePoint& p) { return retained(p) >= limit; });
  EXPECT_EQ(r.budget->chosen_layers, expected);
  EXPECT_EQ(r.budget->bound_by, expected == 3 ? "layers" : "min_retained");
  ASSERT_TRUE(r.tasks);
  EXPECT_EQ(r.tasks->retained.average, at_depth(r, expected).tasks->retained.average)
      << "the written model scores as its curve point";

  auto no_tasks = budget_job(dir / "none", Metric::kIterative, 3);
  no_tasks.budget->min_retained = 0.9;
  EXPECT_THROW(run_prune(no_tasks), UsageError);
}

}  // namespace
}  // namespace lp

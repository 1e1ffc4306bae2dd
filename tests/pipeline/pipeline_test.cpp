// The score and prune jobs end to end on the demo model shipped in data/
// (10 layers, hidden 192), with a few short calibration windows so each job
// takes about a second.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "distill/gradient_sum.h"
#include "linearpatch/calib/calibration.h"
#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/file_util.h"
#include "linearpatch/eval/multiple_choice.h"
#include "linearpatch/eval/perplexity.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/model/synthetic.h"
#include "linearpatch/pipeline/prune_pipeline.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "model/tensor_bridge.h"
#include "pipeline/stages.h"
#include "support/expect_error.h"
#include "support/test_env.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

fs::path demo_model() { return test::demo_model_dir(); }

PruneJob small_job(const fs::path& out) {
  PruneJob job;
  job.model_dir = demo_model();
  job.calibration.files = {test::demo_calibration_text()};
  job.calibration.samples = 6;
  job.calibration.seq_len = 64;
  job.calibration.batch_size = 3;
  job.calibration.held_out_samples = 2;
  job.selection.layers = 2;
  job.output_dir = out;
  return job;
}

Report run(const PruneJob& job) { return to_json(run_prune(job)); }

// Two steps of two windows: enough to see the repair train and be stored.
void add_small_distillation(PruneJob& job) {
  job.distill.emplace();
  job.distill->samples = 4;
  job.distill->val_samples = 2;
  job.distill->options.batch_size = 2;
  job.distill->options.micro_batch = 2;
  job.distill->options.lr = 1e-3;
}

// Perplexity of a checkpoint on a few windows of the demo's evaluation text.
double demo_perplexity(const fs::path& dir) {
  const auto model = LlamaModel::load(dir);
  const auto tokenizer = load_tokenizer(dir);
  const auto windows =
      sequential_windows(tokenize_corpus(*tokenizer, {test::demo_evaluation_text()}), 64, 6);
  return perplexity(model, windows, 3).ppl;
}

template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  const auto message = test::error_message<Error>(fn);
  EXPECT_TRUE(test::contains(message, needle)) << "expected '" << needle << "' in: " << message;
}

TEST(PrunePipeline, WritesAReloadableCheckpointAndAFullReport) {
  test::TempDir dir;
  const auto report = run(small_job(dir / "out"));
  const int64_t start = report["start"];
  EXPECT_EQ(report["end"].get<int64_t>(), start + 2);
  EXPECT_EQ(report["removed"], (std::vector<int64_t>{start, start + 1}));
  EXPECT_GE(start, 1);
  EXPECT_LE(start + 2, 9);
  EXPECT_EQ(report["candidates"].size(), 7u);  // starts 1..7
  EXPECT_EQ(report["candidates"][0]["start"].get<int64_t>(), start);
  // The phases are disjoint parts of the run (write_copy and write_sync
  // are parts of write): they add up to at most the total.
  double phases = 0;
  for (const auto& [phase, seconds] : report["timings"].items())
    if (phase != "total" && phase != "write_copy" && phase != "write_sync") phases += seconds.get<double>();
  EXPECT_LE(phases, report["timings"]["total"].get<double>() + 1e-3) << report["timings"].dump();
  const auto& scales = report["gaps"][0]["scales"];
  EXPECT_LE(scales["min"].get<double>(), scales["mean"].get<double>());
  EXPECT_GT(scales["min"].get<double>(), 0.0);

  const auto model = LlamaModel::load(dir / "out");
  EXPECT_EQ(model.num_layers(), 8);
  ASSERT_EQ(model.patches().size(), 1u);
  EXPECT_EQ(model.patches().begin()->first, start);
  const int64_t layer_params = 2 * 192 + 2 * 192 * 192 + 2 * 192 * 64 + 3 * 192 * 512;
  EXPECT_EQ(report["parameters"]["after"].get<int64_t>(),
            report["parameters"]["before"].get<int64_t>() - 2 * layer_params + 192 * 192);
  EXPECT_EQ(test::read_file(dir / "out" / "tokenizer.json"), test::read_file(demo_model() / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "out" / "generation_config.json"));

  // The patch is a repair: the same block removed without one is further
  // from the dense model on held-back text.
  auto plain = small_job(dir / "plain");
  plain.selection.start = start;
  plain.repair.kind = RepairChoice::kNone;
  run_prune(plain);
  const double dense = demo_perplexity(demo_model()), patched = demo_perplexity(dir / "out"),
               removed = demo_perplexity(dir / "plain");
  EXPECT_LT(patched, removed) << "dense " << dense;
  EXPECT_GT(patched, dense);
}

// Byte-identical weight files in two outputs.
void expect_same_weights(const fs::path& a, const fs::path& b) {
  const io::Checkpoint ca(a), cb(b);
  const auto names = ca.tensor_names();
  ASSERT_EQ(names, cb.tensor_names());
  for (const auto& name : names) {
    const auto ta = ca.tensor(name), tb = cb.tensor(name);
    ASSERT_EQ(ta.info->nbytes(), tb.info->nbytes()) << name;
    EXPECT_EQ(std::memcmp(ta.data(), tb.data(), ta.info->nbytes()), 0) << name;
  }
}

TEST(PrunePipeline, SameSeedWritesTheSamePatch) {
  test::TempDir dir;
  auto a = small_job(dir / "a");
  auto b = small_job(dir / "b");
  run_prune(a);
  run_prune(b);
  expect_same_weights(dir / "a", dir / "b");
}

// One gap (the paper's case): the sequential refit has nothing before it to
// refit for, so the output is the dense fit's, byte for byte.
TEST(PrunePipeline, SequentialRefitOfOneGapIsTheDenseFit) {
  test::TempDir dir;
  for (const auto kind : {RepairChoice::kMlpLstsq, RepairChoice::kAuto}) {
    auto dense = small_job(dir / "dense");
    dense.selection.start = 3;
    dense.repair.kind = kind;
    dense.repair.refit = RefitChoice::kDense;
    dense.overwrite = true;
    auto sequential = dense;
    sequential.output_dir = dir / "sequential";
    sequential.repair.refit = RefitChoice::kSequential;
    const auto a = run_prune(dense), b = run_prune(sequential);
    ASSERT_EQ(b.gaps.size(), 1u);
    EXPECT_FALSE(b.gaps.front().refit);
    EXPECT_EQ(a.gaps.front().candidates, b.gaps.front().candidates);
    expect_same_weights(dir / "dense", dir / "sequential");
  }
}

// Several gaps: every gap after the first reports its held-out KL with the
// dense fit and with the refit, and keeps the lower; the first keeps its
// dense fit.
TEST(PrunePipeline, SequentialRefitReportsEachLaterGap) {
  const auto model = LlamaModel::load(demo_model());
  const auto tokenizer = load_tokenizer(demo_model());
  const auto tokens = tokenize_corpus(*tokenizer, {test::repo_dir() / "data" / "text" / "brown.calib.txt"});
  const auto windows = split_windows(tokens, 64, 6, 2, 0);
  Calibrated calibrated;
  calibrated.fit_windows = windows.fit;
  HeldOutKl held_out(model, windows.held_out, 3);
  const std::vector<int64_t> removed{2, 5, 6};
  const auto dense = repair_gaps(model, removed, RepairChoice::kMlpLstsq, RefitChoice::kDense, &calibrated, nullptr,
                                 &held_out, 3);
  const auto sequential = repair_gaps(model, removed, RepairChoice::kMlpLstsq, RefitChoice::kSequential, &calibrated,
                                      nullptr, &held_out, 3);
  ASSERT_EQ(sequential.reports.size(), 2u);
  EXPECT_FALSE(dense.reports[1].refit);
  EXPECT_FALSE(sequential.reports[0].refit);
  EXPECT_TRUE(at::equal(sequential.repairs[0].matrix, dense.repairs[0].matrix));
  ASSERT_TRUE(sequential.reports[1].refit);
  const auto& r = *sequential.reports[1].refit;
  const double final_kl = held_out.mean_kl(model.without_layers(removed, layer_patches(sequential.repairs)));
  // The report sums the head's float32 KLs in other chunks (the last
  // position apart): equal to ~1e-8.
  const double dense_kl = held_out.mean_kl(model.without_layers(removed, layer_patches(dense.repairs)));
  EXPECT_NEAR(r.kl_dense_fit, dense_kl, 1e-7 * dense_kl);
  EXPECT_NEAR(final_kl, std::min(r.kl_dense_fit, r.kl_refit), 1e-7 * final_kl);
  ASSERT_TRUE(sequential.quality) << "the refit's trials measured the final model";
  EXPECT_EQ(sequential.quality->ppl, held_out.quality(model.without_layers(removed, layer_patches(sequential.repairs))).ppl);
  EXPECT_EQ(r.kept, r.kl_refit <= r.kl_dense_fit);
  EXPECT_EQ(at::equal(sequential.repairs[1].matrix, dense.repairs[1].matrix), !r.kept);
}

// Least-squares fits that resume from kept dense streams (the calibration
// pass's checkpoints, the fit pass's stash for the refits) run fewer layers
// and give the same repairs and held-out KLs, bit for bit.
TEST(PrunePipeline, RepairsFromKeptStreamsAreTheSame) {
  const auto model = LlamaModel::load(demo_model());
  const auto tokenizer = load_tokenizer(demo_model());
  const auto tokens = tokenize_corpus(*tokenizer, {test::repo_dir() / "data" / "text" / "brown.calib.txt"});
  const auto windows = split_windows(tokens, 64, 6, 3, 0);
  CalibrationOptions options;
  options.batch_size = 3;
  SelectionNeeds needs;
  needs.magnitude_gaps = {1, 2};
  needs.held_out = true;
  const auto rotation = make_rotation(model, RotationKind::kAuto, 0);
  PhaseClock clock;
  const auto calibrated = [&](bool checkpoints) {
    return calibrate(model, {windows.fit, windows.held_out, 0, ""}, options, needs, &rotation, clock, checkpoints);
  };
  const auto plain = calibrated(false), kept = calibrated(true);
  ASSERT_FALSE(plain.checkpoints);
  ASSERT_TRUE(kept.checkpoints);
  ASSERT_GE(stash_positions(model.num_layers(), 3, 6), 2) << "room for the refit's stash";
  // The fit resumes below layer 4; the refit of [8, 9) reads the fork 4 and 9.
  const std::vector<int64_t> removed{5, 6, 8};
  for (const auto kind : {RepairChoice::kMlpLstsq, RepairChoice::kAuto}) {
    HeldOutKl held_out(model, windows.held_out, 3);
    const auto a = repair_gaps(model, removed, kind, RefitChoice::kSequential, &plain, &rotation, &held_out, 3);
    const auto b = repair_gaps(model, removed, kind, RefitChoice::kSequential, &kept, &rotation, &held_out, 3);
    ASSERT_EQ(a.repairs.size(), 2u);
    ASSERT_EQ(b.repairs.size(), 2u);
    for (size_t g = 0; g < 2; ++g) {
      EXPECT_EQ(a.reports[g].candidates, b.reports[g].candidates) << "gap " << g;
      ASSERT_EQ(a.repairs[g].matrix.defined(), b.repairs[g].matrix.defined());
      if (a.repairs[g].matrix.defined()) {
        EXPECT_TRUE(at::equal(a.repairs[g].matrix, b.repairs[g].matrix)) << "gap " << g;
      }
    }
    ASSERT_TRUE(a.reports[1].refit);
    ASSERT_TRUE(b.reports[1].refit);
    EXPECT_EQ(a.reports[1].refit->kl_refit, b.reports[1].refit->kl_refit);
  }
}

TEST(PrunePipeline, ForcedBlockWithoutPatchNeedsNoCalibration) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.selection.start = 3;
  job.repair.kind = RepairChoice::kNone;
  job.calibration.files = {dir / "missing.txt"};  // never read
  const auto report = run(job);
  EXPECT_EQ(report["removed"], (std::vector<int64_t>{3, 4}));
  EXPECT_FALSE(report["timings"].contains("calibration"));
  EXPECT_TRUE(LlamaModel::load(dir / "out").patches().empty());
}

TEST(PrunePipeline, OtherMetricsChooseValidBlocks) {
  test::TempDir dir;
  auto bi = small_job(dir / "bi");
  bi.selection.metric = Metric::kBlockInfluence;
  bi.selection.layers = 3;
  const auto r = run(bi);
  EXPECT_EQ(r["removed"].size(), 3u);
  EXPECT_EQ(r["block_influence"].size(), 10u);
  EXPECT_EQ(LlamaModel::load(dir / "bi").patches().size(), r["gaps"].size());

  auto kl = small_job(dir / "kl");
  kl.selection.metric = Metric::kPatchedKl;
  const auto k = run(kl);
  const auto& candidates = k["candidates"];
  for (size_t i = 1; i < candidates.size(); ++i)
    EXPECT_LE(candidates[i - 1]["score"].get<double>(), candidates[i]["score"].get<double>());
  EXPECT_EQ(k["start"], candidates[0]["start"]);
}

TEST(PrunePipeline, ScoreRanksEveryRequestedMetric) {
  ScoreJob job;
  job.model_dir = demo_model();
  job.calibration = small_job("unused").calibration;
  job.selection.layers = 3;
  const auto result = run_score(job);
  const auto report = to_json(result);
  for (const char* metric : {"cosine", "angular", "patched-kl"}) EXPECT_EQ(report["rankings"][metric].size(), 6u) << metric;
  EXPECT_EQ(report["blocks"], report["rankings"]["cosine"]);
  const auto& cos = report["cosine_matrix"];
  EXPECT_EQ(cos.size(), 11u);
  EXPECT_DOUBLE_EQ(cos[2][5].get<double>(), cos[5][2].get<double>());
  for (const auto& block : report["rankings"]["cosine"]) {
    const int64_t start = block["start"];
    EXPECT_DOUBLE_EQ(block["score"].get<double>(), cos[start][start + 3].get<double>());
  }
  const auto svg = score_svg(result);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  const auto best = result.rankings.at("cosine").front();
  EXPECT_NE(svg.find("cosine: " + describe_range({best.start, best.end})), std::string::npos)
      << "the chosen block is named in the legend";
  size_t cells = 0;
  for (auto at = svg.find("<title>cos("); at != std::string::npos; at = svg.find("<title>cos(", at + 1)) ++cells;
  EXPECT_EQ(cells, 66u) << "one cell per pair of the 11 positions, the upper triangle";
  EXPECT_EQ(svg.find("not measured"), std::string::npos) << "score measures every pair";
}

TEST(PrunePipeline, BadRequestsFailBeforeWritingAnything) {
  test::TempDir dir;
  auto too_many = small_job(dir / "out");
  too_many.selection.layers = 9;
  expect_error([&] { run_prune(too_many); }, "cannot remove 9 of 10 layers");
  auto bad_start = small_job(dir / "out");
  bad_start.selection.start = 8;
  expect_error([&] { run_prune(bad_start); }, "cannot start at layer 8: starts 1..7 are possible");
  auto distill_nothing = small_job(dir / "out");
  distill_nothing.repair.kind = RepairChoice::kNone;
  distill_nothing.distill.emplace();
  expect_error([&] { run_prune(distill_nothing); }, "choose a repair other than none");
  auto empty = small_job(dir / "out");
  write_text_file(dir / "empty.txt", "\n  \n");
  empty.calibration.files = {dir / "empty.txt"};
  expect_error([&] { run_prune(empty); }, "no text in");
  auto short_text = small_job(dir / "out");
  write_text_file(dir / "short.txt", "Only a few words here.");
  short_text.calibration.files = {dir / "short.txt"};
  expect_error([&] { run_prune(short_text); }, "too little text for one window");
  auto inside = small_job(demo_model() / "pruned");
  expect_error([&] { run_prune(inside); }, "must not be inside");
  EXPECT_FALSE(fs::exists(demo_model() / "pruned"));
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), {}), 2) << "only the two text files may remain";
}

// A sharded source: its layers are copied while the model is calibrated,
// one file each, and the result is the model the packed layout (an explicit
// shard size) gives. A job failing after the copies began leaves nothing.
TEST(PrunePipeline, ShardedSourceIsWrittenOneFilePerLayerDuringCalibration) {
  test::TempDir dir;
  SyntheticSpec spec;
  spec.config = synthetic_config(6, 64, 160, 8, 2, 300, /*tie_word_embeddings=*/false);
  spec.max_shard_bytes = 100000;
  fs::create_directory(dir / "sharded");
  write_synthetic_checkpoint(dir / "sharded", spec);
  auto job = small_job(dir / "early");
  job.model_dir = dir / "sharded";
  job.repair.kind = RepairChoice::kMlpLstsq;  // edits the layer before the gap
  auto packed = job;
  packed.output_dir = dir / "packed";
  packed.max_shard_bytes = 1 << 30;
  const auto a = run_prune(job), b = run_prune(packed);
  EXPECT_EQ(a.selection.removed, b.selection.removed);
  EXPECT_EQ(a.files.size(), 6u) << "embeddings and head, 4 layers, the index";
  EXPECT_EQ(b.files, std::vector<std::string>{"model.safetensors"});
  EXPECT_LE(a.bytes_written_early, a.bytes);
  const auto ids = at::randint(300, {2, 16}, at::kLong);
  const auto early_logits = LlamaModel::load(dir / "early").forward(ids);
  EXPECT_TRUE(at::equal(early_logits, LlamaModel::load(dir / "packed").forward(ids)));

  auto failing = job;
  failing.output_dir = dir / "failed";
  write_text_file(dir / "short.txt", "Only a few words here.");
  failing.calibration.files = {dir / "short.txt"};
  expect_error([&] { run_prune(failing); }, "too little text for one window");
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_TRUE(entry.path().filename() != "failed" && entry.path().filename().string()[0] != '.')
        << entry.path() << " left behind";
}

TEST(PrunePipeline, DistillationIsReportedAndStoredInTheCheckpoint) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  add_small_distillation(job);
  const auto report = run(job);
  const auto& d = report["distill"];
  EXPECT_EQ(d["steps"].get<int64_t>(), 2);
  EXPECT_LT(d["val_kl_after"].get<double>(), d["val_kl_before"].get<double>()) << "training lowered the validation KL";
  EXPECT_LE(d["seconds"]["student_forward_backward"].get<double>(), d["seconds"]["total"].get<double>());
  // The checkpoint holds the trained patch (not the closed-form one) and
  // says how it was trained.
  const auto stored = nlohmann::json::parse(test::read_file(dir / "out" / "config.json"))["linearpatch"]["distill"];
  EXPECT_EQ(stored["steps"].get<int64_t>(), d["steps"].get<int64_t>());
  EXPECT_EQ(stored["val_kl_after"].get<double>(), d["val_kl_after"].get<double>());
  auto closed_form = small_job(dir / "closed-form");
  run_prune(closed_form);
  const io::Checkpoint trained(dir / "out"), fitted(dir / "closed-form");
  const auto name = patch_tensor_name(report["start"].get<int64_t>());
  const auto a = trained.tensor(name), b = fitted.tensor(name);
  ASSERT_EQ(a.info->nbytes(), b.info->nbytes());
  EXPECT_NE(std::memcmp(a.data(), b.data(), a.info->nbytes()), 0) << "the stored patch is the untrained one";
}

// On several devices the report says distillation ran data-parallel, and on
// how many replicas; one device reports one.
TEST(PrunePipeline, DataParallelDistillationReportsItsRanks) {
  if (const auto why = GradientSumGroup::unavailable_reason({at::kCPU, at::kCPU}); !why.empty()) GTEST_SKIP() << why;
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.model.devices = {"cpu", "cpu"};
  add_small_distillation(job);
  const auto two = run(job);
  EXPECT_EQ(two["distill"]["data_parallel_ranks"].get<int64_t>(), 2);
  job.model.devices = {"cpu"};
  job.output_dir = dir / "one";
  const auto one = run(job);
  EXPECT_EQ(one["distill"]["data_parallel_ranks"].get<int64_t>(), 1);
  // Summed gradients of one window per replica are the gradient of both
  // windows: the training is the same up to summation order.
  const double kl_two = two["distill"]["val_kl_after"], kl_one = one["distill"]["val_kl_after"];
  EXPECT_NEAR(kl_two, kl_one, 1e-4 * kl_one);
  EXPECT_LT(kl_two, two["distill"]["val_kl_before"].get<double>());
}

// `--metric iterative --patch auto`, n layers.
PruneJob iterative_auto_job(const fs::path& out, int64_t n) {
  auto job = small_job(out);
  job.selection.metric = Metric::kIterative;
  job.selection.layers = n;
  job.repair.kind = RepairChoice::kAuto;
  return job;
}

// Iterative selection and per-gap repair choice: every step reports its
// candidates, every gap the held-out KL of each kind, and the kind kept is
// the one with the lowest.
TEST(PrunePipeline, IterativeSelectionWithAutomaticRepairs) {
  test::TempDir dir;
  const auto result = run_prune(iterative_auto_job(dir / "out", 3));
  ASSERT_EQ(result.selection.steps.size(), 3u);
  EXPECT_EQ(result.selection.steps[0].candidates.size(), 8u) << "layers 1..8";
  EXPECT_EQ(result.selection.steps[2].candidates.size(), 6u);
  for (const auto& step : result.selection.steps)
    for (const auto& [layer, kl] : step.candidates) EXPECT_GE(kl, step.kl);
  EXPECT_EQ(result.selection.removed.size(), 3u);
  for (const auto& gap : result.gaps) {
    // Gaps after the first also try their least squares refitted in
    // sequence; every gap the map the selection scored it with.
    const bool first = &gap == &result.gaps.front();
    ASSERT_EQ(gap.candidates.size(), first ? 4u : 5u);
    EXPECT_EQ(gap.candidates.back().first, "mlp-lstsq-search");
    EXPECT_EQ(bool(gap.refit), !first);
    double best = 1e9;
    std::string best_kind;
    for (const auto& [kind, kl] : gap.candidates)
      if (kl < best) best = kl, best_kind = kind;
    EXPECT_EQ(gap.repair, best_kind.rfind("mlp-lstsq", 0) == 0 ? "mlp-lstsq" : best_kind);
    EXPECT_EQ(gap.search_fit_kept, best_kind == "mlp-lstsq-search");
  }
  EXPECT_EQ(result.calibration->held_out_samples, 2);
  EXPECT_EQ(LlamaModel::load(dir / "out").num_layers(), 7);
}

// One gap: the selection's own map, which auto tries, gives the very model
// the greedy step scored, so the kept repair is at least as good on the
// held-out windows as the score that chose the layer.
TEST(PrunePipeline, AutoTriesTheMapTheSelectionScored) {
  test::TempDir dir;
  const auto result = run_prune(iterative_auto_job(dir / "out", 1));
  ASSERT_EQ(result.gaps.size(), 1u);
  ASSERT_EQ(result.selection.scored_repairs.size(), 1u);
  const auto& candidates = result.gaps.front().candidates;
  ASSERT_EQ(candidates.back().first, "mlp-lstsq-search");
  const double scored = result.selection.steps.back().kl;
  EXPECT_NEAR(candidates.back().second, scored, 1e-6 * scored) << "the very model the step scored";
  EXPECT_EQ(result.selection.scored_repairs.front().gap.start, result.gaps.front().range.start);
}

// An mlp-lstsq repair folds exactly: the exact and the vanilla checkpoint
// are the same model, and the vanilla one is plain LlamaForCausalLM.
TEST(PrunePipeline, MlpLeastSquaresRepairFoldsExactly) {
  test::TempDir dir;
  auto exact = small_job(dir / "exact");
  exact.repair.kind = RepairChoice::kMlpLstsq;
  auto vanilla = exact;
  vanilla.output_dir = dir / "vanilla";
  vanilla.emit.mode = EmitMode::kVanilla;
  const auto a = run_prune(exact), b = run_prune(vanilla);
  EXPECT_EQ(a.selection.removed, b.selection.removed);
  EXPECT_EQ(a.gaps.front().repair, "mlp-lstsq");
  EXPECT_FALSE(b.fold) << "nothing approximate to fold";
  EXPECT_TRUE(LlamaModel::load(dir / "exact").patches().empty());
  const auto config = nlohmann::json::parse(test::read_file(dir / "vanilla" / "config.json"));
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_FALSE(config.contains("auto_map"));
  EXPECT_NEAR(demo_perplexity(dir / "exact"), demo_perplexity(dir / "vanilla"), 1e-3);
  EXPECT_LT(a.parameters_after, a.parameters_before) << "no extra matrix is stored";
}

// Distillation trains an mlp-lstsq map too, and the output stays a plain
// checkpoint: the trained map is folded into down_proj.
TEST(PrunePipeline, DistilledMlpRepairStaysFolded) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.repair.kind = RepairChoice::kMlpLstsq;
  add_small_distillation(job);
  const auto result = run_prune(job);
  ASSERT_TRUE(result.distill);
  EXPECT_EQ(result.distill->steps, 2);
  const auto model = LlamaModel::load(dir / "out");
  EXPECT_TRUE(model.patches().empty());
  EXPECT_EQ(nlohmann::json::parse(test::read_file(dir / "out" / "config.json"))["architectures"][0], "LlamaForCausalLM");
}

// A vanilla export of a LinearPatch measures the folds on held-out windows
// and keeps the one closest to the dense model.
TEST(PrunePipeline, VanillaExportReportsEveryFold) {
  test::TempDir dir;
  auto job = small_job(dir / "out");
  job.emit.mode = EmitMode::kVanilla;
  const auto result = run_prune(job);
  ASSERT_TRUE(result.fold);
  ASSERT_EQ(result.fold->folds.size(), 2u);
  const auto& folds = result.fold->folds;
  const auto& best = folds[0].mean_kl <= folds[1].mean_kl ? folds[0] : folds[1];
  EXPECT_EQ(result.fold->chosen, best.kind);
  EXPECT_EQ(result.fold->held_out_windows, 2);
  EXPECT_TRUE(LlamaModel::load(dir / "out").patches().empty());
}

// --eval-task: the written model and the dense one are scored on the same
// rows, and a bad row ends the job before anything is written.
TEST(PrunePipeline, EvalTasksReportRetainedPerformance) {
  test::TempDir dir;
  write_text_file(dir / "rows.jsonl",
                  R"({"context": "The cat sat on the", "choices": [" mat", " moon", " idea"], "gold": 0})" "\n"
                  R"({"context": "One, two,", "choices": [" three", " seven"], "gold": 0})" "\n"
                  R"({"context": "The sun rises in the", "choices": [" east", " west"], "gold": 0})" "\n");
  auto job = small_job(dir / "out");
  job.eval_tasks = {{"mc", dir / "rows.jsonl"}};
  const auto result = run_prune(job);
  ASSERT_TRUE(result.tasks);
  ASSERT_EQ(result.tasks->model.size(), 1u);
  EXPECT_EQ(result.tasks->model[0].metrics.rows, 3);
  EXPECT_EQ(result.tasks->baseline[0].metrics.rows, 3);
  // Retained performance is the pruned model's score over the dense one's,
  // on the metric the report names, and the report carries that number.
  const auto& retained = result.tasks->retained;
  ASSERT_EQ(retained.tasks.size(), 1u);
  const auto& task = retained.tasks[0];
  const auto score = [&](const TaskMetrics& m) { return task.metric == "acc_norm" ? m.acc_norm.value() : m.acc; };
  EXPECT_DOUBLE_EQ(task.model, score(result.tasks->model[0].metrics));
  EXPECT_DOUBLE_EQ(task.baseline, score(result.tasks->baseline[0].metrics));
  const auto reported = to_json(result)["eval_tasks"]["retained_performance"];
  if (task.baseline > 0) {
    ASSERT_TRUE(task.retained && retained.average);
    EXPECT_DOUBLE_EQ(*task.retained, task.model / task.baseline);
    EXPECT_DOUBLE_EQ(*retained.average, *task.retained);
    EXPECT_DOUBLE_EQ(reported.get<double>(), *retained.average);
  } else {
    EXPECT_FALSE(task.retained);
    EXPECT_TRUE(reported.is_null());
  }

  write_text_file(dir / "bad.jsonl", R"({"context": "x", "choices": [" a"], "gold": 3})" "\n");
  auto bad = small_job(dir / "bad-out");
  bad.eval_tasks = {{"mc", dir / "bad.jsonl"}};
  expect_error([&] { run_prune(bad); }, "bad.jsonl");
  EXPECT_FALSE(fs::exists(dir / "bad-out"));
}

}  // namespace
}  // namespace lp

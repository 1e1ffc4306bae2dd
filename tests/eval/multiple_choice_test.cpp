// Multiple-choice scoring on the demo model: lm-eval's encoding rules, and
// batched, padded scoring against a plain one-sequence-at-a-time forward
// pass written here from the definition.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "linearpatch/core/error.h"
#include "linearpatch/eval/multiple_choice.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {

struct Demo {
  LlamaModel model;
  std::unique_ptr<Tokenizer> tokenizer;
};

const Demo& demo() {
  static const Demo d = [] {
    const auto dir = test::demo_model_dir();
    return Demo{LlamaModel::load(dir), load_tokenizer(dir)};
  }();
  return d;
}

std::vector<int32_t> encode(const std::string& text) { return demo().tokenizer->encode(text, false); }

TEST(MultipleChoice, TrailingWhitespaceMovesIntoTheContinuation) {
  const auto& tok = *demo().tokenizer;
  const auto moved = encode_request(tok, {"Question: why?\nAnswer: \n", "because"}, 4096);
  const auto plain = encode_request(tok, {"Question: why?\nAnswer:", " \nbecause"}, 4096);
  EXPECT_EQ(moved.tokens, plain.tokens);
  EXPECT_EQ(moved.continuation, plain.continuation);
  const auto whole = encode("Question: why?\nAnswer: \nbecause");
  EXPECT_EQ(plain.tokens, whole);
  EXPECT_EQ(plain.continuation, static_cast<int64_t>(whole.size() - encode("Question: why?\nAnswer:").size()));
}

TEST(MultipleChoice, AnEmptyContextBecomesThePrefixToken) {
  const auto& tok = *demo().tokenizer;
  ASSERT_TRUE(tok.bos_id());
  const auto r = encode_request(tok, {"", " hello world"}, 4096);
  EXPECT_EQ(r.tokens.front(), *tok.bos_id());
  EXPECT_EQ(std::vector<int32_t>(r.tokens.begin() + 1, r.tokens.end()), encode(" hello world"));
  EXPECT_EQ(r.continuation, static_cast<int64_t>(r.tokens.size()) - 1);
}

TEST(MultipleChoice, LongSequencesLoseTokensFromTheLeft) {
  const auto& tok = *demo().tokenizer;
  const ChoiceRequest request{"one two three four five six seven eight nine ten eleven twelve", " end."};
  const auto full = encode_request(tok, request, 4096);
  const auto cut = encode_request(tok, request, 6);
  ASSERT_EQ(cut.tokens.size(), 7u);
  EXPECT_EQ(cut.tokens, std::vector<int32_t>(full.tokens.end() - 7, full.tokens.end()));
  EXPECT_EQ(cut.continuation, full.continuation);
  EXPECT_THROW(encode_request(tok, {"a", " b c d e f g h i j k"}, 4), InputError);
}

// Rows of different lengths and choice counts; the last row's choices
// differ by one token, so they share a batch with padding.
Task mixed_task() {
  return parse_task("mc",
                    R"({"context": "The cat sat on the", "choices": ["mat.", "roof of the old red house.", "dog"], "gold": 0})"
                    "\n"
                    R"({"context": "In 1906 the city was struck by an earthquake that", "choices": ["destroyed much of it.", "sang"], "gold": 0})"
                    "\n"
                    R"({"context": "Hello", "choices": ["world", "there, how are you doing today?", "!", "friend"], "gold": 1})"
                    "\n"
                    R"({"context": "Numbers: 1, 2, 3,", "choices": ["4", "5, 6, 7, 8, 9, 10"], "gold": 0})"
                    "\n"
                    R"({"context": "After a long walk through the quiet streets of the old town, past the closed shops and the empty square, she finally came home to her", "choices": ["dog", "big dog"], "gold": 1})",
                    "mixed.jsonl");
}

// Scores from the definition: one unpadded sequence per forward pass.
std::vector<std::vector<std::pair<double, bool>>> one_by_one(const EncodedTask& task) {
  c10::InferenceMode guard;
  std::vector<std::vector<std::pair<double, bool>>> out;
  for (const auto& row : task.rows) {
    auto& scores = out.emplace_back();
    for (const auto& r : row) {
      std::vector<int64_t> ids(r.tokens.begin(), r.tokens.end());
      const auto n = static_cast<int64_t>(ids.size()) - 1;
      const auto input = at::from_blob(ids.data(), {1, n}, at::kLong).clone();
      const auto logits = demo().model.forward(input)[0];
      const auto log_p = at::log_softmax(logits, -1);
      double sum = 0;
      bool greedy = true;
      for (int64_t p = n - r.continuation; p < n; ++p) {
        sum += log_p[p][ids[p + 1]].item<double>();
        greedy = greedy && logits[p].argmax().item<int64_t>() == ids[p + 1];
      }
      scores.emplace_back(sum, greedy);
    }
  }
  return out;
}

TEST(MultipleChoice, BatchingAndPaddingDoNotChangeScores) {
  const auto task = encode_task(*demo().tokenizer, mixed_task(), 4096);
  const auto expected = one_by_one(task);
  int64_t tokens = 0;
  for (const auto& row : task.rows)
    for (const auto& r : row) tokens += static_cast<int64_t>(r.tokens.size()) - 1;
  // 1 token per pass: one sequence per batch; 40: a few; 1e6: all at once.
  for (const int64_t tokens_per_pass : {int64_t{1}, int64_t{40}, int64_t{1000000}}) {
    const auto result = score_task(demo().model, task, tokens_per_pass);
    ASSERT_EQ(result.rows.size(), task.rows.size());
    EXPECT_EQ(result.tokens, tokens);
    if (tokens_per_pass == 1) {
      EXPECT_EQ(result.padded_tokens, tokens);
    } else if (tokens_per_pass == 1000000) {
      EXPECT_GT(result.padded_tokens, tokens) << "the last row's choices share a batch";
    }
    for (size_t i = 0; i < task.rows.size(); ++i) {
      EXPECT_EQ(result.rows[i].index, static_cast<int64_t>(i));
      EXPECT_EQ(result.rows[i].gold, task.task.rows[i].gold);
      ASSERT_EQ(result.rows[i].lls.size(), expected[i].size());
      for (size_t c = 0; c < expected[i].size(); ++c) {
        EXPECT_NEAR(result.rows[i].lls[c], expected[i][c].first, 1e-4) << "row " << i << " choice " << c;
        EXPECT_EQ(result.rows[i].greedy[c], expected[i][c].second) << "row " << i << " choice " << c;
      }
    }
  }
}

TEST(MultipleChoice, MetricsFollowLmEval) {
  Task task;
  task.has_acc_norm = true;
  const std::vector<std::vector<int64_t>> chars = {{10, 2}, {1, 5}, {1, 9}, {1, 1}};
  const std::vector<std::vector<double>> lls = {{-10, -12}, {-5, -5}, {-3, -9}, {-1, -2}};
  std::vector<RowScores> scores;
  for (size_t i = 0; i < chars.size(); ++i) {
    TaskRow row;
    row.choice_chars = chars[i];
    row.gold = i == 1 ? 1 : 0;
    task.rows.push_back(row);
    scores.push_back({static_cast<int64_t>(i), row.gold, lls[i], {false, false}});
  }
  // acc hits 1 0 1 1 (a tie goes to the first choice); per character
  // -1 -6 | -5 -1 | -3 -1 | -1 -2 hits 1 1 0 1.
  const auto m = task_metrics(task, scores);
  EXPECT_EQ(m.rows, 4);
  EXPECT_DOUBLE_EQ(m.acc, 0.75);
  EXPECT_DOUBLE_EQ(m.acc_stderr, 0.25);  // sqrt((3 * 0.25^2 + 0.75^2) / 3) / sqrt(4)
  ASSERT_TRUE(m.acc_norm);
  EXPECT_DOUBLE_EQ(*m.acc_norm, 0.75);
  EXPECT_DOUBLE_EQ(*m.acc_norm_stderr, 0.25);
  task.has_acc_norm = false;
  EXPECT_FALSE(task_metrics(task, scores).acc_norm);
}

TaskResult result_with(const std::string& name, double acc, std::optional<double> acc_norm) {
  TaskResult r;
  r.name = name;
  r.metrics.acc = acc;
  r.metrics.acc_norm = acc_norm;
  return r;
}

TEST(MultipleChoice, RetainedPerformanceIsTheMeanOfPerTaskRatios) {
  const auto rp = retained_performance({result_with("hellaswag", 0.9, 0.5), result_with("boolq", 0.3, std::nullopt),
                                        result_with("piqa", 0.5, 0.5)},
                                       {result_with("hellaswag", 0.1, 0.4), result_with("boolq", 0.6, std::nullopt),
                                        result_with("piqa", 0.5, 0.0)});
  ASSERT_EQ(rp.tasks.size(), 3u);
  EXPECT_EQ(rp.tasks[0].metric, "acc_norm");
  EXPECT_DOUBLE_EQ(*rp.tasks[0].retained, 1.25);
  EXPECT_EQ(rp.tasks[1].metric, "acc");
  EXPECT_DOUBLE_EQ(*rp.tasks[1].retained, 0.5);
  EXPECT_FALSE(rp.tasks[2].retained) << "the baseline scored 0";
  EXPECT_DOUBLE_EQ(*rp.average, 0.875);
}

}  // namespace
}  // namespace lp

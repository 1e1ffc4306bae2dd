#include "linearpatch/eval/multiple_choice.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "eval/python_text.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/progress.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {
namespace {

// Logits of one chunk of scored positions stay under this many bytes, so a
// 128k vocabulary never costs more than a bounded slice.
constexpr int64_t kMaxLogitBytes = int64_t{256} << 20;

int32_t prefix_token(const Tokenizer& tokenizer) {
  if (const auto bos = tokenizer.bos_id()) return *bos;
  if (const auto eos = tokenizer.eos_id()) return *eos;
  throw InputError("a context of no tokens needs a BOS or EOS token in front, and the tokenizer has neither");
}

int64_t input_length(const EncodedRequest& r) { return static_cast<int64_t>(r.tokens.size()) - 1; }

// One choice of one row, as a batch holds it.
struct Choice {
  size_t row, choice;
  const EncodedRequest* request;
};

// A batch also ends where the next sequence is this much shorter than its
// longest, so padding stays below it; a task of thousands of rows still
// fills whole batches within each such length band.
constexpr double kMaxPadding = 0.1;

// Every choice of every row, longest first (as lm-eval orders its
// requests), cut into batches whose padded size stays within the token
// budget; one sequence always fits. Sorting by length, rather than keeping
// a row's choices together, keeps padding small: the choices of one row
// often differ in length by half.
std::vector<std::vector<Choice>> plan_batches(const EncodedTask& task, int64_t tokens_per_pass) {
  std::vector<Choice> all;
  for (size_t r = 0; r < task.rows.size(); ++r)
    for (size_t c = 0; c < task.rows[r].size(); ++c) all.push_back({r, c, &task.rows[r][c]});
  std::stable_sort(all.begin(), all.end(),
                   [](const Choice& a, const Choice& b) { return input_length(*a.request) > input_length(*b.request); });
  std::vector<std::vector<Choice>> batches;
  int64_t width = 0;
  for (const auto& choice : all) {
    const int64_t length = input_length(*choice.request);
    if (batches.empty() || static_cast<int64_t>(batches.back().size() + 1) * width > tokens_per_pass ||
        static_cast<double>(length) < (1 - kMaxPadding) * static_cast<double>(width)) {
      batches.emplace_back();
      width = std::max<int64_t>(1, length);
    }
    batches.back().push_back(choice);
  }
  return batches;
}

// Scores the choices of one batch in one forward pass; fills their entries
// of `out` and counts the positions read into `result`.
void score_batch(const LlamaModel& model, const std::vector<Choice>& batch, std::vector<RowScores>& out,
                 TaskResult& result) {
  int64_t T = 1;
  for (const auto& c : batch) T = std::max(T, input_length(*c.request));
  const auto B = static_cast<int64_t>(batch.size());
  result.padded_tokens += B * T;

  // Right padding with token 0: positions after a sequence's end cannot
  // change its logits in a causal model.
  std::vector<int64_t> ids(static_cast<size_t>(B * T), 0), positions, targets;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = *batch[b].request;
    const int64_t n = input_length(s);
    result.tokens += n;
    std::copy(s.tokens.begin(), s.tokens.end() - 1, ids.begin() + b * T);
    for (int64_t p = n - s.continuation; p < n; ++p) {
      positions.push_back(b * T + p);
      targets.push_back(s.tokens[p + 1]);
    }
  }
  const auto device = model.device();
  const auto long_tensor = [&](std::vector<int64_t>& v, at::IntArrayRef shape) {
    return at::from_blob(v.data(), shape, at::kLong).to(device);
  };
  const auto hidden = model.run_layers(model.embed(long_tensor(ids, {B, T})), 0, model.num_layers());
  const auto R = static_cast<int64_t>(positions.size());
  at::Tensor token_ll = at::empty({R}, at::kFloat), token_greedy = at::empty({R}, at::kBool);
  if (R > 0) {
    const auto states = hidden.reshape({B * T, -1}).index_select(0, long_tensor(positions, {R}));
    const auto target = long_tensor(targets, {R});
    const int64_t chunk = std::max<int64_t>(1, kMaxLogitBytes / (model.config().vocab_size * 4));
    std::vector<at::Tensor> lls, greedy;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
      const int64_t n = std::min(chunk, R - r0);
      const auto logits = model.lm_head(model.final_norm(states.narrow(0, r0, n)));
      const auto t = target.narrow(0, r0, n);
      lls.push_back(at::log_softmax(logits, -1).gather(1, t.unsqueeze(1)).squeeze(1));
      greedy.push_back(logits.argmax(-1) == t);
    }
    token_ll = at::cat(lls).to(at::kCPU);
    token_greedy = at::cat(greedy).to(at::kCPU);
  }
  const auto* ll = token_ll.data_ptr<float>();
  const auto* is_greedy = token_greedy.data_ptr<bool>();
  int64_t k = 0;
  for (const auto& c : batch) {
    double sum = 0;
    bool all_greedy = true;
    for (int64_t i = 0; i < c.request->continuation; ++i, ++k) {
      sum += ll[k];
      all_greedy = all_greedy && is_greedy[k];
    }
    out[c.row].lls[c.choice] = sum;
    out[c.row].greedy[c.choice] = all_greedy;
  }
}

// numpy.argmax: the first NaN if any, else the first maximum.
size_t numpy_argmax(const std::vector<double>& values) {
  size_t best = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) return i;
    if (values[i] > values[best]) best = i;
  }
  return best;
}

// lm-eval's mean and mean_stderr (sample standard deviation / sqrt(n)).
std::pair<double, double> mean_and_stderr(const std::vector<double>& hits) {
  const auto n = static_cast<double>(hits.size());
  const double mean = std::accumulate(hits.begin(), hits.end(), 0.0) / n;
  double squares = 0;
  for (const double h : hits) squares += (h - mean) * (h - mean);
  return {mean, std::sqrt(squares / (n - 1)) / std::sqrt(n)};
}

}  // namespace

EncodedRequest encode_request(const Tokenizer& tokenizer, const ChoiceRequest& request, int64_t max_length) {
  const auto context = pystr::rstrip(request.context);
  const std::string whole = request.context + request.continuation;
  auto context_ids = tokenizer.encode(context, false);
  auto tokens = tokenizer.encode(whole, false);
  int64_t continuation = static_cast<int64_t>(tokens.size()) - static_cast<int64_t>(context_ids.size());
  if (context_ids.empty()) {
    // lm-eval's rule for an empty context: the prefix token stands in for
    // it, unless the continuation already starts with that token.
    const int32_t prefix = prefix_token(tokenizer);
    if (tokens.empty() || tokens.front() != prefix) tokens.insert(tokens.begin(), prefix);
    continuation = static_cast<int64_t>(tokens.size()) - 1;
  }
  continuation = std::max<int64_t>(continuation, 0);
  if (continuation > max_length)
    throw InputError("the continuation is " + std::to_string(continuation) + " tokens, longer than the model's " +
                     std::to_string(max_length) + " positions");
  if (static_cast<int64_t>(tokens.size()) > max_length + 1) tokens.erase(tokens.begin(), tokens.end() - (max_length + 1));
  return {std::move(tokens), continuation};
}

EncodedTask encode_task(const Tokenizer& tokenizer, Task task, int64_t max_length) {
  EncodedTask encoded;
  for (const auto& row : task.rows) {
    auto& requests = encoded.rows.emplace_back();
    try {
      for (const auto& request : row.requests) requests.push_back(encode_request(tokenizer, request, max_length));
    } catch (const InputError& e) {
      throw InputError(task.file.string() + ":" + std::to_string(row.index + 1) + ": " + e.what());
    }
  }
  encoded.task = std::move(task);
  return encoded;
}

TaskResult score_task(const LlamaModel& model, const EncodedTask& task, int64_t tokens_per_pass) {
  c10::InferenceMode guard;
  std::vector<RowScores> scores;
  int64_t choices = 0;
  for (size_t r = 0; r < task.rows.size(); ++r) {
    const auto n = task.rows[r].size();
    scores.push_back({task.task.rows[r].index, task.task.rows[r].gold, std::vector<double>(n), std::vector<bool>(n)});
    choices += static_cast<int64_t>(n);
  }
  TaskResult result;
  Progress progress(task.task.name, choices, "choices");
  for (const auto& batch : plan_batches(task, tokens_per_pass)) {
    score_batch(model, batch, scores, result);
    progress.advance(static_cast<int64_t>(batch.size()));
  }
  result.name = task.task.name;
  result.file = task.task.file;
  result.seconds = progress.finish();
  result.metrics = task_metrics(task.task, scores);
  result.rows = std::move(scores);
  return result;
}

TaskMetrics task_metrics(const Task& task, const std::vector<RowScores>& scores) {
  std::vector<double> acc, acc_norm;
  for (size_t i = 0; i < scores.size(); ++i) {
    const auto& lls = scores[i].lls;
    acc.push_back(static_cast<int64_t>(numpy_argmax(lls)) == scores[i].gold ? 1.0 : 0.0);
    std::vector<double> per_char(lls.size());
    for (size_t c = 0; c < lls.size(); ++c)
      per_char[c] = lls[c] / static_cast<double>(task.rows[i].choice_chars[c]);
    acc_norm.push_back(static_cast<int64_t>(numpy_argmax(per_char)) == scores[i].gold ? 1.0 : 0.0);
  }
  TaskMetrics m;
  m.rows = static_cast<int64_t>(scores.size());
  std::tie(m.acc, m.acc_stderr) = mean_and_stderr(acc);
  if (task.has_acc_norm) {
    const auto [mean, stderr_] = mean_and_stderr(acc_norm);
    m.acc_norm = mean;
    m.acc_norm_stderr = stderr_;
  }
  return m;
}

RetainedPerformance retained_performance(const std::vector<TaskResult>& model, const std::vector<TaskResult>& baseline) {
  RetainedPerformance rp;
  double sum = 0;
  int64_t defined = 0;
  for (size_t i = 0; i < model.size(); ++i) {
    const auto& m = model[i].metrics;
    const auto& b = baseline[i].metrics;
    TaskRetention t;
    t.task = model[i].name;
    t.metric = m.acc_norm ? "acc_norm" : "acc";
    t.model = m.acc_norm ? *m.acc_norm : m.acc;
    t.baseline = b.acc_norm ? *b.acc_norm : b.acc;
    if (t.baseline > 0) {
      t.retained = t.model / t.baseline;
      sum += *t.retained;
      ++defined;
    }
    rp.tasks.push_back(t);
  }
  if (defined > 0) rp.average = sum / static_cast<double>(defined);
  return rp;
}

}  // namespace lp

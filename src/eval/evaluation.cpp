#include "linearpatch/eval/evaluation.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "linearpatch/calib/text_data.h"
#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp {
namespace {

using Json = EvalJson;

// lm-eval's length limit when a config names no max_position_embeddings.
constexpr int64_t kDefaultMaxLength = 2048;

int64_t max_length(const LlamaModel& model) {
  const int64_t n = model.config().max_position_embeddings;
  return n > 0 ? n : kDefaultMaxLength;
}

TextEval eval_text(const LlamaModel& model, const LlamaModel* baseline, const std::filesystem::path& text,
                   const at::Tensor& windows, int64_t batch) {
  TextEval out{text, {}, std::nullopt};
  if (baseline) {
    out.vs_baseline = compare_with_baseline(model, *baseline, windows, batch);
    out.model = out.vs_baseline->model;
  } else {
    out.model = perplexity(model, windows, batch);
  }
  spdlog::info("{}: ppl {:.4f} over {} tokens", text.string(), out.model.ppl, out.model.tokens);
  return out;
}

PerplexityTotals totals_of(const std::vector<TextEval>& texts) {
  double nll = 0, base_nll = 0, kl = 0;
  PerplexityTotals t;
  for (const auto& e : texts) {
    const auto tokens = static_cast<double>(e.model.tokens);
    nll += e.model.mean_nll * tokens;
    t.tokens += e.model.tokens;
    t.windows += e.model.windows;
    t.seconds += e.model.seconds;
    if (e.vs_baseline) {
      base_nll += e.vs_baseline->baseline.mean_nll * tokens;
      kl += e.vs_baseline->mean_kl * tokens;
    }
  }
  const auto tokens = static_cast<double>(t.tokens);
  t.ppl = std::exp(nll / tokens);
  if (!texts.empty() && texts.front().vs_baseline) {
    t.baseline_ppl = std::exp(base_nll / tokens);
    t.ppl_ratio = t.ppl / *t.baseline_ppl;
    t.mean_kl = kl / tokens;
  }
  return t;
}

Json perplexity_json(const PerplexityResult& r) {
  return {{"ppl", r.ppl}, {"mean_nll", r.mean_nll}, {"tokens", r.tokens}, {"windows", r.windows}, {"seconds", r.seconds}};
}

Json text_json(const TextEval& e) {
  Json j{{"text", e.text.string()}};
  j.update(perplexity_json(e.model));
  if (e.vs_baseline) {
    j["baseline"] = perplexity_json(e.vs_baseline->baseline);
    j["ppl_ratio"] = e.vs_baseline->ppl_ratio;
    j["mean_kl"] = e.vs_baseline->mean_kl;
  }
  return j;
}

// NaN (one row: no sample deviation) becomes null.
Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json metrics_json(const TaskResult& r) {
  const auto& m = r.metrics;
  Json j{{"acc", m.acc}};
  if (m.acc_norm) j["acc_norm"] = *m.acc_norm;
  j["acc_stderr"] = number(m.acc_stderr);
  if (m.acc_norm_stderr) j["acc_norm_stderr"] = number(*m.acc_norm_stderr);
  j["rows"] = m.rows;
  j["seconds"] = r.seconds;
  j["rows_per_second"] = r.seconds > 0 ? static_cast<double>(m.rows) / r.seconds : 0.0;
  j["tokens"] = r.tokens;
  j["padded_tokens"] = r.padded_tokens;
  return j;
}

Json tasks_json(const std::vector<TaskResult>& model, const std::vector<TaskResult>& baseline,
                const std::optional<RetainedPerformance>& retained) {
  Json tasks = Json::object();
  for (size_t i = 0; i < model.size(); ++i) {
    Json j{{"file", model[i].file.string()}};
    j.update(metrics_json(model[i]));
    if (!baseline.empty()) j["baseline"] = metrics_json(baseline[i]);
    if (retained) {
      const auto& t = retained->tasks[i];
      j["retained"] = t.retained ? Json(*t.retained) : Json(nullptr);
      j["retained_metric"] = t.metric;
    }
    tasks[model[i].name] = j;
  }
  return tasks;
}

Json average_json(const RetainedPerformance& r) { return r.average ? Json(*r.average) : Json(nullptr); }

std::string percent(const std::optional<double>& v) { return v ? fmt::format("{:.1f} %", 100 * *v) : "n/a"; }

std::string task_table(const EvalResult& r) {
  const bool base = !r.baseline_tasks.empty();
  std::ostringstream out;
  out << fmt::format("{:<14} {:>6} {:>8} {:>8} {:>9} {:>8}", "task", "rows", "acc", "±", "acc_norm", "±");
  if (base) out << fmt::format(" {:>9} {:>9} {:>9}", "base acc", "base norm", "retained");
  for (size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& m = r.tasks[i].metrics;
    // A one-row task has no sample deviation: n/a, not nan.
    const auto value = [](double v) { return std::isfinite(v) ? fmt::format("{:.4f}", v) : std::string("n/a"); };
    const auto opt = [&](const std::optional<double>& v) { return v ? value(*v) : std::string("-"); };
    out << fmt::format("\n{:<14} {:>6} {:>8.4f} {:>8} {:>9} {:>8}", r.tasks[i].name, m.rows, m.acc, value(m.acc_stderr),
                       opt(m.acc_norm), opt(m.acc_norm_stderr));
    if (base) {
      const auto& b = r.baseline_tasks[i].metrics;
      out << fmt::format(" {:>9.4f} {:>9} {:>9}", b.acc, opt(b.acc_norm), percent(r.retained->tasks[i].retained));
    }
  }
  if (r.retained) out << "\nretained performance (mean over tasks of acc_norm, else acc): " << percent(r.retained->average);
  return out.str();
}

}  // namespace

void validate(const EvalOptions& o, bool has_baseline) {
  if (o.texts.empty() && o.tasks.empty()) throw UsageError("nothing to evaluate: no text files and no tasks");
  if (!o.texts.empty() && o.seq_len < 2)
    throw UsageError("perplexity windows need at least 2 tokens, not " + std::to_string(o.seq_len));
  if (o.max_windows < 0 || o.batch_size < 0 || o.tokens_per_pass < 1)
    throw UsageError("window count, batch size and tokens per pass cannot be negative (tokens per pass at least 1)");
  if (o.max_ppl_ratio < 0 || o.min_retained < 0) throw UsageError("quality gate limits cannot be negative");
  if (o.max_ppl_ratio > 0 && (!has_baseline || o.texts.empty()))
    throw UsageError("a perplexity-ratio limit needs a baseline model and text files to compare perplexity on");
  if (o.min_retained > 0 && (!has_baseline || o.tasks.empty()))
    throw UsageError("a retained-performance limit needs a baseline model and tasks to compare accuracy on");
  std::set<std::string> names;
  for (const auto& t : o.tasks)
    if (!names.insert(t.name).second) throw UsageError("task '" + t.name + "' is given twice");
}

TaskComparison compare_on_tasks(const LlamaModel& model, const LlamaModel& baseline, const Tokenizer& tokenizer,
                                const std::vector<Task>& tasks, int64_t tokens_per_pass) {
  TaskComparison c;
  const int64_t length = std::min(max_length(model), max_length(baseline));
  for (const auto& task : tasks) {
    const auto encoded = encode_task(tokenizer, task, length);
    c.model.push_back(score_task(model, encoded, tokens_per_pass));
    c.baseline.push_back(score_task(baseline, encoded, tokens_per_pass));
  }
  c.retained = retained_performance(c.model, c.baseline);
  return c;
}

TaskBaseline::TaskBaseline(const LlamaModel& baseline, const Tokenizer& tokenizer, const std::vector<Task>& tasks,
                           int64_t tokens_per_pass)
    : tokens_per_pass_(tokens_per_pass) {
  for (const auto& task : tasks) {
    encoded_.push_back(encode_task(tokenizer, task, max_length(baseline)));
    baseline_.push_back(score_task(baseline, encoded_.back(), tokens_per_pass));
  }
}

TaskComparison TaskBaseline::compare(const LlamaModel& model) const {
  TaskComparison c;
  for (const auto& task : encoded_) c.model.push_back(score_task(model, task, tokens_per_pass_));
  c.baseline = baseline_;
  c.retained = retained_performance(c.model, c.baseline);
  return c;
}

EvalResult evaluate(const LlamaModel& model, const LlamaModel* baseline, const Tokenizer& tokenizer,
                    const EvalOptions& options) {
  validate(options, baseline != nullptr);
  std::vector<Task> tasks;
  for (const auto& spec : options.tasks) tasks.push_back(load_task(spec));
  std::vector<at::Tensor> windows;
  for (const auto& text : options.texts)
    windows.push_back(sequential_windows(tokenize_corpus(tokenizer, {text}), options.seq_len, options.max_windows));

  EvalResult result;
  result.seq_len = options.seq_len;
  const int64_t batch =
      options.batch_size > 0 ? options.batch_size : std::max<int64_t>(1, options.tokens_per_pass / options.seq_len);
  for (size_t i = 0; i < windows.size(); ++i)
    result.texts.push_back(eval_text(model, baseline, options.texts[i], windows[i], batch));
  if (!result.texts.empty()) result.perplexity = totals_of(result.texts);

  if (baseline && !tasks.empty()) {
    auto c = compare_on_tasks(model, *baseline, tokenizer, tasks, options.tokens_per_pass);
    result.tasks = std::move(c.model);
    result.baseline_tasks = std::move(c.baseline);
    result.retained = std::move(c.retained);
  } else {
    for (auto& task : tasks)
      result.tasks.push_back(score_task(model, encode_task(tokenizer, std::move(task), max_length(model)),
                                        options.tokens_per_pass));
  }
  return result;
}

EvalJson task_comparison_json(const TaskComparison& c) {
  return {{"tasks", tasks_json(c.model, c.baseline, c.retained)}, {"retained_performance", average_json(c.retained)}};
}

EvalJson eval_json(const EvalResult& r) {
  Json out;
  if (r.perplexity) {
    const auto& p = *r.perplexity;
    out["seq_len"] = r.seq_len;
    out["texts"] = Json::array();
    for (const auto& e : r.texts) out["texts"].push_back(text_json(e));
    out["ppl"] = p.ppl;
    out["tokens"] = p.tokens;
    out["windows"] = p.windows;
    out["seconds"] = p.seconds;
    out["tokens_per_second"] = p.seconds > 0 ? static_cast<double>(p.tokens) / p.seconds : 0.0;
    if (p.ppl_ratio) {
      out["baseline_ppl"] = *p.baseline_ppl;
      out["ppl_ratio"] = *p.ppl_ratio;
      out["mean_kl"] = *p.mean_kl;
    }
  }
  if (!r.tasks.empty()) out["tasks"] = tasks_json(r.tasks, r.baseline_tasks, r.retained);
  if (r.retained) out["retained_performance"] = average_json(*r.retained);
  return out;
}

std::string eval_summary(const EvalResult& r) {
  std::ostringstream out;
  if (r.perplexity) {
    const auto& p = *r.perplexity;
    out << "ppl " << p.ppl << " over " << p.tokens << " tokens (" << p.windows << " windows of " << r.seq_len << ")";
    if (p.ppl_ratio)
      out << "; baseline ppl " << *p.baseline_ppl << ", ratio " << *p.ppl_ratio << ", mean KL " << *p.mean_kl;
  }
  if (!r.tasks.empty()) out << (r.perplexity ? "\n" : "") << task_table(r);
  return out.str();
}

std::string scores_jsonl(const EvalResult& r) {
  std::string out;
  for (size_t t = 0; t < r.tasks.size(); ++t) {
    for (size_t i = 0; i < r.tasks[t].rows.size(); ++i) {
      const auto& row = r.tasks[t].rows[i];
      Json line{{"task", r.tasks[t].name}, {"row", row.index}, {"lls", row.lls}, {"gold", row.gold},
                {"greedy", row.greedy}};
      if (!r.baseline_tasks.empty()) line["baseline_lls"] = r.baseline_tasks[t].rows[i].lls;
      out += line.dump() + "\n";
    }
  }
  return out;
}

std::optional<GateFailure> failed_gate(const EvalResult& r, const EvalOptions& o) {
  if (o.max_ppl_ratio > 0 && r.perplexity && r.perplexity->ppl_ratio && *r.perplexity->ppl_ratio > o.max_ppl_ratio)
    return GateFailure{Gate::kMaxPplRatio, *r.perplexity->ppl_ratio, o.max_ppl_ratio};
  if (o.min_retained > 0 && r.retained) {
    const auto& average = r.retained->average;
    if (!average) return GateFailure{Gate::kMinRetained, std::numeric_limits<double>::quiet_NaN(), o.min_retained};
    if (*average < o.min_retained) return GateFailure{Gate::kMinRetained, *average, o.min_retained};
  }
  return std::nullopt;
}

}  // namespace lp

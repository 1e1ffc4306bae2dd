// `score --svg`: the cosine similarity of every pair of layer inputs as a
// heatmap (row i, column j: cos(X^(i), X^(j))), the block each ranking
// chose outlined at cell (start, end), and every candidate's score as a bar
// beside it, so a choice can be checked by eye before it is trusted.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "linearpatch/pipeline/results.h"
#include "pipeline/svg_escape.h"

namespace lp {
namespace {

constexpr double kMatrixPixels = 560;
constexpr double kLeft = 56, kTop = 84;  // below the title, subtitle and column label
constexpr const char* kMarkColors[] = {"#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"};

// Low cosine pale, high cosine dark blue: rank order is what the eye needs.
std::string color(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const int r = static_cast<int>(247 - t * (247 - 8));
  const int g = static_cast<int>(251 - t * (251 - 48));
  const int b = static_cast<int>(255 - t * (255 - 107));
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

struct Mark {
  std::string label;
  Block block;
};

// The best block of every ranking (with n), or of every block size (without).
std::vector<Mark> marks(const ScoreResult& r) {
  std::vector<Mark> out;
  if (r.n) {
    for (const auto& [metric, blocks] : r.rankings)
      if (!blocks.empty()) out.push_back({metric, blocks.front()});
  } else {
    for (const auto& [n, blocks] : r.blocks_by_n)
      if (!blocks.empty() && out.size() < 6) out.push_back({"n=" + std::to_string(n), blocks.front()});
  }
  return out;
}

// Colours by rank: a cell's shade is the share of measured pairs at or
// below its cosine, so the embeddings' low similarity to everything does
// not wash out the differences between blocks.
class RankScale {
 public:
  explicit RankScale(const ScoreResult& r) {
    for (size_t i = 0; i < r.cosine.size(); ++i)
      for (size_t j = i + 1; j < r.cosine.size(); ++j)
        if (r.cosine[i][j]) sorted_.push_back(*r.cosine[i][j]);
    std::sort(sorted_.begin(), sorted_.end());
  }
  double rank(double v) const {
    if (sorted_.size() < 2) return 1.0;
    const auto below = std::upper_bound(sorted_.begin(), sorted_.end(), v) - sorted_.begin();
    return std::clamp(static_cast<double>(below - 1) / static_cast<double>(sorted_.size() - 1), 0.0, 1.0);
  }
  // The cosine at rank q.
  double quantile(double q) const {
    if (sorted_.empty()) return 1.0;
    return sorted_[static_cast<size_t>(std::lround(q * static_cast<double>(sorted_.size() - 1)))];
  }

 private:
  std::vector<double> sorted_;
};

bool all_measured(const ScoreResult& r) {
  for (size_t i = 0; i < r.cosine.size(); ++i)
    for (size_t j = i; j < r.cosine.size(); ++j)
      if (!r.cosine[i][j]) return false;
  return true;
}

constexpr const char* kUnmeasured = "#d9d9d9";

// The upper triangle only (row = start, column = end of a block): the
// matrix is symmetric and blocks live there.
void heatmap(std::string& svg, const ScoreResult& r, double cell, const RankScale& scale) {
  const size_t P = r.cosine.size();
  for (size_t i = 0; i < P; ++i)
    for (size_t j = i; j < P; ++j) {
      const auto& v = r.cosine[i][j];
      const double x = kLeft + j * cell, y = kTop + i * cell;
      svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">)svg", x, y, cell, cell,
                         v ? color(i == j ? 1.0 : scale.rank(*v)) : kUnmeasured);
      svg += fmt::format("<title>cos(X^({}), X^({})) = {}</title></rect>\n", i, j,
                         v ? fmt::format("{:.5f}", *v) : "not measured");
    }
  const size_t step = std::max<size_t>(1, static_cast<size_t>(std::ceil(14 / cell)));
  for (size_t k = 0; k < P; k += step) {
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="middle">{}</text>)svg" "\n",
                       kLeft + (k + 0.5) * cell, kTop - 6, k);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="end">{}</text>)svg" "\n", kLeft - 4,
                       kTop + (k + 0.5) * cell + 3, k);
  }
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle">input of layer j (end of a block)</text>)svg" "\n",
                     kLeft + P * cell / 2, kTop - 22);
  svg += fmt::format(R"svg(<text x="14" y="{:.1f}" font-size="11" transform="rotate(-90 14 {:.1f})" text-anchor="middle">input of layer i (start)</text>)svg" "\n",
                     kTop + P * cell / 2, kTop + P * cell / 2);
}

// The colour bar with the cosine at each quarter of the ranks, and what
// grey means when some pair was not measured. Returns the height used.
double scale_legend(std::string& svg, const RankScale& scale, bool complete, double x, double y) {
  constexpr int kSteps = 24;
  constexpr double kWidth = 240;
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11">mean per-token cosine of the two inputs (shaded by rank)</text>)svg" "\n",
                     x, y);
  for (int s = 0; s < kSteps; ++s)
    svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.2f}" height="10" fill="{}"/>)svg", x + s * kWidth / kSteps,
                       y + 6, kWidth / kSteps + 0.3, color((s + 0.5) / kSteps));
  svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="10" fill="none" stroke="#999"/>)svg" "\n", x,
                     y + 6, kWidth);
  for (int q = 0; q <= 4; ++q) {
    const char* anchor = q == 0 ? "start" : q == 4 ? "end" : "middle";
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="{}">{:.3f}</text>)svg", x + kWidth * q / 4,
                       y + 28, anchor, scale.quantile(q / 4.0));
  }
  svg += "\n";
  if (complete) return 34;
  svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="10" height="10" fill="{}"/>)svg", x, y + 36, kUnmeasured);
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10">not measured</text>)svg" "\n", x + 16, y + 45);
  return 50;
}

void outline_marks(std::string& svg, const std::vector<Mark>& chosen, double cell, double legend_y) {
  for (size_t m = 0; m < chosen.size(); ++m) {
    const auto& b = chosen[m].block;
    const char* colour = kMarkColors[m % std::size(kMarkColors)];
    const double inset = 1.0 + 1.5 * static_cast<double>(m);
    svg += fmt::format(
        R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="{}" stroke-width="2"/>)svg" "\n",
        kLeft + b.end * cell + std::min(inset, cell / 3), kTop + b.start * cell + std::min(inset, cell / 3),
        std::max(1.0, cell - 2 * std::min(inset, cell / 3)), std::max(1.0, cell - 2 * std::min(inset, cell / 3)),
        colour);
    svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="10" height="10" fill="none" stroke="{}" stroke-width="2"/>)svg",
                       kLeft, legend_y + 14 * m - 9, colour);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11">{}: {}</text>)svg" "\n", kLeft + 16,
                       legend_y + 14 * m, svg_escape(chosen[m].label), svg_escape(describe_range({b.start, b.end})));
  }
}

// Bars of every candidate of the primary ranking, in layer order, the best
// in its mark's colour; returns their bottom edge.
double candidate_bars(std::string& svg, const ScoreResult& r, const std::vector<Mark>& chosen, double x0) {
  const auto ranking = r.rankings.find(r.metric);
  if (!r.n || ranking == r.rankings.end() || ranking->second.empty()) return 0;
  const char* best_colour = kMarkColors[0];
  for (size_t m = 0; m < chosen.size(); ++m)
    if (chosen[m].label == r.metric) best_colour = kMarkColors[m % std::size(kMarkColors)];
  auto blocks = ranking->second;
  const Block best = blocks.front();
  std::sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) { return a.start < b.start; });
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const auto& b : blocks) {
    low = std::min(low, b.score);
    high = std::max(high, b.score);
  }
  const double row = std::min(18.0, kMatrixPixels / static_cast<double>(blocks.size()));
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="12" font-weight="bold">{} of every block of {} layers</text>)svg" "\n",
                     x0, kTop - 22, svg_escape(r.metric), *r.n);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& b = blocks[i];
    // Bars from the worst to the best score, whichever direction is better.
    const double t = high > low ? (b.score - low) / (high - low) : 1.0;
    const bool is_best = b.start == best.start;
    const double y = kTop + i * row;
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" text-anchor="end">[{}, {})</text>)svg", x0 + 46,
                       y + row * 0.7, b.start, b.end);
    svg += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>)svg", x0 + 50, y + 1,
                       4 + 200 * t, row - 2, is_best ? best_colour : "#6baed6");
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10">{:.5g}</text>)svg" "\n", x0 + 258, y + row * 0.7,
                       b.score);
  }
  return kTop + static_cast<double>(blocks.size()) * row;
}

// About how wide `text` sets in sans-serif at `size` pixels.
double text_width(const std::string& text, double size) { return 0.6 * size * static_cast<double>(text.size()); }

}  // namespace

std::string score_svg(const ScoreResult& r) {
  const double P = static_cast<double>(std::max<size_t>(1, r.cosine.size()));
  const double cell = std::clamp(kMatrixPixels / P, 4.0, 28.0);
  const auto chosen = marks(r);
  const RankScale scale(r);
  const auto name = std::filesystem::path(r.model).lexically_normal().filename().string();
  const std::string title = (name.empty() ? r.model : name) + ": " + std::to_string(r.layers) + " layers";
  const std::string subtitle = std::to_string(r.calibration.samples) + " calibration windows of " +
                               std::to_string(r.calibration.seq_len) + " tokens; outlined: the best block of each ranking";
  std::string body;
  heatmap(body, r, cell, scale);
  const double legend_y = kTop + P * cell + 20;
  const double scale_height = scale_legend(body, scale, all_measured(r), kLeft, legend_y);
  const double marks_y = legend_y + scale_height + 18;
  outline_marks(body, chosen, cell, marks_y);
  const double bars_x = kLeft + P * cell + 24;
  const double bars_bottom = candidate_bars(body, r, chosen, bars_x);
  const double width = std::max({kLeft + P * cell + (r.n ? 360 : 24), kLeft + 330, 10 + text_width(title, 14) + 10,
                                 10 + text_width(subtitle, 11) + 10});
  const double height = std::max(marks_y + 14 * static_cast<double>(chosen.size()), bars_bottom) + 12;
  std::string svg = fmt::format(
      R"svg(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{:.0f}" height="{:.0f}" font-family="sans-serif">)svg"
      "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height);
  svg += fmt::format(R"svg(<text x="10" y="18" font-size="14" font-weight="bold">{}<title>{}</title></text>)svg" "\n",
                     svg_escape(title), svg_escape(r.model));
  svg += fmt::format(R"svg(<text x="10" y="36" font-size="11" fill="#444">{}</text>)svg" "\n", svg_escape(subtitle));
  svg += body;
  svg += "</svg>\n";
  return svg;
}

}  // namespace lp

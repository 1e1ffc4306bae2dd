// The pruning curve as a chart: held-out quality against the share of
// parameters removed, one line per metric, the chosen depth ringed and the
// budget's limits drawn as dashed lines.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "linearpatch/pipeline/results.h"
#include "pipeline/svg_escape.h"

namespace lp {
namespace {

constexpr double kWidth = 760, kHeight = 460;
constexpr double kLeft = 78, kRight = 200, kTop = 64, kBottom = 62;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"};
constexpr const char* kLimitColor = "#d62728";

std::optional<double> quality_of(const CurvePoint& p, CurveQuality q) {
  switch (q) {
    case CurveQuality::kPplRatio: return p.held_out.ppl_ratio;
    case CurveQuality::kKl: return p.held_out.kl;
    case CurveQuality::kRetained: return p.tasks ? p.tasks->retained.average : std::nullopt;
  }
  return std::nullopt;
}

std::string axis_label(CurveQuality q) {
  switch (q) {
    case CurveQuality::kPplRatio: return "held-out perplexity / dense perplexity";
    case CurveQuality::kKl: return "held-out KL to the dense model (nats/token)";
    case CurveQuality::kRetained: return "retained task performance";
  }
  return "";
}

// About five round tick values covering [low, high].
std::vector<double> ticks(double low, double high) {
  const double span = high - low;
  const double raw = span / 5;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) out.push_back(t);
  return out;
}

std::string tick_text(double v, double step) {
  const int digits = std::clamp(static_cast<int>(-std::floor(std::log10(step))) + 1, 0, 6);
  return fmt::format("{:.{}f}", v, step >= 1 ? 0 : digits);
}

struct Frame {
  double x_low, x_high, y_low, y_high;
  double px(double x) const { return kLeft + (x - x_low) / (x_high - x_low) * (kWidth - kLeft - kRight); }
  double py(double y) const { return kHeight - kBottom - (y - y_low) / (y_high - y_low) * (kHeight - kTop - kBottom); }
};

double removed_percent(const CurvePlot& plot, const CurvePoint& p) {
  return 100.0 * static_cast<double>(plot.parameters - p.parameters) / static_cast<double>(plot.parameters);
}

Frame frame_of(const CurvePlot& plot) {
  double x_high = 1, y_low = std::numeric_limits<double>::infinity(), y_high = -y_low;
  for (const auto& s : plot.series)
    for (const auto& p : s.points) {
      x_high = std::max(x_high, removed_percent(plot, p));
      if (const auto v = quality_of(p, plot.quality)) {
        y_low = std::min(y_low, *v);
        y_high = std::max(y_high, *v);
      }
    }
  for (const auto& l : plot.limits) {
    y_low = std::min(y_low, l.value);
    y_high = std::max(y_high, l.value);
  }
  if (plot.size_limit_percent) x_high = std::max(x_high, *plot.size_limit_percent);
  // The dense model is the reference point: ratio 1, KL 0, retained 1.
  const double dense = plot.quality == CurveQuality::kKl ? 0.0 : 1.0;
  y_low = std::min(y_low, dense);
  y_high = std::max(y_high, dense);
  if (!(y_high > y_low)) y_high = y_low + 1;
  const double pad = 0.06 * (y_high - y_low);
  return {0, x_high * 1.08, y_low - pad, y_high + pad};
}

void axes(std::string& svg, const CurvePlot& plot, const Frame& f) {
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;
  const auto xt = ticks(f.x_low, f.x_high), yt = ticks(f.y_low, f.y_high);
  for (const double t : xt) {
    svg += fmt::format(R"svg(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" stroke="#eee"/>)svg", f.px(t), y0, y1);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle">{}</text>)svg" "\n", f.px(t),
                       y0 + 16, tick_text(t, xt.size() > 1 ? xt[1] - xt[0] : 1));
  }
  for (const double t : yt) {
    svg += fmt::format(R"svg(<line x1="{0:.1f}" y1="{2:.1f}" x2="{1:.1f}" y2="{2:.1f}" stroke="#eee"/>)svg", x0, x1, f.py(t));
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="end">{}</text>)svg" "\n", x0 - 6,
                       f.py(t) + 4, tick_text(t, yt.size() > 1 ? yt[1] - yt[0] : 1));
  }
  svg += fmt::format(R"svg(<path d="M{:.1f},{:.1f} V{:.1f} H{:.1f}" fill="none" stroke="#333"/>)svg" "\n", x0, y1, y0, x1);
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle">parameters removed (% of {:.3g}M)</text>)svg" "\n",
                     (x0 + x1) / 2, y0 + 40, static_cast<double>(plot.parameters) / 1e6);
  const double ym = (y0 + y1) / 2;
  svg += fmt::format(R"svg(<text x="18" y="{0:.1f}" font-size="12" text-anchor="middle" transform="rotate(-90 18 {0:.1f})">{1}</text>)svg" "\n",
                     ym, svg_escape(axis_label(plot.quality)));
}

void limits(std::string& svg, const CurvePlot& plot, const Frame& f) {
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;
  for (const auto& l : plot.limits) {
    const double y = f.py(l.value);
    svg += fmt::format(R"svg(<line x1="{0:.1f}" y1="{2:.1f}" x2="{1:.1f}" y2="{2:.1f}" stroke="{3}" stroke-dasharray="6 4"/>)svg",
                       x0, x1, y, kLimitColor);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11" fill="{}">{}</text>)svg" "\n", x0 + 6, y - 5,
                       kLimitColor, svg_escape(l.label));
  }
  if (plot.size_limit_percent) {
    const double x = f.px(*plot.size_limit_percent);
    svg += fmt::format(R"svg(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" stroke="{3}" stroke-dasharray="6 4"/>)svg",
                       x, y0, y1, kLimitColor);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11" fill="{}">parameter target</text>)svg" "\n", x + 4,
                       y1 + 12, kLimitColor);
  }
}

void series(std::string& svg, const CurvePlot& plot, const Frame& f) {
  // Every line starts at the dense model: nothing removed, ratio 1, KL 0.
  const double dense_y = f.py(plot.quality == CurveQuality::kKl ? 0.0 : 1.0);
  svg += fmt::format(R"svg(<circle cx="{:.1f}" cy="{:.1f}" r="4" fill="#777"><title>dense model</title></circle>)svg", f.px(0),
                     dense_y);
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#555">dense</text>)svg" "\n", f.px(0) + 7,
                     dense_y + 14);
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const auto& line = plot.series[s];
    const char* colour = kColors[s % std::size(kColors)];
    std::string path = fmt::format("M{:.1f},{:.1f} ", f.px(0), dense_y);
    for (const auto& p : line.points) {
      const auto v = quality_of(p, plot.quality);
      if (!v) continue;
      path += fmt::format("L{:.1f},{:.1f} ", f.px(removed_percent(plot, p)), f.py(*v));
    }
    svg += fmt::format(R"svg(<path d="{}" fill="none" stroke="{}" stroke-width="2"/>)svg" "\n", path, colour);
    for (const auto& p : line.points) {
      const auto v = quality_of(p, plot.quality);
      if (!v) continue;
      const double x = f.px(removed_percent(plot, p)), y = f.py(*v);
      svg += fmt::format(R"svg(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"><title>{} layers {}: {:.5g}</title></circle>)svg",
                         x, y, colour, p.layers, svg_escape(describe_layers(p.removed)), *v);
      const bool chosen = line.chosen_layers && p.layers == *line.chosen_layers;
      svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="9" fill="{}" text-anchor="middle">{}</text>)svg" "\n", x,
                         y - (chosen ? 12 : 7), colour, p.layers);
      if (chosen)
        svg += fmt::format(R"svg(<circle cx="{:.1f}" cy="{:.1f}" r="8" fill="none" stroke="#111" stroke-width="2"/>)svg" "\n", x, y);
    }
  }
}

void legend(std::string& svg, const CurvePlot& plot) {
  const double x = kWidth - kRight + 16;
  double y = kTop + 6;
  for (size_t s = 0; s < plot.series.size(); ++s) {
    svg += fmt::format(R"svg(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2"/>)svg", x,
                       y - 4, x + 20, y - 4, kColors[s % std::size(kColors)]);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="11">{}</text>)svg" "\n", x + 26, y,
                       svg_escape(plot.series[s].label));
    y += 18;
  }
  y += 6;
  svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#444">numbers: layers removed</text>)svg" "\n", x, y);
  if (std::any_of(plot.series.begin(), plot.series.end(), [](const auto& s) { return s.chosen_layers.has_value(); })) {
    y += 18;
    svg += fmt::format(R"svg(<circle cx="{:.1f}" cy="{:.1f}" r="6" fill="none" stroke="#111" stroke-width="2"/>)svg", x + 6, y - 4);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#444">chosen depth</text>)svg" "\n", x + 18, y);
  }
  if (!plot.limits.empty() || plot.size_limit_percent) {
    y += 18;
    svg += fmt::format(R"svg(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-dasharray="6 4"/>)svg", x,
                       y - 4, x + 20, y - 4, kLimitColor);
    svg += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#444">budget</text>)svg" "\n", x + 26, y);
  }
}

}  // namespace

CurvePlot curve_plot(const PruneResult& r) {
  CurvePlot plot;
  plot.title = std::filesystem::path(r.model).lexically_normal().filename().string() + ": how many layers (" +
               std::to_string(r.layers) + ")";
  plot.parameters = r.parameters_before;
  CurveSeries line{r.metric + " + " + r.repair, r.curve, std::nullopt};
  if (r.budget) {
    line.chosen_layers = r.budget->chosen_layers;
    const auto limit = [&](const std::string& name) -> std::optional<double> {
      for (const auto& [n, v] : r.budget->limits)
        if (n == name) return v;
      return std::nullopt;
    };
    if (limit("max_ppl_ratio")) plot.quality = CurveQuality::kPplRatio;
    else if (limit("max_kl")) plot.quality = CurveQuality::kKl;
    else if (limit("min_retained")) plot.quality = CurveQuality::kRetained;
    const std::map<CurveQuality, std::string> names{{CurveQuality::kPplRatio, "max_ppl_ratio"},
                                                    {CurveQuality::kKl, "max_kl"},
                                                    {CurveQuality::kRetained, "min_retained"}};
    if (const auto v = limit(names.at(plot.quality)))
      plot.limits.push_back({fmt::format("{} {:.4g}", names.at(plot.quality), *v), *v});
    if (const auto t = limit("target_params"))
      plot.size_limit_percent = 100.0 * (1.0 - *t / static_cast<double>(r.parameters_before));
  }
  plot.series.push_back(std::move(line));
  for (const auto& [metric, curve] : r.compared_curves)
    plot.series.push_back({metric + " + " + r.repair, curve, std::nullopt});
  return plot;
}

std::string curve_svg(const CurvePlot& plot) {
  const auto f = frame_of(plot);
  std::string svg = fmt::format(
      R"svg(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{:.0f}" height="{:.0f}" font-family="sans-serif">)svg"
      "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      kWidth, kHeight);
  svg += fmt::format(R"svg(<text x="{:.1f}" y="24" font-size="15" font-weight="bold">{}</text>)svg" "\n", kLeft,
                     svg_escape(plot.title));
  svg += fmt::format(R"svg(<text x="{:.1f}" y="42" font-size="11" fill="#444">each point: the layers a depth removes, repaired, on the held-out calibration windows</text>)svg" "\n",
                     kLeft);
  axes(svg, plot, f);
  limits(svg, plot, f);
  series(svg, plot, f);
  legend(svg, plot);
  svg += "</svg>\n";
  return svg;
}

}  // namespace lp

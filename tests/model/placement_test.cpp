// Placement of decoder layers over devices with made-up capacities: ranges
// are contiguous and cover every layer, no device holds more than its
// capacity, work is balanced when memory allows, one device is what a
// single-device model does, and a brute force over every placement of
// small cases agrees on what fits and on the busiest device's work.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>

#include "linearpatch/model/placement.h"

namespace lp {
namespace {

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

PlacementRequest request(int64_t layers, uint64_t layer_bytes, uint64_t embed, uint64_t head,
                         std::vector<uint64_t> capacities) {
  return {std::vector<uint64_t>(static_cast<size_t>(layers), layer_bytes), embed, head, std::move(capacities)};
}

uint64_t range_bytes(const PlacementRequest& r, const LayerRange& range) {
  uint64_t bytes = 0;
  for (int64_t l = range.start; l < range.end; ++l) bytes += r.layer_bytes[static_cast<size_t>(l)];
  return bytes;
}

uint64_t held_bytes(const PlacementRequest& r, const Placement& p, size_t d) {
  return range_bytes(r, p.layers[d]) + (d == p.embed_device ? r.embed_bytes : 0) +
         (d == p.head_device ? r.head_bytes : 0);
}

uint64_t work(const PlacementRequest& r, const Placement& p, size_t d) {
  return range_bytes(r, p.layers[d]) + (d == p.head_device ? r.head_bytes : 0);
}

uint64_t busiest(const PlacementRequest& r, const Placement& p) {
  uint64_t most = 0;
  for (size_t d = 0; d < p.layers.size(); ++d) most = std::max(most, work(r, p, d));
  return most;
}

// The invariants every placement must satisfy.
void expect_valid(const PlacementRequest& r, const Placement& p) {
  ASSERT_EQ(p.layers.size(), r.capacities.size());
  int64_t next = 0;
  for (size_t d = 0; d < p.layers.size(); ++d) {
    EXPECT_EQ(p.layers[d].start, next) << "device " << d << " does not continue where the previous one ended";
    EXPECT_LE(p.layers[d].start, p.layers[d].end);
    next = p.layers[d].end;
    EXPECT_LE(held_bytes(r, p, d), r.capacities[d]) << "device " << d << " over capacity";
    if (p.layers[d].size() > 0) {
      EXPECT_GE(d, p.embed_device) << "layers before the embeddings";
      EXPECT_LE(d, p.head_device) << "layers after the head";
    }
  }
  EXPECT_EQ(next, static_cast<int64_t>(r.layer_bytes.size()));
  EXPECT_LE(p.embed_device, p.head_device);
}

std::vector<LayerRange> ranges(std::initializer_list<std::pair<int64_t, int64_t>> list) {
  std::vector<LayerRange> out;
  for (const auto& [start, end] : list) out.push_back({start, end});
  return out;
}

TEST(Placement, OneDeviceHoldsEverythingExactlyWhenTheModelFits) {
  // As a single-device model decides: resident when the total fits, else streamed.
  const auto fits = request(6, 10, 7, 9, {76});
  const auto p = place_layers(fits);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->layers, ranges({{0, 6}}));
  EXPECT_EQ(p->embed_device, 0u);
  EXPECT_EQ(p->head_device, 0u);
  EXPECT_FALSE(place_layers(request(6, 10, 7, 9, {75})));
  EXPECT_TRUE(place_layers(request(6, 10, 7, 9, {kUnlimited})));
}

TEST(Placement, EqualDevicesShareTheWorkEvenly) {
  const auto r = request(80, 10, 5, 0, {kUnlimited, kUnlimited, kUnlimited, kUnlimited});
  const auto p = place_layers(r);
  ASSERT_TRUE(p);
  expect_valid(r, *p);
  EXPECT_EQ(p->layers, ranges({{0, 20}, {20, 40}, {40, 60}, {60, 80}}));
  EXPECT_EQ(p->embed_device, 0u);
  EXPECT_EQ(p->head_device, 3u);
}

TEST(Placement, TheHeadCountsAsWorkOnTheLastDevice) {
  // 9 layers of 10 and a head of 10: 5 layers, then 4 layers + head.
  const auto r = request(9, 10, 10, 10, {kUnlimited, kUnlimited});
  const auto p = place_layers(r);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->layers, ranges({{0, 5}, {5, 9}}));
  EXPECT_EQ(busiest(r, *p), 50u);
}

TEST(Placement, BalancedRangesAreEvenNotJustMinimalAtTheTop) {
  // 10 layers on 3 devices: the busiest holds 4 either way; 4 + 3 + 3, not 4 + 4 + 2.
  const auto r = request(10, 1, 0, 0, {kUnlimited, kUnlimited, kUnlimited});
  const auto p = place_layers(r);
  ASSERT_TRUE(p);
  std::vector<int64_t> sizes;
  for (const auto& range : p->layers) sizes.push_back(range.size());
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int64_t>{3, 3, 4}));
}

TEST(Placement, UnevenDevicesTakeWhatFits) {
  // The first device holds the embeddings and 2 layers; the rest goes to the large one.
  const auto r = request(8, 10, 10, 10, {30, 200});
  const auto p = place_layers(r);
  ASSERT_TRUE(p);
  expect_valid(r, *p);
  EXPECT_EQ(p->layers, ranges({{0, 2}, {2, 8}}));
}

TEST(Placement, ADeviceTooSmallForAnythingIsSkipped) {
  {  // first: the embeddings go to the next device
    const auto r = request(4, 10, 10, 10, {5, 100, 100});
    const auto p = place_layers(r);
    ASSERT_TRUE(p);
    expect_valid(r, *p);
    EXPECT_EQ(p->embed_device, 1u);
    EXPECT_EQ(p->layers[0].size(), 0);
  }
  {  // in the middle: the stream passes it by
    const auto r = request(4, 10, 0, 0, {20, 5, 20});
    const auto p = place_layers(r);
    ASSERT_TRUE(p);
    expect_valid(r, *p);
    EXPECT_EQ(p->layers, ranges({{0, 2}, {2, 2}, {2, 4}}));
  }
  {  // last: the head stays with the previous device
    const auto r = request(4, 10, 10, 10, {100, 100, 5});
    const auto p = place_layers(r);
    ASSERT_TRUE(p);
    expect_valid(r, *p);
    EXPECT_EQ(p->head_device, 1u);
  }
}

TEST(Placement, ExactlyFittingDevicesAreFilledToTheByte) {
  const auto r = request(4, 10, 5, 5, {25, 25});
  const auto p = place_layers(r);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->layers, ranges({{0, 2}, {2, 4}}));
  EXPECT_EQ(held_bytes(r, *p, 0), 25u);
  EXPECT_EQ(held_bytes(r, *p, 1), 25u);
}

TEST(Placement, DoesNotFitWhenTheTotalOrTheLayersDoNot) {
  EXPECT_FALSE(place_layers(request(4, 10, 5, 5, {25, 24})));
  // Enough bytes in total, but a layer cannot be split: 3 layers of 10 on two devices of 15.
  EXPECT_FALSE(place_layers(request(3, 10, 0, 0, {15, 15})));
  EXPECT_FALSE(place_layers(request(2, 10, 0, 0, {})));
}

// Every placement of small cases, by enumeration: embeddings' device f,
// head's device k, and the end of every range in between.
std::optional<uint64_t> brute_force_busiest(const PlacementRequest& r) {
  const size_t n = r.capacities.size();
  const auto L = static_cast<int64_t>(r.layer_bytes.size());
  std::optional<uint64_t> best;
  for (size_t f = 0; f < n; ++f)
    for (size_t k = f; k < n; ++k) {
      Placement p;
      p.embed_device = f;
      p.head_device = k;
      p.layers.assign(n, {});
      std::function<void(size_t, int64_t)> assign = [&](size_t d, int64_t begin) {
        if (d == n) {
          if (begin != L) return;
          for (size_t e = 0; e < n; ++e)
            if (held_bytes(r, p, e) > r.capacities[e]) return;
          const uint64_t most = busiest(r, p);
          if (!best || most < *best) best = most;
          return;
        }
        const bool used = d >= f && d <= k;
        for (int64_t end = begin; end <= (used ? L : begin); ++end) {
          p.layers[d] = {begin, end};
          assign(d + 1, end);
        }
      };
      assign(0, 0);
    }
  return best;
}

TEST(Placement, AgreesWithABruteForceOnRandomSmallCases) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    PlacementRequest r;
    const int64_t L = std::uniform_int_distribution<int64_t>(0, 6)(rng);
    const size_t n = std::uniform_int_distribution<size_t>(1, 4)(rng);
    for (int64_t l = 0; l < L; ++l) r.layer_bytes.push_back(std::uniform_int_distribution<uint64_t>(1, 9)(rng));
    r.embed_bytes = std::uniform_int_distribution<uint64_t>(0, 9)(rng);
    r.head_bytes = std::uniform_int_distribution<uint64_t>(0, 9)(rng);
    for (size_t d = 0; d < n; ++d) r.capacities.push_back(std::uniform_int_distribution<uint64_t>(0, 30)(rng));
    const auto expected = brute_force_busiest(r);
    const auto p = place_layers(r);
    ASSERT_EQ(p.has_value(), expected.has_value()) << "trial " << trial;
    if (!p) continue;
    expect_valid(r, *p);
    EXPECT_EQ(busiest(r, *p), *expected) << "trial " << trial;
  }
}

}  // namespace
}  // namespace lp

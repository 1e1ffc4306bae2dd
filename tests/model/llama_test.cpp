// Properties of the LLaMA forward pass that hold for any weights, checked on
// tiny random models: causality, batch independence, GQA == MHA with
// repeated KV heads, attention against a naive per-head reference, the
// observer contract, and the loader's refusals.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "linearpatch/core/error.h"
#include "linearpatch/model/llama.h"
#include "model/attention.h"
#include "model/device_testing.h"
#include "model/rope.h"
#include "support/test_env.h"
#include "support/tiny_model.h"

namespace lp {
namespace {

void expect_close(const at::Tensor& a, const at::Tensor& b, double atol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, atol) << what << ": max abs difference " << diff;
}

class RecordingObserver : public ForwardObserver {
 public:
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    positions.push_back(layer);
    inputs.push_back(hidden.clone());
  }
  std::vector<int64_t> positions;
  std::vector<at::Tensor> inputs;
};

TEST(LlamaModel, LogitsOfAPrefixDoNotDependOnLaterTokens) {
  const auto config = test::tiny_config();
  LlamaModel model(config, test::random_weights(config, 1));
  const auto ids = test::random_ids(1, 20, config.vocab_size, 2);
  const auto full = model.forward(ids);
  const auto prefix = model.forward(ids.narrow(1, 0, 12));
  expect_close(full.narrow(1, 0, 12), prefix, 1e-4, "prefix logits");
}

TEST(LlamaModel, WindowsInABatchAreIndependent) {
  const auto config = test::tiny_config();
  LlamaModel model(config, test::random_weights(config, 3));
  const auto ids = test::random_ids(3, 16, config.vocab_size, 4);
  const auto batched = model.forward(ids);
  for (int64_t b = 0; b < 3; ++b)
    expect_close(batched[b], model.forward(ids.narrow(0, b, 1))[0], 1e-4, "window " + std::to_string(b));
}

TEST(LlamaModel, GroupedQueryAttentionEqualsMultiHeadWithRepeatedKvHeads) {
  auto gqa = test::tiny_config();
  auto weights = test::random_weights(gqa, 5);
  auto mha = gqa;
  mha.num_key_value_heads = gqa.num_attention_heads;
  auto mha_weights = weights;
  const int64_t group = gqa.num_attention_heads / gqa.num_key_value_heads;
  for (int64_t l = 0; l < gqa.num_hidden_layers; ++l)
    for (const char* proj : {"self_attn.k_proj.weight", "self_attn.v_proj.weight"}) {
      const auto name = layer_tensor_name(l, proj);
      // [Hkv * D, C] -> [H * D, C]: each KV head serves `group` query heads.
      mha_weights[name] = weights[name].view({gqa.num_key_value_heads, gqa.head_dim, -1})
                              .repeat_interleave(group, 0)
                              .reshape({gqa.num_attention_heads * gqa.head_dim, -1});
    }
  const auto ids = test::random_ids(2, 10, gqa.vocab_size, 6);
  expect_close(LlamaModel(gqa, weights).forward(ids), LlamaModel(mha, mha_weights).forward(ids), 1e-4, "logits");
}

// Each query t attends to keys max(0, t - window + 1)..t (all of 0..t
// without a window), one head at a time.
at::Tensor naive_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), group = H / k.size(1);
  auto expected = at::empty({B, T, H * D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t first = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
        const auto keys = k[b][h / group].narrow(0, first, t + 1 - first);
        const auto values = v[b][h / group].narrow(0, first, t + 1 - first);
        const auto scores = at::matmul(keys, q[b][h][t]) / std::sqrt(double(D));
        expected[b][t].narrow(0, h * D, D).copy_(at::matmul(at::softmax(scores, 0), values));
      }
  return expected;
}

TEST(Attention, MatchesANaivePerHeadImplementation) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t B = 2, H = 4, Hkv = 2, T = 9, D = 8;
  const auto q = at::randn({B, H, T, D}, gen);
  const auto k = at::randn({B, Hkv, T, D}, gen);
  const auto v = at::randn({B, Hkv, T, D}, gen);
  const auto expected = naive_attention(q, k, v, 0);
  expect_close(causal_attention_explicit(q, k, v), expected, 1e-5, "attention");
  expect_close(causal_attention(q, k, v), expected, 1e-5, "attention (dispatch)");
  expect_close(causal_attention(q, k, v, T), expected, 1e-5, "a window covering the sequence");
}

TEST(Attention, SlidingWindowMatchesTheNaiveWindowInEveryChunking) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  const int64_t B = 1, H = 4, Hkv = 2, T = 13, D = 8;
  const auto q = at::randn({B, H, T, D}, gen);
  const auto k = at::randn({B, Hkv, T, D}, gen);
  const auto v = at::randn({B, Hkv, T, D}, gen);
  for (const int64_t window : {1, 3, 4, 12}) {
    const auto expected = naive_attention(q, k, v, window);
    expect_close(causal_attention(q, k, v, window), expected, 1e-5, "window " + std::to_string(window));
    // Chunks of query rows skip keys no row of the chunk can see.
    for (const int64_t rows : {1, 2, 5})
      expect_close(causal_attention_explicit(q, k, v, window, rows), expected, 1e-5,
                   "window " + std::to_string(window) + " in chunks of " + std::to_string(rows));
  }
  EXPECT_GT((causal_attention(q, k, v, 3) - causal_attention(q, k, v)).abs().max().item<double>(), 1e-3)
      << "a window shorter than the sequence must change the result";
}

at::Tensor reference_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

// The attention half of decoder layer 0 written out per family rule:
// biases where the config has them, Qwen3's per-head norm of q and k
// before RoPE, the layer's window.
at::Tensor reference_attention_half(const LlamaConfig& c, const TensorMap& w, const at::Tensor& h) {
  const int64_t B = h.size(0), T = h.size(1), D = c.head_dim;
  auto name = [](const std::string& s) { return layer_tensor_name(0, s); };
  auto project = [&](const char* proj, const at::Tensor& x) {
    const auto bias = w.count(name(std::string("self_attn.") + proj + ".bias"))
                          ? w.at(name(std::string("self_attn.") + proj + ".bias"))
                          : at::Tensor();
    return at::linear(x, w.at(name(std::string("self_attn.") + proj + ".weight")), bias);
  };
  const auto x = reference_rms_norm(h, w.at(name("input_layernorm.weight")), c.rms_norm_eps);
  auto q = project("q_proj", x).view({B, T, c.num_attention_heads, D});
  auto k = project("k_proj", x).view({B, T, c.num_key_value_heads, D});
  const auto v = project("v_proj", x).view({B, T, c.num_key_value_heads, D}).transpose(1, 2);
  if (c.qk_norm) {
    q = reference_rms_norm(q, w.at(name("self_attn.q_norm.weight")), c.rms_norm_eps);
    k = reference_rms_norm(k, w.at(name("self_attn.k_norm.weight")), c.rms_norm_eps);
  }
  const auto tables = rope_tables(rope_inverse_frequencies(c), T, at::kFloat);
  q = apply_rope(q.transpose(1, 2), tables);
  k = apply_rope(k.transpose(1, 2), tables);
  return h + project("o_proj", naive_attention(q, k, v, c.attention_windows[0]));
}

TEST(LlamaModel, EachFamilysAttentionFollowsItsRules) {
  struct Case {
    const char* name;
    LlamaConfig config;
  };
  auto qwen3_with_bias = test::tiny_config(ModelFamily::kQwen3);
  qwen3_with_bias.qkv_bias = qwen3_with_bias.o_bias = true;
  auto mistral_window = test::tiny_config(ModelFamily::kMistral);
  mistral_window.attention_windows.assign(6, 5);
  auto wide_heads = test::tiny_config(ModelFamily::kQwen3);
  wide_heads.head_dim = 20;  // 4 heads x 20 = 80 != hidden 48, as Qwen3 and Mistral-Nemo have
  for (const auto& [name, config] : std::vector<Case>{{"qwen2", test::tiny_config(ModelFamily::kQwen2)},
                                                       {"qwen3", test::tiny_config(ModelFamily::kQwen3)},
                                                       {"qwen3 with biases", qwen3_with_bias},
                                                       {"mistral window 5", mistral_window},
                                                       {"head_dim 20", wide_heads}}) {
    const auto weights = test::random_weights(config, 11);
    const LlamaModel model(config, weights);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
    const auto h = at::randn({2, 11, config.hidden_size}, gen);
    expect_close(model.trace_layer(0, h).after_attention, reference_attention_half(config, weights, h), 1e-4, name);
  }
}

// On CUDA devices q/k/v are stacked into one product; the seam stacks them
// on the CPU as well. Same logits for every family shape, and an edited
// projection (a repair) is used, never a stale stacked copy.
TEST(LlamaModel, StackedProjectionsGiveTheSameLogitsInEveryFamily) {
  auto llama_biases = test::tiny_config();
  llama_biases.mlp_bias = llama_biases.o_bias = true;
  auto qwen3_with_bias = test::tiny_config(ModelFamily::kQwen3);
  qwen3_with_bias.qkv_bias = true;
  auto wide_heads = test::tiny_config(ModelFamily::kQwen3);
  wide_heads.head_dim = 20;
  auto mha = test::tiny_config(ModelFamily::kMistral);
  mha.num_key_value_heads = mha.num_attention_heads;
  for (const auto& [name, config] : std::vector<std::pair<std::string, LlamaConfig>>{
           {"llama (GQA)", test::tiny_config()},
           {"llama with MLP biases", llama_biases},
           {"qwen2 (q/k/v biases)", test::tiny_config(ModelFamily::kQwen2)},
           {"qwen3 (q/k norms)", test::tiny_config(ModelFamily::kQwen3)},
           {"qwen3 with biases", qwen3_with_bias},
           {"head_dim 20", wide_heads},
           {"mistral, no GQA", mha}}) {
    const auto weights = test::random_weights(config, 21);
    const auto ids = test::random_ids(2, 9, config.vocab_size, 22);
    const LlamaModel plain(config, weights);
    stack_projections_on_cpu_for_tests(true);
    const LlamaModel stacked(config, weights);
    stack_projections_on_cpu_for_tests(false);
    const auto q = stacked.weight(layer_tensor_name(1, "self_attn.q_proj.weight"));
    const auto k = stacked.weight(layer_tensor_name(1, "self_attn.k_proj.weight"));
    ASSERT_EQ(static_cast<const char*>(k.data_ptr()), static_cast<const char*>(q.data_ptr()) + q.nbytes()) << name;
    const auto logits = plain.forward(ids);
    expect_close(stacked.forward(ids), logits, 1e-5, name);

    auto gen = at::make_generator<at::CPUGeneratorImpl>(23);
    TensorMap edits;
    for (const char* suffix : {"self_attn.v_proj.weight", "self_attn.q_proj.bias"}) {
      const auto tensor_name = layer_tensor_name(1, suffix);
      if (!weights.count(tensor_name)) continue;  // a family without q/k/v biases
      edits[tensor_name] = weights.at(tensor_name) + 0.05 * at::randn(weights.at(tensor_name).sizes(), gen);
    }
    const auto edited_logits = plain.with_replaced_weights(edits).forward(ids);
    EXPECT_GT((edited_logits - logits).abs().max().item<double>(), 1e-3) << name << ": the edit changes nothing";
    expect_close(stacked.with_replaced_weights(edits).forward(ids), edited_logits, 1e-5, name + ", edited");
  }
}

TEST(Rope, PositionZeroIsTheIdentityAndNormsArePreserved) {
  auto config = test::tiny_config();
  const auto tables = rope_tables(rope_inverse_frequencies(config), 5, at::kFloat);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const auto x = at::randn({1, 2, 5, config.head_dim}, gen);
  const auto rotated = apply_rope(x, tables);
  expect_close(rotated.select(2, 0), x.select(2, 0), 1e-6, "position 0");
  expect_close(rotated.norm(2, -1), x.norm(2, -1), 1e-5, "norms");
}

TEST(Rope, Llama3ScalingFollowsTheTransformersFormula) {
  auto config = test::tiny_config();
  config.head_dim = 128;
  config.rope_theta = 500000.0;
  config.rope_scaling = {RopeScaling::Type::kLlama3, 8.0, 1.0, 4.0, 8192};
  const auto scaled = rope_inverse_frequencies(config);
  config.rope_scaling = {};
  const auto plain = rope_inverse_frequencies(config);
  for (int64_t i = 0; i < 64; ++i) {
    const double f = plain[i].item<double>(), wavelen = 2 * M_PI / f;
    double expected = f;
    if (wavelen > 8192.0) expected = f / 8.0;
    else if (wavelen >= 2048.0) {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      expected = (1 - smooth) * f / 8.0 + smooth * f;
    }
    EXPECT_NEAR(scaled[i].item<double>(), expected, 1e-6 * f) << "frequency " << i;
  }
}

TEST(LlamaModel, ObserverSeesEveryPositionOnceAlsoInSplitRuns) {
  const auto config = test::tiny_config();
  LlamaModel model(config, test::random_weights(config, 9));
  const auto ids = test::random_ids(2, 7, config.vocab_size, 10);
  RecordingObserver full;
  const auto logits = model.forward(ids, &full);
  ASSERT_EQ(full.positions.size(), size_t(config.num_hidden_layers + 1));
  for (int64_t p = 0; p <= config.num_hidden_layers; ++p) {
    EXPECT_EQ(full.positions[p], p);
    EXPECT_EQ(full.inputs[p].sizes(), at::IntArrayRef({2, 7, config.hidden_size}));
  }
  RecordingObserver split;
  auto h = model.run_layers(model.embed(ids), 0, 2, &split);
  h = model.run_layers(h, 2, config.num_hidden_layers, &split);
  ASSERT_EQ(split.positions, full.positions);
  expect_close(model.lm_head(model.final_norm(h)), logits, 1e-5, "split run logits");
}

TEST(LlamaModel, WithLayersRemovesLayersAndAppliesPatches) {
  const auto config = test::tiny_config();
  LlamaModel model(config, test::random_weights(config, 11));
  const auto ids = test::random_ids(1, 8, config.vocab_size, 12);
  // Keeping every layer with an identity patch changes nothing.
  const auto eye = at::eye(config.hidden_size);
  expect_close(model.with_layers({0, 1, 2, 3, 4, 5}, {{3, eye}}).forward(ids), model.forward(ids), 1e-5, "identity patch");
  // Dropping layers 2 and 3 equals running layers 0, 1, 4, 5 by hand, with
  // the patch applied to the stream entering old layer 4.
  const auto patch = eye * 1.5;
  const auto pruned = model.with_layers({0, 1, 4, 5}, {{2, patch}});
  EXPECT_EQ(pruned.num_layers(), 4);
  auto h = model.run_layers(model.embed(ids), 0, 2);
  h = at::matmul(h, patch);
  h = model.run_layers(h, 4, 6);
  expect_close(pruned.forward(ids), model.lm_head(model.final_norm(h)), 1e-4, "pruned + patched logits");
}

TEST(LlamaModel, TiedEmbeddingsServeAsTheHead) {
  auto config = test::tiny_config();
  config.tie_word_embeddings = true;
  auto weights = test::random_weights(config, 13);
  LlamaModel model(config, weights);
  const auto ids = test::random_ids(1, 4, config.vocab_size, 14);
  auto hidden = model.final_norm(model.run_layers(model.embed(ids), 0, config.num_hidden_layers));
  expect_close(model.forward(ids), at::matmul(hidden, weights["model.embed_tokens.weight"].t()), 1e-5, "tied head");
}

TEST(LlamaModel, LoadsACheckpointWrittenInBf16) {
  const auto config = test::tiny_config();
  auto weights = test::random_weights(config, 15);
  test::TempDir dir;
  test::write_checkpoint(dir.path(), config, weights);
  for (auto& [name, w] : weights) w = w.to(at::kBFloat16).to(at::kFloat);  // what the file holds
  const auto ids = test::random_ids(1, 6, config.vocab_size, 16);
  const auto loaded = LlamaModel::load(dir.path());
  EXPECT_EQ(loaded.compute_dtype(), at::kFloat);
  expect_close(loaded.forward(ids), LlamaModel(config, weights).forward(ids), 1e-5, "loaded logits");
}

TEST(LlamaModel, RefusesWrongShapesMissingAndUnexpectedTensors) {
  const auto config = test::tiny_config();
  auto expect_refusal = [&](TensorMap weights, const std::string& needle) {
    try {
      LlamaModel model(config, std::move(weights));
      ADD_FAILURE() << "accepted weights that should fail with '" << needle << "'";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto wrong_shape = test::random_weights(config, 17);
  wrong_shape["model.layers.2.mlp.up_proj.weight"] = at::zeros({95, 48});
  expect_refusal(wrong_shape, "'model.layers.2.mlp.up_proj.weight' has shape [95, 48], expected [96, 48]");
  auto missing = test::random_weights(config, 17);
  missing.erase("model.layers.5.self_attn.o_proj.weight");
  expect_refusal(missing, "missing tensor 'model.layers.5.self_attn.o_proj.weight'");
  auto extra = test::random_weights(config, 17);
  extra["model.layers.6.mlp.up_proj.weight"] = at::zeros({96, 48});
  expect_refusal(extra, "'model.layers.6.mlp.up_proj.weight'");
}

}  // namespace
}  // namespace lp

namespace lp {
namespace {

TEST(LlamaModel, HeadAtSelectedIdsEqualsTheFullHeadGathered) {
  const auto config = test::tiny_config();
  LlamaModel model(config, test::random_weights(config, 19));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20);
  const auto normed = at::randn({2, 5, config.hidden_size}, gen);
  const auto ids = at::randint(config.vocab_size, {2, 5, 7}, gen, at::kLong);
  const auto expected = model.lm_head(normed).gather(-1, ids);
  EXPECT_LT((model.lm_head_at(normed, ids) - expected).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace lp

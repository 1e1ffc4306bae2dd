// Synthetic checkpoints: what `linearpatch synth` writes must load through the
// project's own readers (config, sharded safetensors, tokenizer, model), be
// reproducible from its seed, and keep the residual stream well-behaved so
// block scores on it mean something.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/model/llama.h"
#include "linearpatch/model/synthetic.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {

// 4 layers, hidden 64 (8 heads of 8, 2 KV heads), vocab 300: 256 byte tokens
// and 44 special tokens, so BOS = 256 and EOS = 257.
SyntheticSpec tiny_spec(uint64_t seed = 1) {
  SyntheticSpec spec;
  spec.config = synthetic_config(4, 64, 160, 8, 2, 300, /*tie_word_embeddings=*/false);
  spec.seed = seed;
  spec.max_shard_bytes = 60000;  // several shards, one tensor (the embedding) larger than a shard
  return spec;
}

class RmsObserver : public ForwardObserver {
 public:
  void on_layer_input(int64_t layer, const at::Tensor& hidden) override {
    rms.push_back(hidden.pow(2).mean().sqrt().item<double>());
    inputs.push_back(hidden.clone());
  }
  std::vector<double> rms;
  std::vector<at::Tensor> inputs;
};

double mean_token_cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a, b, -1).mean().item<double>();
}

TEST(Synthetic, CheckpointLoadsShardedWithItsTokenizer) {
  const auto spec = tiny_spec();
  test::TempDir dir;
  const auto summary = write_synthetic_checkpoint(dir.path(), spec);
  EXPECT_EQ(summary.parameters, spec.config.parameter_count());
  EXPECT_EQ(summary.tensor_bytes, uint64_t(summary.parameters) * 2);

  const io::Checkpoint checkpoint(dir.path());
  EXPECT_TRUE(checkpoint.sharded());
  EXPECT_GT(checkpoint.shards().size(), 3u);
  EXPECT_EQ(checkpoint.total_tensor_bytes(), summary.tensor_bytes);
  EXPECT_TRUE(checkpoint.contains("lm_head.weight"));
  EXPECT_EQ(checkpoint.tensor("model.layers.3.mlp.down_proj.weight").info->shape, (std::vector<int64_t>{64, 160}));

  const auto config = parse_llama_config(checkpoint.config_text(), "config.json");
  EXPECT_EQ(config.num_hidden_layers, 4);
  EXPECT_EQ(config.head_dim, 8);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.dtype, "bfloat16");
  ASSERT_TRUE(config.bos_token_id.has_value());
  EXPECT_EQ(*config.bos_token_id, 256);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{257});

  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->vocab_size(), 300);
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int32_t>(256));
  EXPECT_EQ(tokenizer->eos_id(), std::optional<int32_t>(257));
  const std::string text = "The cat sat.\n\nÜber 42 <|end_of_text|>";
  const auto ids = tokenizer->encode(text, /*add_special=*/true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 256);
  EXPECT_EQ(ids.back(), 257);  // special-token text is matched
  for (size_t i = 1; i + 1 < ids.size(); ++i) EXPECT_LT(ids[i], 256) << "position " << i;
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("Über 42 tokens", false)), "Über 42 tokens");

  const auto model = LlamaModel::load(dir.path());
  const auto logits = model.forward(at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1}));
  EXPECT_EQ(logits.sizes(), at::IntArrayRef({1, int64_t(ids.size()), 300}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(Synthetic, SmallCheckpointIsOneFileAndTiedHeadIsOmitted) {
  auto spec = tiny_spec();
  spec.config = synthetic_config(2, 32, 64, 4, 4, 260, /*tie_word_embeddings=*/true);
  spec.config.dtype = "float32";
  spec.max_shard_bytes = 5'000'000'000;
  test::TempDir dir;
  const auto summary = write_synthetic_checkpoint(dir.path(), spec);
  EXPECT_EQ(summary.files.back(), "model.safetensors");
  const io::Checkpoint checkpoint(dir.path());
  EXPECT_FALSE(checkpoint.sharded());
  EXPECT_FALSE(checkpoint.contains("lm_head.weight"));
  EXPECT_EQ(checkpoint.tensor("model.norm.weight").info->dtype, io::DType::kF32);
  // vocab 260: four special tokens at the top.
  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int32_t>(256));
  EXPECT_NO_THROW(LlamaModel::load(dir.path()));
}

TEST(Synthetic, BytesDependOnTheSeedOnlyNotOnTheThreadCount) {
  auto spec = tiny_spec(7);
  spec.max_shard_bytes = 1ull << 40;
  const int threads = at::get_num_threads();
  test::TempDir a, b, c;
  at::set_num_threads(1);
  write_synthetic_checkpoint(a.path(), spec);
  at::set_num_threads(std::max(2, threads));
  write_synthetic_checkpoint(b.path(), spec);
  spec.seed = 8;
  write_synthetic_checkpoint(c.path(), spec);
  at::set_num_threads(threads);
  const auto bytes = test::read_file(a / "model.safetensors");
  EXPECT_EQ(bytes, test::read_file(b / "model.safetensors"));
  EXPECT_NE(bytes, test::read_file(c / "model.safetensors"));
}

TEST(Synthetic, WeightsHaveTheInitialisationScale) {
  auto spec = tiny_spec();
  spec.config = synthetic_config(1, 256, 512, 4, 4, 300, false);
  spec.config.dtype = "float32";
  test::TempDir dir;
  write_synthetic_checkpoint(dir.path(), spec);
  const io::Checkpoint checkpoint(dir.path());
  const auto ref = checkpoint.tensor("model.layers.0.mlp.up_proj.weight");
  const auto up = at::from_blob(const_cast<uint8_t*>(ref.data()), {512, 256}, at::kFloat);
  EXPECT_NEAR(up.mean().item<double>(), 0.0, 1e-3);
  EXPECT_NEAR(up.std().item<double>(), 0.02, 5e-4);
  const auto norm = checkpoint.tensor("model.layers.0.input_layernorm.weight");
  EXPECT_TRUE(at::from_blob(const_cast<uint8_t*>(norm.data()), {256}, at::kFloat).eq(1.0).all().item<bool>());
}

// 32 layers: each adds an update of similar size, so the stream's RMS grows
// roughly like sqrt(depth), and neighbouring layer inputs are more alike
// deeper down, as in trained LLaMA models.
TEST(Synthetic, ResidualStreamStaysBoundedOver32Layers) {
  auto spec = tiny_spec();
  spec.config = synthetic_config(32, 256, 512, 4, 2, 300, false);
  spec.config.dtype = "float32";
  test::TempDir dir;
  write_synthetic_checkpoint(dir.path(), spec);
  const auto model = LlamaModel::load(dir.path());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  RmsObserver observer;
  model.forward(at::randint(256, {2, 64}, gen, at::kLong), &observer);
  ASSERT_EQ(observer.rms.size(), 33u);
  for (size_t l = 1; l < observer.rms.size(); ++l) {
    ASSERT_TRUE(std::isfinite(observer.rms[l]));
    const double depth_ratio = observer.rms[l] / observer.rms[1];
    EXPECT_LT(depth_ratio, 3.0 * std::sqrt(double(l))) << "layer " << l;
    EXPECT_GT(depth_ratio, 0.5) << "layer " << l;
  }
  const double early = mean_token_cosine(observer.inputs[2], observer.inputs[6]);
  const double late = mean_token_cosine(observer.inputs[26], observer.inputs[30]);
  EXPECT_GT(late, early);
  EXPECT_GT(late, 0.5);
  EXPECT_LT(late, 0.99);
}

TEST(Synthetic, NamedShapesHaveThePublishedSizes) {
  const auto l3 = synthetic_shape("llama3-8b");
  EXPECT_EQ(l3.parameter_count(), 8030261248);
  EXPECT_EQ(l3.head_dim, 128);
  EXPECT_EQ(l3.bos_token_id, std::optional<int64_t>(128000));
  EXPECT_EQ(l3.eos_token_ids, std::vector<int64_t>{128001});
  EXPECT_EQ(synthetic_shape("llama2-7b").parameter_count(), 6738415616);
  const auto l32 = synthetic_shape("llama3.2-1b");
  EXPECT_EQ(l32.parameter_count(), 1235814400);
  EXPECT_TRUE(l32.tie_word_embeddings);
  EXPECT_EQ(l32.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(l32.rope_scaling.factor, 32.0);
  // The config we write reads back as the same architecture.
  const auto back = parse_llama_config(synthetic_config_json(l32), "config.json");
  EXPECT_EQ(back.parameter_count(), l32.parameter_count());
  EXPECT_EQ(back.rope_scaling.factor, 32.0);
  EXPECT_EQ(back.max_position_embeddings, 131072);
  EXPECT_THROW(synthetic_shape("llama9-1t"), UsageError);
}

TEST(Synthetic, FamilyShapesHaveThePublishedSizesAndReadBack) {
  // Published counts; the synthetic vocabulary is the real one, so they hold exactly.
  const std::vector<std::pair<std::string, int64_t>> shapes{{"qwen2.5-7b", 7615616512},
                                                             {"qwen2.5-0.5b", 494032768},
                                                             {"qwen3-8b", 8190735360},
                                                             {"qwen3-0.6b", 596049920},
                                                             {"mistral-7b", 7248023552},
                                                             {"mistral-nemo-12b", 12247782400}};
  for (const auto& [name, parameters] : shapes) {
    const auto shape = synthetic_shape(name);
    EXPECT_EQ(shape.parameter_count(), parameters) << name;
    const auto back = parse_llama_config(synthetic_config_json(shape), name + " config.json");
    EXPECT_EQ(back.family, shape.family) << name;
    EXPECT_EQ(back.parameter_count(), parameters) << name;
    EXPECT_EQ(back.attention_windows, std::vector<int64_t>(static_cast<size_t>(shape.num_hidden_layers), 0)) << name;
  }
  EXPECT_TRUE(synthetic_shape("qwen2.5-7b").qkv_bias);
  EXPECT_TRUE(synthetic_shape("qwen3-0.6b").qk_norm);
  EXPECT_EQ(synthetic_shape("qwen3-0.6b").head_dim, 128) << "16 heads x 128 != hidden 1024";
}

TEST(Synthetic, Qwen3CheckpointWithDecoupledHeadDimLoads) {
  SyntheticSpec spec;
  spec.config = synthetic_config(2, 64, 96, 4, 2, 300, true, ModelFamily::kQwen3, 24);
  test::TempDir dir;
  const auto summary = write_synthetic_checkpoint(dir.path(), spec);
  const auto model = LlamaModel::load(dir.path());
  EXPECT_EQ(model.config().head_dim, 24);
  EXPECT_EQ(summary.parameters, spec.config.parameter_count());
  const io::Checkpoint checkpoint(dir.path());
  EXPECT_TRUE(checkpoint.contains("model.layers.1.self_attn.k_norm.weight"));
  const auto logits = model.forward(at::randint(256, {1, 8}, at::kLong));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(Synthetic, FullSizeTokenizerHasLlama3SpecialIds) {
  const auto tokenizer = tokenizer_from_json(synthetic_tokenizer_json(128256), synthetic_tokenizer_config_json(),
                                             "synthetic tokenizer.json");
  EXPECT_EQ(tokenizer->vocab_size(), 128256);
  EXPECT_EQ(tokenizer->bos_id(), std::optional<int32_t>(128000));
  EXPECT_EQ(tokenizer->eos_id(), std::optional<int32_t>(128001));
  EXPECT_EQ(tokenizer->encode("hi", true), (std::vector<int32_t>{128000, 'h' - '!', 'i' - '!'}));
  // A word that spells a placeholder still becomes byte tokens.
  for (int32_t id : tokenizer->encode("<|unused_300|>", false)) EXPECT_LT(id, 256);
}

TEST(Synthetic, RefusesSizesNoLlamaCanHave) {
  EXPECT_THROW(synthetic_config(2, 60, 64, 8, 8, 300, false), UsageError);  // hidden % heads
  EXPECT_THROW(synthetic_config(2, 64, 64, 8, 3, 300, false), UsageError);  // heads % kv_heads
  EXPECT_THROW(synthetic_config(2, 72, 64, 8, 8, 300, false), UsageError);  // odd head_dim
  EXPECT_THROW(synthetic_config(2, 64, 64, 8, 8, 257, false), UsageError);  // no room for BOS and EOS
  EXPECT_THROW(synthetic_config(0, 64, 64, 8, 8, 300, false), UsageError);
}

}  // namespace
}  // namespace lp

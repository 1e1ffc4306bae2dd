#include "linearpatch/io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "support/expect_error.h"
#include "support/test_env.h"

namespace lp::io {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_message;
using test::TempDir;

constexpr const char* kIndex = "model.safetensors.index.json";

// Tensors with distinct byte patterns; names in an order that is not
// alphabetical, so insertion order and name order differ.
struct Tensors {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<OutputTensor> list;

  void add(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    uint64_t bytes = dtype_size(dtype);
    for (int64_t dim : shape) bytes *= static_cast<uint64_t>(dim);
    storage.emplace_back(bytes);
    for (size_t i = 0; i < bytes; ++i) storage.back()[i] = static_cast<uint8_t>(i * 31 + storage.size());
    list.push_back({name, dtype, std::move(shape), bytes, storage.back().data()});
  }
};

Tensors sample_tensors() {
  Tensors t;
  t.storage.reserve(8);
  t.add("z.first", DType::kF32, {10});     // 40 bytes
  t.add("m.second", DType::kBF16, {20});   // 40
  t.add("a.third", DType::kI64, {5});      // 40
  t.add("big.fourth", DType::kF32, {50});  // 200, more than a shard
  t.add("b.fifth", DType::kU8, {8});       // 8
  t.add("c.empty", DType::kF16, {0, 4});   // 0
  return t;
}

std::vector<std::string> write_checkpoint(const fs::path& dir, const Tensors& tensors, uint64_t max_shard_bytes) {
  test::write_file(dir / "config.json", R"({"model_type": "llama"})");
  ShardedWriter writer(dir, max_shard_bytes);
  for (const auto& tensor : tensors.list) writer.add(tensor);
  return writer.finish({{"writer", "test"}});
}

void expect_same_tensors(const Checkpoint& checkpoint, const Tensors& tensors) {
  ASSERT_EQ(checkpoint.tensor_names().size(), tensors.list.size());
  for (const auto& expected : tensors.list) {
    SCOPED_TRACE(expected.name);
    ASSERT_TRUE(checkpoint.contains(expected.name));
    const TensorRef ref = checkpoint.tensor(expected.name);
    EXPECT_EQ(ref.info->dtype, expected.dtype);
    EXPECT_EQ(ref.info->shape, expected.shape);
    ASSERT_EQ(ref.info->nbytes(), expected.nbytes);
    if (expected.nbytes > 0) {
      EXPECT_EQ(std::memcmp(ref.data(), expected.data, expected.nbytes), 0);
    }
  }
}

TEST(ShardedWriter, SplitsInInsertionOrderAndCheckpointReopensIt) {
  TempDir dir;
  const Tensors tensors = sample_tensors();
  const auto files = write_checkpoint(dir.path(), tensors, 100);
  EXPECT_EQ(files,
            (std::vector<std::string>{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors", kIndex}));
  const Checkpoint checkpoint(dir.path());
  EXPECT_TRUE(checkpoint.sharded());
  ASSERT_EQ(checkpoint.shards().size(), 4u);
  expect_same_tensors(checkpoint, tensors);
  EXPECT_EQ(checkpoint.total_tensor_bytes(), 328u);
  EXPECT_EQ(checkpoint.largest_shard_bytes(), 200u);
  EXPECT_EQ(checkpoint.config_text(), R"({"model_type": "llama"})");

  // Consecutive groups in insertion order; the oversized tensor alone.
  const auto shard_of = [&](const std::string& name) {
    return checkpoint.tensor(name).file->path().filename().string();
  };
  EXPECT_EQ(shard_of("z.first"), "model-00001-of-00004.safetensors");
  EXPECT_EQ(shard_of("m.second"), "model-00001-of-00004.safetensors");
  EXPECT_EQ(shard_of("a.third"), "model-00002-of-00004.safetensors");
  EXPECT_EQ(shard_of("big.fourth"), "model-00003-of-00004.safetensors");
  EXPECT_EQ(shard_of("b.fifth"), "model-00004-of-00004.safetensors");
  EXPECT_EQ(shard_of("c.empty"), "model-00004-of-00004.safetensors");
  EXPECT_EQ(checkpoint.tensor("z.first").file->metadata().at("writer"), "test");
  EXPECT_EQ(checkpoint.tensor("z.first").file->metadata().at("format"), "pt");

  const std::string index_text = test::read_file(dir / kIndex);
  const auto index = nlohmann::json::parse(index_text);
  EXPECT_EQ(index["metadata"]["total_size"], 328);
  EXPECT_EQ(index["weight_map"].size(), 6u);
  EXPECT_LT(index_text.find("\"a.third\""), index_text.find("\"z.first\"")) << "weight_map is sorted";
  EXPECT_EQ(index_text.find("  \"metadata\""), 2u) << "indented like HF's index files";
}

TEST(ShardedWriter, WritesOneFileWhenEverythingFits) {
  TempDir dir;
  const Tensors tensors = sample_tensors();
  EXPECT_EQ(write_checkpoint(dir.path(), tensors, 328), (std::vector<std::string>{"model.safetensors"}));
  EXPECT_FALSE(fs::exists(dir / kIndex));
  const Checkpoint checkpoint(dir.path());
  EXPECT_FALSE(checkpoint.sharded());
  expect_same_tensors(checkpoint, tensors);
  EXPECT_EQ(checkpoint.largest_shard_bytes(), 328u);
}

TEST(ShardedWriter, RefusesDuplicatesAndZeroShardSize) {
  TempDir dir;
  const Tensors tensors = sample_tensors();
  ShardedWriter writer(dir.path(), 100);
  writer.add(tensors.list[0]);
  EXPECT_TRUE(contains(error_message<Error>([&] { writer.add(tensors.list[0]); }), "'z.first' added twice"));
  EXPECT_THROW(ShardedWriter(dir.path(), 0), Error);
}

TEST(Checkpoint, OpensTheShardedFixture) {
  LP_REQUIRE_SHARED();
  const Checkpoint checkpoint(test::shared_dir() / "fixtures/models/tiny-llama2-s");
  EXPECT_TRUE(checkpoint.sharded());
  EXPECT_EQ(checkpoint.shards().size(), 5u);
  EXPECT_EQ(checkpoint.tensor_names().size(), 16u * 9 + 3);
  EXPECT_EQ(checkpoint.total_tensor_bytes(), 49910400u);  // the index's total_size
  EXPECT_TRUE(checkpoint.contains("lm_head.weight"));
  const TensorRef embed = checkpoint.tensor("model.embed_tokens.weight");
  EXPECT_EQ(embed.info->dtype, DType::kBF16);
  EXPECT_EQ(embed.info->shape, (std::vector<int64_t>{8000, 320}));
  EXPECT_TRUE(embed.file->aligned(*embed.info));
  uint64_t largest = 0;
  for (const auto& shard : checkpoint.shards()) largest = std::max(largest, shard->data_bytes());
  EXPECT_EQ(checkpoint.largest_shard_bytes(), largest);
  EXPECT_TRUE(contains(checkpoint.config_text(), "\"num_hidden_layers\": 16"));
}

TEST(Checkpoint, OpensTheSingleFileFixtureAndCopiesItByFileRanges) {
  LP_REQUIRE_SHARED();
  const Checkpoint source(test::shared_dir() / "fixtures/models/demo-llama3-d");
  EXPECT_FALSE(source.sharded());
  EXPECT_EQ(source.tensor_names().size(), 10u * 9 + 2);
  EXPECT_FALSE(source.contains("lm_head.weight")) << "tied embeddings";
  EXPECT_EQ(source.tensor("model.layers.0.self_attn.k_proj.weight").info->shape, (std::vector<int64_t>{64, 192}));

  // Copy kernel-side from the read-only fixture into 2 MB shards.
  TempDir dir;
  test::write_file(dir / "config.json", source.config_text());
  ShardedWriter writer(dir.path(), 2'000'000);
  for (const auto& name : source.tensor_names()) {
    const TensorRef ref = source.tensor(name);
    writer.add({name, ref.info->dtype, ref.info->shape, ref.info->nbytes(), nullptr, ref.file->fd(),
                ref.file->file_offset(*ref.info)});
  }
  EXPECT_GT(writer.finish().size(), 5u);
  const Checkpoint copy(dir.path());
  EXPECT_EQ(copy.tensor_names(), source.tensor_names());
  EXPECT_EQ(copy.total_tensor_bytes(), source.total_tensor_bytes());
  EXPECT_LE(copy.largest_shard_bytes(), 2'000'000u);
  for (const auto& name : source.tensor_names()) {
    const TensorRef a = source.tensor(name), b = copy.tensor(name);
    ASSERT_EQ(a.info->nbytes(), b.info->nbytes()) << name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.info->nbytes()), 0) << name;
  }
}

// A valid sharded checkpoint whose index each test then breaks.
class BrokenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    write_checkpoint(dir.path(), tensors, 100);
    index = nlohmann::json::parse(test::read_file(dir / kIndex));
  }
  void write_index(const nlohmann::json& value) { rewrite_index(value.dump(2)); }
  void rewrite_index(const std::string& text) {
    fs::remove(dir / kIndex);
    test::write_file(dir / kIndex, text);
  }
  std::string open_error() {
    return error_message([&] { Checkpoint checkpoint(dir.path()); });
  }

  TempDir dir;
  Tensors tensors = sample_tensors();
  nlohmann::json index;
};

TEST_F(BrokenCheckpoint, IndexNotJson) {
  rewrite_index("{\"weight_map\": {");
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "invalid JSON")) << message;
}

TEST_F(BrokenCheckpoint, IndexNotAnObject) {
  rewrite_index("[]");
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "must be a JSON object")) << message;
}

TEST_F(BrokenCheckpoint, MissingWeightMap) {
  index.erase("weight_map");
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "missing 'weight_map'")) << message;
}

TEST_F(BrokenCheckpoint, WeightMapNotAnObjectOrEmpty) {
  index["weight_map"] = nlohmann::json::array();
  write_index(index);
  EXPECT_TRUE(contains(open_error(), "'weight_map' must be an object"));
  index["weight_map"] = nlohmann::json::object();
  write_index(index);
  EXPECT_TRUE(contains(open_error(), "'weight_map' is empty"));
}

TEST_F(BrokenCheckpoint, ShardNameNotAString) {
  index["weight_map"]["z.first"] = 1;
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "tensor 'z.first' must be a shard file name")) << message;
}

TEST_F(BrokenCheckpoint, ShardNameIsAPath) {
  index["weight_map"]["z.first"] = "../model-00001-of-00004.safetensors";
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "'z.first'") && contains(message, "not a file name"))
      << message;
}

TEST_F(BrokenCheckpoint, ListedShardMissing) {
  fs::remove(dir / "model-00002-of-00004.safetensors");
  const auto message = open_error();
  EXPECT_TRUE(
      contains(message, kIndex) &&
      contains(message, "shard 'model-00002-of-00004.safetensors' (listed for tensor 'a.third') does not exist"))
      << message;
}

TEST_F(BrokenCheckpoint, TensorInIndexButNotInShard) {
  index["weight_map"]["ghost.weight"] = "model-00001-of-00004.safetensors";
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) &&
              contains(message,
                       "tensor 'ghost.weight' is mapped to shard 'model-00001-of-00004.safetensors', which "
                       "does not contain it"))
      << message;
}

TEST_F(BrokenCheckpoint, TensorInShardButNotInIndex) {
  index["weight_map"].erase("m.second");
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(
      contains(message, "model-00001-of-00004.safetensors: tensor 'm.second' is not listed in " + std::string(kIndex)))
      << message;
}

TEST_F(BrokenCheckpoint, TensorInTwoShards) {
  // A fifth shard holding a second copy of z.first, listed for another tensor.
  const auto& z = tensors.list[0];
  const std::vector<uint8_t> extra(4, 7);
  write_safetensors(dir / "extra.safetensors", {z, {"extra", DType::kU8, {4}, 4, extra.data()}});
  index["weight_map"]["extra"] = "extra.safetensors";
  write_index(index);
  const auto message = open_error();
  EXPECT_TRUE(contains(message,
                       "extra.safetensors: tensor 'z.first' is also stored in "
                       "'model-00001-of-00004.safetensors'"))
      << message;
}

TEST_F(BrokenCheckpoint, DuplicateIndexEntry) {
  rewrite_index(R"({"weight_map": {"z.first": "model-00001-of-00004.safetensors",
                                   "z.first": "model-00002-of-00004.safetensors"}})");
  const auto message = open_error();
  EXPECT_TRUE(contains(message, kIndex) && contains(message, "duplicate key 'z.first' in 'weight_map'")) << message;
}

TEST_F(BrokenCheckpoint, CorruptShardIsNamed) {
  fs::remove(dir / "model-00003-of-00004.safetensors");
  test::write_file(dir / "model-00003-of-00004.safetensors", std::string("\x10\0\0\0\0\0\0\0{}", 10));
  const auto message = open_error();
  EXPECT_TRUE(contains(message, "model-00003-of-00004.safetensors: header length 16 runs past the end")) << message;
}

TEST_F(BrokenCheckpoint, MissingConfig) {
  fs::remove(dir / "config.json");
  const auto message = open_error();
  EXPECT_TRUE(contains(message, "config.json") && contains(message, "No such file")) << message;
}

TEST(Checkpoint, MissingWeightsAndDirectories) {
  TempDir dir;
  test::write_file(dir / "config.json", "{}");
  auto message = error_message([&] { Checkpoint checkpoint(dir.path()); });
  EXPECT_TRUE(contains(message, dir.path().string() + ": no model.safetensors or " + kIndex)) << message;
  test::write_file(dir / "pytorch_model.bin", "");
  message = error_message([&] { Checkpoint checkpoint(dir.path()); });
  EXPECT_TRUE(contains(message, "convert them to safetensors")) << message;
  message = error_message([&] { Checkpoint checkpoint(dir / "absent"); });
  EXPECT_TRUE(contains(message, "absent: no such directory")) << message;
  message = error_message([&] { Checkpoint checkpoint(dir / "config.json"); });
  EXPECT_TRUE(contains(message, "config.json: not a directory")) << message;
}

TEST(Checkpoint, UnknownTensorIsAnInputError) {
  TempDir dir;
  write_checkpoint(dir.path(), sample_tensors(), 1000);
  const Checkpoint checkpoint(dir.path());
  const auto message = error_message([&] { checkpoint.tensor("nope"); });
  EXPECT_TRUE(contains(message, dir.path().string()) && contains(message, "no tensor 'nope'")) << message;
}

}  // namespace
}  // namespace lp::io

// Hand-crafted corrupt files (llama.cpp test-gguf style): every defect must
// be an InputError naming the file and the offending tensor or field.
#include <gtest/gtest.h>

#include <random>

#include "support/expect_error.h"
#include "io/safetensors_bytes.h"
#include "linearpatch/io/safetensors.h"
#include "support/test_env.h"

namespace lp::io {
namespace {

using test::safetensors_bytes;

struct CorruptCase {
  std::string name;
  std::string bytes;
  std::vector<std::string> expected;  // parts of the message, besides the file name
};

std::ostream& operator<<(std::ostream& out, const CorruptCase& c) { return out << c.name; }

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::string one_tensor(const std::string& name, const std::string& body) { return "{\"" + name + "\":" + body + "}"; }

std::vector<CorruptCase> corrupt_cases() {
  const std::string data8(8, '\x11');
  const std::string good = one_tensor("w", entry("F32", "[2]", "[0,8]"));
  return {
      {"empty_file", "", {"0 bytes, too short"}},
      {"five_bytes", std::string("\x05\0\0\0\0", 5), {"5 bytes, too short"}},
      {"header_cut",
       safetensors_bytes(good.substr(0, 20), "", good.size()),
       {"header length 54 runs past the end of the file (28 bytes)"}},
      {"length_past_end", safetensors_bytes(good, data8, 1000), {"header length 1000 runs past the end"}},
      {"huge_length", safetensors_bytes(good, data8, uint64_t{1} << 63), {"exceeds the limit of 100000000"}},
      {"max_length", safetensors_bytes(good, data8, ~uint64_t{0}), {"exceeds the limit"}},
      {"zero_length", safetensors_bytes("", data8), {"does not start with '{'"}},
      {"array_header", safetensors_bytes("[1,2]", ""), {"does not start with '{'"}},
      {"not_json", safetensors_bytes(R"({"w": nope})", ""), {"invalid JSON near byte"}},
      {"trailing_garbage", safetensors_bytes(good + " x", data8), {"invalid JSON"}},
      {"invalid_utf8", safetensors_bytes("{\"\xff\xfe\":1}", ""), {"invalid JSON"}},
      {"nul_in_header", safetensors_bytes(std::string("{\"a\0\":1}", 8), ""), {"invalid JSON"}},
      {"number_overflow",
       safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,0]}})", ""),
       {"invalid JSON"}},
      {"deep_nesting",
       safetensors_bytes(R"({"w":{"shape":[[[[1]]]]}})", ""),
       {"nested deeper than 3", "'w' > 'shape'"}},
      {"entry_not_object", safetensors_bytes(R"({"w":5})", ""), {"tensor 'w'", "entry must be an object"}},
      {"missing_dtype",
       safetensors_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "missing 'dtype'"}},
      {"dtype_not_string",
       safetensors_bytes(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "'dtype' must be a string"}},
      {"bad_dtype",
       safetensors_bytes(one_tensor("w", entry("F33", "[2]", "[0,8]")), data8),
       {"tensor 'w'", "unsupported dtype 'F33'"}},
      {"fp8_dtype",
       safetensors_bytes(one_tensor("w", entry("F8_E4M3", "[8]", "[0,8]")), data8),
       {"tensor 'w'", "unsupported dtype 'F8_E4M3'"}},
      {"shape_not_array",
       safetensors_bytes(one_tensor("w", entry("F32", "2", "[0,8]")), data8),
       {"tensor 'w'", "'shape' must be an array"}},
      {"negative_dim",
       safetensors_bytes(one_tensor("w", entry("F32", "[-2]", "[0,8]")), data8),
       {"tensor 'w'", "negative dimension -2"}},
      {"float_dim",
       safetensors_bytes(one_tensor("w", entry("F32", "[2.0]", "[0,8]")), data8),
       {"tensor 'w'", "'shape' must hold integers"}},
      {"huge_dim",
       safetensors_bytes(one_tensor("w", entry("U8", "[18446744073709551615]", "[0,8]")), data8),
       {"tensor 'w'", "too large"}},
      {"shape_overflow",
       safetensors_bytes(one_tensor("w", entry("F32", "[4294967296,4294967296]", "[0,0]")), ""),
       {"tensor 'w'", "more elements than 64 bits"}},
      {"size_overflow",
       safetensors_bytes(one_tensor("w", entry("F64", "[2305843009213693952]", "[0,0]")), ""),
       {"tensor 'w'", "more elements than 64 bits"}},
      {"shape_bytes_mismatch",
       safetensors_bytes(one_tensor("w", entry("F32", "[3]", "[0,8]")), data8),
       {"tensor 'w'", "shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8"}},
      {"offsets_not_pair",
       safetensors_bytes(one_tensor("w", entry("F32", "[2]", "[0,8,9]")), data8),
       {"tensor 'w'", "'data_offsets' must be two non-negative integers"}},
      {"negative_offset",
       safetensors_bytes(one_tensor("w", entry("F32", "[2]", "[-8,0]")), data8),
       {"tensor 'w'", "'data_offsets' must be two non-negative integers"}},
      {"end_before_begin",
       safetensors_bytes(one_tensor("w", entry("F32", "[2]", "[8,0]")), data8),
       {"tensor 'w'", "data_offsets [8, 0] end before they begin"}},
      {"offsets_out_of_range",
       safetensors_bytes(one_tensor("w", entry("F32", "[4]", "[0,16]")), data8),
       {"tensor 'w'", "run past the end of the data buffer (8 bytes)"}},
      {"offsets_at_u64_max",
       safetensors_bytes(one_tensor("w", entry("F32", "[]", "[18446744073709551611,18446744073709551615]")), data8),
       {"tensor 'w'", "run past the end of the data buffer"}},
      {"overlap",
       safetensors_bytes("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("F32", "[2]", "[4,12]") + "}",
                         std::string(12, '\0')),
       {"tensor 'b'", "overlap tensor 'a'"}},
      {"hole",
       safetensors_bytes("{\"a\":" + entry("F32", "[1]", "[0,4]") + ",\"b\":" + entry("F32", "[1]", "[8,12]") + "}",
                         std::string(12, '\0')),
       {"tensor 'b'", "leave a hole", "[4, 8]"}},
      {"leading_hole",
       safetensors_bytes(one_tensor("w", entry("F32", "[1]", "[4,8]")), data8),
       {"tensor 'w'", "leave a hole"}},
      {"trailing_bytes", safetensors_bytes(good, data8 + "xyz"), {"11 bytes but the tensors cover only 8"}},
      {"duplicate_name",
       safetensors_bytes("{\"w\":" + entry("F32", "[1]", "[0,4]") + ",\"w\":" + entry("F32", "[1]", "[4,8]") + "}",
                         data8),
       {"duplicate key 'w'"}},
      {"duplicate_field",
       safetensors_bytes(R"({"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", data8),
       {"duplicate key 'dtype' in 'w'"}},
      {"metadata_not_string",
       safetensors_bytes(R"({"__metadata__":{"format":1},"w":)" + entry("F32", "[2]", "[0,8]") + "}", data8),
       {"'__metadata__' value of 'format' must be a string"}},
      {"metadata_not_object",
       safetensors_bytes(R"({"__metadata__":["pt"],"w":)" + entry("F32", "[2]", "[0,8]") + "}", data8),
       {"'__metadata__' must be an object"}},
  };
}

class CorruptSafetensors : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(CorruptSafetensors, IsAnInputErrorNamingFileAndCulprit) {
  const CorruptCase& c = GetParam();
  test::TempDir dir;
  const auto path = dir / (c.name + ".safetensors");
  test::write_file(path, c.bytes);

  const std::string from_file = test::error_message([&] { SafetensorsFile file(path); });
  EXPECT_TRUE(test::contains(from_file, path.string())) << from_file;
  const std::string source = "memory:" + c.name;
  const std::string from_memory = test::error_message([&] {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(c.bytes.data()), c.bytes.size(), c.bytes.size(), source);
  });
  EXPECT_TRUE(test::contains(from_memory, source)) << from_memory;
  for (const auto& part : c.expected) {
    EXPECT_TRUE(test::contains(from_file, part)) << "expected '" << part << "' in: " << from_file;
    EXPECT_TRUE(test::contains(from_memory, part)) << "expected '" << part << "' in: " << from_memory;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CorruptSafetensors, ::testing::ValuesIn(corrupt_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CorruptSafetensors, MessagesStayShortForHugeInputs) {
  // An unterminated 10 MB string: the parser's "last read" excerpt must not
  // copy it into the message.
  const std::string bytes = safetensors_bytes("{\"" + std::string(10'000'000, 'a'), "");
  const std::string message = test::error_message([&] {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(), "huge");
  });
  EXPECT_LT(message.size(), 1000u);
}

// Random truncations and byte flips of a valid file: each result either
// parses or is an InputError; nothing else happens.
TEST(CorruptSafetensors, MutationsNeverEscapeAsAnythingButInputError) {
  test::TempDir dir;
  const std::vector<uint8_t> a(24, 1), b(10, 2);
  std::vector<OutputTensor> tensors(2);
  tensors[0] = {"layer.0.weight", DType::kF32, {2, 3}, a.size(), a.data()};
  tensors[1] = {"layer.1.bias", DType::kBF16, {5}, b.size(), b.data()};
  write_safetensors(dir / "valid.safetensors", tensors, {{"k", "v"}});
  const std::string valid = test::read_file(dir / "valid.safetensors");

  std::mt19937 rng(1234);
  int rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    try {
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(), "mutant");
    } catch (const InputError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace lp::io

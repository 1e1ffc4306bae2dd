#include "linearpatch/io/safetensors.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "support/expect_error.h"
#include "io/safetensors_bytes.h"
#include "linearpatch/core/error.h"
#include "support/test_env.h"

namespace lp::io {
namespace {

using test::TempDir;

std::vector<uint8_t> iota_bytes(size_t n, uint8_t start) {
  std::vector<uint8_t> bytes(n);
  std::iota(bytes.begin(), bytes.end(), start);
  return bytes;
}

OutputTensor from_memory(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  OutputTensor tensor;
  tensor.name = std::move(name);
  tensor.dtype = dtype;
  tensor.shape = std::move(shape);
  tensor.nbytes = bytes.size();
  tensor.data = bytes.data();
  return tensor;
}

uint64_t header_length(const std::string& file_bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file_bytes[i]);
  return n;
}

TEST(DType, NamesSizesAndParsing) {
  EXPECT_EQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF64), 8u);
  EXPECT_EQ(dtype_size(DType::kBool), 1u);
  for (DType dtype : {DType::kBool, DType::kU8, DType::kI8, DType::kI16, DType::kU16, DType::kF16, DType::kBF16,
                      DType::kI32, DType::kU32, DType::kF32, DType::kF64, DType::kI64, DType::kU64}) {
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_FALSE(parse_dtype("F8_E4M3"));
  EXPECT_FALSE(parse_dtype("bf16"));
  EXPECT_FALSE(parse_dtype(""));
}

class SafetensorsRoundTrip : public ::testing::Test {
 protected:
  TempDir dir;
  std::vector<uint8_t> f32 = iota_bytes(2 * 3 * 4, 1);
  std::vector<uint8_t> f16 = iota_bytes(5 * 2, 50);
  std::vector<uint8_t> bf16 = iota_bytes(3 * 2, 90);
  std::vector<uint8_t> i64 = iota_bytes(2 * 8, 120);
  std::vector<uint8_t> scalar = iota_bytes(4, 200);
  std::vector<uint8_t> none;

  std::vector<OutputTensor> tensors() const {
    return {from_memory("w.f32", DType::kF32, {2, 3}, f32),    from_memory("w.f16", DType::kF16, {5}, f16),
            from_memory("w.bf16", DType::kBF16, {3, 1}, bf16), from_memory("ids", DType::kI64, {2}, i64),
            from_memory("scalar", DType::kF32, {}, scalar),    from_memory("empty", DType::kBF16, {0, 7}, none)};
  }
};

TEST_F(SafetensorsRoundTrip, BytesShapesAndMetadataSurvive) {
  const auto path = dir / "t.safetensors";
  write_safetensors(path, tensors(), {{"source", "unit test"}});
  SafetensorsFile file(path);

  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"source", "unit test"}}));
  ASSERT_EQ(file.tensors().size(), 6u);
  for (const auto& expected : tensors()) {
    SCOPED_TRACE(expected.name);
    const TensorInfo& info = file.get(expected.name);
    EXPECT_EQ(info.dtype, expected.dtype);
    EXPECT_EQ(info.shape, expected.shape);
    EXPECT_EQ(info.nbytes(), expected.nbytes);
    EXPECT_EQ(info.numel() * dtype_size(info.dtype), expected.nbytes);
    EXPECT_TRUE(file.aligned(info));
    if (expected.nbytes > 0) {
      EXPECT_EQ(std::memcmp(file.data(info), expected.data, expected.nbytes), 0);
    }
  }
  EXPECT_EQ(file.get("scalar").numel(), 1u);
  EXPECT_EQ(file.get("empty").numel(), 0u);
  EXPECT_EQ(file.data_bytes(), f32.size() + f16.size() + bf16.size() + i64.size() + scalar.size());
  EXPECT_EQ(file.find("missing"), nullptr);
  // tensors() is sorted by name, which find() relies on.
  EXPECT_TRUE(std::is_sorted(file.tensors().begin(), file.tensors().end(),
                             [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; }));
}

TEST_F(SafetensorsRoundTrip, HeaderIsPaddedSortedAndDataOrderedBySizeThenName) {
  const auto path = dir / "t.safetensors";
  write_safetensors(path, tensors());
  const std::string bytes = test::read_file(path);
  const uint64_t n = header_length(bytes);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  ASSERT_EQ(header.front(), '{');
  const auto last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(n - last - 1, 8u) << "padding is only what alignment needs";
  EXPECT_NE(header.find(R"("__metadata__":{"format":"pt"})"), std::string::npos) << header;

  // Keys appear sorted in the text.
  std::vector<size_t> positions;
  for (const char* key :
       {"\"__metadata__\"", "\"empty\"", "\"ids\"", "\"scalar\"", "\"w.bf16\"", "\"w.f16\"", "\"w.f32\""}) {
    positions.push_back(header.find(key));
    ASSERT_NE(positions.back(), std::string::npos) << key;
  }
  EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));

  // Data: 8-byte elements, then 4-byte, then 2-byte; by name within a size.
  SafetensorsFile file(path);
  std::vector<std::string> by_offset;
  for (const auto& info : file.tensors()) by_offset.push_back(info.name);
  std::sort(by_offset.begin(), by_offset.end(), [&](const std::string& a, const std::string& b) {
    return std::make_pair(file.get(a).begin, file.get(a).end) < std::make_pair(file.get(b).begin, file.get(b).end);
  });
  EXPECT_EQ(by_offset, (std::vector<std::string>{"ids", "scalar", "w.f32", "empty", "w.bf16", "w.f16"}));
  EXPECT_EQ(file.file_offset(file.get("ids")), 8 + n);
}

TEST_F(SafetensorsRoundTrip, EmptyFileOfNoTensors) {
  const auto path = dir / "none.safetensors";
  write_safetensors(path, {});
  SafetensorsFile file(path);
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.data_bytes(), 0u);
}

TEST_F(SafetensorsRoundTrip, CopiesFromASourceFileRange) {
  const auto source_path = dir / "source.bin";
  std::string source(4096, '\0');
  for (size_t i = 0; i < source.size(); ++i) source[i] = static_cast<char>(i * 7);
  test::write_file(source_path, source);
  const int fd = ::open(source_path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);

  OutputTensor tensor;
  tensor.name = "copied";
  tensor.dtype = DType::kF16;
  tensor.shape = {10, 100};
  tensor.nbytes = 2000;
  tensor.src_fd = fd;
  tensor.src_offset = 1001;
  const auto path = dir / "copy.safetensors";
  write_safetensors(path, {tensor, from_memory("mem", DType::kF32, {2, 3}, f32)});
  ::close(fd);

  SafetensorsFile file(path);
  const auto& info = file.get("copied");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file.data(info)), info.nbytes()), source.substr(1001, 2000));
  EXPECT_EQ(std::memcmp(file.data(file.get("mem")), f32.data(), f32.size()), 0);
}

TEST_F(SafetensorsRoundTrip, CopiesFromAnotherSafetensorsFile) {
  const auto first = dir / "first.safetensors";
  write_safetensors(first, tensors());
  SafetensorsFile source(first);
  std::vector<OutputTensor> copies;
  for (const auto& info : source.tensors()) {
    OutputTensor copy;
    copy.name = info.name;
    copy.dtype = info.dtype;
    copy.shape = info.shape;
    copy.nbytes = info.nbytes();
    copy.src_fd = source.fd();
    copy.src_offset = source.file_offset(info);
    copies.push_back(copy);
  }
  const auto second = dir / "second.safetensors";
  write_safetensors(second, copies, {});
  EXPECT_EQ(test::read_file(first), test::read_file(second));
}

TEST_F(SafetensorsRoundTrip, SourceEndingEarlyFailsAndLeavesNoFile) {
  const auto source_path = dir / "short.bin";
  test::write_file(source_path, std::string(100, 'x'));
  const int fd = ::open(source_path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  OutputTensor tensor;
  tensor.name = "t";
  tensor.dtype = DType::kU8;
  tensor.shape = {64};
  tensor.nbytes = 64;
  tensor.src_fd = fd;
  tensor.src_offset = 80;
  const auto path = dir / "out.safetensors";
  try {
    write_safetensors(path, {tensor});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
  }
  ::close(fd);
  EXPECT_FALSE(std::filesystem::exists(path));
}

void expect_writer_error(const std::filesystem::path& path, std::vector<OutputTensor> tensors,
                         const std::string& expected) {
  try {
    write_safetensors(path, std::move(tensors));
    FAIL() << "expected an error containing " << expected;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(SafetensorsRoundTrip, WriterRefusesInvalidTensors) {
  const auto path = dir / "bad.safetensors";
  expect_writer_error(path, {from_memory("a", DType::kF32, {6}, f32), from_memory("a", DType::kF32, {6}, f32)},
                      "'a': written twice");
  expect_writer_error(path, {from_memory("a", DType::kF32, {7}, f32)}, "does not match its 24 bytes");
  expect_writer_error(path, {from_memory("a", DType::kF32, {-6}, f32)}, "does not match");
  expect_writer_error(path, {from_memory("", DType::kF32, {6}, f32)}, "invalid tensor name");
  expect_writer_error(path, {from_memory("__metadata__", DType::kF32, {6}, f32)}, "invalid tensor name");
  auto both = from_memory("b", DType::kF32, {6}, f32);
  both.src_fd = 0;
  expect_writer_error(path, {both}, "exactly one source");
  auto neither = from_memory("c", DType::kF32, {6}, f32);
  neither.data = nullptr;
  expect_writer_error(path, {neither}, "exactly one source");
}

TEST_F(SafetensorsRoundTrip, WriterNeverOverwrites) {
  const auto path = dir / "exists.safetensors";
  test::write_file(path, "keep me");
  EXPECT_THROW(write_safetensors(path, tensors()), Error);
  EXPECT_EQ(test::read_file(path), "keep me");
  EXPECT_THROW(write_safetensors(dir / "no" / "such" / "dir.safetensors", tensors()), Error);
}

// Renaming "model.layers.12." to "model.layers.3." rewrites the header in
// its old length and moves no data; a name that would not fit, a clash, or
// a file cut inside its header is an error naming the file.
TEST(SafetensorsRename, RenamesInPlaceWithoutMovingData) {
  TempDir dir;
  const auto path = dir / "layer.safetensors";
  const auto a = iota_bytes(24, 1), b = iota_bytes(8, 100);
  write_safetensors(path, {from_memory("model.layers.12.a", DType::kF32, {2, 3}, a),
                           from_memory("model.layers.12.b", DType::kI16, {4}, b)});
  const auto before = test::read_file(path);
  const uint64_t data_offset = SafetensorsFile(path).file_offset(SafetensorsFile(path).get("model.layers.12.a"));
  rename_tensors_in_place(path, [](const std::string& name) { return "model.layers.3." + name.substr(16); }, true);

  const SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.file_offset(file.get("model.layers.3.a")), data_offset);
  EXPECT_EQ(std::memcmp(file.data(file.get("model.layers.3.a")), a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(file.data(file.get("model.layers.3.b")), b.data(), b.size()), 0);
  const auto after = test::read_file(path);
  EXPECT_EQ(after.size(), before.size());
  EXPECT_EQ(header_length(after), header_length(before));
  EXPECT_EQ(after.substr(8 + header_length(after)), before.substr(8 + header_length(before))) << "data moved";

  auto message = test::error_message<Error>(
      [&] { rename_tensors_in_place(path, [](const std::string& n) { return n + std::string(400, 'x'); }, false); });
  EXPECT_TRUE(test::contains(message, "layer.safetensors")) << message;
  EXPECT_TRUE(test::contains(message, "the new header needs")) << message;
  message = test::error_message<Error>(
      [&] { rename_tensors_in_place(path, [](const std::string&) { return std::string("same"); }, false); });
  EXPECT_TRUE(test::contains(message, "empty or taken")) << message;
  EXPECT_EQ(test::read_file(path), after) << "a refused rename leaves the file as it was";

  test::write_file(dir / "cut.safetensors", after.substr(0, 20));
  message = test::error_message<Error>(
      [&] { rename_tensors_in_place(dir / "cut.safetensors", [](const std::string& n) { return n; }, false); });
  EXPECT_TRUE(test::contains(message, "cut.safetensors")) << message;
  EXPECT_TRUE(test::contains(message, "file ends inside the header")) << message;
}

TEST(SafetensorsReader, AcceptsUnalignedFilesFromOtherWriters) {
  // A one-byte tensor first and a header length that is a multiple of 4 put
  // the F32 data at a file offset of 1 modulo 4.
  std::string header =
      R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((4 - header.size() % 4) % 4, ' ');
  TempDir dir;
  test::write_file(dir / "u.safetensors", test::safetensors_bytes(header, std::string("\x01\x00\x00\x80\x3f", 5)));
  SafetensorsFile file(dir / "u.safetensors");
  EXPECT_TRUE(file.aligned(file.get("b")));
  EXPECT_FALSE(file.aligned(file.get("f")));
  float value = 0;
  std::memcpy(&value, file.data(file.get("f")), 4);
  EXPECT_EQ(value, 1.0f);
}

TEST(SafetensorsReader, AcceptsTrailingSpacesAndNullMetadata) {
  const std::string header = R"({"__metadata__":null,"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})"
                             "     ";
  const std::string bytes = test::safetensors_bytes(header, "ab");
  const auto parsed =
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(), "mem");
  ASSERT_EQ(parsed.tensors.size(), 1u);
  EXPECT_TRUE(parsed.metadata.empty());
  EXPECT_EQ(parsed.data_offset, 8 + header.size());
}

TEST(SafetensorsReader, ParsesOnlyTheHeaderPrefixOfALargerFile) {
  const std::string header = R"({"x":{"dtype":"U8","shape":[1000],"data_offsets":[0,1000]}})";
  const std::string bytes = test::safetensors_bytes(header, "");
  const auto parsed = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                               bytes.size() + 1000, "big");
  EXPECT_EQ(parsed.tensors.at(0).end, 1000u);
}

TEST(SafetensorsReader, MissingFileAndDirectoryAreInputErrors) {
  TempDir dir;
  EXPECT_TRUE(
      test::contains(test::error_message([&] { SafetensorsFile(dir / "absent.safetensors"); }), "absent.safetensors"));
  EXPECT_TRUE(test::contains(test::error_message([&] { SafetensorsFile file(dir.path()); }), "not a regular file"));
  write_safetensors(dir / "one.safetensors", {});
  const SafetensorsFile file(dir / "one.safetensors");
  const std::string message = test::error_message([&] { file.get("nope"); });
  EXPECT_TRUE(test::contains(message, "one.safetensors: no tensor 'nope'")) << message;
}

}  // namespace
}  // namespace lp::io

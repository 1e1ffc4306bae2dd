// Hostile nesting fed to every JSON reader of user files. Each must refuse
// it with InputError: a recursive parser, destructor or error-message dump
// would overflow the stack on a million levels. The safetensors header and
// config.json readers have their own cases in tests/io and tests/config.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "linearpatch/core/error.h"
#include "linearpatch/io/checkpoint.h"
#include "linearpatch/io/text_corpus.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "support/test_env.h"

namespace lp {
namespace {

constexpr size_t kLevels = 1'000'000;

std::string arrays(size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); }

std::string objects(size_t levels) {
  std::string text;
  text.reserve(levels * 6 + 2);
  for (size_t i = 0; i < levels; ++i) text += "{\"a\":";
  text += "1";
  text += std::string(levels, '}');
  return text;
}

// Wraps `inner` as the value of a field a reader looks into.
std::string inside(const std::string& key, const std::string& inner) { return "{\"" + key + "\": " + inner + "}"; }

void expect_refused(const std::function<void()>& parse) {
  try {
    parse();
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("nested"), std::string::npos) << message;
    EXPECT_LT(message.size(), 1000u) << "the message should stay short";
  }
}

TEST(HostileInput, JsonLinesRefusesDeepNesting) {
  for (const auto& record : {arrays(kLevels), objects(kLevels), inside("text", arrays(kLevels))})
    expect_refused([&] { io::parse_json_lines("\"ok\"\n" + record + "\n", "corpus.jsonl"); });
}

TEST(HostileInput, CheckpointIndexRefusesDeepNesting) {
  for (const auto& index :
       {arrays(kLevels), inside("weight_map", objects(kLevels)), inside("metadata", arrays(kLevels))}) {
    test::TempDir dir;
    test::write_file(dir / "config.json", "{}");
    test::write_file(dir / "model.safetensors.index.json", index);
    expect_refused([&] { io::Checkpoint checkpoint(dir.path()); });
  }
}

TEST(HostileInput, TokenizerJsonRefusesDeepNesting) {
  for (const auto& json :
       {arrays(kLevels), objects(kLevels), inside("model", objects(kLevels)), inside("added_tokens", arrays(kLevels))})
    expect_refused([&] { tokenizer_from_json(json, "", "tokenizer.json"); });
}

TEST(HostileInput, TokenizerConfigRefusesDeepNesting) {
  const std::string tokenizer =
      test::read_file(test::test_data_dir() / "fuzz/seeds/tokenizer_json/mini-byte-level.json");
  for (const auto& config : {arrays(kLevels), inside("bos_token", objects(kLevels))})
    expect_refused([&] { tokenizer_from_json(tokenizer, config, "tokenizer_config.json"); });
}

// A sparse 2 GiB file costs no disk; reading it whole would cost 2 GiB of
// memory before the parser could refuse it.
TEST(HostileInput, OversizedTokenizerFilesAreRefusedBeforeReading) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}) {
    test::TempDir dir;
    const auto path = dir / name;
    test::write_file(path, "");
    std::filesystem::resize_file(path, uint64_t{2} << 30);
    if (std::string(name) == "tokenizer_config.json") test::write_file(dir / "tokenizer.json", "{}");
    try {
      load_tokenizer(dir.path());
      ADD_FAILURE() << name << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace lp

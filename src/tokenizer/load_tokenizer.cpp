#include "io/file_util.h"
#include "linearpatch/core/error.h"
#include "linearpatch/tokenizer/tokenizer.h"
#include "tokenizer/json_tokenizer.h"
#include "tokenizer/spm_library.h"
#include "tokenizer/spm_tokenizer.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

// The largest public tokenizer.json files are tens of MB; the cap keeps a
// hostile or mistaken multi-GB file from being read into memory whole.
constexpr uint64_t kMaxTokenizerFileBytes = uint64_t{1} << 30;

std::string read_file(const fs::path& path) { return io::read_text_file(path, kMaxTokenizerFileBytes); }

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError("cannot load a tokenizer from " + dir.string() + ": not a directory");
  detail::SpecialConfig config;
  if (const fs::path path = dir / "config.json"; is_file(path))
    detail::read_model_config(read_file(path), path.string(), config);
  if (const fs::path path = dir / "tokenizer_config.json"; is_file(path))
    detail::read_tokenizer_config(read_file(path), path.string(), config);
  if (const fs::path path = dir / "tokenizer.json"; is_file(path))
    return detail::make_json_tokenizer(read_file(path), config, path.string());
  if (const fs::path path = dir / "tokenizer.model"; is_file(path))
    return detail::make_spm_tokenizer(read_file(path), config, path.string());
  throw InputError("no tokenizer in " + dir.string() + ": looked for tokenizer.json and tokenizer.model");
}

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view tokenizer_json, std::string_view config_json,
                                               const std::string& source) {
  detail::SpecialConfig config;
  if (!config_json.empty()) detail::read_tokenizer_config(config_json, source + " (tokenizer_config.json)", config);
  return detail::make_json_tokenizer(tokenizer_json, config, source);
}

std::optional<std::string> sentencepiece_unavailable_reason() { return detail::spm_unavailable_reason(); }

}  // namespace lp

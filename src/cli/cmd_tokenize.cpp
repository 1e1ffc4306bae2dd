// linearpatch tokenize: token ids of JSON-string lines, for checking the
// tokenizer against other implementations.
#include <fstream>
#include <iostream>

#include "cli/common.h"
#include "linearpatch/core/error.h"
#include "linearpatch/tokenizer/tokenizer.h"

namespace lp::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string jsonl;
  std::vector<std::string> texts;
  bool add_special = false;
};

void encode_line(const Tokenizer& tokenizer, const std::string& text, bool add_special) {
  std::cout << Json(tokenizer.encode(text, add_special)).dump() << "\n";
}

void run(const TokenizeArgs& args) {
  auto tokenizer = load_tokenizer(resolve_model_dir(args.model));
  for (const auto& text : args.texts) encode_line(*tokenizer, text, args.add_special);
  if (args.jsonl.empty()) return;
  std::ifstream file;
  if (args.jsonl != "-") {
    file.open(args.jsonl, std::ios::binary);
    if (!file) throw InputError("cannot read " + args.jsonl);
  }
  std::istream& in = args.jsonl == "-" ? std::cin : file;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    auto value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!value.is_string())
      throw InputError(args.jsonl + ":" + std::to_string(line_no) + ": expected a JSON string per line");
    encode_line(*tokenizer, value.get<std::string>(), args.add_special);
  }
  std::cout.flush();
}

}  // namespace

Command register_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Print token ids, one JSON array per input line");
  cmd->add_option("-m,--model", args->model, "Model or tokenizer-only directory (tokenizer.json or tokenizer.model)")
      ->required();
  auto* jsonl = cmd->add_option("--jsonl", args->jsonl, "File with one JSON string per line ('-' for stdin)");
  auto* text = cmd->add_option("--text", args->texts, "Text to tokenize (repeatable)");
  jsonl->excludes(text);
  cmd->add_flag("--add-special", args->add_special, "Apply the post-processor (BOS)");
  return {cmd, [args] {
            if (args->jsonl.empty() && args->texts.empty()) throw UsageError("tokenize needs --jsonl FILE or --text TEXT");
            run(*args);
          }};
}

}  // namespace lp::cli

// The command line's own words: value checks whose messages say what would
// be accepted, the nearest known name for a mistyped one, `help COMMAND`,
// and CLI11's parse errors rewritten into one line that names the fix.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace lp::cli {

// Whole numbers in [min, max] ("--layers: must be at least 1, got 0").
CLI::Validator at_least(int64_t min);
CLI::Validator between(int64_t min, int64_t max);
// Real numbers above zero, or at zero and above.
CLI::Validator positive_real();
CLI::Validator non_negative_real();
// One of `names`; a near miss is named ("did you mean ...").
CLI::Validator one_of(const std::vector<std::string>& names);
CLI::Validator existing_file();

// The closest of `names` to `typed` by edit distance, or "" when none is near.
std::string closest(const std::string& typed, const std::vector<std::string>& names);

// Another name for an option, accepted (old scripts keep working) but not
// listed by --help.
template <typename T>
CLI::Option* add_hidden_alias(CLI::App& cmd, const std::string& name, T& value) {
  return cmd.add_option(name, value)->group("");
}

// The arguments as CLI11 should see them: `help` and `help COMMAND` become
// --help forms. Throws UsageError for a missing or unknown command, naming
// the closest one.
std::vector<std::string> normalize_arguments(const CLI::App& app, int argc, char** argv);

// The command the arguments name ("" for none), for messages.
std::string command_of(const CLI::App& app, const std::vector<std::string>& args);

// One line for a parse error of `command`, naming what would fix it.
// An unknown option among `args` is reported first: it usually causes the rest.
std::string describe_parse_error(const CLI::App& app, const std::string& command, const std::vector<std::string>& args,
                                 const CLI::ParseError& e);

}  // namespace lp::cli

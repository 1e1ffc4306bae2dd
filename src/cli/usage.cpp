#include "cli/usage.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>
#include <optional>
#include <regex>
#include <sstream>

#include "linearpatch/core/error.h"

namespace lp::cli {
namespace {

std::optional<int64_t> whole_number(const std::string& text) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<double> real_number(const std::string& text) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& names, const std::string& separator = ", ") {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : separator) + name;
  return out;
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
  return names;
}

// Every --name and -n of a command (hidden aliases only when asked for).
std::vector<std::string> option_names(const CLI::App& cmd, bool hidden = false) {
  std::vector<std::string> names;
  for (const auto* option : cmd.get_options()) {
    if (option->get_group().empty() && !hidden) continue;
    for (const auto& name : option->get_lnames()) names.push_back("--" + name);
    for (const auto& name : option->get_snames()) names.push_back("-" + name);
  }
  return names;
}

std::string help_pointer(const std::string& command) {
  return command.empty() ? "linearpatch --help lists the commands"
                         : "linearpatch help " + command + " lists its options";
}

// "--layers: 1 required INT missing" and the like, in our words.
std::string unexpected(const CLI::App& app, const std::string& command, const std::vector<std::string>& extras) {
  const auto* cmd = command.empty() ? &app : app.get_subcommand(command);
  const auto& first = extras.front();
  const auto name = first.substr(0, first.find('='));
  if (name.rfind("-", 0) == 0) {
    auto known = option_names(*cmd);
    for (const auto& global : option_names(app)) known.push_back(global);
    const auto near = closest(name, known);
    return "unknown option " + name + (near.empty() ? "" : " (did you mean " + near + "?)");
  }
  return "unexpected argument '" + first + "'" +
         (command.empty() ? "" : ": " + command + " takes no positional arguments; options start with --");
}

}  // namespace

CLI::Validator at_least(int64_t min) { return between(min, std::numeric_limits<int64_t>::max()); }

CLI::Validator between(int64_t min, int64_t max) {
  const bool unbounded = max == std::numeric_limits<int64_t>::max();
  const auto description = unbounded ? "INT>=" + std::to_string(min)
                                     : "INT in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max, unbounded](std::string& text) -> std::string {
        const auto value = whole_number(text);
        if (!value) return "'" + text + "' is not a whole number";
        if (*value < min) return "must be at least " + std::to_string(min) + ", got " + text;
        if (!unbounded && *value > max) return "must be at most " + std::to_string(max) + ", got " + text;
        return "";
      },
      description);
}

CLI::Validator positive_real() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto value = real_number(text);
        if (!value) return "'" + text + "' is not a number";
        return *value > 0 ? "" : "must be above 0, got " + text;
      },
      "NUMBER>0");
}

CLI::Validator non_negative_real() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto value = real_number(text);
        if (!value) return "'" + text + "' is not a number";
        return *value >= 0 ? "" : "must be 0 or more, got " + text;
      },
      "NUMBER>=0");
}

CLI::Validator one_of(const std::vector<std::string>& names) {
  return CLI::Validator(
      [names](std::string& text) -> std::string {
        if (std::find(names.begin(), names.end(), text) != names.end()) return "";
        const auto near = closest(text, names);
        return "unknown value '" + text + "' (" + (near.empty() ? "" : "did you mean " + near + "? ") +
               "choose from " + join(names) + ")";
      },
      "{" + join(names, ",") + "}");
}

CLI::Validator existing_file() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::error_code ec;
        if (std::filesystem::is_regular_file(text, ec)) return "";
        if (std::filesystem::is_directory(text, ec)) return text + " is a directory, not a file";
        return "no such file: " + text;
      },
      "FILE");
}

std::string closest(const std::string& typed, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, typed.size() / 3) + 1;
  for (const auto& name : names) {
    // A prefix of a longer name ("--lay" for "--layers") is as good as a near miss.
    const size_t distance = name.rfind(typed, 0) == 0 && typed.size() >= 3 ? 1 : edit_distance(typed, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

std::string command_of(const CLI::App& app, const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--log-level") {
      ++i;
      continue;
    }
    if (args[i].rfind("-", 0) == 0) continue;
    const auto names = command_names(app);
    return std::find(names.begin(), names.end(), args[i]) != names.end() ? args[i] : "";
  }
  return "";
}

std::vector<std::string> normalize_arguments(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto names = command_names(app);
  const auto asks = [&](const char* flag) { return std::find(args.begin(), args.end(), flag) != args.end(); };
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--log-level") {
      ++i;
      continue;
    }
    if (args[i].rfind("-", 0) == 0) continue;
    if (args[i] == "help") {
      // `help` alone, or `help COMMAND`: the --help of that command.
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      if (i < args.size() && args[i].rfind("-", 0) != 0) {
        if (std::find(names.begin(), names.end(), args[i]) == names.end()) break;  // reported below
        args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, "--help");
        return args;
      }
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i), "--help");
      return args;
    }
    if (std::find(names.begin(), names.end(), args[i]) != names.end()) return args;
    break;
  }
  if (asks("--help") || asks("-h") || asks("--version")) return args;
  std::string typed;
  for (size_t i = 0; i < args.size() && typed.empty(); ++i) {
    if (args[i] == "--log-level") ++i;
    else if (args[i].rfind("-", 0) != 0) typed = args[i];
  }
  if (typed.empty())
    throw UsageError("a command is required: " + join(names) + " (linearpatch help COMMAND lists its options)");
  const auto near = closest(typed, names);
  throw UsageError("unknown command '" + typed + "' (" + (near.empty() ? "" : "did you mean " + near + "? ") +
                   "commands: " + join(names) + ")");
}

std::string describe_parse_error(const CLI::App& app, const std::string& command, const std::vector<std::string>& args,
                                 const CLI::ParseError& e) {
  const std::string where = command.empty() ? "" : command + ": ";
  if (!command.empty()) {
    auto known = option_names(*app.get_subcommand(command), true);
    for (const auto& global : option_names(app, true)) known.push_back(global);
    for (const auto& arg : args) {
      // -vv and -mDIR: a short option is its first letter.
      const bool short_option = arg.size() > 2 && arg[0] == '-' && arg[1] != '-';
      const auto name = short_option ? arg.substr(0, 2) : arg.substr(0, arg.find('='));
      const bool option = name.size() > 1 && name[0] == '-' && !std::isdigit(static_cast<unsigned char>(name[1]));
      if (option && name != "--" && std::find(known.begin(), known.end(), name) == known.end())
        return where + unexpected(app, command, {arg}) + "; " + help_pointer(command);
    }
  }
  std::string message = e.what();
  std::smatch m;
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    // CLI11 keeps the arguments only in the message: "...not expected: a b".
    const auto colon = message.rfind(": ");
    std::vector<std::string> words;
    std::istringstream rest(colon == std::string::npos ? message : message.substr(colon + 2));
    for (std::string word; rest >> word;) words.push_back(word);
    if (!words.empty()) return where + unexpected(app, command, words) + "; " + help_pointer(command);
  }
  if (std::regex_match(message, m, std::regex("(.*) requires (.*)")))
    return where + m[1].str() + " only applies with " + m[2].str() + ": add " + m[2].str() + " or drop " +
           m[1].str();
  if (std::regex_match(message, m, std::regex("(.*) excludes (.*)")))
    return where + m[1].str() + " and " + m[2].str() + " cannot be combined: give one of them";
  if (std::regex_match(message, m, std::regex("(.*) is required")))
    return where + m[1].str() + " is required; " + help_pointer(command);
  if (std::regex_match(message, m, std::regex("Could not convert: (.*) = (.*)")))
    return where + m[1].str() + ": cannot read '" + m[2].str() + "' as a " +
           "number; " + help_pointer(command);
  if (std::regex_match(message, m, std::regex("(.*): [0-9]+ required .* missing")))
    return where + m[1].str() + " needs a value; " + help_pointer(command);
  std::replace(message.begin(), message.end(), '\n', ' ');
  return where + message;
}

}  // namespace lp::cli

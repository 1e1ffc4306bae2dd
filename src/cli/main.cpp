// linearpatch: one binary, one subcommand per job. Logs go to stderr,
// results to stdout. Exit status: 0 success, 1 runtime error, 2 usage
// error, 3 bad input file, 4 a quality gate failed (eval --max-ppl-ratio),
// 130 interrupted.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "cli/common.h"
#include "cli/profiling.h"
#include "cli/usage.h"
#include "linearpatch/core/allocator.h"
#include "linearpatch/core/error.h"
#include "linearpatch/core/interrupt.h"
#include "linearpatch/core/remedy.h"
#include "linearpatch/core/version.h"

namespace {

spdlog::level::level_enum parse_level(const std::string& name, const std::string& origin) {
  const auto level = spdlog::level::from_str(name);
  if (level == spdlog::level::off && name != "off")
    throw lp::UsageError(origin + ": unknown log level '" + name +
                         "' (use trace, debug, info, warn, error, critical or off)");
  return level;
}

void setup_logging(int verbosity, bool quiet, const std::string& level_flag) {
  auto logger = spdlog::stderr_color_mt("linearpatch");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  auto level = spdlog::level::info;
  if (const char* env = std::getenv("LINEARPATCH_LOG_LEVEL")) level = parse_level(env, "LINEARPATCH_LOG_LEVEL");
  if (!level_flag.empty()) level = parse_level(level_flag, "--log-level");
  if (quiet) level = spdlog::level::warn;
  if (verbosity == 1) level = spdlog::level::debug;
  if (verbosity >= 2) level = spdlog::level::trace;
  spdlog::set_level(level);
}

// The flag that would fix an error the library describes in its own terms.
std::string remedy_text(lp::Remedy remedy) {
  switch (remedy) {
    case lp::Remedy::kReplaceOutput:
      return " (pass --force to replace it, or choose another --out)";
    case lp::Remedy::kAllowEdges:
      return " (pass --allow-edges to let the first or the last layer go)";
  }
  return "";
}

// `command`: said in front of the message, as parse errors say it.
int report(const std::string& kind, const std::exception& e, int status, const std::string& command = "") {
  std::string message = e.what();
  if (const auto* error = dynamic_cast<const lp::RemediableUsageError*>(&e)) message += remedy_text(error->remedy());
  // One line, whatever the message carried: libtorch and the standard
  // library speak of tensors and stack frames, so only their first line is
  // shown, marked as internal, and the whole message is a debug log.
  if (!dynamic_cast<const lp::Error*>(&e) && spdlog::default_logger()) {
    spdlog::debug("full error message: {}", message);
    message = "internal: " + message.substr(0, message.find('\n')) +
              " (not an error linearpatch checks for; -v logs the full message)";
  }
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::cerr << "linearpatch: " << kind << (command.empty() ? "" : command + ": ") << message << std::endl;
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  lp::keep_tensor_buffers_in_heap();
  CLI::App app{"linearpatch: remove decoder layers from LLaMA-family checkpoints and repair the gap with a LinearPatch"};
  app.require_subcommand(1);
  // Options a command does not know (-q, -v, --log-level) go to the top
  // level, so global flags work before or after the command.
  app.fallthrough();
  app.set_version_flag("--version", std::string("linearpatch ") + lp::version());
  int verbosity = 0;
  bool quiet = false;
  std::string log_level;
  app.add_flag("-v,--verbose", verbosity, "More logging (-v debug, -vv trace)");
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (env: LINEARPATCH_LOG_LEVEL)");
  const std::vector<lp::cli::Command> commands = {
      lp::cli::register_inspect(app), lp::cli::register_tokenize(app), lp::cli::register_eval(app),
      lp::cli::register_score(app), lp::cli::register_prune(app), lp::cli::register_synth(app)};
  // Set after the commands exist, which would otherwise inherit it.
  app.footer("linearpatch help COMMAND lists a command's options; start with: linearpatch help prune");

  std::vector<std::string> args;
  try {
    args = lp::cli::normalize_arguments(app, argc, argv);
  } catch (const lp::UsageError& e) {
    return report("error: ", e, 2);
  }
  const auto command = lp::cli::command_of(app, args);
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes the arguments last first
    app.parse(reversed);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "linearpatch: error: " << lp::cli::describe_parse_error(app, command, args, e) << std::endl;
    return 2;
  }
  try {
    setup_logging(verbosity, quiet, log_level);
    lp::install_interrupt_handlers();
    const lp::cli::CommandProfile profile;
    for (const auto& entry : commands)
      if (entry.app->parsed()) entry.run();
    return 0;
  } catch (const lp::Interrupted& e) {
    return report("", e, 130);
  } catch (const lp::GateFailed& e) {
    return report("", e, 4);
  } catch (const lp::UsageError& e) {
    return report("error: ", e, 2, command);
  } catch (const lp::InputError& e) {
    return report("error: ", e, 3, command);
  } catch (const std::exception& e) {
    return report("error: ", e, 1, command);
  }
}

#include "linearpatch/io/model_locator.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>

#include "io/file_util.h"
#include "io/json_util.h"
#include "linearpatch/core/error.h"

namespace lp::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAliasesFile = "aliases.json";
constexpr uint64_t kMaxAliasesBytes = uint64_t{1} << 20;
constexpr uint64_t kMaxRefBytes = 4096;
// {"aliases": {"<name>": {"repo": ...}}}
constexpr int kMaxAliasesDepth = 3;

// What was tried, in order, for the not-found message.
using Trail = std::vector<std::string>;

// An alias maps to a hub repo id or to a directory.
struct Alias {
  std::string repo;
  fs::path path;
  fs::path file;  // the aliases.json that defines it
};

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

Alias parse_alias(const std::string& name, const nlohmann::json& entry, const fs::path& file) {
  const auto repo = entry.find("repo");
  const auto path = entry.find("path");
  const bool has_repo = repo != entry.end() && repo->is_string();
  const bool has_path = path != entry.end() && path->is_string();
  if (!entry.is_object() || entry.size() != 1 || has_repo == has_path) {
    fail_input(file, "alias '" + name + "' must be {\"repo\": \"<org>/<name>\"} or {\"path\": \"<dir>\"}, got " +
                         json_excerpt(entry));
  }
  if (has_repo) return {repo->get<std::string>(), {}, file};
  // Relative paths start at the parent of the configs directory: the
  // repository root for the source tree, share/linearpatch when installed.
  return {{}, file.parent_path().parent_path() / path->get<std::string>(), file};
}

std::map<std::string, Alias> load_aliases(const fs::path& file) {
  const auto json = parse_json_strict(read_text_file(file, kMaxAliasesBytes), file.string(), kMaxAliasesDepth);
  const auto aliases = json.is_object() ? json.find("aliases") : json.end();
  if (aliases == json.end() || !aliases->is_object()) fail_input(file, "must be an object with an 'aliases' object");
  std::map<std::string, Alias> result;
  for (const auto& [name, entry] : aliases->items()) result.emplace(name, parse_alias(name, entry, file));
  return result;
}

// The first aliases.json along config_search_dirs() that defines `spec`.
std::optional<Alias> find_alias(const std::string& spec, Trail& trail) {
  for (const auto& dir : config_search_dirs()) {
    const auto file = dir / kAliasesFile;
    if (!regular_file_exists(file)) {
      trail.push_back("alias file " + file.string() + ": missing");
      continue;
    }
    const auto aliases = load_aliases(file);
    const auto it = aliases.find(spec);
    if (it != aliases.end()) return it->second;
    trail.push_back("alias file " + file.string() + ": no alias '" + spec + "'");
  }
  return std::nullopt;
}

// HF's own rules for repo ids: <org>/<name>, letters, digits, '-', '_', '.'.
bool is_repo_id(const std::string& spec) {
  const auto slash = spec.find('/');
  if (slash == std::string::npos || spec.find('/', slash + 1) != std::string::npos) return false;
  const std::string org = spec.substr(0, slash);
  const std::string name = spec.substr(slash + 1);
  const auto valid_part = [](const std::string& part) {
    return !part.empty() && part.front() != '.' && part.find("--") == std::string::npos &&
           std::all_of(part.begin(), part.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
  };
  return valid_part(org) && valid_part(name);
}

// The cache directory huggingface_hub itself would use.
fs::path hub_cache_dir() {
  if (const auto dir = env("HF_HUB_CACHE"); !dir.empty()) return dir;
  if (const auto home = env("HF_HOME"); !home.empty()) return fs::path(home) / "hub";
  if (const auto home = env("HOME"); !home.empty()) return fs::path(home) / ".cache" / "huggingface" / "hub";
  return {};
}

std::optional<fs::path> newest_subdirectory(const fs::path& dir) {
  std::error_code ec;
  std::optional<fs::path> newest;
  fs::file_time_type newest_time;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    // An entry that cannot be examined is skipped, not the rest of the scan.
    std::error_code entry_ec;
    if (!it->is_directory(entry_ec)) continue;
    const auto time = it->last_write_time(entry_ec);
    if (entry_ec) continue;
    if (!newest || time > newest_time) {
      newest = it->path();
      newest_time = time;
    }
  }
  return newest;
}

std::string trim(std::string text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// models--<org>--<name>/snapshots/<revision>: the revision refs/main points
// to, else the most recently modified snapshot.
std::optional<fs::path> find_in_hub_cache(const std::string& repo, Trail& trail) {
  const fs::path cache = hub_cache_dir();
  if (cache.empty()) {
    trail.push_back("HuggingFace hub cache: HF_HUB_CACHE, HF_HOME and HOME are all unset");
    return std::nullopt;
  }
  std::string folder = "models--" + repo;
  folder.replace(folder.find('/'), 1, "--");
  const fs::path repo_dir = cache / folder;
  const fs::path snapshots = repo_dir / "snapshots";

  const fs::path ref = repo_dir / "refs" / "main";
  if (regular_file_exists(ref)) {
    const std::string revision = trim(read_text_file(ref, kMaxRefBytes));
    if (is_plain_file_name(revision) && directory_exists(snapshots / revision)) return snapshots / revision;
  }
  if (auto newest = newest_subdirectory(snapshots)) return newest;
  trail.push_back("HuggingFace hub cache: " + snapshots.string() +
                  (directory_exists(repo_dir) ? ": no snapshot" : ": missing"));
  return std::nullopt;
}

std::string not_found_message(const std::string& spec, const Trail& trail) {
  // One line: main() prints errors as a single line that scripts can grep.
  std::string message = "cannot find model '" + spec + "' (looked for";
  for (size_t i = 0; i < trail.size(); ++i) message += (i ? "; " : " ") + trail[i];
  message +=
      "); pass a checkpoint directory, an alias from aliases.json, or the id of a repo downloaded with "
      "`huggingface-cli download <org>/<name>`";
  return message;
}

}  // namespace

std::vector<fs::path> config_search_dirs() {
  std::vector<fs::path> dirs;
  for (const fs::path& dir :
       {fs::path(env("LINEARPATCH_CONFIG_DIR")), fs::path(LP_SOURCE_CONFIG_DIR), fs::path(LP_INSTALL_CONFIG_DIR)}) {
    if (!dir.empty() && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  return dirs;
}

fs::path resolve_model(const std::string& spec) {
  if (spec.empty()) throw InputError("no model given");
  if (directory_exists(spec)) return spec;
  Trail trail;
  std::error_code ec;
  trail.push_back("directory " + fs::absolute(spec, ec).string() +
                  (path_exists(spec) ? ": not a directory" : ": missing"));

  std::string repo = spec;
  if (const auto alias = find_alias(spec, trail)) {
    if (!alias->path.empty()) {
      if (directory_exists(alias->path)) return alias->path;
      trail.push_back("alias '" + spec + "' in " + alias->file.string() + " -> directory " + alias->path.string() +
                      ": missing");
      throw InputError(not_found_message(spec, trail));
    }
    repo = alias->repo;
    trail.push_back("alias '" + spec + "' in " + alias->file.string() + " -> repo " + repo);
  }
  if (!is_repo_id(repo)) {
    trail.push_back("HuggingFace hub cache: '" + repo + "' is not a repo id of the form <org>/<name>");
  } else if (auto dir = find_in_hub_cache(repo, trail)) {
    return *dir;
  }
  throw InputError(not_found_message(spec, trail));
}

}  // namespace lp::io

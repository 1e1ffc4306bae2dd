#include "linearpatch/io/model_locator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "support/expect_error.h"
#include "support/test_env.h"

namespace lp::io {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_message;
using test::TempDir;

// Sets (or unsets, for nullopt) an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

fs::path make_snapshot(const fs::path& hub, const std::string& folder, const std::string& revision) {
  const auto snapshot = hub / folder / "snapshots" / revision;
  fs::create_directories(snapshot);
  test::write_file(snapshot / "config.json", "{}");
  return snapshot;
}

// A fake hub cache and an empty config dir, isolated from the user's.
class ModelLocator : public ::testing::Test {
 protected:
  TempDir root;
  fs::path hub = root / "hub";
  fs::path configs = root / "configs";
  ScopedEnv hub_env{"HF_HUB_CACHE", hub.string()};
  ScopedEnv config_env{"LINEARPATCH_CONFIG_DIR", configs.string()};

  void SetUp() override { fs::create_directories(configs); }
};

TEST_F(ModelLocator, ExistingDirectoryIsItself) { EXPECT_EQ(resolve_model(root.path().string()), root.path()); }

TEST_F(ModelLocator, RepoIdFromRefsMain) {
  make_snapshot(hub, "models--org--name", "aaaa");
  const auto wanted = make_snapshot(hub, "models--org--name", "bbbb");
  make_snapshot(hub, "models--org--name", "cccc");
  fs::create_directories(hub / "models--org--name" / "refs");
  test::write_file(hub / "models--org--name" / "refs" / "main", "bbbb\n");
  EXPECT_EQ(resolve_model("org/name"), wanted);
}

TEST_F(ModelLocator, RepoIdWithoutRefsTakesTheNewestSnapshot) {
  const auto old_snapshot = make_snapshot(hub, "models--org--name", "old");
  const auto new_snapshot = make_snapshot(hub, "models--org--name", "new");
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(old_snapshot, now - std::chrono::hours(2));
  fs::last_write_time(new_snapshot, now - std::chrono::hours(1));
  EXPECT_EQ(resolve_model("org/name"), new_snapshot);
  // A ref to a snapshot that is not there falls back to the newest too.
  fs::create_directories(hub / "models--org--name" / "refs");
  test::write_file(hub / "models--org--name" / "refs" / "main", "gone");
  EXPECT_EQ(resolve_model("org/name"), new_snapshot);
}

TEST_F(ModelLocator, HfHomeWhenHubCacheIsUnset) {
  ScopedEnv no_hub("HF_HUB_CACHE", std::nullopt);
  ScopedEnv home("HF_HOME", root.path().string());
  const auto snapshot = make_snapshot(hub, "models--meta-llama--Llama-3.2-1B", "rev");
  EXPECT_EQ(resolve_model("meta-llama/Llama-3.2-1B"), snapshot);
}

TEST_F(ModelLocator, HomeCacheWhenNothingElseIsSet) {
  ScopedEnv no_hub("HF_HUB_CACHE", std::nullopt);
  ScopedEnv no_hf_home("HF_HOME", std::nullopt);
  ScopedEnv home("HOME", root.path().string());
  const auto snapshot = make_snapshot(root / ".cache" / "huggingface" / "hub", "models--org--name", "rev");
  EXPECT_EQ(resolve_model("org/name"), snapshot);
}

TEST_F(ModelLocator, AliasesToRepoIdsAndToPaths) {
  test::write_file(configs / "aliases.json", R"({"aliases": {
    "mine": {"repo": "org/name"},
    "local": {"path": "models/local-model"}}})");
  const auto snapshot = make_snapshot(hub, "models--org--name", "rev");
  fs::create_directories(root / "models" / "local-model");
  EXPECT_EQ(resolve_model("mine"), snapshot);
  EXPECT_EQ(resolve_model("local"), root / "models" / "local-model");
}

TEST_F(ModelLocator, ShippedAliasesReachTheHubCache) {
  // The source tree's configs/aliases.json, reached after the empty env dir.
  const auto snapshot = make_snapshot(hub, "models--meta-llama--Meta-Llama-3-8B", "rev");
  EXPECT_EQ(resolve_model("llama3-8b"), snapshot);
  const auto llama2 = make_snapshot(hub, "models--meta-llama--Llama-2-7b-hf", "rev");
  EXPECT_EQ(resolve_model("llama2-7b"), llama2);
}

TEST_F(ModelLocator, ShippedDemoAliasPointsIntoTheRepository) {
  const fs::path demo = test::repo_dir() / "data" / "models" / "demo-llama3-d";
  // The demo model is copied into the repository by the packaging step; until
  // then the alias must say where it looked.
  if (fs::is_directory(demo)) {
    EXPECT_TRUE(fs::equivalent(resolve_model("demo"), demo));
  } else {
    const auto message = error_message([] { resolve_model("demo"); });
    EXPECT_TRUE(contains(message, "data/models/demo-llama3-d")) << message;
  }
}

TEST_F(ModelLocator, NotFoundListsEveryPlace) {
  test::write_file(configs / "aliases.json", R"({"aliases": {"other": {"repo": "a/b"}}})");
  const auto message = error_message([] { resolve_model("org/missing"); });
  EXPECT_TRUE(contains(message, "cannot find model 'org/missing'")) << message;
  EXPECT_TRUE(contains(message, "directory ")) << message;
  EXPECT_TRUE(contains(message, (configs / "aliases.json").string() + ": no alias 'org/missing'")) << message;
  for (const auto& dir : config_search_dirs()) {
    EXPECT_TRUE(contains(message, (dir / "aliases.json").string())) << message;
  }
  EXPECT_TRUE(contains(message, (hub / "models--org--missing" / "snapshots").string() + ": missing")) << message;
}

TEST_F(ModelLocator, NotFoundForAnAliasNamesItsTarget) {
  test::write_file(configs / "aliases.json", R"({"aliases": {
    "repo-alias": {"repo": "org/absent"}, "path-alias": {"path": "nowhere"}}})");
  auto message = error_message([] { resolve_model("repo-alias"); });
  EXPECT_TRUE(contains(message, "alias 'repo-alias' in " + (configs / "aliases.json").string() + " -> repo org/absent"))
      << message;
  EXPECT_TRUE(contains(message, "models--org--absent")) << message;
  message = error_message([] { resolve_model("path-alias"); });
  EXPECT_TRUE(contains(message, (root / "nowhere").string() + ": missing")) << message;
}

TEST_F(ModelLocator, NotARepoId) {
  const auto message = error_message([] { resolve_model("no-such-thing"); });
  EXPECT_TRUE(contains(message, "'no-such-thing' is not a repo id of the form <org>/<name>")) << message;
  EXPECT_THROW(resolve_model("../escape/x"), InputError);
  EXPECT_THROW(resolve_model("a/b/c"), InputError);
  EXPECT_THROW(resolve_model(""), InputError);
}

TEST_F(ModelLocator, BrokenAliasFilesAreNamed) {
  const auto file = (configs / "aliases.json").string();
  test::write_file(configs / "aliases.json", "{");
  auto message = error_message([] { resolve_model("x"); });
  EXPECT_TRUE(contains(message, file) && contains(message, "invalid JSON")) << message;
  test::write_file(configs / "aliases.json", R"({"aliases": []})");
  message = error_message([] { resolve_model("x"); });
  EXPECT_TRUE(contains(message, file) && contains(message, "'aliases' object")) << message;
  test::write_file(configs / "aliases.json", R"({"aliases": {"x": {"repo": "a/b", "path": "c"}}})");
  message = error_message([] { resolve_model("x"); });
  EXPECT_TRUE(contains(message, file) && contains(message, "alias 'x' must be")) << message;
}

TEST(ConfigSearchDirs, EnvironmentFirstThenSourceThenInstall) {
  ScopedEnv env("LINEARPATCH_CONFIG_DIR", "/custom/configs");
  const auto dirs = config_search_dirs();
  ASSERT_GE(dirs.size(), 2u);
  EXPECT_EQ(dirs[0], "/custom/configs");
  EXPECT_TRUE(fs::equivalent(dirs[1], test::repo_dir() / "configs"));
  ScopedEnv unset("LINEARPATCH_CONFIG_DIR", std::nullopt);
  EXPECT_TRUE(fs::equivalent(config_search_dirs().front(), test::repo_dir() / "configs"));
}

}  // namespace
}  // namespace lp::io

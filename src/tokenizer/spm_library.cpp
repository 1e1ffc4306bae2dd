#include "tokenizer/spm_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace lp::detail {
namespace {

namespace fs = std::filesystem;

struct LoadResult {
  SpmApi api{};
  std::optional<std::string> error;
};

#ifdef LP_SPM_SHIM_NAME

// Sanitizer runtimes abort on dlopen(RTLD_DEEPBIND) (google/sanitizers#611),
// so in such a process the shim must not even be tried.
bool sanitizer_runtime_present() {
  for (const char* symbol : {"__asan_init", "__tsan_init", "__msan_init", "__hwasan_init"})
    if (dlsym(RTLD_DEFAULT, symbol)) return true;
  return false;
}

// An explicit $LINEARPATCH_SPM_SHIM is the only candidate: falling back to
// another copy would hide a typo.
std::vector<fs::path> candidates() {
  if (const char* env = std::getenv("LINEARPATCH_SPM_SHIM"); env && *env) return {fs::path(env)};
  std::vector<fs::path> paths;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back(exe.parent_path() / LP_SPM_SHIM_NAME);
    paths.push_back(exe.parent_path().parent_path() / LP_SPM_SHIM_INSTALL_RELDIR / LP_SPM_SHIM_NAME);
  }
  paths.emplace_back(LP_SPM_SHIM_BUILD_PATH);
  paths.emplace_back(LP_SPM_SHIM_INSTALL_PATH);
  return paths;
}

template <typename Fn>
bool resolve(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

LoadResult open_shim(const fs::path& path) {
  LoadResult result;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!handle) {
    const char* why = dlerror();
    result.error = "cannot open " + path.string() + ": " + (why ? why : "unknown dlopen error");
    return result;
  }
  SpmApi& api = result.api;
  const bool complete = resolve(handle, "lp_spm_load", api.load) && resolve(handle, "lp_spm_free", api.free) &&
                        resolve(handle, "lp_spm_encode", api.encode) && resolve(handle, "lp_spm_decode", api.decode) &&
                        resolve(handle, "lp_spm_vocab_size", api.vocab_size) &&
                        resolve(handle, "lp_spm_bos_id", api.bos_id) && resolve(handle, "lp_spm_eos_id", api.eos_id) &&
                        resolve(handle, "lp_spm_piece_to_id", api.piece_to_id) &&
                        resolve(handle, "lp_spm_id_to_piece", api.id_to_piece);
  // The handle stays open for the life of the process: ids and models from it
  // may be alive until exit.
  if (!complete) result.error = path.string() + " is not a linearpatch sentencepiece shim (missing symbols)";
  return result;
}

LoadResult load() {
  if (sanitizer_runtime_present())
    return {{}, "the sentencepiece shim cannot be loaded under a sanitizer runtime (it needs RTLD_DEEPBIND)"};
  std::string looked;
  for (const fs::path& path : candidates()) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return open_shim(path);
    looked += (looked.empty() ? "" : ", ") + path.string();
  }
  return {{},
          std::string("sentencepiece shim ") + LP_SPM_SHIM_NAME + " not found (looked for " + looked +
              "; set LINEARPATCH_SPM_SHIM to its path)"};
}

#else

LoadResult load() { return {{}, "this build has no sentencepiece support (configured with LP_WITH_SPM=OFF)"}; }

#endif

const LoadResult& load_once() {
  static const LoadResult result = load();
  return result;
}

}  // namespace

const SpmApi* spm_api() {
  const LoadResult& r = load_once();
  return r.error ? nullptr : &r.api;
}

std::optional<std::string> spm_unavailable_reason() { return load_once().error; }

}  // namespace lp::detail

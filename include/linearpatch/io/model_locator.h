// Resolves what users type after --model: a directory, an alias from
// configs/aliases.json (e.g. "llama3-8b" -> "meta-llama/Meta-Llama-3-8B"),
// or a HuggingFace repo id found in the local hub cache
// ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub; layout
// models--<org>--<name>/snapshots/<revision>/, revision from refs/main when
// present, else the newest snapshot).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lp::io {

// Directories holding configs/aliases.json, in search order:
// $LINEARPATCH_CONFIG_DIR, then the configs/ directory of the source tree the
// binary was built from, then the installed share directory.
std::vector<std::filesystem::path> config_search_dirs();

// Throws InputError listing every place it looked when nothing matches.
std::filesystem::path resolve_model(const std::string& spec);

}  // namespace lp::io

// The Python module written next to patched checkpoints so transformers can
// load them with trust_remote_code (src/prune/hf/modeling_linearpatch.py,
// embedded at build time): one class per family, each subclassing the
// family's own transformers class.
#pragma once

namespace lp {

constexpr const char* kHfModelingFile = "modeling_linearpatch.py";
const char* hf_modeling_source();
// Appended to it for checkpoints whose layers lack some sublayers
// (src/prune/hf/modeling_linearpatch_sublayers.py), so whole-layer outputs
// keep the module they always had.
const char* hf_modeling_sublayer_source();

// Nemotron-NAS (DeciLM) checkpoints with sublayers removed: the config and
// modeling modules config.json's auto_map names (src/prune/hf/*_decilm.py).
constexpr const char* kNemotronConfigurationFile = "configuration_decilm.py";
constexpr const char* kNemotronModelingFile = "modeling_decilm.py";
const char* nemotron_configuration_source();
const char* nemotron_modeling_source();

}  // namespace lp

// weir-control's state file (control.state_file, default /var/lib/weir/control-state.json): the
// operator's overrides (weirctl drain, down, weight, drain-box) kept across weir-control's
// restarts, so that a backend drained for maintenance stays drained when weir-control is
// upgraded or restarted. The layout is Controller::overrides() (control/controller.h) with a
// version:
//   {"version": 1, "box_drained": false, "backends": [{"pool": "app", "backend": "b2",
//                                                      "state": "draining"}]}
//
// Written atomically (a temporary file in the same directory, fsync, rename over the file, fsync
// of the directory): a crash or power loss leaves the old file or the new one, never a mix.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>

namespace weir::control {

inline constexpr int kStateFileVersion = 1;
inline constexpr size_t kMaxStateFileBytes = 16 << 20;

// Writes `state` (with "version") to `path`. Returns "" or why not.
std::string save_state(const std::string& path, nlohmann::json state);

struct LoadedState {
  std::optional<nlohmann::json> state;  // none: no file (a first start), or unusable
  std::string error;                    // why it is unusable ("" when it is fine or absent)
  std::string kept_as;                  // where the unusable file was moved ("" if not)
};

// Reads `path`. A file that is not JSON, not an object of this layout or of another version is
// unusable: it is renamed to PATH.corrupt (replacing an older one) so that the next save does not
// overwrite the evidence, and the caller goes on without overrides.
LoadedState load_state(const std::string& path);

}  // namespace weir::control

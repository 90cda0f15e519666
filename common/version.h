// Weir's version and the source revision the binaries were built from, the same in every binary:
// `--version` prints them and weir-control exports them as weir_build_info (docs/metrics.md).
// The version is meson's project version; the revision is `git describe --always --dirty` of the
// source tree at build time, or "unknown" for a tree outside git (common/meson.build).
#pragma once

#include <string>
#include <string_view>

namespace weir {

std::string_view version();
std::string_view revision();

// What `PROGRAM --version` prints: "PROGRAM VERSION (revision REVISION)".
std::string version_line(std::string_view program);

}  // namespace weir

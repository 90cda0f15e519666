// How long a control socket's path may be: sun_path holds 107 bytes and a NUL on Linux, and the
// line server first binds `PATH.<pid>.tmp` (at most 16 bytes more) before renaming it into place.
// The configuration checks its socket paths against this.
#pragma once

#include <cstddef>

namespace weir::channel {

inline constexpr size_t kMaxSocketPath = 107 - 16;

}  // namespace weir::channel

// Readiness for systemd's Type=notify units (packaging/systemd/): a daemon says READY=1 once it
// really serves, so that `After=weir-dataplane.service` orders by service rather than by fork, and
// STOPPING=1 when it begins to stop. Through libsystemd's sd_notify, which does nothing when the
// process was not started by systemd (no NOTIFY_SOCKET); a build without libsystemd (meson option
// `systemd` disabled) does nothing at all, and installs its units as Type=exec instead.
#pragma once

#include <string_view>

namespace weir {

// READY=1 with a one-line STATUS= for `systemctl status`.
void notify_ready(std::string_view status);

// STOPPING=1.
void notify_stopping();

}  // namespace weir

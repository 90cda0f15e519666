// Dropping root once the private keys are loaded (docs/tls.md, "Where keys live").
#pragma once

#include <string>

namespace weir::tls {

// As root: switches to `user` (supplementary groups cleared, then its group, then the user) and
// checks that root cannot be regained. Not root: nothing to drop (`user` must then be empty or
// the current user). Returns "" or why it failed; the caller must not go on after a failure.
std::string drop_privileges(const std::string& user);

}  // namespace weir::tls

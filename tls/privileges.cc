// See privileges.h.
#include "tls/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace weir::tls {

std::string drop_privileges(const std::string& user) {
  const bool root = geteuid() == 0 || getuid() == 0;
  if (!root) {
    if (user.empty()) return "";
    const passwd* self = getpwuid(getuid());
    if (self != nullptr && user == self->pw_name) return "";
    return "not running as root, so cannot switch to user \"" + user + "\"";
  }
  if (user.empty())
    return "running as root with no tls.user to switch to; a TLS worker never serves as root "
           "(set tls.user, e.g. an account that may read nothing but its keys)";
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr)
    return "tls.user \"" + user + "\" is not a user on this system";
  if (found->pw_uid == 0) return "tls.user \"" + user + "\" is root";
  const auto failed = [](const char* step) {
    return std::string(step) + " failed: " + std::strerror(errno);
  };
  if (setgroups(0, nullptr) != 0) return failed("setgroups");
  if (setresgid(found->pw_gid, found->pw_gid, found->pw_gid) != 0) return failed("setresgid");
  if (setresuid(found->pw_uid, found->pw_uid, found->pw_uid) != 0) return failed("setresuid");
  if (setuid(0) == 0 || seteuid(0) == 0) return "root could be regained after dropping privileges";
  return "";
}

}  // namespace weir::tls

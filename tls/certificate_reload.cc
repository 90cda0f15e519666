// See certificate_reload.h.
#include "tls/certificate_reload.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/tls_attach.h"
#include "config/config.h"

namespace weir::tls {
namespace {

// The whole file behind `fd` from offset 0 (pread: the fd's offset is weir-control's too), or
// false when it cannot be read or is larger than kMaxReloadFileBytes.
bool read_whole(int fd, std::string& out) {
  out.clear();
  char buffer[16384];
  for (;;) {
    const ssize_t n = pread(fd, buffer, sizeof buffer, static_cast<off_t>(out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > tls_attach::kMaxReloadFileBytes) return false;
  }
}

}  // namespace

CertificateReload load_certificate_reload(std::span<const uint8_t> message, std::vector<int>& fds,
                                          const std::shared_ptr<TicketKeys>& keys) {
  CertificateReload reload;
  tls_files::FileContents files;
  std::vector<std::string> paths;
  constexpr size_t kHeader = sizeof tls_attach::kCertificateReload + sizeof(uint32_t);
  if (message.size() >= kHeader) {
    std::memcpy(&reload.generation, message.data() + sizeof tls_attach::kCertificateReload,
                sizeof reload.generation);
    const std::string_view rest(reinterpret_cast<const char*>(message.data()) + kHeader,
                                message.size() - kHeader);
    for (size_t start = 0; start < rest.size();) {
      const size_t end = rest.find('\0', start);
      if (end == std::string_view::npos) break;  // an unterminated path: counted wrong below
      paths.emplace_back(rest.substr(start, end - start));
      start = end + 1;
    }
  }
  if (paths.empty() || paths.size() != fds.size()) {
    reload.errors.push_back("a malformed certificate reload: " + std::to_string(paths.size()) +
                            " path(s), " + std::to_string(fds.size()) + " fd(s)");
  } else {
    for (size_t i = 0; i < paths.size(); ++i) {
      std::string contents;
      if (!read_whole(fds[i], contents)) {
        reload.errors.push_back("cannot read \"" + paths[i] + "\" from its fd");
        continue;
      }
      files[paths[i]] = std::move(contents);
    }
  }
  for (const int fd : fds) close(fd);
  fds.clear();
  if (reload.errors.empty()) {
    const config::LoadResult loaded = config::load_string(files[paths[0]], paths[0]);
    for (const auto& error : loaded.errors) reload.errors.push_back(error.to_string());
    if (loaded.ok()) {
      auto contexts = std::make_shared<Contexts>(keys);
      if (contexts->load(*loaded.config, reload.errors, &files)) reload.contexts = contexts;
    }
  }
  // The keys' text is not kept beyond the contexts that hold them.
  for (auto& [path, contents] : files) std::fill(contents.begin(), contents.end(), '\0');
  return reload;
}

std::string certificate_reload_ack(const CertificateReload& reload) {
  std::string ack(tls_attach::kCertificateReload, sizeof tls_attach::kCertificateReload);
  ack.append(reinterpret_cast<const char*>(&reload.generation), sizeof reload.generation);
  ack.push_back(reload.contexts ? 1 : 0);
  return ack;
}

}  // namespace weir::tls

#include "control/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace weir::control {
namespace {

std::string failed(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string save_state(const std::string& path, nlohmann::json state) {
  state["version"] = kStateFileVersion;
  const std::string text = state.dump(2) + "\n";
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed("cannot create", temporary);
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string error = failed("cannot write", temporary);
      ::close(fd);
      ::unlink(temporary.c_str());
      return error;
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string error = failed("cannot fsync", temporary);
    ::close(fd);
    ::unlink(temporary.c_str());
    return error;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string error = failed("cannot rename " + temporary + " to", path);
    ::unlink(temporary.c_str());
    return error;
  }
  // The rename itself is durable only once the directory is.
  const std::string directory = directory_of(path);
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return failed("cannot open the directory", directory);
  const bool synced = ::fsync(dir) == 0;
  const std::string error = synced ? "" : failed("cannot fsync the directory", directory);
  ::close(dir);
  return error;
}

LoadedState load_state(const std::string& path) {
  LoadedState out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) out.error = failed("cannot open", path);  // ENOENT: a first start
    return out;
  }
  std::string text;
  char buffer[65536];
  ssize_t n = 0;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
    // Overrides are a few lines per backend: a file this large is not one of ours.
    if (text.size() > kMaxStateFileBytes) break;
  }
  const bool read_failed = n < 0;
  ::close(fd);
  if (read_failed) {
    out.error = failed("cannot read", path);
    return out;
  }
  nlohmann::json state = text.size() > kMaxStateFileBytes
                             ? nlohmann::json(nlohmann::json::value_t::discarded)
                             : nlohmann::json::parse(text, nullptr, false);
  if (text.size() > kMaxStateFileBytes) {
    out.error = "larger than " + std::to_string(kMaxStateFileBytes) + " bytes";
  } else if (state.is_discarded()) {
    out.error = "not valid JSON";
  } else if (!state.is_object()) {
    out.error = "not a JSON object";
  } else if (!state.contains("version") || state["version"] != kStateFileVersion) {
    out.error = "\"version\" is not " + std::to_string(kStateFileVersion);
  } else {
    out.state = std::move(state);
    return out;
  }
  const std::string kept = path + ".corrupt";
  if (::rename(path.c_str(), kept.c_str()) == 0) out.kept_as = kept;
  return out;
}

}  // namespace weir::control

// One configuration error, printed as FILE:LINE:COLUMN: key.path[index].key: message.
#pragma once

#include <string>

namespace weir::config {

struct Diagnostic {
  std::string file;
  int line = 0;      // 1-based; 0 when the error is about the file as a whole
  int column = 0;    // 1-based
  std::string path;  // e.g. "listeners[1].framed.max_frame"; empty for the document itself
  std::string message;

  std::string to_string() const {
    std::string text = file;
    if (line > 0) text += ':' + std::to_string(line) + ':' + std::to_string(column);
    text += ": ";
    if (!path.empty()) text += path + ": ";
    return text + message;
  }
};

// Where a value stood in the file, kept in the Config for checks made after loading (the
// certificate files named by a tls listener are read by check_certificates, not by the loader).
struct Place {
  int line = 0;  // 1-based, as in Diagnostic
  int column = 0;
  std::string path;  // e.g. "listeners[0].tls.certificates[1].key"

  Diagnostic error(const std::string& file, std::string message) const {
    return Diagnostic{file, line, column, path, std::move(message)};
  }
};

}  // namespace weir::config

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

}  // namespace weir::config

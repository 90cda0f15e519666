// What the table-driven configuration tests share (config_test.cc, config_cluster_test.cc): a
// case is a YAML text and the exact diagnostics it must produce, positions included, so a message
// or a position that drifts fails.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace weir::config {

// Every diagnostic of loading `text` as "t.yaml", printed.
inline std::vector<std::string> errors_of(const std::string& text) {
  const LoadResult result = load_string(text, "t.yaml");
  std::vector<std::string> lines;
  for (const Diagnostic& d : result.errors) lines.push_back(d.to_string());
  EXPECT_EQ(result.ok(), lines.empty()) << "a config is returned exactly when there is no error";
  return lines;
}

struct Case {
  const char* name;
  std::string text;
  std::vector<std::string> expected;
};

// A fixture whose TEST_P is one line: EXPECT_EQ(errors_of(GetParam().text), GetParam().expected).
class ConfigCases : public ::testing::TestWithParam<Case> {};

}  // namespace weir::config

// weir-dataplane: argument parsing only; the process itself is dataplane/process.cc.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common/version.h"
#include "config/certificate_check.h"
#include "config/config.h"
#include "dataplane/process.h"

namespace {

void print_usage(FILE* out) {
  std::fprintf(out,
               "usage: weir-dataplane --config FILE\n"
               "       weir-dataplane --check-config FILE\n"
               "       weir-dataplane --version\n"
               "\n"
               "  --config FILE        run the dataplane described by FILE\n"
               "  --check-config FILE  validate FILE, print every error as FILE:LINE:COLUMN: path: "
               "message, exit 0 if valid, 1 if not\n"
               "  --version            print the version and source revision\n");
}

int load_and(const std::string& path, bool run) {
  const weir::config::LoadResult result = weir::config::load_file(path);
  for (const auto& error : result.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  if (!result.ok()) return 1;
  std::vector<weir::config::Diagnostic> errors;
  if (!run) {
    // Only the check reads certificate and key files; the running dataplane never reads a key.
    for (auto& error : weir::config::check_certificates(*result.config, std::time(nullptr)))
      errors.push_back(std::move(error));
    std::stable_sort(errors.begin(), errors.end(), [](const auto& a, const auto& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
  }
  for (const auto& error : errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  if (!errors.empty()) return 1;
  if (!run) {
    std::printf("%s: configuration is valid\n", path.c_str());
    return 0;
  }
  return weir::dataplane::run(result.config);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) return load_and(argv[2], false);
  if (argc == 3 && std::strcmp(argv[1], "--config") == 0) return load_and(argv[2], true);
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    print_usage(stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("%s\n", weir::version_line("weir-dataplane").c_str());
    return 0;
  }
  print_usage(stderr);
  return 2;
}

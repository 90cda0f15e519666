// The command line of the frame tools (weir-frame-echo, weir-frame-load): options as
// "--name VALUE" or "--name=VALUE", flags without values, numbers checked against their range, and
// the shared main(): --help anywhere prints the usage and exits 0, --version the version and source
// revision (exit 0), a usage error exits 2 with
// "PROGRAM: why (see --help)", any other failure exits 1 with its reason. Header-only.
#pragma once

#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/version.h"

namespace weir::tools {

inline constexpr int kExitUsage = 2;

// A bad command line: exit 2 with the reason.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads argv one option at a time.
class ArgumentReader {
 public:
  // `with_value`: the options that take a value ("--listen"); every other argument is returned
  // with an empty value, for the caller to accept as a flag or refuse as unknown.
  ArgumentReader(int argc, char** argv, std::initializer_list<std::string_view> with_value)
      : argc_(argc), argv_(argv), with_value_(with_value) {}

  // The next option's name and value; false when there are no more. Throws UsageError when an
  // option that takes a value is last.
  bool next(std::string_view& name, std::string_view& value) {
    if (next_ >= argc_) return false;
    current_ = argv_[next_++];
    name = current_;
    value = {};
    if (const size_t eq = name.find('='); name.starts_with("--") && eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (takes_value(name)) {
      if (next_ >= argc_) throw UsageError(std::string(name) + ": missing value");
      value = argv_[next_++];
    }
    return true;
  }
  // The whole argument last read, for "unknown argument" messages.
  std::string current() const { return std::string(current_); }

 private:
  bool takes_value(std::string_view name) const {
    for (std::string_view option : with_value_) {
      if (option == name) return true;
    }
    return false;
  }

  int argc_;
  char** argv_;
  std::vector<std::string_view> with_value_;
  int next_ = 1;
  std::string_view current_;
};

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

// `value` as a whole number in [minimum, maximum], or a UsageError naming the option.
template <class T>
T whole_number(std::string_view name, std::string_view value, T minimum, T maximum) {
  T out{};
  if (!parse_number(value, out) || out < minimum || out > maximum) {
    throw UsageError(std::string(name) + ": expected a whole number from " +
                     std::to_string(minimum) + " to " + std::to_string(maximum) + ", got '" +
                     std::string(value) + "'");
  }
  return out;
}

// The tools' main(): `body` parses the options (throwing UsageError) and runs.
template <class Body>
int tool_main(const char* program, int argc, char** argv, void (*print_usage)(FILE*), Body body) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      print_usage(stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--version") == 0) {
      std::printf("%s\n", version_line(program).c_str());
      return 0;
    }
  }
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", program, e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace weir::tools

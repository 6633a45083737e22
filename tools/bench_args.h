// bench_args.h — what the benchmarks in tools/ share to read their command lines.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace longctx::bench {

// The value of option `opt` as an integer; a value that is not one whole integer ("abc", "8k",
// "") throws std::invalid_argument naming the option, for main to print and exit 2.
inline int64_t integer(const std::string& opt, const std::string& v) {
  size_t used = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) throw std::invalid_argument(opt + ": '" + v + "' is not an integer");
  return x;
}

// "4096,16384,65536" -> {4096, 16384, 65536}; each item as integer() reads it.
inline std::vector<int64_t> int_list(const std::string& opt, const std::string& s) {
  std::vector<int64_t> v;
  for (size_t i = 0; i <= s.size();) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(integer(opt, s.substr(i, j - i)));
    i = j + 1;
  }
  return v;
}

}  // namespace longctx::bench

// bench_args.h — what the benchmarks in tools/ share to read their command lines.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx::bench {

// "4096,16384,65536" -> {4096, 16384, 65536} (std::stoll: throws on a non-number).
inline std::vector<int64_t> int_list(const std::string& s) {
  std::vector<int64_t> v;
  for (size_t i = 0; i < s.size();) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::stoll(s.substr(i, j - i)));
    i = j + 1;
  }
  return v;
}

}  // namespace longctx::bench

#include "longctx/common.h"

namespace longctx {

std::string Error::report() const {
  std::string s = fmt::format("longctx: error: {}\n  at {}", what(), where_);
  if (!hint_.empty()) s += fmt::format("\n  hint: {}", hint_);
  return s;
}

void throw_error(const char* file, int line, std::string msg, std::string hint, bool alike) {
  throw Error(std::move(msg), fmt::format("{}:{}", file, line), std::move(hint), alike);
}

}  // namespace longctx

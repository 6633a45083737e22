#include "longctx/data.h"

#include "longctx/common.h"

namespace longctx {

std::unique_ptr<DataSource> open_data(const Config& cfg) {
  // Every rank opens the same source: its refusals are printed once.
  if (cfg.data.kind == DataKind::needle) return raised_alike([&] { return make_needle_source(cfg); });
  if (cfg.data.kind == DataKind::tokens) return raised_alike([&] { return make_token_source(cfg); });
  FAIL_ERROR("data.kind = '{}' is not known (expected \"needle\" or \"tokens\")", cfg.data.kind);
}

}  // namespace longctx

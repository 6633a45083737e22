#include "longctx/data.h"

#include "longctx/common.h"

namespace longctx {

std::unique_ptr<DataSource> open_data(const Config& cfg) {
  if (cfg.data.kind == DataKind::needle) return make_needle_source(cfg);
  if (cfg.data.kind == DataKind::tokens) return make_token_source(cfg);
  FAIL_ERROR("data.kind = '{}' is not known (expected \"needle\" or \"tokens\")", cfg.data.kind);
}

}  // namespace longctx

// load.cpp — load_config: rank 0 parses and validates the deck, then broadcasts the resolved deck
// text; every rank parses that text, so all hold the same Config.
#include <limits>

#include "longctx/common.h"
#include "longctx/config.h"

namespace longctx {

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   MPI_Comm comm) {
  int rank = 0;
  CHECK(MPI_Comm_rank(comm, &rank) == MPI_SUCCESS, "MPI_Comm_rank failed");
  Config cfg;
  std::string text;
  if (rank == 0) {
    cfg = parse_deck(path, overrides);  // throws on rank 0 only; main aborts the job
    text = to_toml(cfg);
  }
  uint64_t len = text.size();  // the length, then the bytes
  CHECK(MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm) == MPI_SUCCESS, "MPI_Bcast(deck length) failed");
  CHECK(len < uint64_t(std::numeric_limits<int>::max()), "resolved deck too long: {} bytes", len);
  text.resize(len);
  CHECK(MPI_Bcast(text.data(), int(len), MPI_CHAR, 0, comm) == MPI_SUCCESS, "MPI_Bcast failed");
  if (rank != 0) {
    cfg = parse_deck_text(text, path);
    cfg.deck_path = path;
  }
  return cfg;
}

}  // namespace longctx

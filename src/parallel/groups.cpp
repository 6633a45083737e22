// groups.cpp — the Cartesian process grid {dp, sp, tp} and every process group (groups.h).
#include "longctx/groups.h"

#include <exception>

#include "longctx/comm_mpi.h"
#include "longctx/common.h"
#include "longctx/params.h"

namespace longctx {

std::string Grid::describe() const {
  return fmt::format("process grid dp×sp×tp = {}×{}×{} ({} rank{})", dp, sp, tp, world_size,
                     world_size == 1 ? "" : "s");
}

ProcessGroups::ProcessGroups(const Config& cfg, MPI_Comm world) {
  Grid& g = grid_;
  MPI_Comm_rank(world, &g.world_rank);
  MPI_Comm_size(world, &g.world_size);
  const auto& p = cfg.parallel;
  g.dp = int(p.dp), g.sp = int(p.sp), g.tp = int(p.tp);
  CHECK_ALIKE(int64_t(g.world_size) == p.dp * p.sp * p.tp,
             fmt::format("start {} ranks (mpirun -np {}), or change [parallel] to multiply to {}",
                         p.dp * p.sp * p.tp, p.dp * p.sp * p.tp, g.world_size),
             "{}: parallel.dp × parallel.sp × parallel.tp = {} × {} × {} = {}, but there are {} MPI "
             "ranks", cfg.deck_path, p.dp, p.sp, p.tp, p.dp * p.sp * p.tp, g.world_size);
  int dims[3] = {g.dp, g.sp, g.tp}, periods[3] = {0, 1, 0}, coords[3];
  MPI_Cart_create(world, 3, dims, periods, /*reorder=*/0, &cart_);
  MPI_Cart_coords(cart_, g.world_rank, 3, coords);
  g.dp_rank = coords[0], g.sp_rank = coords[1], g.tp_rank = coords[2];
  auto sub = [&](int a, int b, int c) {
    int keep[3] = {a, b, c};
    MPI_Comm comm;
    MPI_Cart_sub(cart_, keep, &comm);
    return comm;
  };
  sp_mpi_ = sub(0, 1, 0), tp_mpi_ = sub(0, 0, 1), dpsp_mpi_ = sub(1, 1, 0);
  all_ = std::make_unique<MpiComm>(cart_);
  tp_ = std::make_unique<MpiComm>(tp_mpi_);
  sp_ = std::make_unique<MpiComm>(sp_mpi_);
  dpsp_ = std::make_unique<MpiComm>(dpsp_mpi_);
  MPI_Comm_split_type(cart_, MPI_COMM_TYPE_SHARED, g.world_rank, MPI_INFO_NULL, &node_mpi_);
  node_ = std::make_unique<MpiComm>(node_mpi_);
  if (cfg.model.n_kv_heads < g.tp) {  // K/V heads replicated over the tp ranks sharing one
    const TpShard s = tp_shard(cfg.model, g.tp_rank, g.tp);
    MPI_Comm_split(tp_mpi_, int(s.kv_head0), g.tp_rank, &kv_mpi_);
    kv_ = std::make_unique<MpiComm>(kv_mpi_);
  }
}

ProcessGroups::~ProcessGroups() {
  all_.reset(), tp_.reset(), sp_.reset(), dpsp_.reset(), kv_.reset(), node_.reset();
  // Unwinding an error that may be this rank's alone: freeing communicators is collective, and the
  // other ranks are elsewhere. The job is ending (abort_job); leave them to MPI_Finalize/Abort.
  if (std::uncaught_exceptions() > 0) return;
  for (MPI_Comm* c : {&node_mpi_, &kv_mpi_, &dpsp_mpi_, &tp_mpi_, &sp_mpi_, &cart_})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
}

}  // namespace longctx

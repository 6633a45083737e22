// topology.cpp — Cartesian process grid {dp, sp, tp} and its sub-communicators.
#include "longctx/topology.h"

#include "longctx/common.h"

namespace longctx {

Topology Topology::create(const Config& cfg, MPI_Comm world) {
  Topology t;
  MPI_Comm_rank(world, &t.world_rank);
  MPI_Comm_size(world, &t.world_size);
  const auto& p = cfg.parallel;
  t.dp = int(p.dp), t.sp = int(p.sp), t.tp = int(p.tp);
  CHECK_HINT(int64_t(t.world_size) == p.dp * p.sp * p.tp,
             fmt::format("start {} ranks (mpirun -np {}), or change [parallel] to multiply to {}",
                         p.dp * p.sp * p.tp, p.dp * p.sp * p.tp, t.world_size),
             "{}: parallel.dp × parallel.sp × parallel.tp = {} × {} × {} = {}, but there are {} MPI "
             "ranks", cfg.deck_path, p.dp, p.sp, p.tp, p.dp * p.sp * p.tp, t.world_size);
  int dims[3] = {t.dp, t.sp, t.tp}, periods[3] = {0, 1, 0}, coords[3];
  MPI_Cart_create(world, 3, dims, periods, /*reorder=*/0, &t.cart);
  MPI_Cart_coords(t.cart, t.world_rank, 3, coords);
  t.dp_rank = coords[0], t.sp_rank = coords[1], t.tp_rank = coords[2];
  auto sub = [&](int a, int b, int c) {
    int keep[3] = {a, b, c};
    MPI_Comm comm;
    MPI_Cart_sub(t.cart, keep, &comm);
    return comm;
  };
  t.dp_comm = sub(1, 0, 0), t.sp_comm = sub(0, 1, 0), t.tp_comm = sub(0, 0, 1);
  t.dpsp_comm = sub(1, 1, 0);
  MPI_Cart_shift(t.sp_comm, 0, 1, &t.sp_prev, &t.sp_next);
  return t;
}

void Topology::free() {
  for (MPI_Comm* c : {&dp_comm, &sp_comm, &tp_comm, &dpsp_comm, &cart})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
}

std::string Topology::describe() const {
  return fmt::format("process grid dp×sp×tp = {}×{}×{} ({} rank{})", dp, sp, tp, world_size,
                     world_size == 1 ? "" : "s");
}

}  // namespace longctx

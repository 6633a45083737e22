// topology.h — the process grid: MPI_Cart_create over dims {dp, sp, tp}, tp varying fastest (a
// tensor-parallel group stays on one node), sub-communicators per axis and for dp×sp (gradient
// reduction), ring neighbours along sp.
#pragma once

#include <string>

#include <mpi.h>

#include "longctx/config.h"

namespace longctx {

struct Topology {
  int world_rank = 0, world_size = 1;
  int dp = 1, sp = 1, tp = 1;              // grid extents
  int dp_rank = 0, sp_rank = 0, tp_rank = 0;
  MPI_Comm cart = MPI_COMM_NULL;           // the whole grid
  MPI_Comm dp_comm = MPI_COMM_NULL, sp_comm = MPI_COMM_NULL, tp_comm = MPI_COMM_NULL;
  MPI_Comm dpsp_comm = MPI_COMM_NULL;      // ranks sharing parameters: gradient reduction, ZeRO-1
  int sp_prev = 0, sp_next = 0;            // ring neighbours (ranks in sp_comm)

  // Checks the layout against the world and the model (every factor named on failure) and
  // builds the communicators. Collective over `world`.
  static Topology create(const Config& cfg, MPI_Comm world);
  void free();
  std::string describe() const;  // "process grid dp×sp×tp = 1×2×2 (4 ranks)"
};

}  // namespace longctx

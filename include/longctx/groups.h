// groups.h — the process grid and EVERY process group of a run, built in one place.
//
// The grid is MPI_Cart_create over dims {dp, sp, tp}, tp varying fastest (a tensor-parallel group
// stays on one node). From it: the tp and sp axes, dp×sp (ranks sharing parameters: gradient
// reduction and the ZeRO-1 shards), the whole grid, and — when tp > n_kv_heads — the groups of tp
// ranks holding the same replicated K/V head; and the ranks of each node (memory plan; the GPU of
// a rank is its node-local rank mod the node's GPUs). Training and evaluation use the same groups.
// Each is a Comm (comm.h); the MPI communicators behind them are owned and freed here (except while
// an exception unwinds: freeing is collective, and a rank's own error must not wait for the
// others). Here too run.device is resolved (DeviceChoice) and, for the CUDA backend, the same
// groups are built again for device buffers (StagedMpiComm; NCCL with the multi-GPU issue).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "longctx/comm.h"
#include "longctx/config.h"

namespace longctx {

// Where this rank sits in the grid.
struct Grid {
  int world_rank = 0, world_size = 1;
  int dp = 1, sp = 1, tp = 1;  // extents
  int dp_rank = 0, sp_rank = 0, tp_rank = 0;
  std::string describe() const;  // "process grid dp×sp×tp = 1×2×2 (4 ranks)"
};

// Where the ranks' models run: run.device and parallel.transport resolved alike on every rank.
struct DeviceChoice {
  Device device = Device::cpu;          // cpu or cuda
  Transport transport = Transport::mpi;  // for device buffers (cuda): nccl or mpi
  int gpu = -1;                         // this rank's CUDA device: node-local rank mod the node's GPUs
  int ranks_per_gpu = 1;                // the most ranks sharing one GPU on any node
  std::string why;                      // how it was chosen, for the log ("run.device = \"auto\": ...")
  std::string gpu_map;                  // rank 0 (cuda): which rank runs on which node's GPU, for the log
};

// "GPUs: n01 GPU 0 ← ranks 0-1, GPU 1 ← rank 2 | n02 GPU 0 ← rank 3": each node (in the order of
// its first rank) with its GPUs and the world ranks on each, from every rank's host name and GPU.
// After max_nodes nodes the rest are counted ("| … 6 more nodes").
std::string describe_gpu_map(const std::vector<std::string>& host, const std::vector<int>& gpu, int max_nodes = 8);

class ProcessGroups {
 public:
  // The groups one kind of memory moves through: host memory (MpiComm), or device buffers over
  // the chosen transport (the CUDA backend). kv is null unless tp > n_kv_heads.
  struct Comms {
    const Comm *all = nullptr, *tp = nullptr, *sp = nullptr, *dpsp = nullptr, *kv = nullptr;
  };

  // Checks the layout against the world and the model (every factor named on failure) and builds
  // the groups. Collective over `world`.
  ProcessGroups(const Config& cfg, MPI_Comm world);
  ~ProcessGroups();
  ProcessGroups(const ProcessGroups&) = delete;
  ProcessGroups& operator=(const ProcessGroups&) = delete;

  const Grid& grid() const { return grid_; }
  const Comm& all() const { return *all_; }    // the whole grid
  const Comm& tp() const { return *tp_; }
  const Comm& sp() const { return *sp_; }      // the ring (periodic along sp)
  const Comm& dpsp() const { return *dpsp_; }  // gradient reduction, ZeRO-1
  const Comm* kv_replicas() const { return kv_.get(); }  // null unless tp > n_kv_heads
  const Comm& node() const { return *node_; }  // the ranks of this node (shared memory)
  // The grid as an MPI communicator, for host-side I/O (HDF5, broadcasts of file names).
  MPI_Comm mpi_all() const { return cart_; }
  const DeviceChoice& device() const { return dev_; }
  const Comm& gpu_peers() const { return *gpu_peers_; }  // the ranks of this node on this rank's GPU
  Comms host() const { return {all_.get(), tp_.get(), sp_.get(), dpsp_.get(), kv_.get()}; }
  // Device-buffer groups (only when device().device is cuda).
  Comms device_comms() const;

 private:
  Grid grid_;
  MPI_Comm cart_ = MPI_COMM_NULL, tp_mpi_ = MPI_COMM_NULL, sp_mpi_ = MPI_COMM_NULL;
  MPI_Comm dpsp_mpi_ = MPI_COMM_NULL, kv_mpi_ = MPI_COMM_NULL, node_mpi_ = MPI_COMM_NULL;
  std::unique_ptr<Comm> all_, tp_, sp_, dpsp_, kv_, node_;
  void choose_device(const Config& cfg);
  DeviceChoice dev_;
  MPI_Comm gpu_mpi_ = MPI_COMM_NULL;
  std::unique_ptr<Comm> gpu_peers_, d_all_, d_tp_, d_sp_, d_dpsp_, d_kv_;
};

}  // namespace longctx

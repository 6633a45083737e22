// groups.cpp — the Cartesian process grid {dp, sp, tp} and every process group (groups.h).
#include "longctx/groups.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>

#include "longctx/backend/cuda.h"
#include "longctx/comm_mpi.h"
#include "longctx/common.h"
#include "longctx/params.h"
#if defined(LONGCTX_CUDA)
#include "longctx/comm_staged.h"
#endif
#if defined(LONGCTX_NCCL)
#include "longctx/comm_nccl.h"
#endif

namespace longctx {

std::string Grid::describe() const {
  return fmt::format("process grid dp×sp×tp = {}×{}×{} ({} rank{})", dp, sp, tp, world_size,
                     world_size == 1 ? "" : "s");
}

namespace {

// "0-3, 5, 7-8" from ascending ranks.
std::string rank_ranges(const std::vector<int>& r) {
  std::string out;
  for (size_t i = 0; i < r.size();) {
    size_t j = i;
    while (j + 1 < r.size() && r[j + 1] == r[j] + 1) ++j;
    out += fmt::format("{}{}", out.empty() ? "" : ", ", i == j ? fmt::format("{}", r[i]) : fmt::format("{}-{}", r[i], r[j]));
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string describe_gpu_map(const std::vector<std::string>& host, const std::vector<int>& gpu, int max_nodes) {
  CHECK(host.size() == gpu.size(), "describe_gpu_map: {} host names for {} ranks", host.size(), gpu.size());
  std::vector<std::string> nodes;  // in the order of their first rank
  std::map<std::string, std::map<int, std::vector<int>>> ranks;  // node -> GPU -> world ranks
  for (size_t r = 0; r < host.size(); ++r) {
    if (!ranks.count(host[r])) nodes.push_back(host[r]);
    ranks[host[r]][gpu[r]].push_back(int(r));
  }
  const size_t shown = std::min(nodes.size(), size_t(std::max(max_nodes, 1)));
  std::string out = "GPUs:";
  for (size_t n = 0; n < shown; ++n) {
    out += fmt::format("{} {}", n ? " |" : "", nodes[n]);
    bool first = true;
    for (const auto& [g, rs] : ranks[nodes[n]]) {
      out += fmt::format("{} GPU {} ← rank{} {}", first ? "" : ",", g, rs.size() > 1 ? "s" : "", rank_ranges(rs));
      first = false;
    }
  }
  if (shown < nodes.size()) out += fmt::format(" | … {} more nodes", nodes.size() - shown);
  return out;
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
  choose_device(cfg);
}

void ProcessGroups::choose_device(const Config& cfg) {
  const int ngpu = cuda_device_count();  // 0 in a build without CUDA
  int flags[2] = {ngpu > 0 ? 0 : 1, ngpu > 0 ? (node_->size() + ngpu - 1) / ngpu : 1};  // {no GPU, ranks/GPU}
  MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, cart_);
  const bool all_have = flags[0] == 0;
  const int64_t HS = cfg.model.head_size();
  const bool hs_ok = cuda_supports_head_size(HS);
  const char* built = kCudaBuilt ? "" : "this build of longctx has no CUDA";
  DeviceChoice& d = dev_;
  d.device = Device::cpu;
  if (cfg.run.device == Device::cpu) {
    d.why = "run.device = \"cpu\"";
  } else if (cfg.run.device == Device::cuda) {
    CHECK_ALIKE(kCudaBuilt, "build on a GPU node (make CUDA=1, with nvcc on PATH), or set run.device = \"cpu\"",
                "{}: run.device = \"cuda\", but {}", cfg.deck_path, built);
    CHECK_ALIKE(all_have, "run on nodes with GPUs, or set run.device = \"cpu\"",
                "{}: run.device = \"cuda\", but a rank's node has no usable GPU", cfg.deck_path);
    CHECK_ALIKE(hs_ok, "choose d_model / n_heads = 64 or 128, or set run.device = \"cpu\"",
                "{}: run.device = \"cuda\": head size {} (d_model {} / n_heads {}) is not one the GPU attention "
                "kernels take (64 or 128)", cfg.deck_path, HS, cfg.model.d_model, cfg.model.n_heads);
    d.device = Device::cuda, d.why = "run.device = \"cuda\"";
  } else if (!kCudaBuilt) {
    d.why = fmt::format("run.device = \"auto\": {}", built);
  } else if (!all_have) {
    d.why = "run.device = \"auto\": no usable GPU on some rank's node";
  } else if (!hs_ok) {
    d.why = fmt::format("run.device = \"auto\": head size {} is not one the GPU kernels take (64 or 128)", HS);
  } else {
    d.device = Device::cuda, d.why = "run.device = \"auto\": every rank has a GPU";
  }
  d.gpu = d.device == Device::cuda ? node_->rank() % ngpu : -1;
  d.ranks_per_gpu = d.device == Device::cuda ? flags[1] : 1;
  if (d.device == Device::cuda) {  // the log's map of ranks to GPUs, at rank 0 (a collective)
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    MPI_Get_processor_name(name, &len);
    const bool root = grid_.world_rank == 0;
    std::vector<char> names(root ? size_t(grid_.world_size) * MPI_MAX_PROCESSOR_NAME : 0);
    std::vector<int> gpus(root ? size_t(grid_.world_size) : 0);
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, cart_);
    MPI_Gather(&d.gpu, 1, MPI_INT, gpus.data(), 1, MPI_INT, 0, cart_);
    if (root) {
      std::vector<std::string> hosts;
      for (int r = 0; r < grid_.world_size; ++r) {  // a name may fill its slot without a terminator
        const char* p = names.data() + size_t(r) * MPI_MAX_PROCESSOR_NAME;
        hosts.emplace_back(p, strnlen(p, MPI_MAX_PROCESSOR_NAME));
      }
      d.gpu_map = describe_gpu_map(hosts, gpus);
    }
  }
  // The ranks of this node on the same GPU share its memory (the memory plan sums them).
  MPI_Comm_split(node_mpi_, d.gpu < 0 ? 0 : d.gpu, node_->rank(), &gpu_mpi_);
  gpu_peers_ = std::make_unique<MpiComm>(gpu_mpi_);
  if (d.device != Device::cuda) return;
  // Device buffers: NCCL between GPUs of their own; the staged MPI transport where ranks share a
  // GPU (NCCL refuses that) or NCCL is not built.
  const Transport want = cfg.parallel.transport;
  const bool shared = d.ranks_per_gpu > 1;
  CHECK_ALIKE(want != Transport::nccl || kNcclBuilt, "set parallel.transport = \"mpi\" (or \"auto\"), or build "
              "where NCCL is installed (the Makefile's first line says whether it found it)",
              "{}: parallel.transport = \"nccl\", but this build of longctx has no NCCL", cfg.deck_path);
  CHECK_ALIKE(want != Transport::nccl || !shared, "set parallel.transport = \"mpi\" (or \"auto\"), or start at "
              "most one rank per GPU", "{}: parallel.transport = \"nccl\", but {} ranks share a GPU (NCCL refuses "
              "two ranks on one GPU)", cfg.deck_path, d.ranks_per_gpu);
  d.transport = want == Transport::automatic ? (kNcclBuilt && !shared ? Transport::nccl : Transport::mpi) : want;
  if (want == Transport::automatic)
    d.why += d.transport == Transport::nccl ? "; transport auto: NCCL, one rank per GPU"
             : shared                       ? "; transport auto: MPI, ranks share a GPU"
                                            : "; transport auto: MPI, this build has no NCCL";
  cuda_set_device(d.gpu);  // NCCL's communicators belong to the current device
  // A group of one rank moves nothing: the staged transport's device copies serve it without an
  // NCCL communicator (and its bootstrap) per axis.
  auto make = [&](MPI_Comm c) -> std::unique_ptr<Comm> {
#if defined(LONGCTX_NCCL)
    int n = 1;
    MPI_Comm_size(c, &n);
    if (d.transport == Transport::nccl && n > 1) return std::make_unique<NcclComm>(c);
#endif
#if defined(LONGCTX_CUDA)
    return std::make_unique<StagedMpiComm>(c);
#else
    (void)c;
    return nullptr;
#endif
  };
  d_all_ = make(cart_), d_tp_ = make(tp_mpi_), d_sp_ = make(sp_mpi_), d_dpsp_ = make(dpsp_mpi_);
  if (kv_mpi_ != MPI_COMM_NULL) d_kv_ = make(kv_mpi_);
}

ProcessGroups::Comms ProcessGroups::device_comms() const {
  CHECK(d_all_, "ProcessGroups: no device-buffer groups (the run is on the {})", to_string(dev_.device));
  return {d_all_.get(), d_tp_.get(), d_sp_.get(), d_dpsp_.get(), d_kv_.get()};
}

ProcessGroups::~ProcessGroups() {
  d_all_.reset(), d_tp_.reset(), d_sp_.reset(), d_dpsp_.reset(), d_kv_.reset(), gpu_peers_.reset();
  all_.reset(), tp_.reset(), sp_.reset(), dpsp_.reset(), kv_.reset(), node_.reset();
  // Unwinding an error that may be this rank's alone: freeing communicators is collective, and the
  // other ranks are elsewhere. The job is ending (abort_job); leave them to MPI_Finalize/Abort.
  if (std::uncaught_exceptions() > 0) return;
  for (MPI_Comm* c : {&gpu_mpi_, &node_mpi_, &kv_mpi_, &dpsp_mpi_, &tp_mpi_, &sp_mpi_, &cart_})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
}

}  // namespace longctx

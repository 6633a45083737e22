// memory.h — the memory plan: what every rank needs is counted before anything is allocated, and
// a run (or an evaluation) that would not fit is refused with the numbers and what to change,
// never a bare std::bad_alloc or the kernel's OOM killer.
//
// Ranks on one node share its memory: the plan sums their needs and compares the sum with what
// the node has available — the smallest of /proc/meminfo's MemAvailable and the cgroup's limit
// less its usage, or LONGCTX_MEMORY=SIZE (e.g. 64G, 512M: what the job may use per node) when set.
// On the GPU the pool is the device: the ranks on one GPU against its free memory
// (LONGCTX_GPU_MEMORY=SIZE overrides).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longctx/config.h"
#include "longctx/engine.h"
#include "longctx/groups.h"

namespace longctx {

// Bytes this node can give the job, and where the number came from ("MemAvailable", ...).
int64_t available_memory(std::string* source = nullptr);
// "12.3 GiB", "512.0 MiB", "64 B".
std::string format_bytes(double bytes);
// Parses SIZE: a number with an optional K, M, G or T suffix (powers of 1024); -1 if malformed.
int64_t parse_bytes(const std::string& s);

// Device memory: what the GPU `device` has free now (cudaMemGetInfo), or LONGCTX_GPU_MEMORY=SIZE.
int64_t available_gpu_memory(int device, std::string* source = nullptr);

// The memory a group of ranks shares: the ranks of a node (host memory) or of one GPU.
struct MemoryPool {
  const Comm* sharers = nullptr;  // the ranks that share it (their needs are summed)
  const char* name = "node";      // "node" or "GPU", for the message
  int device = -1;                // the GPU (-1: host memory)
};
MemoryPool host_pool(const ProcessGroups& g);

// Collective over the groups' whole grid. `stage_bytes[i]` is this rank's arena for stage i (or
// evaluation length i; `stage_names[i]` says which, e.g. "stage 2 (seq_len 4096)"). Throws the
// same Error on every rank when the state plus the largest arena of some stage does not fit on
// some node. `what` is "train" or "eval".
void check_memory_fits(const ProcessGroups& g, const MemoryPool& pool, const StateBytes& state, const std::vector<size_t>& stage_bytes,
                       const std::vector<std::string>& stage_names, const char* what,
                       const ModelConfig* model = nullptr);

// The refusal check_memory_fits raises, for `longctx plan` to print the same words: `stage` is ""
// when the state alone does not fit; need / avail / ranks are the tightest pool's, `largest` and
// `activations` the largest rank's (activations: the stage's arena and op scratch). `model`: the
// training model, whose recompute settings the hint names (null: an evaluation, no hint on them).
struct MemoryRefusal {
  std::string message, hint;
};
MemoryRefusal memory_refusal(const char* what, const char* pool_name, const std::string& stage, double need,
                             double avail, int ranks, const std::string& from, const StateBytes& largest,
                             double activations, const ModelConfig* model = nullptr);

}  // namespace longctx

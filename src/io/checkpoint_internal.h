// checkpoint_internal.h — what the checkpoint files share (src/io/checkpoint_*.cpp only): names
// and hints, the HDF5 plumbing (bf16 type, file access, attribute reads) and the transfer jobs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "longctx/checkpoint.h"
#include "longctx/common.h"
#include "longctx/h5.h"

namespace longctx::ckpt {

using h5::Handle;

inline constexpr const char* kFormat = "longctx-checkpoint";
inline constexpr const char* kReadHint =
    "the file may be truncated or damaged (an interrupted copy?) or not a complete longctx "
    "checkpoint; `h5dump -H FILE` shows what it holds";
inline constexpr const char* kWriteHint =
    "check that the directory is writable and the disk not full";
inline constexpr const char* kModelKeys[] = {"vocab_size", "d_model", "n_layers",      "n_heads",
                                             "n_kv_heads", "d_ff",    "tie_embeddings"};
// The integer fields of TrainState, as /state attributes (rope_theta and seed are apart).
inline constexpr std::pair<const char*, int64_t TrainState::*> kStateInts[] = {
    {"stage", &TrainState::stage},
    {"stage_step", &TrainState::stage_step},
    {"global_step", &TrainState::global_step},
    {"tokens_seen", &TrainState::tokens_seen},
    {"samples_seen", &TrainState::samples_seen},
    {"seq_len", &TrainState::seq_len}};

// Files being written are named PATH.tmp; that picks the hint.
inline std::string hint_for(const std::string& path) {
  return path.ends_with(".tmp") ? kWriteHint : kReadHint;
}
// CK_CHECK(call, path, object, "what failed") — H5_CHECK with the checkpoint's hint.
#define CK_CHECK(call, path, obj, what) \
  H5_CHECK(call, path, obj, what, ::longctx::ckpt::hint_for(path))

// ---- checkpoint_h5.cpp ------------------------------------------------------------------------

// bf16 as an HDF5 float: IEEE single's sign and exponent with 7 mantissa bits, 2 bytes.
Handle bf16_type();
// Parallel HDF5 when the library has it, unless LONGCTX_CKPT_SERIAL is set (and not "0").
bool use_parallel();
// File access: MPI-IO over comm when parallel, else the default (POSIX) driver.
Handle file_access(bool parallel, MPI_Comm comm, const std::string& path);
Handle transfer_list(bool parallel, const std::string& path);

std::string attr_name(const std::string& where, const std::string& name);
Handle open_attr(hid_t obj, const std::string& where, const std::string& name,
                 const std::string& path);
template <class T>
T get_num(hid_t obj, const std::string& where, const std::string& name, hid_t mem_type,
          const std::string& path) {
  Handle a = open_attr(obj, where, name, path);
  T v{};
  CK_CHECK(H5Aread(a, mem_type, &v), path, attr_name(where, name), "read");
  return v;
}
int64_t get_i64(hid_t obj, const std::string& where, const std::string& name,
                const std::string& path);
std::string get_str(hid_t obj, const std::string& where, const std::string& name,
                    const std::string& path);

std::vector<hsize_t> hs(const std::vector<int64_t>& v);
template <class T>
std::string shape_str(const std::vector<T>& v) {  // "[264, 32]"
  std::string s;
  for (T x : v) {
    if (!s.empty()) s += ", ";
    s += std::to_string(x);
  }
  return "[" + s + "]";
}

void check_io(const CheckpointIO& io, bool need_optimizer);

// ---- checkpoint_transfer.cpp ------------------------------------------------------------------

// Creates dataset `name` (and its parent groups): chunked, Fletcher32.
void create_dataset(hid_t file, const std::string& name, const std::vector<int64_t>& shape,
                    hid_t type, const std::string& path);

// One dataset's part of a transfer: the union of `slabs` (full-tensor coordinates) in the file,
// `n` contiguous floats at `mem`. No slabs: this rank only takes part (collective I/O).
struct Job {
  Job(std::string d, const ParamTensor* p) : dset(std::move(d)), t(p) {}
  std::string dset;
  const ParamTensor* t = nullptr;
  std::vector<Slab> slabs;
  float* mem = nullptr;
  int64_t n = 0;
};

// The transfers of one checkpoint, in the same order on every rank: each tensor's block of the
// weights under `weights` ("/model" or "/optimizer/master"; an empty selection unless `own`),
// then with `opt` the rank's shard [shard_lo, shard_hi) of master, m and v, cut along the tensors.
// Writing, a block another rank also holds and writes (ParamTensor::replica) is left to it.
std::vector<Job> make_jobs(const CheckpointIO& io, const std::string& weights, bool own, bool opt,
                           bool writing);

// Writes (or reads) one job; bf16 datasets are rounded here (bf16.h) and moved as raw bits.
void transfer(hid_t file, const Job& j, hid_t dxpl, bool collective, hid_t bf16, bool write,
              const std::string& path);

// ---- checkpoint_state.cpp ---------------------------------------------------------------------

// Refuses a /state value out of range, inconsistent with the others or (with `resume`) with the
// deck's stages; the message names the attribute, its value, what is allowed and the file.
void validate_state(const TrainState& st, const Config& cfg, bool resume, const std::string& path,
                    hid_t file);

}  // namespace longctx::ckpt

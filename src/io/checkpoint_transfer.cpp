// checkpoint_transfer.cpp — creating the checkpoint's datasets and moving each rank's blocks of
// them: a rank's part of a tensor is at most 2·N−1 blocks (flat_range_slabs), moved one
// H5Dwrite/H5Dread per block with a memory space of the block's shape (much faster in HDF5 1.10
// than one union). bf16 is rounded here (to nearest even, bf16.h) and written as raw bits: HDF5
// 1.10's own float -> custom float conversion mis-rounds values whose mantissa carries into the
// exponent (0.99934 -> 0.5).
#include <algorithm>

#include "checkpoint_internal.h"
#include "longctx/bf16.h"

namespace longctx::ckpt {
namespace {

// Chunks of at most ~1 MiB, whole trailing dimensions (rows) where they fit.
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& shape, size_t elem_size) {
  int64_t budget = std::max<int64_t>(1, int64_t((1 << 20) / elem_size));
  std::vector<hsize_t> c(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 0;) {
    c[d] = hsize_t(std::max<int64_t>(1, std::min(shape[d], budget)));
    budget = shape[d] <= budget ? budget / shape[d] : 1;
  }
  return c;
}

}  // namespace

void create_dataset(hid_t file, const std::string& name, const std::vector<int64_t>& shape,
                    hid_t type, const std::string& path) {
  for (int64_t d : shape) CHECK(d > 0, "{}: tensor {} has an empty dimension", path, name);
  const auto dims = hs(shape);
  const auto chunk = chunk_dims(shape, H5Tget_size(type));
  Handle space(CK_CHECK(H5Screate_simple(int(dims.size()), dims.data(), nullptr), path, name,
                        "make the dataspace of"));
  Handle dcpl(CK_CHECK(H5Pcreate(H5P_DATASET_CREATE), path, name, "make the creation list of"));
  CK_CHECK(H5Pset_chunk(dcpl, int(chunk.size()), chunk.data()), path, name, "chunk");
  CK_CHECK(H5Pset_fletcher32(dcpl), path, name, "add the Fletcher32 filter to");
  Handle lcpl(CK_CHECK(H5Pcreate(H5P_LINK_CREATE), path, name, "make the link list of"));
  CK_CHECK(H5Pset_create_intermediate_group(lcpl, 1), path, name, "allow parent groups for");
  Handle ds(CK_CHECK(H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT), path,
                     name, "create dataset"));
}

std::vector<Job> make_jobs(const CheckpointIO& io, const std::string& weights, bool own, bool opt,
                           bool writing) {
  std::vector<Job> jobs;
  for (const auto& t : io.layout->tensors) {
    Job j(weights + "/" + t.name, &t);
    if (own && !(writing && t.replica))
      j.slabs = {Slab{t.start, t.count}}, j.mem = io.params + t.offset, j.n = t.numel;
    jobs.push_back(std::move(j));
  }
  if (!opt) return jobs;
  const std::pair<const char*, float*> bufs[] = {{"master", io.master}, {"m", io.m}, {"v", io.v}};
  for (auto [which, buf] : bufs) {
    for (const auto& t : io.layout->tensors) {
      Job j(fmt::format("/optimizer/{}/{}", which, t.name), &t);
      const int64_t a = std::max(io.shard_lo, t.offset);
      const int64_t b = std::min(io.shard_hi, t.offset + t.numel);
      if (a < b && !(writing && t.replica)) {
        j.slabs = flat_range_slabs(t.count, a - t.offset, b - t.offset);
        for (auto& s : j.slabs)
          for (size_t d = 0; d < s.start.size(); ++d) s.start[d] += t.start[d];
        j.mem = buf + (a - io.shard_lo), j.n = b - a;
      }
      jobs.push_back(std::move(j));
    }
  }
  return jobs;
}

// One slab per H5Dwrite with a memory space of the slab's shape: HDF5 1.10 maps selections to
// chunks element by element unless memory and file selections have the same shape (4x slower
// overall). Collective transfers make 2·N−1 calls on every rank (the most slabs a tensor of N
// dimensions can take), with empty selections where a rank has fewer.
void transfer(hid_t file, const Job& j, hid_t dxpl, bool collective, hid_t bf16, bool write,
              const std::string& path) {
  CHECK_HINT(H5Lexists(file, j.dset.c_str(), H5P_DEFAULT) > 0 || write, kReadHint,
             "checkpoint {} has no dataset {}", path, j.dset);
  Handle ds(CK_CHECK(H5Dopen2(file, j.dset.c_str(), H5P_DEFAULT), path, j.dset, "open dataset"));
  Handle fspace(CK_CHECK(H5Dget_space(ds), path, j.dset, "get the dataspace of"));
  const int nd = int(j.t->shape.size());
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  CHECK_HINT(H5Sget_simple_extent_ndims(fspace) == nd, kReadHint,
             "{}: dataset {} has the wrong rank", path, j.dset);
  H5Sget_simple_extent_dims(fspace, dims.data(), nullptr);
  CHECK_HINT(dims == hs(j.t->shape), kReadHint, "{}: dataset {} has shape {}, the model needs {}",
             path, j.dset, shape_str(dims), shape_str(j.t->shape));
  Handle ftype(CK_CHECK(H5Dget_type(ds), path, j.dset, "get the type of"));
  const bool is_bf16 = H5Tequal(ftype, bf16) > 0;  // else fp32 (HDF5 converts other float types)
  const hid_t mtype = is_bf16 ? bf16 : H5T_NATIVE_FLOAT;
  std::vector<uint16_t> bits(is_bf16 ? size_t(j.n) : 0);
  if (is_bf16 && write)
    for (int64_t i = 0; i < j.n; ++i) bits[size_t(i)] = bf16_bits(j.mem[i]);

  const size_t rounds = collective ? size_t(2 * nd - 1) : j.slabs.size();
  int64_t done = 0;  // elements of the job before this slab
  for (size_t k = 0; k < rounds; ++k) {
    hsize_t one = 1;
    Handle mspace;
    if (k < j.slabs.size()) {
      const auto start = hs(j.slabs[k].start), count = hs(j.slabs[k].count);
      CK_CHECK(
          H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          path, j.dset, "select a block of");
      mspace = Handle(CK_CHECK(H5Screate_simple(nd, count.data(), nullptr), path, j.dset,
                               "make a memory space for"));
    } else {
      CK_CHECK(H5Sselect_none(fspace), path, j.dset, "select nothing in");
      mspace = Handle(
          CK_CHECK(H5Screate_simple(1, &one, nullptr), path, j.dset, "make a memory space for"));
      CK_CHECK(H5Sselect_none(mspace), path, j.dset, "select nothing in");
    }
    const int64_t n = H5Sget_select_npoints(mspace);
    CHECK(done + n <= j.n, "{}: the blocks of {} hold more than {} elements", path, j.dset, j.n);
    uint16_t dummy = 0;  // HDF5 wants a buffer even for an empty selection
    void* buf = n == 0    ? static_cast<void*>(&dummy)
                : is_bf16 ? static_cast<void*>(bits.data() + done)
                          : static_cast<void*>(j.mem + done);
    if (write)
      CK_CHECK(H5Dwrite(ds, mtype, mspace, fspace, dxpl, buf), path, j.dset, "write");
    else
      CK_CHECK(H5Dread(ds, mtype, mspace, fspace, dxpl, buf), path, j.dset, "read");
    done += n;
  }
  CHECK(done == j.n, "{}: the blocks of {} hold {} elements, expected {}", path, j.dset, done, j.n);
  if (is_bf16 && !write)
    for (int64_t i = 0; i < j.n; ++i) j.mem[i] = bf16_to_float(bits[size_t(i)]);
}

}  // namespace longctx::ckpt

// checkpoint_h5.cpp — the checkpoint's HDF5 plumbing: the bf16 file type, serial or parallel
// file access and transfers, reading the attributes of /, /config and /state.
#include <cstdlib>

#include "checkpoint_internal.h"

namespace longctx::ckpt {

Handle bf16_type() {
  Handle t(H5Tcopy(H5T_IEEE_F32LE));
  const bool ok = t >= 0 && H5Tset_fields(t, 15, 7, 8, 0, 7) >= 0 && H5Tset_precision(t, 16) >= 0 &&
                  H5Tset_offset(t, 0) >= 0 && H5Tset_size(t, 2) >= 0 && H5Tset_ebias(t, 127) >= 0;
  CHECK(ok, "HDF5 could not build the bf16 type ({})", h5::error_stack());
  return t;
}

bool use_parallel() {
  const char* s = std::getenv("LONGCTX_CKPT_SERIAL");
  const bool force_serial = s && *s && std::string(s) != "0";
#ifdef H5_HAVE_PARALLEL
  return !force_serial;
#else
  return !force_serial && false;
#endif
}

Handle file_access(bool parallel, MPI_Comm comm, const std::string& path) {
  Handle fapl(CK_CHECK(H5Pcreate(H5P_FILE_ACCESS), path, "a file access list", "create"));
  CK_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST), path, "the file",
           "set format bounds for");
#ifdef H5_HAVE_PARALLEL
  if (parallel)
    CK_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), path, "the file", "set MPI-IO for");
#endif
  return fapl;
}

Handle transfer_list(bool parallel, const std::string& path) {
  Handle dxpl(CK_CHECK(H5Pcreate(H5P_DATASET_XFER), path, "a transfer list", "create"));
#ifdef H5_HAVE_PARALLEL
  if (parallel)
    CK_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), path, "the transfer", "make collective");
#endif
  return dxpl;
}

std::string attr_name(const std::string& where, const std::string& name) {
  return fmt::format("attribute {} of {}", name, where.empty() ? "/" : where);
}

Handle open_attr(hid_t obj, const std::string& where, const std::string& name,
                 const std::string& path) {
  CHECK_HINT(H5Aexists(obj, name.c_str()) > 0, kReadHint, "checkpoint {} has no {}", path,
             attr_name(where, name));
  return Handle(
      CK_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), path, attr_name(where, name), "open"));
}

int64_t get_i64(hid_t obj, const std::string& where, const std::string& name,
                const std::string& path) {
  return get_num<int64_t>(obj, where, name, H5T_NATIVE_INT64, path);
}

std::string get_str(hid_t obj, const std::string& where, const std::string& name,
                    const std::string& path) {
  Handle a = open_attr(obj, where, name, path);
  Handle t(CK_CHECK(H5Aget_type(a), path, attr_name(where, name), "get the type of"));
  CHECK_HINT(H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0, kReadHint,
             "{}: {} is not a fixed-length string", path, attr_name(where, name));
  std::string out(H5Tget_size(t), '\0');
  CK_CHECK(H5Aread(a, t, out.data()), path, attr_name(where, name), "read");
  return out.substr(0, out.find('\0'));
}

std::vector<hsize_t> hs(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

void check_io(const CheckpointIO& io, bool need_optimizer) {
  CHECK(io.layout && io.params, "checkpoint: CheckpointIO needs a layout and a params buffer");
  CHECK(0 <= io.shard_lo && io.shard_lo <= io.shard_hi && io.shard_hi <= io.layout->total,
        "checkpoint: shard [{}, {}) is outside the flat buffer of {} floats", io.shard_lo,
        io.shard_hi, io.layout->total);
  CHECK(!need_optimizer || io.shard_lo == io.shard_hi || (io.master && io.m && io.v),
        "checkpoint: optimizer buffers missing for shard [{}, {})", io.shard_lo, io.shard_hi);
}

}  // namespace longctx::ckpt

// h5.cpp — the HDF5 handle, error check and attribute helpers (include/longctx/h5.h).
#include "longctx/h5.h"

#include <fmt/format.h>

#include "longctx/common.h"

namespace longctx::h5 {

herr_t close_id(hid_t id) noexcept {
  if (id < 0) return 0;
  switch (H5Iget_type(id)) {
    case H5I_FILE: return H5Fclose(id);
    case H5I_GROUP: return H5Gclose(id);
    case H5I_DATATYPE: return H5Tclose(id);
    case H5I_DATASPACE: return H5Sclose(id);
    case H5I_DATASET: return H5Dclose(id);
    case H5I_ATTR: return H5Aclose(id);
    case H5I_GENPROP_LST: return H5Pclose(id);
    default: return H5Idec_ref(id);
  }
}

void Handle::reset(hid_t id) noexcept {
  close_id(std::exchange(id_, id));
}

herr_t Handle::close() noexcept { return close_id(std::exchange(id_, -1)); }

std::string error_stack() {
  std::string out;
  auto walk = [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
    auto* s = static_cast<std::string*>(data);
    if (n < 2 && e->desc && *e->desc) *s += (s->empty() ? "" : "; ") + std::string(e->desc);
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &out);
  return out.empty() ? "no detail from HDF5" : out;
}

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void fail(const char* file, int line, const char* call, const std::string& path,
          const std::string& obj, const char* what, const std::string& hint) {
  const std::string target = obj.empty() ? path : fmt::format("{} in {}", obj, path);
  throw Error(fmt::format("HDF5 could not {} {} ({})", what, target, error_stack()),
              fmt::format("{}:{} ({})", file, line, call), hint);
}

void put_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const void* v,
              const std::string& path, const std::string& hint) {
  Handle space(H5_CHECK(H5Screate(H5S_SCALAR), path, name, "create a dataspace for", hint));
  Handle a(H5_CHECK(H5Acreate2(obj, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                    path, "attribute " + name, "create", hint));
  H5_CHECK(H5Awrite(a, mem_type, v), path, "attribute " + name, "write", hint);
}
void put_i64(hid_t obj, const std::string& name, int64_t v, const std::string& path,
             const std::string& hint) {
  put_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path, hint);
}
void put_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& path,
             const std::string& hint) {
  put_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, path, hint);
}
void put_f64(hid_t obj, const std::string& name, double v, const std::string& path,
             const std::string& hint) {
  put_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path, hint);
}
void put_str(hid_t obj, const std::string& name, const std::string& v, const std::string& path,
             const std::string& hint) {
  Handle t(H5_CHECK(H5Tcopy(H5T_C_S1), path, name, "make a string type for", hint));
  H5_CHECK(H5Tset_size(t, v.size() + 1), path, name, "size the string type for", hint);
  put_attr(obj, name, t, t, v.c_str(), path, hint);
}

bool try_read_attr(hid_t loc, const char* obj_path, const char* name, hid_t mem_type, void* v) {
  if (H5Aexists_by_name(loc, obj_path, name, H5P_DEFAULT) <= 0) return false;
  Handle a(H5Aopen_by_name(loc, obj_path, name, H5P_DEFAULT, H5P_DEFAULT));
  return a.valid() && H5Aread(a, mem_type, v) >= 0;
}

}  // namespace longctx::h5

// h5.h — the one HDF5 handle, error check and attribute helpers used by every file that reads or
// writes HDF5 (checkpoints, `longctx info`, token files, pack-text).
//
// h5::Handle owns one id of any kind and closes it with the H5*close its kind needs (found with
// H5Iget_type). H5_CHECK(call, path, object, "what", hint) returns call's value, or throws Error
// "HDF5 could not <what> <object> in <path> (<innermost HDF5 error messages>)" at file:line, the
// failing call named after the location, with the hint.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>

namespace longctx::h5 {

class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) noexcept : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.id_, -1));
    return *this;
  }
  ~Handle() { reset(); }

  operator hid_t() const { return id_; }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, -1); }
  // Closes the id held (errors ignored: use close() where they matter) and takes `id`.
  void reset(hid_t id = -1) noexcept;
  // Closes now and returns what the close call returned (H5Fclose flushes: a full disk shows here).
  herr_t close() noexcept;

 private:
  hid_t id_ = -1;
};

// Closes any id with the close function of its kind (H5Fclose, H5Dclose, ...); negative: no-op.
herr_t close_id(hid_t id) noexcept;

// The innermost messages of HDF5's error stack ("truncated file: eof = ...", ...).
std::string error_stack();

// Silences HDF5's own printing of error stacks (messages come through H5_CHECK instead).
void quiet();

[[noreturn]] void fail(const char* file, int line, const char* call, const std::string& path,
                       const std::string& obj, const char* what, const std::string& hint);

template <class T>
T check(T rc, const char* file, int line, const char* call, const std::string& path,
        const std::string& obj, const char* what, const std::string& hint) {
  if (rc < 0) fail(file, line, call, path, obj, what, hint);
  return rc;
}

// ---- attributes (scalars and fixed-length strings) ---------------------------------------------
// `path` and `hint` are for messages, as in H5_CHECK.

void put_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const void* v,
              const std::string& path, const std::string& hint);
void put_i64(hid_t obj, const std::string& name, int64_t v, const std::string& path,
             const std::string& hint);
void put_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& path,
             const std::string& hint);
void put_f64(hid_t obj, const std::string& name, double v, const std::string& path,
             const std::string& hint);
void put_str(hid_t obj, const std::string& name, const std::string& v, const std::string& path,
             const std::string& hint);
// Reads attribute `name` of the object at `obj_path` (relative to loc) as mem_type into v; false
// when it is absent or cannot be read (no throw: for tools that report what they find).
bool try_read_attr(hid_t loc, const char* obj_path, const char* name, hid_t mem_type, void* v);

}  // namespace longctx::h5

#define H5_CHECK(call, path, obj, what, hint) \
  ::longctx::h5::check((call), __FILE__, __LINE__, #call, (path), (obj), (what), (hint))

// safetensors.cpp — reading (validated) and writing safetensors files; model directories with an
// index of shards (safetensors.h).
#include "longctx/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "longctx/common.h"
#include "longctx/json.h"

namespace longctx {
namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "safetensors data are little-endian");

namespace {
constexpr const char* kBadFile =
    "the file is damaged or not a safetensors file (an interrupted download? compare its size with "
    "the source's)";
constexpr int64_t kMaxHeader = int64_t(100) << 20;  // the reference implementation's limit
}  // namespace

const char* st_dtype_name(StDtype d) {
  return d == StDtype::BF16 ? "BF16" : d == StDtype::F16 ? "F16" : "F32";
}
int64_t st_dtype_size(StDtype d) { return d == StDtype::F32 ? 4 : 2; }

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return "[" + s + "]";
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf, NaN
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
  const float mag = std::ldexp(float(man), -24);  // zero or subnormal: man · 2^-24, exact in fp32
  return sign ? -mag : mag;
}

// ---- reading ----------------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::error_code ec;
  CHECK_HINT(fs::is_regular_file(path, ec), "check the path", "safetensors file {} does not exist", path);
  file_size_ = int64_t(fs::file_size(path, ec));
  CHECK_HINT(!ec, "check the file's permissions", "cannot stat {}: {}", path, ec.message());
  CHECK_HINT(file_size_ >= 8, kBadFile, "{}: {} bytes, too short for the 8-byte header length",
             path, file_size_);
  std::ifstream f(path, std::ios::binary);
  CHECK_HINT(f.good(), "check the file's permissions", "cannot open {}", path);
  unsigned char len8[8];
  f.read(reinterpret_cast<char*>(len8), 8);
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | len8[k];
  CHECK_HINT(n <= uint64_t(file_size_ - 8), kBadFile,
             "{}: the header length {} runs past the end of the file ({} bytes)", path, n, file_size_);
  CHECK_HINT(int64_t(n) <= kMaxHeader, kBadFile, "{}: header length {} exceeds the {}-byte limit",
             path, n, kMaxHeader);
  std::string header(size_t(n), '\0');
  f.read(header.data(), std::streamsize(n));
  CHECK_HINT(f.good(), kBadFile, "{}: cannot read the {}-byte header", path, n);
  CHECK_HINT(!header.empty() && header[0] == '{', kBadFile, "{}: the header does not start with '{{'", path);
  const json::Value h = json::parse(header, path + " (header)");  // trailing spaces are JSON whitespace
  const int64_t data0 = 8 + int64_t(n), data_size = file_size_ - data0;

  for (const auto& [name, v] : h.as_object(path + ": the header")) {
    const std::string what = fmt::format("{}: tensor '{}'", path, name);
    if (name == "__metadata__") {
      for (const auto& [k, s] : v.as_object(path + ": __metadata__"))
        metadata_[k] = s.as_string(fmt::format("{}: __metadata__ entry '{}'", path, k));
      continue;
    }
    const json::Value::Object& o = v.as_object(what);
    for (const auto& [k, _] : o)
      CHECK_HINT(k == "dtype" || k == "shape" || k == "data_offsets", kBadFile,
                 "{}: unknown field '{}' (expected dtype, shape, data_offsets)", what, k);
    const json::Value *dt = v.find("dtype"), *sh = v.find("shape"), *off = v.find("data_offsets");
    CHECK_HINT(dt && sh && off, kBadFile, "{}: needs dtype, shape and data_offsets", what);
    StTensor t;
    t.name = name;
    const std::string& d = dt->as_string(what + " dtype");
    if (d == "BF16") t.dtype = StDtype::BF16;
    else if (d == "F16") t.dtype = StDtype::F16;
    else if (d == "F32") t.dtype = StDtype::F32;
    else
      FAIL_HINT("convert the model to bfloat16, float16 or float32 first (e.g. model.to(torch.bfloat16) "
                "and save_pretrained)",
                "{}: dtype {} is not supported (longctx reads BF16, F16 and F32)", what, d);
    int64_t numel = 1;
    for (const json::Value& x : sh->as_array(what + " shape")) {
      const int64_t e = x.as_int(what + " shape entry");
      CHECK_HINT(e >= 0, kBadFile, "{}: negative dimension {} in shape", what, e);
      CHECK_HINT(e == 0 || numel <= (int64_t(1) << 62) / e, kBadFile, "{}: shape too large", what);
      numel *= e;
      t.shape.push_back(e);
    }
    const auto& offs = off->as_array(what + " data_offsets");
    CHECK_HINT(offs.size() == 2, kBadFile, "{}: data_offsets must be [begin, end]", what);
    const int64_t b = offs[0].as_int(what + " data_offsets[0]"), e = offs[1].as_int(what + " data_offsets[1]");
    CHECK_HINT(b >= 0 && b <= e, kBadFile, "{}: data_offsets [{}, {}] are not an ascending range", what, b, e);
    CHECK_HINT(e <= data_size, kBadFile,
               "{}: data_offsets [{}, {}] run past the data section ({} bytes): the file is truncated?",
               what, b, e, data_size);
    CHECK_HINT(e - b == numel * st_dtype_size(t.dtype), kBadFile,
               "{}: data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", what, b, e, e - b,
               shape_string(t.shape), d, numel * st_dtype_size(t.dtype));
    t.begin = data0 + b, t.end = data0 + e;
    tensors_.push_back(std::move(t));
  }
  // The tensors tile the data section: sorted by offset, each begins where the one before ended.
  std::vector<const StTensor*> by_off;
  for (const auto& t : tensors_) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  int64_t at = data0;
  for (size_t i = 0; i < by_off.size(); ++i) {
    const StTensor& t = *by_off[i];
    CHECK_HINT(t.begin >= at, kBadFile, "{}: tensor '{}' (bytes [{}, {}]) overlaps tensor '{}'", path,
               t.name, t.begin - data0, t.end - data0, by_off[i - 1]->name);
    CHECK_HINT(t.begin == at, kBadFile, "{}: {} unclaimed bytes in the data section before tensor '{}'",
               path, t.begin - at, t.name);
    at = t.end;
  }
  CHECK_HINT(at == file_size_, kBadFile, "{}: {} bytes after the last tensor's data", path, file_size_ - at);
  std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
}

const StTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const StTensor& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

void SafetensorsFile::read_bytes(const StTensor& t, void* out) const {
  std::ifstream f(path_, std::ios::binary);
  CHECK_HINT(f.good(), "check the file's permissions", "cannot open {}", path_);
  f.seekg(t.begin);
  f.read(static_cast<char*>(out), std::streamsize(t.end - t.begin));
  CHECK_HINT(f.good(), kBadFile, "{}: tensor '{}': cannot read bytes [{}, {}) (the file changed?)", path_,
             t.name, t.begin, t.end);
}

void SafetensorsFile::read_f32(const StTensor& t, float* out) const {
  const size_t n = size_t(t.numel());
  if (t.dtype == StDtype::F32) return read_bytes(t, out);
  std::vector<uint16_t> h(n);
  read_bytes(t, h.data());
  for (size_t i = 0; i < n; ++i)
    out[i] = t.dtype == StDtype::BF16 ? std::bit_cast<float>(uint32_t(h[i]) << 16) : f16_to_float(h[i]);
}

void SafetensorsFile::read_bf16(const StTensor& t, uint16_t* out) const {
  CHECK(t.dtype == StDtype::BF16, "{}: tensor '{}' is {}, not BF16", path_, t.name, st_dtype_name(t.dtype));
  read_bytes(t, out);
}

// ---- model directories ------------------------------------------------------------------------

SafetensorsModel::SafetensorsModel(const std::string& dir) {
  const fs::path single = fs::path(dir) / "model.safetensors", index = fs::path(dir) / "model.safetensors.index.json";
  std::error_code ec;
  CHECK_HINT(fs::is_directory(dir, ec), "pass the directory save_pretrained wrote",
             "model directory {} does not exist", dir);
  const bool has_single = fs::exists(single, ec), has_index = fs::exists(index, ec);
  CHECK_HINT(has_single || has_index, "longctx reads safetensors weights only (no pytorch_model.bin): "
             "save with save_pretrained(..., safe_serialization=True)",
             "{} holds neither model.safetensors nor model.safetensors.index.json", dir);
  CHECK_HINT(!(has_single && has_index), "remove the one that is stale",
             "{} holds both model.safetensors and model.safetensors.index.json", dir);
  if (has_single) {
    files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
    for (const auto& t : files_[0]->tensors()) where_[t.name] = 0;
    what_ = single.string();
    return;
  }
  what_ = index.string();
  const json::Value idx = json::parse_file(index.string());
  const json::Value* wm = idx.find("weight_map");
  CHECK_HINT(wm, "a sharded model's index maps every tensor to its file", "{}: no weight_map", what_);
  std::map<std::string, size_t> file_of;  // shard name -> index into files_
  std::map<std::string, std::string> listed;
  for (const auto& [name, v] : wm->as_object(what_ + ": weight_map")) {
    const std::string& shard = v.as_string(fmt::format("{}: weight_map entry '{}'", what_, name));
    CHECK_HINT(!shard.empty() && shard.find('/') == std::string::npos && shard.find('\\') == std::string::npos &&
                   shard != "." && shard != "..",
               "shards lie beside the index", "{}: tensor '{}' maps to '{}', not a file name in {}", what_,
               name, shard, dir);
    if (!file_of.count(shard)) {
      const fs::path p = fs::path(dir) / shard;
      CHECK_HINT(fs::is_regular_file(p, ec), "the model directory is incomplete: download every shard",
                 "{}: tensor '{}' is in {}, which does not exist", what_, name, p.string());
      file_of[shard] = files_.size();
      files_.push_back(std::make_unique<SafetensorsFile>(p.string()));
    }
    const SafetensorsFile& f = *files_[file_of[shard]];
    CHECK_HINT(f.find(name), kBadFile, "{}: tensor '{}' is listed in {}, which does not hold it", what_, name,
               f.path());
    where_[name] = file_of[shard];
    listed[name] = shard;
  }
  for (const auto& f : files_)
    for (const auto& t : f->tensors())
      CHECK_HINT(listed.count(t.name) && fs::path(f->path()).filename() == listed[t.name], kBadFile,
                 "{}: shard {} holds tensor '{}', which the index {}", what_, f->path(), t.name,
                 listed.count(t.name) ? "places in " + listed[t.name] : std::string("does not list"));
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> n;
  for (const auto& [k, _] : where_) n.push_back(k);
  return n;
}

const StTensor* SafetensorsModel::find(const std::string& name, const SafetensorsFile** file) const {
  auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  if (file) *file = files_[it->second].get();
  return files_[it->second]->find(name);
}

// ---- writing ----------------------------------------------------------------------------------

void write_safetensors(const std::string& path, std::vector<StOut> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const StOut& a, const StOut& b) { return a.name < b.name; });
  json::Value meta = json::Value::object();
  meta.set("format", "pt");
  for (const auto& [k, v] : metadata) meta.set(k, v);
  json::Value h = json::Value::object();
  h.set("__metadata__", meta);
  int64_t off = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const StOut& t = tensors[i];
    CHECK(t.name != "__metadata__" && !t.name.empty(), "safetensors: bad tensor name '{}'", t.name);
    CHECK(i == 0 || tensors[i - 1].name != t.name, "safetensors: tensor '{}' given twice", t.name);
    json::Value shape = json::Value::array();
    int64_t n = 1;
    for (int64_t d : t.shape) shape.push(d), n *= d;
    json::Value e = json::Value::object();
    e.set("dtype", st_dtype_name(t.dtype));
    e.set("shape", shape);
    e.set("data_offsets", json::Value(json::Value::Array{off, off + n * st_dtype_size(t.dtype)}));
    off += n * st_dtype_size(t.dtype);
    h.set(t.name, e);
  }
  std::string header = json::dump(h);
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  try {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    CHECK_HINT(f.good(), "check that the directory exists and is writable", "cannot create {}", tmp);
    unsigned char len8[8];
    for (int k = 0; k < 8; ++k) len8[k] = static_cast<unsigned char>(uint64_t(header.size()) >> (8 * k));
    f.write(reinterpret_cast<const char*>(len8), 8);
    f.write(header.data(), std::streamsize(header.size()));
    for (const StOut& t : tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      f.write(static_cast<const char*>(t.data), std::streamsize(n * st_dtype_size(t.dtype)));
    }
    f.close();
    CHECK_HINT(!f.fail(), "check the disk space", "cannot write {}", tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    CHECK_HINT(!ec, "check the directory's permissions", "cannot rename {} to {}: {}", tmp, path, ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace longctx

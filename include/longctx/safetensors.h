// safetensors.h — Hugging Face safetensors files, read and written (https://huggingface.co/docs/safetensors).
//
// A file is: 8 bytes N (little-endian u64), N bytes of JSON header, then the data section. The
// header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the data section) and may hold "__metadata__" (string to string). Reading validates all of it
// before any tensor is used: N against the file size, the JSON (json.h, strict), the header starting
// with '{', each dtype (BF16, F16, F32 accepted; F64, I64, F8_E4M3, ... refused by name), each shape,
// offsets inside the data section, end − begin = prod(shape) · dtype size, no two tensors
// overlapping and no bytes of the data section left unclaimed (the spec's "no holes": the tensors,
// sorted by offset, tile it exactly). Every message names the file and, where one is at fault, the
// tensor. Tensor data are read when asked for, by offset (a model larger than memory is read one
// tensor at a time).
//
// A model directory holds either model.safetensors or shards listed by model.safetensors.index.json
// ({"metadata": {...}, "weight_map": {tensor: shard file}}); SafetensorsModel opens either and checks
// that the index and the shards agree (every listed tensor in its shard, no shard tensor unlisted).
//
// Writing: the header lists the tensors in name order with "__metadata__": {"format": "pt"} (what
// transformers expects), padded with spaces to a multiple of 8 bytes; the data follow in the same
// order, contiguous.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace longctx {

enum class StDtype { BF16, F16, F32 };
const char* st_dtype_name(StDtype d);  // "BF16", "F16", "F32"
int64_t st_dtype_size(StDtype d);      // bytes per element

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range in the file (absolute: data section start + offsets)
  int64_t numel() const;
};

// IEEE half -> float, exact (every half value is a float; subnormals, infinities and NaN kept).
float f16_to_float(uint16_t h);
// "[4096, 11008]"
std::string shape_string(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Reads and validates the header (throws Error naming the file and the problem).
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::vector<StTensor>& tensors() const { return tensors_; }  // in name order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const StTensor* find(const std::string& name) const;  // nullptr when absent
  // The tensor's elements as fp32 (bf16 and f16 converted exactly), prod(shape) of them.
  void read_f32(const StTensor& t, float* out) const;
  // The raw bits of a BF16 tensor (refused for other dtypes).
  void read_bf16(const StTensor& t, uint16_t* out) const;

 private:
  void read_bytes(const StTensor& t, void* out) const;
  std::string path_;
  int64_t file_size_ = 0;
  std::vector<StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A model directory: model.safetensors, or model.safetensors.index.json and its shards.
class SafetensorsModel {
 public:
  explicit SafetensorsModel(const std::string& dir);
  const std::string& description() const { return what_; }  // for messages: the file(s) read
  std::vector<std::string> names() const;                   // every tensor, in name order
  // The tensor and the file that holds it; nullptr when absent.
  const StTensor* find(const std::string& name, const SafetensorsFile** file = nullptr) const;

 private:
  std::string what_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor -> index into files_
};

// One tensor to write: dtype, shape and its bytes (prod(shape) · dtype size, little-endian).
struct StOut {
  std::string name;
  StDtype dtype = StDtype::BF16;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};
// Writes a safetensors file (tensors in name order; names must be unique and not "__metadata__").
// `metadata` is added to {"format": "pt"}. Written to path.tmp, renamed when complete.
void write_safetensors(const std::string& path, std::vector<StOut> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace longctx

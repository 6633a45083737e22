// test_safetensors.cpp — safetensors files (include/longctx/safetensors.h): written and read back
// bit for bit, f16/bf16 -> fp32 exact, sharded directories, and every malformed file refused with
// a message naming the file, the tensor and the fault.
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "catch.h"
#include "longctx/safetensors.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {
// A file of an 8-byte length `len` (default: the header's), the header text and `data` bytes.
std::string raw_file(const std::string& dir, const std::string& header, size_t data,
                     int64_t len = -1) {
  const std::string p = dir + "/raw.safetensors";
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  uint64_t n = len < 0 ? header.size() : uint64_t(len);
  for (int k = 0; k < 8; ++k) f.put(char(n >> (8 * k)));
  f << header << std::string(data, '\x11');
  return p;
}
std::string open_error(const std::string& path) {
  return test::error_of([&] { SafetensorsFile f(path); });
}
}  // namespace

TEST_CASE("safetensors: write and read back, every dtype, header padded", "[safetensors]") {
  const std::string dir = test::temp_dir("st");
  std::mt19937 g(uint32_t(test::fresh_seed()));
  std::vector<uint16_t> a(6), b(5);
  std::vector<float> c(4);
  for (auto& x : a) x = uint16_t(g());
  for (auto& x : b) x = uint16_t(g() & 0x7bff);  // finite halves
  for (auto& x : c) x = std::bit_cast<float>(uint32_t(g() & 0x7f7fffffu));
  const std::string p = dir + "/m.safetensors";
  write_safetensors(p, {{"z.bf16", StDtype::BF16, {2, 3}, a.data()},
                        {"a.f16", StDtype::F16, {5}, b.data()},
                        {"m.f32", StDtype::F32, {2, 1, 2}, c.data()},
                        {"empty", StDtype::F32, {0, 3}, nullptr}},
                    {{"note", "x"}});
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
  std::string header(n, '\0');
  in.read(header.data(), std::streamsize(n));
  CHECK(header.find("\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"}") != std::string::npos);
  CHECK(header.find("a.f16") < header.find("m.f32"));  // name order
  CHECK(header.find("m.f32") < header.find("z.bf16"));

  const SafetensorsFile f(p);
  CHECK(f.metadata().at("format") == "pt");
  REQUIRE(f.tensors().size() == 4);
  const StTensor* t = f.find("z.bf16");
  REQUIRE(t);
  CHECK(t->shape == std::vector<int64_t>{2, 3});
  std::vector<uint16_t> bits(6);
  f.read_bf16(*t, bits.data());
  CHECK(bits == a);
  std::vector<float> v(6);
  f.read_f32(*t, v.data());
  for (size_t i = 0; i < 6; ++i) CHECK(std::bit_cast<uint32_t>(v[i]) == uint32_t(a[i]) << 16);
  f.read_f32(*f.find("m.f32"), v.data());
  CHECK(std::memcmp(v.data(), c.data(), 16) == 0);
  f.read_f32(*f.find("a.f16"), v.data());
  for (size_t i = 0; i < 5; ++i) CHECK(v[i] == f16_to_float(b[i]));
  CHECK(f.find("empty")->numel() == 0);
  CHECK_THAT(test::error_of([&] { f.read_bf16(*f.find("m.f32"), bits.data()); }), Contains("is F32, not BF16"));
}

TEST_CASE("safetensors: f16 -> fp32 is exact (normals, subnormals, inf, NaN)", "[safetensors]") {
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0xc000) == -2.0f);
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f16_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(f16_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(f16_to_float(0x7c00) == INFINITY);
  CHECK(f16_to_float(0xfc00) == -INFINITY);
  CHECK(std::isnan(f16_to_float(0x7e00)));
  // Every half against value = (-1)^s · 2^(e-15) · (1 + m/1024) (or 2^-14 · m/1024), in double.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int e = int(h >> 10) & 31, m = int(h & 1023);
    if (e == 31) continue;
    const double mag = e ? std::ldexp(1.0 + m / 1024.0, e - 15) : std::ldexp(m / 1024.0, -14);
    const double ref = (h & 0x8000) ? -mag : mag;
    if (double(f16_to_float(uint16_t(h))) != ref) FAIL("half 0x" << std::hex << h);
  }
}

TEST_CASE("safetensors: malformed files are refused, naming the file, tensor and fault", "[safetensors]") {
  const std::string dir = test::temp_dir("st-bad");
  auto hdr = [](const std::string& body) { return "{" + body + "}"; };
  const std::string ok = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  REQUIRE(open_error(raw_file(dir, hdr(ok), 8)).empty());  // the baseline is good
  // Trailing spaces in the header are allowed (writers pad to 8).
  CHECK(open_error(raw_file(dir, hdr(ok) + "   ", 8)).empty());
  struct Case {
    std::string header;
    size_t data;
    int64_t len;
    std::string message;
  };
  const Case cases[] = {
      {hdr(ok), 8, 1000, "header length 1000 runs past the end of the file"},
      {hdr(ok), 7, -1, "tensor 'w': data_offsets [0, 8] run past the data section (7 bytes)"},
      {hdr(ok), 12, -1, "4 bytes after the last tensor's data"},
      {hdr(ok).substr(0, 20), 0, -1, "invalid JSON"},
      {hdr(ok).insert(0, 1, ' '), 8, -1, "does not start with '{'"},
      {"[]", 0, -1, "does not start with"},
      {"{\"w\":[]}", 0, -1, "tensor 'w' must be an object, not array"},
      {hdr(R"("w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})"), 8, -1, "tensor 'w': dtype F64 is not supported"},
      {hdr(R"("w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]})"), 8, -1, "dtype I64 is not supported"},
      {hdr(R"("w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"), 8, -1, "dtype F8_E4M3 is not supported"},
      {hdr(R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), 8, -1,
       "tensor 'w': data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12"},
      {hdr(R"("w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), 8, -1, "negative dimension"},
      {hdr(R"("w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), 8, -1, "shape entry must be an integer"},
      {hdr(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]})"), 8, -1, "not an ascending range"},
      {hdr(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0]})"), 8, -1, "data_offsets must be [begin, end]"},
      {hdr(R"("w":{"dtype":"F32","shape":[2]})"), 8, -1, "needs dtype, shape and data_offsets"},
      {hdr(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1})"), 8, -1, "unknown field 'x'"},
      {hdr(R"("w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})"), 12, -1, "4 unclaimed bytes in the data section before tensor 'w'"},
      {hdr(ok + R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})"), 12, -1, "tensor 'v' (bytes [4, 12]) overlaps tensor 'w'"},
      {hdr(ok + R"(,"v":{"dtype":"F32","shape":[1],"data_offsets":[12,16]})"), 16, -1, "4 unclaimed bytes in the data section before tensor 'v'"},
      {hdr(ok + R"(,"__metadata__":{"format":1})"), 8, -1, "__metadata__ entry 'format' must be a string"},
      {hdr(ok + R"(,"w":{})"), 8, -1, "duplicate key \"w\""},
      {hdr(R"("w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]})"), 8, -1, "shape too large"},
  };
  for (const Case& c : cases) {
    INFO("header: " << c.header);
    const std::string p = raw_file(dir, c.header, c.data, c.len);
    const std::string e = open_error(p);
    CHECK_THAT(e, Contains(p));
    CHECK_THAT(e, Contains(c.message));
  }
  // Too short for the length; absent.
  { std::ofstream(dir + "/short.safetensors") << "abc"; }
  CHECK_THAT(open_error(dir + "/short.safetensors"), Contains("too short for the 8-byte header length"));
  CHECK_THAT(open_error(dir + "/none.safetensors"), Contains("does not exist"));
  // A header length over the 100 MiB limit (a sparse file of that size, so the length fits in it).
  const std::string big = raw_file(dir, hdr(ok), 8, (int64_t(100) << 20) + 8);
  fs::resize_file(big, (uint64_t(100) << 20) + 64);
  CHECK_THAT(open_error(big), Contains("header length 104857608 exceeds the 104857600-byte limit"));
}

TEST_CASE("safetensors: sharded model directories through the index", "[safetensors]") {
  const std::string dir = test::temp_dir("st-shards");
  const float x[2] = {1.0f, 2.0f}, y[3] = {3.0f, 4.0f, 5.0f};
  write_safetensors(dir + "/a.safetensors", {{"x", StDtype::F32, {2}, x}});
  write_safetensors(dir + "/b.safetensors", {{"y", StDtype::F32, {3}, y}});
  auto index = [&](const std::string& map) {
    std::ofstream(dir + "/model.safetensors.index.json") << R"({"metadata":{"total_size":20},"weight_map":{)" << map << "}}";
  };
  index(R"("x":"a.safetensors","y":"b.safetensors")");
  const SafetensorsModel m(dir);
  CHECK(m.names() == std::vector<std::string>{"x", "y"});
  const SafetensorsFile* f = nullptr;
  const StTensor* t = m.find("y", &f);
  REQUIRE((t && f));
  float out[3];
  f->read_f32(*t, out);
  CHECK((out[0] == 3.0f && out[2] == 5.0f));
  CHECK(m.find("z") == nullptr);

  auto error = [&] { return test::error_of([&] { SafetensorsModel mm(dir); }); };
  write_safetensors(dir + "/ab.safetensors", {{"x", StDtype::F32, {2}, x}, {"y", StDtype::F32, {3}, y}});
  index(R"("x":"ab.safetensors")");
  CHECK_THAT(error(), Contains("shard " + dir + "/ab.safetensors holds tensor 'y', which the index does not list"));
  index(R"("x":"ab.safetensors","y":"b.safetensors")");
  CHECK_THAT(error(), Contains("holds tensor 'y', which the index places in b.safetensors"));
  index(R"("x":"a.safetensors","y":"a.safetensors")");
  CHECK_THAT(error(), Contains("tensor 'y' is listed in " + dir + "/a.safetensors, which does not hold it"));
  index(R"("x":"a.safetensors","y":"c.safetensors")");
  CHECK_THAT(error(), Contains("tensor 'y' is in " + dir + "/c.safetensors, which does not exist"));
  index(R"("x":"a.safetensors","y":"../b.safetensors")");
  CHECK_THAT(error(), Contains("not a file name in"));
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"metadata":{}})";
  CHECK_THAT(error(), Contains("no weight_map"));
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"x":"a.safetensors",}})";
  CHECK_THAT(error(), Contains("model.safetensors.index.json: invalid JSON at byte 35"));
  fs::copy_file(dir + "/a.safetensors", dir + "/model.safetensors");
  CHECK_THAT(error(), Contains("holds both model.safetensors and model.safetensors.index.json"));
  const std::string empty = test::temp_dir("st-empty");
  CHECK_THAT(test::error_of([&] { SafetensorsModel mm(empty); }),
             Contains("holds neither model.safetensors nor model.safetensors.index.json"));
}

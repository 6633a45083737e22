// Tests of HDF5 token files: pack-text (src/cli/pack_text.cpp) and the token source
// (src/io/data_tokens.cpp).
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/data.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// /tokens of an HDF5 file as int64 (HDF5 converts from the stored integer type).
std::vector<int64_t> read_tokens(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, "/tokens", H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  std::vector<int64_t> out(size_t(H5Sget_simple_extent_npoints(s)));
  herr_t rc = H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Sclose(s), H5Dclose(d), H5Fclose(f);
  REQUIRE(rc >= 0);
  return out;
}

// A token file whose /tokens has file type `type`, written from int64 values.
void write_tokens(const std::string& path, const std::vector<int64_t>& v, hid_t type) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t n = v.size();
  hid_t s = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, "/tokens", type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
  H5Dclose(d), H5Sclose(s), H5Fclose(f);
}

Config token_config(const std::string& path, int64_t seq_len) {
  Config c;
  c.data.kind = DataKind::tokens;
  c.data.path = path;
  c.model.vocab_size = 264;
  StageConfig s;
  s.seq_len = seq_len, s.rope_theta = 10000.0, s.steps = 10;
  c.stages = {s};
  return c;
}

int64_t attr_i64(const std::string& path, const char* name) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  int64_t v = -1;
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a), H5Fclose(f);
  return v;
}

}  // namespace

TEST_CASE("pack_text writes BOS, the bytes and EOS of each file", "[data]") {
  const std::string dir = test::temp_dir("pack-text");
  const std::string a = dir + "/a.txt", b = dir + "/b.bin", out = dir + "/out/data.h5";
  const std::string bytes_b = std::string("\x00\xff\x80 zero and high bytes\n", 22);
  write_file(a, "Hello, world.\n");
  write_file(b, bytes_b);
  const int64_t n = pack_text({a, b}, out);

  std::vector<int64_t> want = {kTokBos};
  for (unsigned char c : std::string("Hello, world.\n")) want.push_back(c);
  want.push_back(kTokEos), want.push_back(kTokBos);
  for (unsigned char c : bytes_b) want.push_back(c);
  want.push_back(kTokEos);
  CHECK(n == int64_t(want.size()));
  CHECK(read_tokens(out) == want);
  CHECK(attr_i64(out, "n_documents") == 2);
  CHECK(attr_i64(out, "n_tokens") == n);
  CHECK(!fs::exists(out + ".tmp"));

  SECTION("a file larger than one chunk streams through") {
    std::string big(700000, ' ');
    for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i * 7919 % 26);
    write_file(dir + "/big.txt", big);
    const std::string out2 = dir + "/big.h5";
    REQUIRE(pack_text({dir + "/big.txt", a}, out2) == int64_t(big.size()) + 2 + 16);
    const auto t = read_tokens(out2);
    CHECK(t[0] == kTokBos);
    CHECK(std::equal(big.begin(), big.end(), t.begin() + 1,
                     [](char c, int64_t x) { return int64_t(c) == x; }));
    CHECK(t[big.size() + 1] == kTokEos);
  }

  SECTION("a missing input file is named and nothing is left behind") {
    const std::string out3 = dir + "/missing.h5";
    CHECK_THAT(test::error_of([&] {
                 pack_text({a, dir + "/nope.txt"}, out3);
               }),
               Contains(dir + "/nope.txt"));
    CHECK(!fs::exists(out3));
    CHECK(!fs::exists(out3 + ".tmp"));
  }
}

TEST_CASE("token source windows are deterministic slices of the file", "[data]") {
  const std::string dir = test::temp_dir("tokens");
  std::string text(5000, ' ');
  const auto noise = test::randn(text.size());
  for (size_t i = 0; i < text.size(); ++i) text[i] = char(32 + int(std::abs(noise[i]) * 30) % 95);
  write_file(dir + "/t.txt", text);
  const std::string path = dir + "/t.h5";
  pack_text({dir + "/t.txt"}, path);
  const auto file = read_tokens(path);

  const int64_t T = 64, len = T + 1;
  auto src = make_token_source(token_config(path, T));
  CHECK_THAT(src->describe(), Contains(path) && Contains("5002 tokens"));
  std::set<int64_t> starts;
  for (int64_t s = 0; s < 20; ++s) {
    std::vector<int32_t> x(len, -1), y(len, -2);
    src->sample(3, s, len, x.data());
    src->sample(3, s, len, y.data());
    REQUIRE(x == y);
    // The window sits somewhere in the file: find where.
    auto it = std::search(file.begin(), file.end(), x.begin(), x.end(),
                          [](int64_t f, int32_t t) { return f == int64_t(t); });
    REQUIRE(it != file.end());
    starts.insert(it - file.begin());
  }
  CHECK(starts.size() >= 18);  // 20 draws from ~4938 starts: a repeat or two at most

  // Another source over the same file gives the same window for the same (step, sample).
  auto again = make_token_source(token_config(path, T));
  std::vector<int32_t> x(len), y(len);
  src->sample(11, 4, len, x.data());
  again->sample(11, 4, len, y.data());
  CHECK(x == y);
}

TEST_CASE("token source refuses bad files with a clear message", "[data]") {
  const std::string dir = test::temp_dir("tokens-bad");
  const int64_t T = 16;

  SECTION("an id outside the vocabulary names the id and its position") {
    std::vector<int64_t> v(20, 65);
    v[10] = 300;  // every window of 17 tokens in 20 covers position 10
    write_tokens(dir + "/big_id.h5", v, H5T_STD_U32LE);
    // Refused when the file is opened (every id is checked then), before any window is drawn.
    const std::string msg = test::error_of([&] { make_token_source(token_config(dir + "/big_id.h5", T)); });
    CHECK_THAT(msg, Contains("300") && Contains("index 10") && Contains("big_id.h5") &&
                        Contains("264"));
  }
  SECTION("a signed file with a negative id is refused, not clipped") {
    std::vector<int64_t> v(20, 65);
    v[9] = -3;
    write_tokens(dir + "/neg.h5", v, H5T_STD_I16LE);
    CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/neg.h5", T)); }),
               Contains("-3") && Contains("index 9"));
  }
  SECTION("a file shorter than seq_len + 1 names both numbers") {
    write_tokens(dir + "/short.h5", std::vector<int64_t>(10, 65), H5T_STD_U32LE);
    const std::string msg =
        test::error_of([&] { make_token_source(token_config(dir + "/short.h5", T)); });
    CHECK_THAT(msg, Contains("10 tokens") && Contains("17") && Contains("short.h5"));
  }
  SECTION("floats are refused") {
    write_tokens(dir + "/float.h5", std::vector<int64_t>(40, 65), H5T_IEEE_F32LE);
    CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/float.h5", T)); }),
               Contains("floating-point"));
  }
  SECTION("a missing file, a non-HDF5 file and a file without /tokens are named") {
    CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/nope.h5", T)); }),
               Contains(dir + "/nope.h5"));
    write_file(dir + "/text.h5", "plain text");
    CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/text.h5", T)); }),
               Contains(dir + "/text.h5") && Contains("not an HDF5 file"));
    hid_t f = H5Fcreate((dir + "/empty.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/empty.h5", T)); }),
               Contains("no dataset /tokens"));
  }
}

TEST_CASE("every token id is checked when the token file is opened (not only drawn windows)", "[data]") {
  const std::string dir = test::temp_dir("token-scan");
  // Over one read chunk of the check (4M ids), with a bad id far past any window of 64 tokens drawn
  // from the first chunk: only the whole-file pass at open can see it.
  const int64_t n = (int64_t(1) << 22) + 1000, bad = (int64_t(1) << 22) + 517;
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i % 250;
  ids[size_t(bad)] = 300;  // vocab_size is 264
  const std::string path = dir + "/far.h5";
  write_tokens(path, ids, H5T_STD_U32LE);
  const std::string msg = test::error_of([&] { make_token_source(token_config(path, 64)); });
  CHECK_THAT(msg, Contains(path));
  CHECK_THAT(msg, Contains("/tokens"));
  CHECK_THAT(msg, Contains("id 300 at index " + std::to_string(bad)));
  CHECK_THAT(msg, Contains("vocab_size = 264"));
  // A negative id of a signed file, in the first chunk.
  std::vector<int64_t> small(5000, 7);
  small[4321] = -2;
  write_tokens(dir + "/neg.h5", small, H5T_STD_I32LE);
  CHECK_THAT(test::error_of([&] { make_token_source(token_config(dir + "/neg.h5", 64)); }),
             Contains("id -2 at index 4321"));
  // In range everywhere: opens.
  ids[size_t(bad)] = 263;
  write_tokens(path, ids, H5T_STD_U32LE);
  CHECK(test::error_of([&] { make_token_source(token_config(path, 64)); }).empty());
}

// pack-text with a tokenizer.json (src/cli/pack_text.cpp) and the token source's check of the
// vocabulary size it records (src/io/data_tokens.cpp).
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catch.h"
#include "longctx/data.h"
#include "longctx/tokenizer.h"
#include "tokenizer_fixture.h"
#include "util.h"

using namespace longctx;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

std::vector<int64_t> tokens_of(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, "/tokens", H5P_DEFAULT), s = H5Dget_space(d);
  std::vector<int64_t> out(size_t(H5Sget_simple_extent_npoints(s)));
  const herr_t rc = H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Sclose(s), H5Dclose(d), H5Fclose(f);
  REQUIRE(rc >= 0);
  return out;
}

int64_t int_attr(const std::string& path, const char* name) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), a = H5Aopen(f, name, H5P_DEFAULT);
  int64_t v = -1;
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a), H5Fclose(f);
  return v;
}

std::string string_attr(const std::string& path, const char* name) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  std::string v(H5Tget_size(t), '\0');
  H5Aread(a, t, v.data());
  H5Tclose(t), H5Aclose(a), H5Fclose(f);
  return v.substr(0, v.find('\0'));
}

Config deck(const std::string& path, int64_t vocab, int64_t seq_len) {
  Config c;
  c.data.kind = DataKind::tokens;
  c.data.path = path;
  c.model.vocab_size = vocab;
  StageConfig s;
  s.seq_len = seq_len, s.rope_theta = 10000.0, s.steps = 10;
  c.stages = {s};
  return c;
}

}  // namespace

TEST_CASE("pack-text --tokenizer: per file BOS, the tokenizer's ids, --eos; the vocabulary size recorded",
          "[data][tokenizer]") {
  const std::string dir = test::temp_dir("pack-tokenizer");
  const std::string tj = dir + "/tokenizer.json";
  test::write_small_tokenizer(tj, test::TokStyle::llama3, false);
  const Tokenizer tok = Tokenizer::load(tj);
  const std::string a = "The quick brown fox.\nIt's 2024: Привет, мир! 你好<|eot_id|>end", b = "  the other\tfile\r\n";
  std::ofstream(dir + "/a.txt", std::ios::binary) << a;
  std::ofstream(dir + "/b.txt", std::ios::binary) << b;
  const std::string out = dir + "/data.h5";
  const int64_t n = pack_text({dir + "/a.txt", dir + "/b.txt"}, out, PackOptions{tj, "<|eot_id|>"});

  const int32_t bos = tok.token_id("<|begin_of_text|>"), eot = tok.token_id("<|eot_id|>");
  REQUIRE(bos >= 256);
  std::vector<int64_t> want;
  for (const std::string& text : {a, b}) {
    want.push_back(bos);
    for (int32_t id : tok.encode(text)) want.push_back(id);
    want.push_back(eot);
  }
  CHECK(n == int64_t(want.size()));
  CHECK(tokens_of(out) == want);
  CHECK(int_attr(out, "vocab_size") == tok.vocab_size());
  CHECK(string_attr(out, "vocab") == "tokenizer");
  CHECK(string_attr(out, "tokenizer") == tj);
  CHECK(int_attr(out, "n_documents") == 2);

  SECTION("a deck whose model.vocab_size is below the tokenizer's is refused; the tokenizer's size is enough") {
    const int64_t T = 8;
    CHECK_THAT(test::error_of([&] { make_token_source(deck(out, 300, T)); }),
               Contains("packed for a vocabulary of " + std::to_string(tok.vocab_size()) + " tokens"));
    CHECK_NOTHROW(make_token_source(deck(out, tok.vocab_size(), T)));
  }
  SECTION("read in blocks of a few bytes: the ids of the whole file") {
    std::string big;
    for (int i = 0; i < 40; ++i)
      big += a + "   \n\n\t" + b + "<|eot_id|><|begin_of_text|>'S 'll " + std::to_string(i * 7919) + " ";
    std::ofstream(dir + "/big.txt", std::ios::binary) << big;
    for (size_t block : {size_t(1), size_t(3), size_t(7), size_t(64), size_t(1000)}) {
      INFO("block " << block);
      const std::string o = dir + "/big" + std::to_string(block) + ".h5";
      PackOptions po{tj, ""};
      po.block = block;
      pack_text({dir + "/big.txt"}, o, po);
      std::vector<int64_t> whole = {bos};
      for (int32_t id : tok.encode(big)) whole.push_back(id);
      CHECK(tokens_of(o) == whole);
    }
    // An invalid byte past the first block is reported at its offset in the file.
    std::ofstream(dir + "/late.txt", std::ios::binary) << big << "caf\xe9";
    PackOptions po{tj, ""};
    po.block = 5;
    CHECK_THAT(test::error_of([&] { pack_text({dir + "/late.txt"}, dir + "/late.h5", po); }),
               Contains("not valid UTF-8 at byte " + std::to_string(big.size() + 3)));
  }
  SECTION("a byte-level file records 259") {
    pack_text({dir + "/b.txt"}, dir + "/bytes.h5");
    CHECK(int_attr(dir + "/bytes.h5", "vocab_size") == kByteVocab);
    CHECK(string_attr(dir + "/bytes.h5", "vocab") == "byte");
  }
  SECTION("refusals leave nothing behind") {
    std::ofstream(dir + "/latin1.txt", std::ios::binary) << "caf\xe9 au lait";
    const std::string bad = dir + "/bad.h5";
    CHECK_THAT(test::error_of([&] { pack_text({dir + "/a.txt", dir + "/latin1.txt"}, bad, PackOptions{tj, ""}); }),
               Contains("latin1.txt is not valid UTF-8 at byte 3"));
    CHECK_THAT(test::error_of([&] { pack_text({dir + "/a.txt"}, bad, PackOptions{tj, "<|nope|>"}); }),
               Contains("--eos <|nope|> is not a token"));
    CHECK_THAT(test::error_of([&] { pack_text({dir + "/a.txt"}, bad, PackOptions{dir + "/none.json", ""}); }),
               Contains("cannot open"));
    CHECK(!fs::exists(bad));
    CHECK(!fs::exists(bad + ".tmp"));
  }
}

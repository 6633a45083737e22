// tokenize_cli.cpp — `longctx tokenize TOKENIZER.json FILE... [--ids]`: encodes text files with a
// tokenizer.json and reports tokens and throughput (tokenizer.h); --ids prints the ids.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "longctx/common.h"
#include "longctx/log.h"
#include "longctx/tokenizer.h"

namespace longctx {

int tokenize_main(const std::vector<std::string>& args, int rank) {
  std::vector<std::string> files;
  bool ids = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--ids") ids = true;
    else {
      CHECK_HINT(!args[i].starts_with("-"), "longctx tokenize --help", "tokenize: unexpected option '{}'", args[i]);
      files.push_back(args[i]);
    }
  }
  CHECK_HINT(files.size() >= 2, "longctx tokenize tokenizer.json a.txt [b.txt...] [--ids]",
             "tokenize: need a tokenizer.json and at least one text file");
  if (rank != 0) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer tok = Tokenizer::load(files[0]);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("{} (loaded in {:.2f} s)", tok.describe(), load_s);
  Encoder enc(tok);
  std::vector<int32_t> out;
  for (size_t f = 1; f < files.size(); ++f) {
    std::ifstream in(files[f], std::ios::binary);
    CHECK_HINT(in, "check the file name", "tokenize: cannot open {}", files[f]);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    out.clear();
    const auto t1 = std::chrono::steady_clock::now();
    enc.encode(text, out);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    if (ids) {
      std::string line;
      for (size_t i = 0; i < out.size(); ++i) line += fmt::format("{}{}", i ? " " : "", out[i]);
      std::printf("%s\n", line.c_str());
    }
    log_info("{}: {} bytes -> {} tokens ({:.2f} bytes/token) in {:.3f} s: {:.1f} MB/s, cache hits {:.1f}%", files[f],
             text.size(), out.size(), double(text.size()) / double(std::max<size_t>(out.size(), 1)), s,
             double(text.size()) / 1e6 / std::max(s, 1e-9),
             100.0 * double(enc.hits()) / double(std::max<int64_t>(enc.lookups(), 1)));
  }
  return 0;
}

}  // namespace longctx

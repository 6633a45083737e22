// pack_text.cpp — `longctx pack-text FILES... -o OUT.h5 [--tokenizer tokenizer.json]`: text files
// -> token file.
//
// Byte-level: each file becomes BOS, its bytes (ids 0..255), EOS. With a tokenizer: each file
// (UTF-8) becomes the post-processor's prefix, its ids, the suffix and the optional --eos token.
// Files are streamed in blocks either way (a tokenizer whose first pre-tokenizer step cannot
// stream holds a file whole). Either way the tokens are appended to the extensible uint32
// dataset /tokens (chunked, Fletcher32, gzip level 1 when HDF5 has it), with root attributes
// vocab ("byte" or "tokenizer"), vocab_size (the smallest model.vocab_size the ids fit; data.kind =
// "tokens" refuses a smaller one), tokenizer (its path), n_documents, n_tokens. OUT.h5.tmp is
// renamed to OUT.h5 only when complete, and removed on any failure.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/h5.h"
#include "longctx/tokenizer.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

constexpr hsize_t kChunk = hsize_t(1) << 18;  // tokens per chunk: 1 MiB of uint32

using Hid = h5::Handle;

// Appends tokens to /tokens, a block at a time.
class TokenWriter {
 public:
  TokenWriter(hid_t file, const std::string& path) : path_(path) {
    const hsize_t zero = 0, unlimited = H5S_UNLIMITED;
    Hid space(H5Screate_simple(1, &zero, &unlimited));
    Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
    bool ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &kChunk) >= 0;
    unsigned info = 0;
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 &&
        H5Zget_filter_info(H5Z_FILTER_DEFLATE, &info) >= 0 &&
        (info & H5Z_FILTER_CONFIG_ENCODE_ENABLED))
      ok = ok && H5Pset_deflate(dcpl, 1) >= 0;
    ok = ok && H5Pset_fletcher32(dcpl) >= 0;  // last: the checksum covers the stored bytes
    CHECK(ok, "pack-text: HDF5 could not set up /tokens in {}", path);
    dset_ = Hid(H5Dcreate2(file, "/tokens", H5T_STD_U32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    CHECK(dset_ >= 0, "pack-text: HDF5 could not create /tokens in {}", path);
    buf_.reserve(kChunk);
  }
  void push(uint32_t t) {
    buf_.push_back(t);
    if (buf_.size() == kChunk) flush();
  }
  void flush() {
    if (buf_.empty()) return;
    const hsize_t start = hsize_t(n_), count = buf_.size(), total = start + count;
    bool ok = H5Dset_extent(dset_, &total) >= 0;
    Hid fspace(H5Dget_space(dset_)), mspace(H5Screate_simple(1, &count, nullptr));
    ok = ok && fspace >= 0 && mspace >= 0 &&
         H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &count, nullptr) >= 0 &&
         H5Dwrite(dset_, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, buf_.data()) >= 0;
    CHECK_HINT(ok, "is the disk full?", "pack-text: HDF5 could not write tokens [{}, {}) to {}",
               start, total, path_);
    n_ = int64_t(total);
    buf_.clear();
  }
  int64_t count() const { return n_ + int64_t(buf_.size()); }

 private:
  std::string path_;
  Hid dset_;
  std::vector<uint32_t> buf_;
  int64_t n_ = 0;  // tokens already in the file
};

void put_attr(hid_t file, const char* name, hid_t type, const void* v, const std::string& path) {
  Hid space(H5Screate(H5S_SCALAR));
  Hid a(H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
  CHECK(a >= 0 && H5Awrite(a, type, v) >= 0, "pack-text: HDF5 could not write attribute {} to {}",
        name, path);
}

void put_string_attr(hid_t file, const char* name, const std::string& v, const std::string& path) {
  Hid str(H5Tcopy(H5T_C_S1));
  H5Tset_size(str, v.size() + 1);  // with its NUL, as "byte" always was
  put_attr(file, name, str, v.c_str(), path);
}

// The tokens of every file with a tokenizer, streamed in blocks (Encoder::encode_prefix: the
// ids are those of the whole file); returns the token count.
int64_t pack_tokenized(TokenWriter& w, const std::vector<std::string>& files, const Tokenizer& tok, int32_t eos,
                       size_t block_bytes) {
  Encoder enc(tok);
  std::vector<int32_t> ids;
  std::string buf, block(std::max<size_t>(block_bytes, 1), '\0');
  for (const auto& name : files) {
    std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(name.c_str(), "rb"), &std::fclose);
    CHECK_HINT(in, "check the file name", "pack-text: cannot open input file {}", name);
    for (int32_t id : tok.prefix_ids()) w.push(uint32_t(id));
    buf.clear();
    int64_t offset = 0;  // of buf's first byte in the file
    for (bool eof = false; !eof;) {
      const size_t k = std::fread(block.data(), 1, block.size(), in.get());
      CHECK_HINT(!std::ferror(in.get()), "is it a readable file (not a directory)?",
                 "pack-text: error reading input file {}", name);
      eof = k < block.size();
      buf.append(block.data(), k);
      // Refused with the file's offset (a character cut by the block's end waits for the next).
      const size_t bad = invalid_utf8_at(buf);
      CHECK_HINT(bad == std::string::npos || (!eof && bad + 4 > buf.size()),
                 "tokenizers read UTF-8: convert the file (e.g. iconv -f LATIN1 -t UTF-8)",
                 "pack-text: {} is not valid UTF-8 at byte {}", name, offset + int64_t(bad));
      ids.clear();
      const size_t used = enc.encode_prefix(buf, eof, ids);
      for (int32_t id : ids) w.push(uint32_t(id));
      buf.erase(0, used);
      offset += int64_t(used);
    }
    for (int32_t id : tok.suffix_ids()) w.push(uint32_t(id));
    if (eos >= 0) w.push(uint32_t(eos));
  }
  return w.count();
}

// Writes every file into tmp; returns the token count.
int64_t pack_into(const std::vector<std::string>& files, const std::string& tmp, const PackOptions& opt) {
  std::unique_ptr<Tokenizer> tok;
  int32_t eos = -1;
  if (!opt.tokenizer.empty()) {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(opt.tokenizer));
    if (!opt.eos.empty()) {
      eos = tok->token_id(opt.eos);
      CHECK_HINT(eos >= 0, "name one of the tokenizer's added tokens, e.g. --eos \"<|end_of_text|>\"",
                 "pack-text: --eos {} is not a token of {}", opt.eos, opt.tokenizer);
    }
  }
  Hid file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  CHECK_HINT(file >= 0, "is the directory writable?", "pack-text: HDF5 could not create {}", tmp);
  int64_t n = 0;
  if (tok) {
    TokenWriter w(file, tmp);
    pack_tokenized(w, files, *tok, eos, opt.block);
    w.flush();
    n = w.count();
  } else {
    TokenWriter w(file, tmp);
    std::vector<unsigned char> block(size_t(1) << 20);
    for (const auto& name : files) {
      std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(name.c_str(), "rb"), &std::fclose);
      CHECK_HINT(in, "check the file name", "pack-text: cannot open input file {}", name);
      w.push(uint32_t(kTokBos));
      size_t k;
      while ((k = std::fread(block.data(), 1, block.size(), in.get())) > 0)
        for (size_t i = 0; i < k; ++i) w.push(block[i]);
      CHECK_HINT(!std::ferror(in.get()), "is it a readable file (not a directory)?",
                 "pack-text: error reading input file {}", name);
      w.push(uint32_t(kTokEos));
    }
    w.flush();
    n = w.count();
  }
  const int64_t docs = int64_t(files.size());
  const int64_t vocab_size = tok ? tok->vocab_size() : kByteVocab;
  put_string_attr(file, "vocab", tok ? "tokenizer" : "byte", tmp);
  put_attr(file, "vocab_size", H5T_NATIVE_INT64, &vocab_size, tmp);
  if (tok) put_string_attr(file, "tokenizer", opt.tokenizer, tmp);
  put_attr(file, "n_documents", H5T_NATIVE_INT64, &docs, tmp);
  put_attr(file, "n_tokens", H5T_NATIVE_INT64, &n, tmp);
  CHECK_HINT(file.close() >= 0, "is the disk full?", "pack-text: HDF5 could not close {}", tmp);
  return n;
}

}  // namespace

int64_t pack_text(const std::vector<std::string>& files, const std::string& out_path) {
  return pack_text(files, out_path, PackOptions{});
}

int64_t pack_text(const std::vector<std::string>& files, const std::string& out_path, const PackOptions& opt) {
  h5::quiet();
  CHECK_HINT(opt.eos.empty() || !opt.tokenizer.empty(), "--eos names a token of --tokenizer",
             "pack-text: --eos without --tokenizer");
  CHECK_HINT(!files.empty(), "longctx pack-text a.txt b.txt -o data.h5",
             "pack-text: no input files");
  std::error_code ec;
  for (const auto& f : files)  // fail early, before anything is written
    CHECK_HINT(fs::is_regular_file(f, ec), "check the file name",
               "pack-text: input file {} does not exist "
               "(or is not a regular file)",
               f);
  // The output must be a file: refused before anything is written (a rename onto a directory
  // fails only at the end, after the whole input was packed).
  CHECK_HINT(!fs::is_directory(out_path, ec), "name the output file, e.g. -o " +
                 (fs::path(out_path) / "data.h5").string(),
             "pack-text: -o {} is a directory", out_path);
  const fs::path parent = fs::path(out_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  CHECK_HINT(!ec, "check the path and its permissions", "pack-text: -o {}: cannot create directory {}: {}",
             out_path, parent.string(), ec.message());
  const std::string tmp = out_path + ".tmp";
  CHECK_HINT(!fs::exists(tmp, ec) || fs::is_regular_file(tmp, ec), "remove it, or choose another -o",
             "pack-text: {} (the temporary name of -o {}) exists and is not a file", tmp, out_path);
  int64_t n = 0;
  try {  // the temporary file goes on any failure, the rename's included
    n = pack_into(files, tmp, opt);
    fs::rename(tmp, out_path, ec);
    CHECK_HINT(!ec, "is the directory writable?", "pack-text: cannot rename {} to {}: {}", tmp,
               out_path, ec.message());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return n;
}

}  // namespace longctx

// data_tokens.cpp — training windows cut from an HDF5 token file (data.kind = "tokens").
//
// The file holds one 1-D integer dataset /tokens (uint32 from `longctx pack-text`; any integer
// type is accepted). Sample (step, sample) is the window of `len` tokens starting at a position
// drawn uniformly from [0, N - len] by Stream(hash64(seed, step, sample)), so it is a pure function
// of those integers. Each rank opens the file once, read-only, with the default (POSIX) driver, and
// checks every id in [0, vocab_size) once, in one pass of kScanChunk ids at a time (windows drawn
// later cannot meet a bad id hours into a run).
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/h5.h"
#include "longctx/rng.h"

namespace longctx {
namespace {

constexpr int64_t kScanChunk = int64_t(1) << 22;  // ids per read of the open-time check: 32 MiB of int64
constexpr const char* kPackHint = "make a token file with `longctx pack-text FILES... -o OUT.h5`";

using Hid = h5::Handle;

class TokenSource final : public DataSource {
 public:
  explicit TokenSource(const Config& cfg)
      : path_(cfg.data.path), seed_(cfg.run.seed), vocab_(cfg.model.vocab_size) {
    h5::quiet();
    CHECK_HINT(!path_.empty(), kPackHint,
               "data.kind = \"tokens\" needs data.path (an HDF5 token file)");
    std::error_code ec;
    CHECK_HINT(std::filesystem::is_regular_file(path_, ec), kPackHint,
               "data.path = {}: no such file", path_);
    CHECK_HINT(H5Fis_hdf5(path_.c_str()) > 0, kPackHint, "data.path = {} is not an HDF5 file",
               path_);
    file_ = Hid(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    CHECK_HINT(file_ >= 0, "the file may be truncated or damaged; " + std::string(kPackHint),
               "HDF5 could not open data.path = {}", path_);
    CHECK_HINT(H5Lexists(file_, "/tokens", H5P_DEFAULT) > 0, kPackHint,
               "data.path = {} has no dataset /tokens", path_);
    dset_ = Hid(H5Dopen2(file_, "/tokens", H5P_DEFAULT));
    CHECK(dset_ >= 0, "HDF5 could not open /tokens in {}", path_);
    Hid type(H5Dget_type(dset_));
    CHECK_HINT(H5Tget_class(type) == H5T_INTEGER, kPackHint,
               "/tokens in {} holds {}, expected integer token ids (uint32)", path_,
               H5Tget_class(type) == H5T_FLOAT ? "floating-point numbers" : "a non-integer type");
    space_ = Hid(H5Dget_space(dset_));
    CHECK(space_ >= 0 && H5Sget_simple_extent_ndims(space_) == 1,
          "/tokens in {} must be 1-D (it has {} dims)", path_, H5Sget_simple_extent_ndims(space_));
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space_, &n, nullptr);
    n_ = int64_t(n);
    // pack-text records the vocabulary the ids come from: a model smaller than it is refused
    // before the scan (older files have no vocab_size and rely on the scan alone).
    if (H5Aexists(file_, "vocab_size") > 0) {
      Hid a(H5Aopen(file_, "vocab_size", H5P_DEFAULT));
      int64_t packed = 0;
      CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &packed) >= 0, "HDF5 could not read the vocab_size attribute of {}",
            path_);
      CHECK_HINT(vocab_ >= packed, fmt::format("set model.vocab_size >= {} (the tokenizer's size), or re-pack", packed),
                 "data.path = {} was packed for a vocabulary of {} tokens (its vocab_size attribute), but "
                 "model.vocab_size = {} is smaller", path_, packed, vocab_);
    }

    int64_t need = 1, stage = 0;  // a sample is seq_len + 1 tokens
    for (size_t k = 0; k < cfg.stages.size(); ++k)
      if (cfg.stages[k].seq_len + 1 > need)
        need = cfg.stages[k].seq_len + 1, stage = int64_t(k) + 1;
    CHECK_HINT(n_ >= need, "use more text, or shorter stages",
               "data.path = {} holds {} tokens, but stage {} needs seq_len + 1 = {} per sample",
               path_, n_, stage, need);
    check_ids();
  }

  void sample(int64_t step, int64_t sample, int64_t len, int32_t* out) override {
    CHECK(len >= 1 && len <= n_, "token window of {} tokens, but {} holds {}", len, path_, n_);
    RandomStream rng(hash64(seed_, uint64_t(step), uint64_t(sample)));
    const int64_t start = int64_t(rng.below(uint64_t(n_ - len + 1)));
    const hsize_t off = hsize_t(start), count = hsize_t(len);
    CHECK(H5Sselect_hyperslab(space_, H5S_SELECT_SET, &off, nullptr, &count, nullptr) >= 0,
          "HDF5 could not select tokens [{}, {}) of {}", start, start + len, path_);
    Hid mspace(H5Screate_simple(1, &count, nullptr));
    buf_.resize(size_t(len));
    // Read as int64 so negative ids (signed files) are seen, not clipped to 0.
    CHECK_HINT(H5Dread(dset_, H5T_NATIVE_INT64, mspace, space_, H5P_DEFAULT, buf_.data()) >= 0,
               "the file may be damaged (its checksums fail) or truncated",
               "HDF5 could not read tokens [{}, {}) of {}", start, start + len, path_);
    for (int64_t i = 0; i < len; ++i) {
      const int64_t id = buf_[size_t(i)];
      CHECK_HINT(
          id >= 0 && id < vocab_, "re-pack the data, or raise model.vocab_size",
          "token id {} at position {} of {} is outside the vocabulary [0, {}) (model.vocab_size)",
          id, start + i, path_, vocab_);
      out[i] = int32_t(id);
    }
  }

  // Every id of /tokens in [0, vocab_): one pass in chunks; the first bad one is reported.
  void check_ids() {
    buf_.resize(size_t(std::min(n_, kScanChunk)));
    for (int64_t lo = 0; lo < n_; lo += kScanChunk) {
      const hsize_t off = hsize_t(lo), count = hsize_t(std::min(kScanChunk, n_ - lo));
      Hid mspace(H5Screate_simple(1, &count, nullptr));
      CHECK(H5Sselect_hyperslab(space_, H5S_SELECT_SET, &off, nullptr, &count, nullptr) >= 0,
            "HDF5 could not select tokens [{}, {}) of {}", lo, lo + int64_t(count), path_);
      CHECK_HINT(H5Dread(dset_, H5T_NATIVE_INT64, mspace, space_, H5P_DEFAULT, buf_.data()) >= 0,
                 "the file may be damaged (its checksums fail) or truncated",
                 "HDF5 could not read tokens [{}, {}) of {}", lo, lo + int64_t(count), path_);
      const auto [mn, mx] = std::minmax_element(buf_.begin(), buf_.begin() + int64_t(count));
      if (*mn >= 0 && *mx < vocab_) continue;
      const auto bad = std::find_if(buf_.begin(), buf_.begin() + int64_t(count),
                                    [&](int64_t id) { return id < 0 || id >= vocab_; });
      // Every rank reads the same file: raised alike, printed once.
      CHECK_HINT(false, "re-pack the data, or raise model.vocab_size",
                  "data.path = {}: dataset /tokens holds id {} at index {} (the first bad one of {} ids), "
                  "outside the vocabulary [0, {}) of model.vocab_size = {}",
                  path_, *bad, lo + (bad - buf_.begin()), n_, vocab_, vocab_);
    }
  }

  std::string describe() const override { return fmt::format("tokens: {} ({} tokens)", path_, n_); }

 private:
  std::string path_;
  uint64_t seed_;
  int64_t vocab_;
  int64_t n_ = 0;
  Hid file_, dset_, space_;  // closed in reverse order: space, dataset, file
  std::vector<int64_t> buf_;
};

}  // namespace

std::unique_ptr<DataSource> make_token_source(const Config& cfg) {
  return std::make_unique<TokenSource>(cfg);
}

}  // namespace longctx

// eval.cpp — the needle-in-a-haystack evaluation (eval.h).
#include "longctx/eval.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "longctx/checkpoint.h"
#include "longctx/comm.h"
#include "longctx/common.h"
#include "longctx/data.h"
#include "longctx/log.h"
#include "longctx/model.h"
#include "longctx/params.h"
#include "longctx/rng.h"
#include "longctx/topology.h"
#include "longctx/train.h"

namespace fs = std::filesystem;

namespace longctx {
namespace {

constexpr uint64_t kEvalSalt = 0x6e6565646c65ULL;  // "needle": eval samples never repeat training's

void check_options(const Config& cfg, const EvalOptions& opt, const std::vector<int64_t>& lengths) {
  CHECK_HINT(cfg.model.vocab_size >= kByteVocab, "the needle task is byte-level text",
             "eval: model.vocab_size = {} is below the {} byte-level tokens the needle samples use",
             cfg.model.vocab_size, kByteVocab);
  CHECK(opt.samples >= 1, "eval: --samples {} must be at least 1", opt.samples);
  CHECK(!opt.depths.empty(), "eval: no depths given");
  for (double d : opt.depths) CHECK(d >= 0.0 && d <= 1.0, "eval: depth {} is not in [0, 1]", d);
  CHECK(std::isfinite(opt.rope_theta) && opt.rope_theta >= 0.0,
        "eval: --rope-theta {} must be a positive number (or 0: the checkpoint's)", opt.rope_theta);
  for (int64_t n : lengths) CHECK(n > 0, "eval: length {} must be positive", n);
  const int64_t mult = seq_len_multiple(cfg.parallel);
  DataConfig d = cfg.data;
  d.needle_depth = 0.0;
  const int64_t min_len = needle_min_len(d) - 1;  // a sample is length + 1 tokens
  for (int64_t n : lengths) {
    CHECK_HINT(n % mult == 0, "pick lengths the layout can cut, or another parallel layout",
               "eval: length {} is not a multiple of {}, which parallel.sp = {} (ring \"{}\") and "
               "parallel.tp = {} ({}) require", n, mult, cfg.parallel.sp, cfg.parallel.ring,
               cfg.parallel.tp, cfg.parallel.tp_mode);
    CHECK(n >= min_len, "eval: length {} cannot hold the needle and the question (at least {} tokens "
          "with data.key_digits = {})", n, min_len, cfg.data.key_digits);
  }
}

}  // namespace

NeedleReport needle_eval(const Config& cfg_in, MPI_Comm world, const EvalOptions& opt) {
  Config cfg = cfg_in;
  cfg.model.recompute = true;  // forward only: one layer's activations at a time, whatever the length
  std::vector<int64_t> lengths = opt.lengths;
  if (lengths.empty())
    for (const auto& s : cfg.stages)
      if (std::find(lengths.begin(), lengths.end(), s.seq_len) == lengths.end()) lengths.push_back(s.seq_len);
  check_options(cfg, opt, lengths);

  Topology topo = Topology::create(cfg, world);
  set_threads(cfg, topo.world_size);
  const MpiComm tp(topo.tp_comm), sp(topo.sp_comm), all(topo.cart);
  const ParamLayout layout = make_param_layout(cfg.model, topo.tp_rank, topo.tp);
  // Model takes a gradient buffer too; the forward never touches it.
  std::vector<float> params(size_t(layout.total)), grads(size_t(layout.total));

  // Rank 0 picks the file (as train --resume does) and every rank reads its blocks of it.
  std::string path = opt.checkpoint;
  if (topo.world_rank == 0 && path.empty()) path = latest_checkpoint(cfg.checkpoint.dir);
  path = broadcast_string(path, topo.cart);
  CHECK_HINT(!path.empty(), "train first, or name a file with --checkpoint",
             "eval: no checkpoint in {}", cfg.checkpoint.dir);
  CheckpointIO io;
  io.layout = &layout, io.params = params.data();
  const TrainState st = read_checkpoint(path, cfg, io, /*with_optimizer=*/false, topo.cart);

  NeedleReport rep;
  rep.checkpoint = path, rep.global_step = st.global_step;
  rep.rope_theta = opt.rope_theta > 0.0 ? opt.rope_theta : st.rope_theta;
  if (!opt.quiet && topo.world_rank == 0) {
    std::string head = fmt::format("{:>9}", "length");
    for (double d : opt.depths) head += fmt::format(" {:>7}", fmt::format("d={:.2g}", d));
    log_info("needle-in-a-haystack: {} (step {}), rope_theta {:g}, {} samples per cell\n"
             "retrieved = every key digit is the top-1 prediction; digits = digits right; nll = nats "
             "per key digit; tokens = all tokens right\n{}  | {:>6}  {:>7}  {:>8}  {:>7}",
             path, rep.global_step, rep.rope_theta, opt.samples, head, "all", "digits", "nll", "tokens");
  }
  Model model(cfg.model, layout, params.data(), grads.data(),
              ModelParallel{&tp, &sp, cfg.parallel.tp_mode == TpMode::reduce_scatter, cfg.parallel.ring == Ring::zigzag});
  const bool counts = topo.tp_rank == 0 && topo.sp_rank == 0;  // one rank of each replica tallies
  const uint64_t seed = hash64(cfg.run.seed, kEvalSalt);
  std::vector<int32_t> sample, tokens, targets;
  std::vector<uint8_t> top1;
  std::vector<float> loss;
  for (int64_t n : lengths) {
    model.configure(1, n, rep.rope_theta);
    const std::vector<int64_t> pos = model.seq().positions();
    const size_t Tl = size_t(model.seq().T_loc);
    sample.resize(size_t(n + 1)), tokens.resize(Tl), targets.resize(Tl), top1.resize(Tl), loss.resize(Tl);
    for (double depth : opt.depths) {
      DataConfig d = cfg.data;
      d.needle_depth = depth;
      // Samples are a function of (length, depth, index): the same cell draws the same samples
      // whatever else the command line asks for.
      const int64_t cell = int64_t(hash64(uint64_t(n), std::bit_cast<uint64_t>(depth)) >> 1);
      std::vector<double> tally(7, 0.0);  // samples, retrieved, digits, right, nll, tokens, right
      for (int64_t i = topo.dp_rank; i < opt.samples; i += topo.dp) {
        const NeedleInfo info = needle_sample(d, seed, cell, i, n + 1, sample.data());
        const int64_t k = int64_t(info.key.size());
        for (int64_t j = 0; j < k; ++j)  // on every rank, before any collective
          CHECK(sample[size_t(info.answer_pos + j)] == info.key[size_t(j)],
                "eval: the answer at position {} is not the key (generator and eval disagree)", info.answer_pos + j);
        for (size_t t = 0; t < Tl; ++t) {  // every position predicts the next token
          const int64_t p = pos[t];
          tokens[t] = sample[size_t(p)], targets[t] = sample[size_t(p + 1)];
        }
        model.forward(tokens.data(), targets.data(), RowStats{top1.data(), loss.data()});
        double s[5] = {};  // key digits: right, seen, nll; all tokens: right, seen
        for (size_t t = 0; t < Tl; ++t) {
          const int64_t next = pos[t] + 1;
          if (next >= info.answer_pos && next < info.answer_pos + k) s[0] += top1[t], s[1] += 1, s[2] += loss[t];
          s[3] += top1[t], s[4] += 1;
        }
        sp.all_reduce_sum(s, 5);  // the answer may straddle sequence-parallel ranks
        CHECK(int64_t(s[1]) == k, "eval: {} answer digits found in a sample, expected {}", s[1], k);
        if (counts) {
          tally[0] += 1, tally[1] += s[0] == double(k), tally[2] += double(k), tally[3] += s[0];
          tally[4] += s[2], tally[5] += s[4], tally[6] += s[3];
        }
      }
      all.all_reduce_sum(tally.data(), 7);
      NeedleCell c;
      c.length = n, c.depth = depth, c.samples = int64_t(tally[0]), c.retrieved = int64_t(tally[1]);
      c.digits = int64_t(tally[2]), c.digits_right = int64_t(tally[3]), c.digit_nll = tally[4];
      c.tokens = int64_t(tally[5]), c.tokens_right = int64_t(tally[6]);
      rep.cells.push_back(c);
    }
    if (!opt.quiet && topo.world_rank == 0) {
      std::string line = fmt::format("{:>9}", n);
      NeedleCell sum;
      for (auto c = rep.cells.end() - int64_t(opt.depths.size()); c != rep.cells.end(); ++c) {
        line += fmt::format(" {:>6.0f}%", 100.0 * double(c->retrieved) / double(c->samples));
        sum.retrieved += c->retrieved, sum.samples += c->samples, sum.digits_right += c->digits_right;
        sum.digits += c->digits, sum.digit_nll += c->digit_nll, sum.tokens += c->tokens;
        sum.tokens_right += c->tokens_right;
      }
      log_info("{}  | {:>5.0f}%  {:>6.1f}%  {:>8.3f}  {:>6.1f}%", line,
               100.0 * double(sum.retrieved) / double(sum.samples),
               100.0 * double(sum.digits_right) / double(sum.digits), sum.digit_nll / double(sum.digits),
               100.0 * double(sum.tokens_right) / double(sum.tokens));
    }
  }
  topo.free();
  return rep;
}

int eval_main(const std::string& deck, const std::vector<std::string>& overrides, const EvalOptions& opt) {
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // An error on any rank ends the job from main (MPI_Abort): no collective runs while unwinding.
  const NeedleReport rep = needle_eval(cfg, MPI_COMM_WORLD, opt);
  if (rank != 0) return 0;
  std::string name;  // the path as a JSON string body
  for (unsigned char ch : rep.checkpoint) {
    if (ch == '"' || ch == '\\') name += '\\', name += char(ch);
    else if (ch < 0x20) name += fmt::format("\\u{:04x}", ch);
    else name += char(ch);
  }
  auto num = [](double x) { return std::isfinite(x) ? fmt::format("{}", x) : std::string("null"); };
  std::string lines;  // all cells, appended with one write: a failure leaves at most one cut line
  for (const NeedleCell& c : rep.cells)
    lines += fmt::format("{{\"checkpoint\":\"{}\",\"step\":{},\"rope_theta\":{},\"length\":{},\"depth\":{},"
                         "\"samples\":{},\"retrieved\":{},\"digits\":{},\"digits_right\":{},"
                         "\"nll_per_digit\":{},\"tokens\":{},\"tokens_right\":{}}}\n",
                         name, rep.global_step, num(rep.rope_theta), c.length, c.depth, c.samples, c.retrieved,
                         c.digits, c.digits_right, num(c.digit_nll / double(c.digits)), c.tokens, c.tokens_right);
  fs::create_directories(cfg.run.out_dir);
  const std::string out = (fs::path(cfg.run.out_dir) / "needle_eval.jsonl").string();
  FILE* f = std::fopen(out.c_str(), "a");
  CHECK(f, "eval: cannot open {} for appending", out);
  const bool wrote = std::fwrite(lines.data(), 1, lines.size(), f) == lines.size();
  const bool closed = std::fclose(f) == 0;
  CHECK(wrote && closed, "eval: writing {} failed", out);
  log_info("results appended to {}", out);
  return 0;
}

}  // namespace longctx

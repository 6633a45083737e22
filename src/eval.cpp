// eval.cpp — the needle-in-a-haystack evaluation (eval.h).
#include "longctx/eval.h"

#include <algorithm>
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
  CHECK(opt.rope_theta >= 0.0, "eval: --rope-theta {} must be positive", opt.rope_theta);
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

NeedleReport needle_eval(const Config& cfg, MPI_Comm world, const EvalOptions& opt) {
  std::vector<int64_t> lengths = opt.lengths;
  if (lengths.empty())
    for (const auto& s : cfg.stages)
      if (std::find(lengths.begin(), lengths.end(), s.seq_len) == lengths.end()) lengths.push_back(s.seq_len);
  check_options(cfg, opt, lengths);

  Topology topo = Topology::create(cfg, world);
  set_threads(cfg, topo.world_size);
  const MpiComm tp(topo.tp_comm), sp(topo.sp_comm), all(topo.cart);
  const ParamLayout layout = make_param_layout(cfg.model, topo.tp_rank, topo.tp);
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
             "per key digit\n{}  | {:>6}  {:>7}  {:>8}",
             path, rep.global_step, rep.rope_theta, opt.samples, head, "all", "digits", "nll");
  }
  {
    Model model(cfg.model, layout, params.data(), grads.data(),
                ModelParallel{&tp, &sp, cfg.parallel.tp_mode == "reduce_scatter", cfg.parallel.ring == "zigzag"});
    const bool counts = topo.tp_rank == 0 && topo.sp_rank == 0;  // one rank of each replica tallies
    const uint64_t seed = hash64(cfg.run.seed, kEvalSalt);
    std::vector<int32_t> sample, tokens, targets;
    std::vector<uint8_t> top1;
    for (int64_t n : lengths) {
      model.configure(1, n, rep.rope_theta);
      const std::vector<int64_t> pos = model.seq().positions();
      const int64_t Tl = model.seq().T_loc;
      sample.resize(size_t(n + 1)), tokens.resize(size_t(Tl)), targets.resize(size_t(Tl)), top1.resize(size_t(Tl));
      for (double depth : opt.depths) {
        DataConfig d = cfg.data;
        d.needle_depth = depth;
        const int64_t cell = int64_t(rep.cells.size());
        std::vector<double> tally(5, 0.0);  // samples, retrieved, digits, digits right, nll
        for (int64_t i = topo.dp_rank; i < opt.samples; i += topo.dp) {
          const NeedleInfo info = needle_sample(d, seed, cell, i, n + 1, sample.data());
          const int64_t k = int64_t(info.key.size());
          for (int64_t t = 0; t < Tl; ++t) {  // targets: the answer's digits only
            const int64_t p = pos[size_t(t)];
            tokens[size_t(t)] = sample[size_t(p)];
            const bool digit = p + 1 >= info.answer_pos && p + 1 < info.answer_pos + k;
            targets[size_t(t)] = digit ? sample[size_t(p + 1)] : -1;
            CHECK(!digit || sample[size_t(p + 1)] == info.key[size_t(p + 1 - info.answer_pos)],
                  "eval: the answer at position {} is not the key (generator and eval disagree)", p + 1);
          }
          const LossSum r = model.forward(tokens.data(), targets.data(), top1.data());
          double hit[3] = {0.0, double(r.count), r.sum};
          for (int64_t t = 0; t < Tl; ++t) hit[0] += top1[size_t(t)];
          sp.all_reduce_sum(hit, 3);  // the answer may straddle sequence-parallel ranks
          CHECK(int64_t(hit[1]) == k, "eval: {} answer digits found in a sample, expected {}", hit[1], k);
          if (counts) {
            tally[0] += 1, tally[1] += hit[0] == double(k), tally[2] += double(k);
            tally[3] += hit[0], tally[4] += hit[2];
          }
        }
        all.all_reduce_sum(tally.data(), 5);
        rep.cells.push_back({n, depth, int64_t(tally[0]), int64_t(tally[1]), int64_t(tally[2]),
                             int64_t(tally[3]), tally[4]});
      }
      if (!opt.quiet && topo.world_rank == 0) {
        const auto row = std::vector<NeedleCell>(rep.cells.end() - int64_t(opt.depths.size()), rep.cells.end());
        std::string line = fmt::format("{:>9}", n);
        int64_t got = 0, of = 0, dr = 0, dn = 0;
        double nll = 0.0;
        for (const NeedleCell& c : row) {
          line += fmt::format(" {:>6.0f}%", 100.0 * double(c.retrieved) / double(c.samples));
          got += c.retrieved, of += c.samples, dr += c.digits_right, dn += c.digits, nll += c.digit_nll;
        }
        log_info("{}  | {:>5.0f}%  {:>6.1f}%  {:>8.3f}", line, 100.0 * double(got) / double(of),
                 100.0 * double(dr) / double(dn), nll / double(dn));
      }
    }
  }
  topo.free();
  return rep;
}

int eval_main(const std::string& deck, const std::vector<std::string>& overrides, const EvalOptions& opt) {
  const Config cfg = load_config(deck, overrides, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  NeedleReport rep;
  try {
    rep = needle_eval(cfg, MPI_COMM_WORLD, opt);
  } catch (const Error& e) {
    abort_job(e);  // before communicators are freed, while other ranks may wait in a collective
  }
  if (rank != 0) return 0;
  fs::create_directories(cfg.run.out_dir);
  const std::string out = (fs::path(cfg.run.out_dir) / "needle_eval.jsonl").string();
  FILE* f = std::fopen(out.c_str(), "a");
  CHECK(f, "eval: cannot open {} for appending", out);
  std::string name;  // the path as a JSON string body
  for (char ch : rep.checkpoint) name += ch == '"' || ch == '\\' ? std::string("\\") + ch : std::string(1, ch);
  for (const NeedleCell& c : rep.cells)
    std::fprintf(f,
                 "{\"checkpoint\":\"%s\",\"step\":%ld,\"rope_theta\":%.17g,\"length\":%ld,\"depth\":%.17g,"
                 "\"samples\":%ld,\"retrieved\":%ld,\"digits\":%ld,\"digits_right\":%ld,\"digit_nll\":%.17g}\n",
                 name.c_str(), long(rep.global_step), rep.rope_theta, long(c.length), c.depth,
                 long(c.samples), long(c.retrieved), long(c.digits), long(c.digits_right), c.digit_nll);
  const bool ok = std::fclose(f) == 0;
  CHECK(ok, "eval: writing {} failed", out);
  log_info("results appended to {}", out);
  return 0;
}

}  // namespace longctx

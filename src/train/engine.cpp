// engine.cpp — StepEngine<B> (engine.h), written once over a backend's ops and the groups' Comms;
// StepEngine::create picks the backend (the CPU; the CUDA backend joins here in issue 8).
#include "longctx/engine.h"

#include <algorithm>

#include "longctx/backend/cpu.h"
#include "longctx/common.h"
#include "longctx/memory.h"
#include "longctx/model.h"
#include "longctx/optim.h"

namespace longctx {

StateBytes state_bytes(const ParamLayout& layout, int64_t shards, int64_t shard_n, size_t param_size,
                       bool with_grads) {
  const size_t flat = size_t(shards * shard_n);
  StateBytes b;
  b.params = Arena::round_up(flat * param_size);
  b.grads = with_grads ? Arena::round_up(flat * sizeof(float)) : 0;
  b.optimizer = with_grads ? 4 * Arena::round_up(size_t(shard_n) * sizeof(float)) : 0;
  return b;
}

namespace {

template <class B>
class Engine final : public StepEngine {
 public:
  using Param = typename B::Param;

  Engine(const Config& cfg, const ProcessGroups& g) : cfg_(cfg), g_(g) {
    const Grid& grid = g.grid();
    layout_ = make_param_layout(cfg.model, grid.tp_rank, grid.tp);
    const int64_t D = g.dpsp().size();
    shard_n_ = (layout_.total + D - 1) / D;
    lo_ = std::min(layout_.total, g.dpsp().rank() * shard_n_);
    hi_ = std::min(layout_.total, lo_ + shard_n_);
    spans_ = shard_spans(layout_, lo_, hi_);
    if (g.kv_replicas())
      for (const auto& t : layout_.tensors)
        if (t.name.ends_with("/wk") || t.name.ends_with("/wv")) kv_blocks_.push_back({t.offset, t.numel});
    plan_memory();
    Arena count;
    take_state(count);
    state_ = be_.alloc(count.bytes());
    Arena bound(state_.get(), count.bytes());
    take_state(bound);
    model_ = std::make_unique<Model<B>>(be_, cfg.model, layout_, params_.data, grads_.data, parallel());
  }

  void configure(int64_t Bn, int64_t T, double theta) override { model_->configure(Bn, T, theta); }
  const SeqLayout& seq() const override { return model_->seq(); }
  int64_t activation_bytes() const override { return model_->activation_bytes(); }
  double flops_per_token_fwd() const override { return model_->flops_per_token_fwd(); }

  void zero_grad() override { be_.fill(grads_, 0.0f); }
  LossSum micro_batch(const int32_t* tokens, const int32_t* targets) override {
    return model_->forward_backward(tokens, targets);
  }

  LossSum reduce(LossSum local) override {
    const Stream s = be_.compute();
    // Tensor-parallel fix-ups: blocks held by several tp ranks get the sum of their partials.
    if (model_->norm_grads_partial())
      for (const auto& t : layout_.tensors)
        if (t.is_norm) g_.tp().all_reduce_sum(grads_.data + t.offset, t.numel, s);
    // Replicated K/V heads: each replica added its own query heads' part; sum over the replicas.
    for (const auto& [offset, n] : kv_blocks_) g_.kv_replicas()->all_reduce_sum(grads_.data + offset, n, s);
    // Data and sequence parallel: sum over dp×sp, each rank keeping its ZeRO-1 shard.
    g_.dpsp().reduce_scatter_sum(grads_.data, gshard_.data, shard_n_, s);
    double stats[2] = {local.sum, double(local.count)};
    g_.dpsp().all_reduce_sum(stats, 2);
    const LossSum tot{stats[0], int64_t(stats[1])};
    CHECK_ALIKE(tot.count > 0, "", "no target tokens in the step's batch");  // all-reduced: every rank
    be_.scale(gshard_, float(1.0 / double(tot.count)));
    return tot;
  }

  double grad_norm() override {
    double ss = 0.0;  // each logical element once (replicas skipped), in layout order
    for (const auto& sp : spans_)
      if (!sp.replica) ss += be_.sum_squares(gshard_.rows(sp.begin, sp.end - sp.begin));
    g_.all().all_reduce_sum(&ss, 1);
    return std::sqrt(ss);
  }

  void update(double lr, int64_t t, double gnorm) override {
    const OptimConfig& o = cfg_.optim;
    if (o.grad_clip > 0.0 && gnorm > o.grad_clip) be_.scale(gshard_, float(o.grad_clip / gnorm));
    for (const auto& sp : spans_) {
      const int64_t b = sp.begin, n = sp.end - sp.begin;
      be_.adamw(master_.rows(b, n), gshard_.rows(b, n), m_.rows(b, n), v_.rows(b, n), float(lr), float(o.beta1),
                float(o.beta2), float(o.eps), sp.decay ? float(o.weight_decay) : 0.0f, t);
    }
    gather_params();
  }

  void init_params(uint64_t seed) override {
    static_assert(B::kHostMemory, "init_params: a device backend initialises through a host buffer");
    longctx::init_params(cfg_.model, layout_, seed, params_.data);
    be_.copy(master_.rows(0, hi_ - lo_), Tensor<const float>(params_).rows(lo_, hi_ - lo_));
  }

  CheckpointIO checkpoint_io() override {
    CheckpointIO io;
    io.layout = &layout_;
    io.params = params_.data;
    io.owns_params = g_.dpsp().rank() == 0;  // one replica of each tensor block writes /model
    io.shard_lo = lo_, io.shard_hi = hi_;
    io.master = master_.data, io.m = m_.data, io.v = v_.data;
    return io;
  }
  void loaded(bool with_optimizer) override {
    if (!with_optimizer)
      be_.copy(master_.rows(0, hi_ - lo_), Tensor<const float>(params_).rows(lo_, hi_ - lo_));
  }

  std::vector<float> full_gradient() const override { return gather_full(gshard_.data); }
  std::vector<float> full_params() const override { return gather_full(master_.data); }
  const ParamLayout& layout() const override { return layout_; }
  int64_t shard_size() const override { return shard_n_; }

 private:
  ModelParallel parallel() const {
    return {&g_.tp(), &g_.sp(), cfg_.parallel.tp_mode, cfg_.parallel.ring};
  }
  void take_state(Arena& a) {
    const int64_t flat = g_.dpsp().size() * shard_n_;
    params_ = a.take<Param>({flat}), grads_ = a.take<float>({flat});
    master_ = a.take<float>({shard_n_}), m_ = a.take<float>({shard_n_});
    v_ = a.take<float>({shard_n_}), gshard_ = a.take<float>({shard_n_});
  }
  // Refuses, on every rank, a run whose state and largest stage do not fit (memory.h).
  void plan_memory() {
    Model<B> probe(be_, cfg_.model, layout_, nullptr, nullptr, parallel());
    std::vector<size_t> bytes;
    std::vector<std::string> names;
    size_t arena = 0, scratch = 0;  // neither shrinks: a stage holds the largest of those before it
    for (size_t i = 0; i < cfg_.stages.size(); ++i) {
      const StageConfig& s = cfg_.stages[i];
      arena = std::max(arena, probe.arena_bytes(s.micro_batch, s.seq_len));
      scratch = std::max(scratch, probe.op_scratch_bytes(s.seq_len));
      bytes.push_back(arena + scratch);
      names.push_back(fmt::format("stage {} (seq_len {}, micro_batch {})", i + 1, s.seq_len, s.micro_batch));
    }
    check_memory_fits(g_, state_bytes(layout_, g_.dpsp().size(), shard_n_, sizeof(Param), true), bytes, names,
                      "train");
  }
  void gather_params() {
    static_assert(std::is_same_v<Param, float>, "a bf16 backend casts the shard, then gathers bf16");
    g_.dpsp().all_gather(master_.data, params_.data, shard_n_, be_.compute());
  }
  std::vector<float> gather_full(const float* shard) const {
    const ParamLayout full = make_param_layout(cfg_.model);
    std::vector<float> out(size_t(full.total), 0.0f);
    for (const auto& t : layout_.tensors) {
      if (t.replica) continue;  // its owner contributes the block
      const ParamTensor& f = full.find(t.name);
      const int64_t b = std::max(lo_, t.offset), e = std::min(hi_, t.offset + t.numel);
      const int64_t cols = t.count.size() == 2 ? t.count[1] : t.numel;
      for (int64_t i = b; i < e; ++i) {
        const int64_t li = i - t.offset, r = li / cols, c = li % cols;
        const int64_t fi = t.shape.size() == 2 ? (t.start[0] + r) * t.shape[1] + t.start[1] + c : t.start[0] + li;
        out[size_t(f.offset + fi)] = shard[size_t(i - lo_)];
      }
    }
    g_.all().all_reduce_sum(out.data(), full.total);
    return out;
  }

  const Config& cfg_;
  const ProcessGroups& g_;
  B be_;
  ParamLayout layout_;
  int64_t shard_n_ = 0, lo_ = 0, hi_ = 0;  // ZeRO-1: [lo, hi) of the flat buffer
  std::vector<ShardSpan> spans_;
  std::vector<std::pair<int64_t, int64_t>> kv_blocks_;  // (offset, numel) of replicated wk/wv blocks
  typename B::Memory state_;
  Tensor<Param> params_;
  Tensor<float> grads_, master_, m_, v_, gshard_;
  std::unique_ptr<Model<B>> model_;
};

}  // namespace

std::unique_ptr<StepEngine> StepEngine::create(const Config& cfg, const ProcessGroups& groups) {
  return std::make_unique<Engine<Cpu>>(cfg, groups);
}

}  // namespace longctx

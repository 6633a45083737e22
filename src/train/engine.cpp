// engine.cpp — StepEngine<B> (engine.h), written once over a backend's ops and the groups' Comms;
// StepEngine::create picks the backend the groups chose (ProcessGroups::device(): CPU or CUDA).
// A device backend's state lives in device memory; host mirrors serve the checkpoint code and
// the initialisation, and host Comms carry the scalars (loss sums, the squared norm).
#include "longctx/engine.h"

#include <algorithm>

#include "longctx/backend/cpu.h"
#include "longctx/backend/cuda.h"
#include "longctx/bf16.h"
#include "longctx/common.h"
#include "longctx/memory.h"
#include "longctx/model.h"
#include "longctx/optim.h"
#include "longctx/plan.h"

namespace longctx {

namespace {

template <class B>
std::unique_ptr<B> make_backend(const Config& cfg, const ProcessGroups& g) {
  if constexpr (B::kHostMemory) {
    return std::make_unique<B>();
  } else {
    CudaOptions o;
    o.device = g.device().gpu, o.deterministic = cfg.run.deterministic;
    return std::make_unique<B>(o);
  }
}

template <class B>
class Engine final : public StepEngine {
 public:
  using Param = typename B::Param;

  Engine(const Config& cfg, const ProcessGroups& g)
      : cfg_(cfg), g_(g), c_(B::kHostMemory ? g.host() : g.device_comms()), own_(make_backend<B>(cfg, g)),
        be_(*own_) {
    const Grid& grid = g.grid();
    layout_ = make_param_layout(cfg.model, grid.tp_rank, grid.tp);
    const int64_t D = g.dpsp().size();
    shard_n_ = (layout_.total + D - 1) / D;
    lo_ = std::min(layout_.total, g.dpsp().rank() * shard_n_);
    hi_ = std::min(layout_.total, lo_ + shard_n_);
    spans_ = shard_spans(layout_, lo_, hi_);
    int64_t covered = 0;  // update() has adamw write the parameters span by span: they must tile the shard
    for (const ShardSpan& sp : spans_) covered = sp.begin == covered ? sp.end : -1;
    CHECK(covered == hi_ - lo_, "the optimizer's {} spans do not tile this rank's shard [0, {})", spans_.size(),
          hi_ - lo_);
    if (c_.kv)
      for (const auto& t : layout_.tensors)
        if (t.name.ends_with("/wk") || t.name.ends_with("/wv")) kv_blocks_.push_back({t.offset, t.numel});
    const size_t planned = plan_memory();
    Arena count;
    take_state(count);
    CHECK(count.bytes() == planned, "the memory plan counted {} bytes of state, the engine takes {}", planned,
          count.bytes());
    state_ = be_.alloc(count.bytes());
    Arena bound(state_.get(), count.bytes());
    take_state(bound);
    if constexpr (!B::kHostMemory) {  // host mirrors for the checkpoint code and the initialisation
      host_params_.resize(size_t(layout_.total));
      for (auto* h : {&host_master_, &host_m_, &host_v_}) h->resize(size_t(hi_ - lo_));
    }
    model_ = std::make_unique<Model<B>>(be_, cfg.model, layout_, params_.data, grads_.data, parallel());
  }

  std::string describe_device() const override {
    if constexpr (B::kHostMemory) return "cpu";
    else
      return fmt::format("cuda: {}{}, transport {}", be_.describe(),
                         g_.device().ranks_per_gpu > 1 ? fmt::format(", {} ranks per GPU", g_.device().ranks_per_gpu)
                                                       : std::string(),
                         to_string(g_.device().transport));
  }
  double device_mib() const override {
    if constexpr (B::kHostMemory) return 0.0;
    else return double(be_.device_bytes_used()) / double(1 << 20);
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
        if (t.is_norm) c_.tp->all_reduce_sum(grads_.data + t.offset, t.numel, s);
    // Replicated K/V heads: each replica added its own query heads' part; sum over the replicas.
    for (const auto& [offset, n] : kv_blocks_) c_.kv->all_reduce_sum(grads_.data + offset, n, s);
    // Data and sequence parallel: sum over dp×sp, each rank keeping its ZeRO-1 shard (alone in
    // dp×sp, the shard is the gradient buffer itself: take_state).
    if (gshard_.data != grads_.data) c_.dpsp->reduce_scatter_sum(grads_.data, gshard_.data, shard_n_, s);
    double stats[2] = {local.sum, double(local.count)};  // host scalars: the host group
    g_.dpsp().all_reduce_sum(stats, 2);
    const LossSum tot{stats[0], int64_t(stats[1])};
    CHECK_ALIKE(tot.count > 0, "", "no target tokens in the step's batch");  // all-reduced: every rank
    // The shard holds the sum over targets; the mean's factor is applied where the shard is read
    // (sum_squares, adamw, full_gradient), not by a pass of its own.
    grad_mean_ = float(1.0 / double(tot.count));
    return tot;
  }

  double grad_norm() override {
    // Each logical element once (replicas skipped): one sum per span, added in layout order on the
    // host after one download.
    for (size_t i = 0; i < spans_.size(); ++i) {
      const ShardSpan& sp = spans_[i];
      if (sp.replica) be_.fill(span_ss_.rows(int64_t(i), 1), 0.0f);
      else be_.sum_squares(span_ss_.rows(int64_t(i), 1), gshard_.rows(sp.begin, sp.end - sp.begin), grad_mean_);
    }
    std::vector<double> per(spans_.size());
    be_.download(per.data(), Tensor<const double>(span_ss_));
    double ss = 0.0;
    for (size_t i = 0; i < spans_.size(); ++i)
      if (!spans_[i].replica) ss += per[i];
    g_.all().all_reduce_sum(&ss, 1);
    return std::sqrt(ss);
  }

  void update(double lr, int64_t t, double gnorm) override {
    const OptimConfig& o = cfg_.optim;
    const float clip = o.grad_clip > 0.0 && gnorm > o.grad_clip ? float(o.grad_clip / gnorm) : 1.0f;
    // The spans tile the shard (constructor), so AdamW writes this rank's whole block of the
    // parameters with the master weights; the gather then needs no cast.
    const int64_t mine = own_block();
    for (const auto& sp : spans_) {
      const int64_t b = sp.begin, n = sp.end - sp.begin;
      be_.adamw(master_.rows(b, n), gshard_.rows(b, n), m_.rows(b, n), v_.rows(b, n), float(lr), float(o.beta1),
                float(o.beta2), float(o.eps), sp.decay ? float(o.weight_decay) : 0.0f, t, grad_mean_, clip,
                params_.rows(mine + b, n));
    }
    gather_params(false);
  }

  void init_params(uint64_t seed) override {
    if constexpr (B::kHostMemory) {
      longctx::init_params(cfg_.model, layout_, seed, params_.data);
      be_.copy(master_.rows(0, hi_ - lo_), Tensor<const float>(params_).rows(lo_, hi_ - lo_));
    } else {  // fp32 on the host; the shard becomes the master weights, their bf16 cast the parameters
      longctx::init_params(cfg_.model, layout_, seed, host_params_.data());
      be_.upload(master_.rows(0, hi_ - lo_), host_params_.data() + lo_);
      gather_params();
    }
  }

  CheckpointIO checkpoint_io() override {
    CheckpointIO io;
    io.layout = &layout_;
    io.owns_params = g_.dpsp().rank() == 0;  // one replica of each tensor block writes /model
    io.shard_lo = lo_, io.shard_hi = hi_;
    if constexpr (B::kHostMemory) {
      io.params = params_.data;
      io.master = master_.data, io.m = m_.data, io.v = v_.data;
    } else {  // the state staged into the host mirrors (what a write reads; a read overwrites them)
      std::vector<bf16> p(size_t(layout_.total));
      be_.download(p.data(), Tensor<const bf16>(params_).rows(0, layout_.total));
      for (size_t i = 0; i < p.size(); ++i) host_params_[i] = bf16_to_float(p[i].bits);
      const int64_t n = hi_ - lo_;
      be_.download(host_master_.data(), Tensor<const float>(master_).rows(0, n));
      be_.download(host_m_.data(), Tensor<const float>(m_).rows(0, n));
      be_.download(host_v_.data(), Tensor<const float>(v_).rows(0, n));
      io.params = host_params_.data();
      io.master = host_master_.data(), io.m = host_m_.data(), io.v = host_v_.data();
    }
    return io;
  }
  void loaded(bool with_optimizer) override {
    if constexpr (B::kHostMemory) {
      if (!with_optimizer)
        be_.copy(master_.rows(0, hi_ - lo_), Tensor<const float>(params_).rows(lo_, hi_ - lo_));
    } else {  // the mirrors to the device; the parameters are the bf16 cast of the master weights
      const int64_t n = hi_ - lo_;
      be_.upload(master_.rows(0, n), with_optimizer ? host_master_.data() : host_params_.data() + lo_);
      if (with_optimizer) be_.upload(m_.rows(0, n), host_m_.data()), be_.upload(v_.rows(0, n), host_v_.data());
      gather_params();
    }
  }

  std::vector<float> full_gradient() const override {  // normalised (the mean's factor as adamw applies it)
    std::vector<float> g = host_copy(gshard_);
    for (float& x : g) x *= grad_mean_;
    return gather_full(g);
  }
  std::vector<float> full_params() const override { return gather_full(host_copy(master_)); }
  const ParamLayout& layout() const override { return layout_; }
  int64_t shard_size() const override { return shard_n_; }

 private:
  ModelParallel parallel() const { return {c_.tp, c_.sp, cfg_.parallel.tp_mode, cfg_.parallel.ring}; }
  std::vector<float> host_copy(Tensor<float> shard) const {
    std::vector<float> h(static_cast<size_t>(shard_n_));
    be_.download(h.data(), Tensor<const float>(shard));
    return h;
  }
  void take_state(Arena& a) {
    const StateViews<Param> s = longctx::take_state<Param>(a, g_.dpsp().size() * shard_n_, shard_n_, int64_t(spans_.size()));
    params_ = s.params, grads_ = s.grads, master_ = s.master, m_ = s.m, v_ = s.v, gshard_ = s.gshard;
    span_ss_ = s.span_ss;
  }
  // Refuses, on every rank, a run whose state and largest stage do not fit (memory.h), counted for
  // this rank as `longctx plan` counts it (plan.h); returns the state arena's bytes.
  size_t plan_memory() {
    const Grid& grid = g_.grid();
    const RankNeed need = count_rank(B::kHostMemory ? PlanBackend::cpu : PlanBackend::cuda, cfg_, grid.tp_rank,
                                     grid.sp_rank, g_.dpsp().rank());
    const MemoryPool pool = B::kHostMemory ? host_pool(g_) : MemoryPool{&g_.gpu_peers(), "GPU", g_.device().gpu};
    // This job's stages only: one of another layout ([[stage]] dp/tp/sp) is another job's
    // (check_one_layout refuses to run it here); the running maxima skip it too.
    std::vector<size_t> peaks;
    std::vector<std::string> names;
    const std::vector<std::string> all = stage_names(cfg_);
    size_t arena = 0, scratch = 0;
    for (size_t i = 0; i < cfg_.stages.size(); ++i) {
      if (!same_grid(cfg_.stage_layout(i), cfg_.parallel)) continue;
      arena = std::max(arena, need.stages[i].arena()), scratch = std::max(scratch, need.stages[i].scratch);
      peaks.push_back(arena + scratch), names.push_back(all[i]);
    }
    check_memory_fits(g_, pool, need.state, peaks, names, "train", &cfg_.model);
    return need.state.total();
  }
  // Where this rank's block of the flat parameters starts (lo_, except past the end of the layout:
  // an empty shard still has its place in the padded buffer).
  int64_t own_block() const { return c_.dpsp->rank() * shard_n_; }
  // The parameters from the master shards: this rank's block of the parameters is its master
  // shard as Param (written here when `write_block`, or already by adamw), then the blocks are
  // gathered in place.
  void gather_params(bool write_block = true) {
    const int64_t mine = own_block();
    if (write_block) {
      const Tensor<const float> shard = Tensor<const float>(master_).rows(0, hi_ - lo_);
      if constexpr (std::is_same_v<Param, float>) be_.copy(params_.rows(mine, hi_ - lo_), shard);
      else be_.cast(params_.rows(mine, hi_ - lo_), shard);
    }
    c_.dpsp->all_gather(params_.data + mine, params_.data, shard_n_, be_.compute());
  }
  std::vector<float> gather_full(const std::vector<float>& shard_v) const {
    const float* shard = shard_v.data();
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
  const ProcessGroups::Comms c_;  // the groups for this backend's buffers
  std::unique_ptr<B> own_;
  const B& be_;
  ParamLayout layout_;
  int64_t shard_n_ = 0, lo_ = 0, hi_ = 0;  // ZeRO-1: [lo, hi) of the flat buffer
  float grad_mean_ = 1.0f;                 // 1 / the step's target count (reduce)
  std::vector<ShardSpan> spans_;
  std::vector<std::pair<int64_t, int64_t>> kv_blocks_;  // (offset, numel) of replicated wk/wv blocks
  typename B::Memory state_;
  Tensor<Param> params_;
  Tensor<float> grads_, master_, m_, v_, gshard_;
  Tensor<double> span_ss_;  // (spans): each span's sum of squares
  std::unique_ptr<Model<B>> model_;
  std::vector<float> host_params_, host_master_, host_m_, host_v_;  // device backends: staging for checkpoints
};

}  // namespace

std::unique_ptr<StepEngine> StepEngine::create(const Config& cfg, const ProcessGroups& groups) {
#if defined(LONGCTX_CUDA)
  if (groups.device().device == Device::cuda) return std::make_unique<Engine<Cuda>>(cfg, groups);
#endif
  return std::make_unique<Engine<Cpu>>(cfg, groups);
}

}  // namespace longctx

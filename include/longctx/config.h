// config.h — the validated contents of a TOML input deck.
//
// A deck has sections [run] [model] [parallel] [optim] [data] [checkpoint] and one or more
// [[stage]] tables. Every key, its default and its allowed range is listed in README.md
// ("Deck reference") and enforced by parse_deck(): unknown keys, wrong types, out-of-range or
// inconsistent values throw longctx::Error naming the deck file, the line, the key and the range.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <mpi.h>

namespace longctx {

// ---- the string-valued keys, as enums -----------------------------------------------------------
// Each has one name table (ModeNames<E>::names, in enum order): the deck parser, to_toml and every
// message spell the values from it, so the deck text stays "zigzag", "reduce_scatter", ...

enum class TpMode { all_reduce, reduce_scatter };  // parallel.tp_mode
enum class Ring { zigzag, contiguous };             // parallel.ring
enum class Schedule { cosine, constant };           // optim.schedule
enum class DataKind { needle, tokens };             // data.kind
enum class Filler { landmark, random_words };       // data.filler
enum class Device { automatic, cpu, cuda };         // run.device
enum class Transport { automatic, nccl, mpi };      // parallel.transport

template <class E>
struct ModeNames;
template <>
struct ModeNames<TpMode> {
  static constexpr std::array<std::string_view, 2> names{"all_reduce", "reduce_scatter"};
};
template <>
struct ModeNames<Ring> {
  static constexpr std::array<std::string_view, 2> names{"zigzag", "contiguous"};
};
template <>
struct ModeNames<Schedule> {
  static constexpr std::array<std::string_view, 2> names{"cosine", "constant"};
};
template <>
struct ModeNames<DataKind> {
  static constexpr std::array<std::string_view, 2> names{"needle", "tokens"};
};
template <>
struct ModeNames<Filler> {
  static constexpr std::array<std::string_view, 2> names{"landmark", "random_words"};
};

template <>
struct ModeNames<Device> {
  static constexpr std::array<std::string_view, 3> names{"auto", "cpu", "cuda"};
};
template <>
struct ModeNames<Transport> {
  static constexpr std::array<std::string_view, 3> names{"auto", "nccl", "mpi"};
};

template <class E>
concept Mode = requires { ModeNames<E>::names; };

// The deck spelling of a mode ("reduce_scatter"); "?" for a value outside the enum.
template <Mode E>
constexpr std::string_view to_string(E e) {
  const auto i = static_cast<size_t>(e);
  return i < ModeNames<E>::names.size() ? ModeNames<E>::names[i] : std::string_view("?");
}
// The mode a deck spelling names, or nullopt for any other text.
template <Mode E>
constexpr std::optional<E> mode_from_string(std::string_view s) {
  for (size_t i = 0; i < ModeNames<E>::names.size(); ++i)
    if (ModeNames<E>::names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

struct RunConfig {
  std::string name = "longctx";  // [A-Za-z0-9._-]+
  std::string out_dir;           // resolved: "" in the deck means runs/<name>
  uint64_t seed = 1234;
  int64_t log_every = 1;
  int threads = 0;  // CPU threads for OpenBLAS/OpenMP; 0 = all cores (1 per rank when ranks > 1)
  // "auto": the GPU of the rank's node-local rank when every rank has one and the model's head size
  // is one the GPU kernels take, else the CPU (the log says which and why); "cpu"; "cuda".
  Device device = Device::automatic;
  bool deterministic = false;  // GPU: atomics-free kernels only, so a run repeats bit for bit
};

struct ModelConfig {
  int64_t vocab_size = 264;  // V; byte-level data needs >= 259 (256 bytes + specials)
  int64_t d_model = 128;     // C
  int64_t n_layers = 4;      // L
  int64_t n_heads = 4;       // NH
  int64_t n_kv_heads = 4;    // NKV, divides NH (grouped-query attention)
  int64_t d_ff = 344;        // F
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  double init_std = 0.02;
  bool recompute = false;  // recompute each layer's activations in backward
  // With recompute: also recompute each layer's attention (true: the least memory), or keep its
  // output and log-sum-exp per layer (false: N·C/tp activations + N·NH/tp fp32 more per layer, and the
  // attention forward, the costliest op at long T, runs once instead of twice).
  bool recompute_attention = false;
  // LM-head rows per logits GEMM; 0: the backend's default (16 MiB of fp32 logits on the CPU,
  // 256 MiB on the GPU). Not part of the model's shape (checkpoints do not record it).
  int64_t logits_chunk = 0;
  int64_t head_size() const { return d_model / n_heads; }  // HS
};

struct ParallelConfig {
  int64_t dp = 1, tp = 1, sp = 1;
  TpMode tp_mode = TpMode::all_reduce;  // "all_reduce" | "reduce_scatter"
  Ring ring = Ring::zigzag;             // "zigzag" | "contiguous"
  // Device buffers between ranks: "nccl", "mpi" (staged through pinned host memory), or "auto"
  // (NCCL when every rank has a GPU of its own, else MPI). Host runs always use MPI.
  Transport transport = Transport::automatic;
};

struct OptimConfig {
  double lr = 3e-4;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  Schedule schedule = Schedule::cosine;  // "cosine" | "constant"; over the whole run (all stages)
  double weight_decay = 0.1;        // decoupled; never applied to norm weights
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;  // global L2 norm; 0 disables
};

struct DataConfig {
  DataKind kind = DataKind::needle;  // "needle" (synthetic passkey) | "tokens" (HDF5 /tokens)
  std::string path;                  // HDF5 file for kind = "tokens"
  Filler filler = Filler::landmark;  // "landmark" | "random_words" (needle data)
  double needle_depth = -1.0;     // fraction of the context before the needle; -1 = random
  int64_t key_digits = 5;         // digits of the pass key
};

struct CheckpointConfig {
  std::string dir;         // resolved: "" in the deck means <out_dir>/checkpoints
  int64_t every = 0;       // steps between checkpoints; 0 = only at the end of each stage
  int64_t keep = 0;        // keep the newest N periodic checkpoints; 0 = keep all
  std::string init_from;   // start from this checkpoint's weights (fresh optimizer)
};

// [eval]: the needle-in-a-haystack evaluation (eval.h) that `train` runs at each stage boundary,
// and the defaults of `longctx eval`.
struct EvalConfig {
  bool after_each_stage = false;  // train: evaluate each stage's final checkpoint at its rope_theta
  std::vector<int64_t> lengths;   // context lengths; empty = the lengths of the deck's stages
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};  // needle depths in [0, 1]
  int64_t samples = 8;            // samples per (length, depth) cell
};

struct StageConfig {
  int64_t seq_len = 0;      // T
  double rope_theta = 0.0;  // RoPE base
  int64_t steps = 0;
  int64_t batch_accum = 1;  // micro-batches per optimizer step (per data-parallel replica)
  int64_t micro_batch = 1;  // B: sequences per micro-batch
  // This stage's process grid when it differs from [parallel]'s (0: [parallel]'s value). Only
  // `longctx stages` runs such a stage (one batch job per layout); `train` refuses to cross a
  // layout change within one job.
  int64_t dp = 0, tp = 0, sp = 0;
  std::string layout_at = {};  // where the deck sets them ("deck.toml:57", "--set stage.2.sp=4"), for messages
};

struct Config {
  std::string deck_path;  // where it came from, for messages
  RunConfig run;
  ModelConfig model;
  ParallelConfig parallel;
  OptimConfig optim;
  DataConfig data;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  std::vector<StageConfig> stages;

  int64_t total_steps() const;
  // [parallel] with stage i's dp/tp/sp overrides applied (0-based i).
  ParallelConfig stage_layout(size_t i) const;
};

// Whether two layouts have the same process grid (dp, tp, sp).
inline bool same_grid(const ParallelConfig& a, const ParallelConfig& b) {
  return a.dp == b.dp && a.tp == b.tp && a.sp == b.sp;
}

// Parses and validates a deck file; `overrides` are "section.key=value" strings (the --set
// arguments; stage keys as "stage.N.key" with N counted from 1). Throws Error on any problem.
Config parse_deck(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text in memory; `name` stands for the file in messages.
Config parse_deck_text(const std::string& text, const std::string& name,
                       const std::vector<std::string>& overrides = {});
// The resolved deck (every key, defaults filled in) as TOML text; parse_deck_text of it gives back
// an equal Config. Echoed at the top of the log and stored in every checkpoint.
std::string to_toml(const Config& cfg);
// Every sequence length must be a multiple of this under the layout: the ring cuts the sequence
// into 2·sp (zigzag) or sp (contiguous) chunks, and reduce_scatter splits each chunk over tp.
int64_t seq_len_multiple(const ParallelConfig& p);
// Refuses (raised alike, naming `longctx stages`) a job that would run stages [first, last)
// (0-based) whose layout (stage_layout) is not [parallel]'s: one job has one process grid.
void check_one_layout(const Config& cfg, int64_t first, int64_t last);
// Rank 0 parses and validates, then broadcasts the resolved deck; every rank returns the same
// Config. An error on rank 0 is thrown there (main ends the job); the other ranks are aborted.
Config load_config(const std::string& path, const std::vector<std::string>& overrides, MPI_Comm comm);

}  // namespace longctx

// Modes format as their deck spelling: fmt::format("{}", Ring::zigzag) == "zigzag".
template <longctx::Mode E>
struct fmt::formatter<E> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(E e, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(longctx::to_string(e), ctx);
  }
};

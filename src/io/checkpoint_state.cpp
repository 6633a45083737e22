// checkpoint_state.cpp — validate_state: every /state value a resume reads is checked before it
// is used: in range, consistent with the others, and (resuming) with the deck's stages. A bad
// value is refused naming the attribute, its value, what is allowed and the file.
#include <cmath>
#include <optional>

#include "checkpoint_internal.h"

namespace longctx::ckpt {
namespace {

constexpr const char* kStateHint =
    "the checkpoint may be damaged or edited, or come from another run: `longctx info FILE` shows "
    "its state; resume from an earlier checkpoint or with the deck that wrote it";

template <class V>
[[noreturn]] void refuse(const std::string& path, const char* name, V value,
                         const std::string& allowed) {
  throw_error(LONGCTX_WHERE,
              fmt::format("checkpoint {}: /state attribute {} = {} is out of range (allowed: {})",
                          path, name, value, allowed),
              kStateHint);
}

// The stages of the deck stored in the file (/config/deck), if it has one that parses.
std::optional<std::vector<StageConfig>> stored_stages(hid_t file, const std::string& path) {
  if (H5Aexists_by_name(file, "/config", "deck", H5P_DEFAULT) <= 0) return std::nullopt;
  Handle conf(H5Gopen2(file, "/config", H5P_DEFAULT));
  if (!conf.valid()) return std::nullopt;
  try {
    return parse_deck_text(get_str(conf, "/config", "deck", path), path + ":/config/deck").stages;
  } catch (const Error&) {
    return std::nullopt;  // not a deck this version reads: nothing to compare with
  }
}

}  // namespace

void validate_state(const TrainState& st, const Config& cfg, bool resume, const std::string& path,
                    hid_t file) {
  // On their own: counts never negative, every step trains on at least one sample and token.
  if (st.stage < 0) refuse(path, "stage", st.stage, ">= 0");
  if (st.stage_step < 0) refuse(path, "stage_step", st.stage_step, ">= 0");
  if (st.global_step < st.stage_step)
    refuse(path, "global_step", st.global_step,
           fmt::format(">= stage_step = {}, the steps of the stage in progress", st.stage_step));
  if (st.samples_seen < st.global_step)
    refuse(path, "samples_seen", st.samples_seen,
           fmt::format(">= global_step = {}: each step draws at least one sample", st.global_step));
  if (st.tokens_seen < st.global_step)
    refuse(path, "tokens_seen", st.tokens_seen,
           fmt::format(">= global_step = {}: each step trains on at least one token",
                       st.global_step));
  if (st.seq_len < 2 || st.seq_len > (int64_t(1) << 31))
    refuse(path, "seq_len", st.seq_len, "2..2147483648, as stage[*].seq_len");
  if (!std::isfinite(st.rope_theta) || !(st.rope_theta > 0))
    refuse(path, "rope_theta", st.rope_theta, "finite, > 0");
  if (!resume) return;  // weights only (init_from, eval): the deck's stages may differ

  // Against the deck the run resumes with.
  const std::string deck = cfg.deck_path.empty() ? "(in memory)" : cfg.deck_path;
  const int64_t n = int64_t(cfg.stages.size());
  if (st.stage >= n)
    refuse(path, "stage", st.stage,
           fmt::format("0..{}: deck {} has {} stage(s), counted from 0 here", n - 1, deck, n));
  const StageConfig& s = cfg.stages[size_t(st.stage)];
  const std::string which = fmt::format("stage[{}] of deck {}", st.stage + 1, deck);
  if (st.stage_step > s.steps)
    refuse(path, "stage_step", st.stage_step, fmt::format("0..{}, the steps of {}", s.steps, which));
  if (st.seq_len != s.seq_len)
    refuse(path, "seq_len", st.seq_len, fmt::format("{}, the seq_len of {}", s.seq_len, which));
  if (st.rope_theta != s.rope_theta)
    refuse(path, "rope_theta", st.rope_theta,
           fmt::format("{}, the rope_theta of {}", s.rope_theta, which));
  // global_step counts the earlier stages whole: when the deck that wrote the file agrees with
  // this one on their steps, it must be their sum plus stage_step.
  const auto stored = stored_stages(file, path);
  bool agree = stored && int64_t(stored->size()) > st.stage;
  int64_t before = 0;
  for (int64_t k = 0; k < st.stage; ++k) {
    before += cfg.stages[size_t(k)].steps;
    agree = agree && (*stored)[size_t(k)].steps == cfg.stages[size_t(k)].steps;
  }
  if (agree && st.global_step != before + st.stage_step)
    refuse(path, "global_step", st.global_step,
           fmt::format("{}: the {} steps of the stage(s) before stage[{}] in deck {}, which agrees "
                       "with the deck stored in the file, + stage_step = {}",
                       before + st.stage_step, before, st.stage + 1, deck, st.stage_step));
}

}  // namespace longctx::ckpt

// checkpoint_names.cpp — checkpoint file names (ckpt_<step>.h5) and the newest one in a directory.
#include <charconv>
#include <filesystem>

#include "longctx/checkpoint.h"
#include "longctx/common.h"

namespace longctx {
namespace fs = std::filesystem;

// ---- names ------------------------------------------------------------------------------------

std::string checkpoint_path(const std::string& dir, int64_t global_step) {
  CHECK(global_step >= 0, "checkpoint_path: negative step {}", global_step);
  return (fs::path(dir) / fmt::format("ckpt_{:07d}.h5", global_step)).string();
}

int64_t checkpoint_step(const std::string& name) {
  // ckpt_<digits>.h5 exactly: PATH.tmp (being written) and anything else are not checkpoints.
  if (!name.starts_with("ckpt_") || !name.ends_with(".h5") || name.size() <= 8) return -1;
  const char *first = name.data() + 5, *last = name.data() + name.size() - 3;
  int64_t step = -1;
  auto [p, err] = std::from_chars(first, last, step);
  return err == std::errc() && p == last && step >= 0 ? step : -1;
}

std::string latest_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return "";
  std::string best;
  int64_t best_step = -1;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t step = checkpoint_step(e.path().filename().string());
    if (step < 0 || !e.is_regular_file(ec)) continue;
    if (step > best_step) best_step = step, best = e.path().string();
  }
  return best;
}

}  // namespace longctx

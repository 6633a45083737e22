// preflight.cpp — every output of a command checked writable before the first step (preflight.h).
#include "longctx/preflight.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "longctx/common.h"
#include "longctx/job.h"

namespace fs = std::filesystem;

namespace longctx {
namespace {

constexpr const char* kDirHint = "choose a directory this job can create and write (--set run.out_dir=DIR)";

// Creates and removes a file of a name no other process uses in `dir`: "" or the reason.
std::string probe_dir(const fs::path& dir) {
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);  // several nodes may probe one shared directory at once
  const std::string probe = (dir / fmt::format(".longctx-write-test-{}-{}", host, ::getpid())).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return fmt::format("cannot write in the directory: {}", std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

// "" when `o` is writable, else the reason (the OS's words). Several processes may check the same
// paths at once (tests, jobs sharing an out_dir): nothing here creates or removes a file of the
// output's own name.
std::string check_one(const OutputPath& o) {
  std::error_code ec;
  if (o.dir) {
    fs::create_directories(o.path, ec);
    if (ec) return "cannot create directory: " + ec.message();
    if (!fs::is_directory(o.path, ec)) return "exists and is not a directory";
    return probe_dir(o.path);
  }
  if (fs::is_directory(o.path, ec)) return "is a directory, not a file";
  if (fs::exists(o.path, ec)) {  // appended to: open it so, without changing it
    const int fd = ::open(o.path.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return fmt::format("cannot open for writing: {}", std::strerror(errno));
    ::close(fd);
    return "";
  }
  const fs::path parent = fs::path(o.path).parent_path();  // it will be created there
  return probe_dir(parent.empty() ? fs::path(".") : parent);
}

OutputPath needle_results_output(const Config& cfg) {  // <out_dir>/needle_eval.jsonl
  const std::string out = (fs::path(cfg.run.out_dir) / "needle_eval.jsonl").string();
  return {fmt::format("the eval output '{}'", out), out, false,
          "it is <run.out_dir>/needle_eval.jsonl: remove what is in its way or choose another run.out_dir"};
}

}  // namespace

std::vector<OutputPath> train_outputs(const Config& cfg) {
  const std::string metrics = (fs::path(cfg.run.out_dir) / "metrics.jsonl").string();
  std::vector<OutputPath> outs = {
      {fmt::format("run.out_dir = '{}'", cfg.run.out_dir), cfg.run.out_dir, true, kDirHint},
      {fmt::format("checkpoint.dir = '{}'", cfg.checkpoint.dir), cfg.checkpoint.dir, true,
       "choose a directory this job can create and write (--set checkpoint.dir=DIR; by default "
       "<run.out_dir>/checkpoints)"},
      {fmt::format("the metrics file '{}'", metrics), metrics, false,
       "it is <run.out_dir>/metrics.jsonl: remove what is in its way or choose another run.out_dir"}};
  if (cfg.eval.after_each_stage) outs.push_back(needle_results_output(cfg));  // written after each stage
  return outs;
}

std::vector<OutputPath> eval_outputs(const Config& cfg) {
  return {{fmt::format("run.out_dir = '{}'", cfg.run.out_dir), cfg.run.out_dir, true, kDirHint},
          needle_results_output(cfg)};
}

void preflight_outputs(const std::vector<OutputPath>& outs, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // The first rank of every node checks (rank 0 first, so it creates what is missing): a directory
  // that only some nodes can see or write is found now, not at the first checkpoint.
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int node_rank = 0;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_free(&node);
  std::string msg, hint;
  auto check_all = [&] {
    for (const OutputPath& o : outs)
      if (const std::string why = check_one(o); !why.empty()) {
        msg = fmt::format("{}: {}", o.what, why), hint = o.hint;
        break;
      }
  };
  if (rank == 0) check_all();
  int bad = msg.empty() ? 0 : 1;
  MPI_Bcast(&bad, 1, MPI_INT, 0, comm);
  if (!bad && rank != 0 && node_rank == 0) check_all();
  // The lowest failing rank's reason, on every rank.
  int first = msg.empty() ? size : rank;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  msg = broadcast_string(msg, comm, first);
  hint = broadcast_string(hint, comm, first);
  CHECK_ALIKE(false, hint, "{}{}", msg, first == 0 ? "" : fmt::format(" (seen from rank {}'s node)", first));
}

void write_whole_file(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  std::error_code ec;
  if (!f.fail()) fs::rename(tmp, path, ec);
  if (f.fail() || ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    FAIL_HINT("check the directory, its permissions and the disk space", "cannot write {}: {}", path,
              f.fail() ? std::string("writing ") + tmp + " failed" : ec.message());
  }
}

void create_directories_for(const std::string& key, const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  CHECK_HINT(!ec, "check the path and its permissions, and that the disk is not full",
             "{} = '{}': cannot create directory: {}", key, path, ec.message());
}

}  // namespace longctx

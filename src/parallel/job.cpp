// job.cpp — ending the whole job on an error (job.h) and broadcast_string.
#include "longctx/job.h"

#include <cxxabi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <typeinfo>

#include "longctx/common.h"

namespace longctx {

namespace {

constexpr double kAlikeWaitS = 30.0;  // how long the ranks wait for each other on an alike error

std::string type_name(const std::exception& e) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(typeid(e).name());
}

}  // namespace

std::string broadcast_string(const std::string& s, MPI_Comm comm, int root) {
  int64_t n = int64_t(s.size());
  MPI_Bcast(&n, 1, MPI_INT64_T, root, comm);
  std::string out = s;
  out.resize(size_t(n));
  if (n > 0) MPI_Bcast(out.data(), int(n), MPI_CHAR, root, comm);
  return out;
}

std::string error_report(const std::exception& e) {
  if (const auto* le = dynamic_cast<const Error*>(&e)) return le->report();
  const std::string type = type_name(e);
  std::string hint = "an unexpected failure; the line above names its cause";
  if (dynamic_cast<const std::bad_alloc*>(&e))
    hint = "out of memory: use fewer ranks per node, a smaller micro_batch or seq_len, or model.recompute = true";
  else if (type.find("filesystem_error") != std::string::npos)
    hint = "check the path and its permissions, and that the disk is not full";
  return fmt::format("longctx: error: {} ({})\n  hint: {}", e.what(), type, hint);
}

void abort_job(const std::exception& e) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1) {
    if (std::current_exception()) std::rethrow_exception(std::current_exception());
    throw std::runtime_error(e.what());
  }
  const auto* le = dynamic_cast<const Error*>(&e);
  if (le && le->alike()) {
    // Rank 0 prints before it enters the barrier, so no rank can end the job before the message.
    if (rank == 0) std::fprintf(stderr, "%s\n", le->report().c_str());
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Request req;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    for (const double t0 = MPI_Wtime(); !done && MPI_Wtime() - t0 < kAlikeWaitS;) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (!done) usleep(1000);
    }
    if (done) {  // every rank raised it: leave together, each with a non-zero status
      MPI_Finalize();
      std::exit(1);
    }
    if (rank != 0) std::fprintf(stderr, "[rank %d] %s\n", rank, le->report().c_str());
  } else {
    std::fprintf(stderr, "[rank %d] %s\n", rank, error_report(e).c_str());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // not reached
}

}  // namespace longctx

// job.h — the whole MPI job: ending it on an error (every rank, with the cause printed once) and
// the small job-wide helpers that go with it.
#pragma once

#include <exception>
#include <string>

#include <mpi.h>

namespace longctx {

// Rank `root`'s string on every rank of comm.
std::string broadcast_string(const std::string& s, MPI_Comm comm, int root = 0);

// What a person sees for any exception: Error::report() for longctx::Error, otherwise
// "longctx: error: <what> (<exception type>)" with a hint.
std::string error_report(const std::exception& e);

// Ends every rank of the job with a non-zero exit, the cause printed on stderr:
//  - an Error marked alike (CHECK_ALIKE: every rank raises it at the same point) is printed once,
//    by rank 0, before any rank leaves; the ranks then meet in a barrier and exit(1) after
//    MPI_Finalize. A rank that waits there longer than a timeout (the error was not raised alike
//    after all) prints its own copy and calls MPI_Abort, so nothing hangs;
//  - any other exception is printed by the rank that raised it ("[rank N] ...") and ends the job
//    with MPI_Abort.
// With a single rank it rethrows the exception being handled (call it from a catch block), so
// main reports it and exits normally.
[[noreturn]] void abort_job(const std::exception& e);

}  // namespace longctx

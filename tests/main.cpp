// Test driver: MPI is initialised once for the whole suite (tests tagged [mpi] run under mpirun;
// the rest run as a single-rank MPI program, which Open MPI allows without mpirun).
#if !defined(LONGCTX_CATCH3)
#define CATCH_CONFIG_RUNNER
#endif
#include "catch.h"

#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "util.h"

int main(int argc, char** argv) {
  longctx::test::remember_environment();  // before MPI_Init adds its variables
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0)
    std::printf("random inputs from seed %llu (LONGCTX_TEST_SEED=that value reproduces them)\n",
                (unsigned long long)longctx::test::fresh_seed());
  Catch::Session session;
  int rc = session.applyCommandLine(argc, argv);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1 && rank != 0 && rc == 0) {  // under mpirun: rank 0 reports, the others to a file
    std::filesystem::create_directories("build/tmp");
    const std::string log = "build/tmp/mpi-rank" + std::to_string(rank) + ".log";
#if defined(LONGCTX_CATCH3)
    session.configData().defaultOutputFilename = log;
#else
    session.configData().outputFilename = log;
#endif
  }
  if (rc == 0) rc = session.run();
  MPI_Finalize();
  return rc;
}

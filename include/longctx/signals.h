// signals.h — a batch system's "stop soon" signals (SIGTERM, SIGUSR1) become a flag that the
// trainer reads at step boundaries; it then writes a checkpoint and exits with kExitInterrupted.
//
// The handler only stores the signal number in a volatile sig_atomic_t (async-signal-safe); it
// never prints, allocates or calls MPI. A second signal (while the checkpoint is being written)
// is recorded the same way and changes nothing: the save goes on, via .tmp and rename.
#pragma once

#include <mpi.h>

namespace longctx {

// Exit status of a run stopped by SIGTERM/SIGUSR1 after writing its checkpoint: 75, EX_TEMPFAIL of
// <sysexits.h> ("temporary failure; the user is invited to retry"). Not 128+signal: a shell and
// Slurm report 143/138 for a process *killed* by the signal, with no checkpoint; 75 says that the
// run stopped at a step boundary with a complete checkpoint and that `--resume` continues it. Any
// non-zero status keeps `sbatch --dependency=afterok` (and PBS's afterok) from starting the next stage.
inline constexpr int kExitInterrupted = 75;

// Installs the handlers for SIGTERM and SIGUSR1 (SA_RESTART, so interrupted system calls resume).
void install_stop_handlers();
// The first stop signal received by this process (SIGTERM or SIGUSR1), 0 if none; the count of all.
int stop_signal();
int stop_signal_count();
// Collective over comm (one MPI_Allreduce of an int): the largest signal number any rank received,
// 0 if none. Every rank gets the same answer at the same step boundary.
int stop_signal_any(MPI_Comm comm);
// "SIGTERM", "SIGUSR1", or "signal N".
const char* signal_name(int sig);

}  // namespace longctx

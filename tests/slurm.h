// slurm.h — a private one-node Slurm on localhost for the [slurm] tests (docs: /work/shared/
// local-slurm.md, README "Tests"): munged, slurmctld and slurmd started once per test process with
// their state, spool, logs, socket and free ports under build/tmp/slurm, so they never meet another
// Slurm on the machine; SLURM_CONF points the clients (sbatch, scontrol, ...) at it. They are
// stopped at exit, by the PIDs they were started with; stale ones of an earlier run of this suite
// (PID files in the same directory) are stopped first.
#pragma once

#include <string>

namespace longctx::test {

// Starts the daemons on the first call (REQUIREs that they come up); returns the directory.
const std::string& local_slurm();
// A second private Slurm, controller only: 64 nodes of 64 CPUs and 8 GPUs (gres), declared as
// powered-down CLOUD nodes that never start, so jobs of a real cluster's size are checked and
// queued (sbatch --test-only, dependencies) but never run. Returns its slurm.conf, for
// SLURM_CONF=... in the commands (the one-node Slurm's SLURM_CONF is left alone).
std::string gpu_cluster_conf();
// A job's field from `scontrol show job -o ID` (JobState, ExitCode, ...), "" if the job is unknown.
std::string job_field(const std::string& id, const std::string& field);
// Waits until the job has ended (COMPLETED, FAILED, CANCELLED, ...); returns its JobState.
std::string wait_job_end(const std::string& id, double seconds);

}  // namespace longctx::test

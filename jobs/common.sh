# common.sh — what the job scripts share (sourced, after they have found LONGCTX_HOME):
# the thread count from the allocation, the launcher (srun --mpi=pmix or mpirun), the banner,
# and what an interrupted run (exit status 75) does at the end of the job.
#   LONGCTX_LAUNCHER=srun|mpirun  force a launcher (default: srun with pmix under Slurm, else mpirun)
#   LONGCTX_MPIRUN_ARGS="..."     mpirun options; default (Open MPI) "-x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS",
#                                 which passes the thread count to other nodes (MPICH, Intel MPI: "-genvall")
#   LONGCTX_REQUEUE=0             do not requeue a Slurm job whose run was interrupted (default 1)

LONGCTX_BIN="$LONGCTX_HOME/build/longctx"

# Threads per rank: the allocation's CPUs per task (Slurm --cpus-per-task; PBS Pro sets OMP_NUM_THREADS
# from ompthreads: give it in every chunk, as NCPUS is the chunk's total, not per rank),
# handed to longctx as OMP_NUM_THREADS and as --set run.threads (which would otherwise win).
longctx_threads() {
  local n=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}
  export OMP_NUM_THREADS=$n
  export OPENBLAS_NUM_THREADS=$n
  LONGCTX_THREADS=$n
}

# The job's dp×tp×sp for the banner: the deck's [parallel] with the command line's
# --set parallel.dp/tp/sp=N applied (longctx itself checks it against the ranks).
longctx_grid() {
  local deck=$1 a sets=""
  shift
  while [ $# -gt 0 ]; do
    a=$1
    shift
    case $a in
      --set) a="--set=${1:-}"; shift || true ;;
    esac
    case $a in --set=parallel.dp=* | --set=parallel.tp=* | --set=parallel.sp=*) sets="$sets ${a#--set=parallel.}" ;; esac
  done
  awk -F'[ =#]+' -v sets="$sets" '/^\[/{sec=$1} sec=="[parallel]" && ($1=="dp"||$1=="tp"||$1=="sp"){v[$1]=$2}
       END{n=split(sets, s, " "); for (i = 1; i <= n; i++) {split(s[i], kv, "="); v[kv[1]] = kv[2]}
           printf "%s×%s×%s", v["dp"]?v["dp"]:1, v["tp"]?v["tp"]:1, v["sp"]?v["sp"]:1}' "$deck"
}

longctx_banner() {  # what, deck, ranks, the longctx options
  local what=$1 deck=$2 ranks=$3 rev
  shift 3
  rev=$(git -C "$LONGCTX_HOME" rev-parse HEAD 2>/dev/null || echo "unknown (not a git checkout)")
  git -C "$LONGCTX_HOME" diff --quiet HEAD 2>/dev/null || rev="$rev (with uncommitted changes)"
  echo "longctx: $what of $deck | job ${SLURM_JOB_ID:-${PBS_JOBID:-none}} on $(hostname)"
  echo "longctx: grid: $ranks ranks = ${LONGCTX_NODES:-1} node(s) × ${LONGCTX_PER_NODE:-?} per node × $LONGCTX_THREADS thread(s);" \
       "dp×tp×sp = $(longctx_grid "$deck" "$@") | GPUs: ${CUDA_VISIBLE_DEVICES:-none visible}"
  echo "longctx: $LONGCTX_BIN, revision $rev"
}

# Runs the launcher command "$@" in the background and passes SIGUSR1 and SIGTERM that reach this
# script on to it (srun and Open MPI's mpirun hand them to every rank): Slurm's --signal=B:USR1@120
# signals only the batch shell, and ranks that mpirun started on the batch node are in no job step.
# Returns the launcher's status once it has ended (a trapped signal interrupts `wait`: wait again).
# LONGCTX_TERM_AS=USR1 passes SIGTERM on as SIGUSR1 (mpirun: its ranks treat both alike, but
# mpirun itself returns 1 after SIGTERM and 75 after SIGUSR1, and the end of the job needs the 75).
longctx_run() {
  "$@" &
  local pid=$! rc=0
  # shellcheck disable=SC2064
  trap "echo 'longctx: SIGUSR1: passing it on to the ranks'; kill -USR1 $pid 2>/dev/null" USR1
  # shellcheck disable=SC2064
  trap "echo 'longctx: SIGTERM: passing it on to the ranks as SIG${LONGCTX_TERM_AS:-TERM}'; kill -${LONGCTX_TERM_AS:-TERM} $pid 2>/dev/null" TERM
  while :; do
    rc=0
    wait "$pid" || rc=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  return "$rc"
}

# Runs build/longctx "$@" on the job's ranks; returns its status. LONGCTX_STATUS_FILE (in the job's
# working directory) is where rank 0 writes "75 CHECKPOINT" when a stop signal ended the run with
# its checkpoint: longctx_finish reads it when the launcher's own status says otherwise.
longctx_launch() {
  local ranks=$1
  shift
  export LONGCTX_STATUS_FILE="${LONGCTX_STATUS_DIR:-$PWD}/.longctx-status.${SLURM_JOB_ID:-${PBS_JOBID:-$$}}"
  rm -f "$LONGCTX_STATUS_FILE"
  local how=${LONGCTX_LAUNCHER:-}
  if [ -z "$how" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && srun --mpi=list 2>&1 | grep -qw pmix; then how=srun
    elif [ -n "${SLURM_JOB_ID:-}" ]; then
      how=mpirun
      echo "longctx: this Slurm's srun has no pmix plugin (srun --mpi=list): launching with mpirun instead"
    else how=mpirun
    fi
  fi
  if [ "$how" = srun ]; then
    # srun does not inherit sbatch's --cpus-per-task (Slurm >= 22.05): pass it on, or a site that
    # binds tasks to cores gives each rank one core for its LONGCTX_THREADS threads.
    local cpt=()
    [ -n "${SLURM_CPUS_PER_TASK:-}" ] && cpt=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
    echo "longctx: launcher: srun --mpi=pmix --kill-on-bad-exit=1 ${cpt[*]+${cpt[*]} }($ranks ranks)"
    longctx_run srun --mpi=pmix --kill-on-bad-exit=1 ${cpt[@]+"${cpt[@]}"} "$LONGCTX_BIN" "$@"
  else
    local hosts=()
    [ -n "${PBS_NODEFILE:-}" ] && hosts=(--hostfile "$PBS_NODEFILE")
    echo "longctx: launcher: mpirun -np $ranks ${hosts[*]+${hosts[*]} }${LONGCTX_MPIRUN_ARGS:--x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS}"
    # shellcheck disable=SC2086
    LONGCTX_TERM_AS=USR1 longctx_run mpirun -np "$ranks" ${hosts[@]+"${hosts[@]}"} -x LONGCTX_STATUS_FILE ${LONGCTX_MPIRUN_ARGS:--x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS} \
      "$LONGCTX_BIN" "$@"
  fi
}

# After the run: status 75 is an interrupted run (SIGTERM/SIGUSR1) that left a checkpoint. A Slurm
# job requeues itself then, a PBS job asks qrerun to (its next start resumes; afterok dependants
# keep waiting for it).
longctx_finish() {
  local rc=$1
  # PBS's time limit signals the whole session: mpirun then gets SIGTERM itself and returns 1
  # although every rank stopped at a step with its checkpoint (rank 0 says so in the status file).
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 75 ] && [ -n "${LONGCTX_STATUS_FILE:-}" ] &&
     [ "$(cut -d' ' -f1 "$LONGCTX_STATUS_FILE" 2>/dev/null)" = 75 ]; then
    echo "longctx: the launcher returned $rc, but the ranks stopped with their checkpoint" \
         "($(cut -d' ' -f2- "$LONGCTX_STATUS_FILE")): status 75"
    rc=75
  fi
  [ -n "${LONGCTX_STATUS_FILE:-}" ] && rm -f "$LONGCTX_STATUS_FILE"
  if [ "$rc" -eq 75 ]; then
    echo "longctx: interrupted (status 75): the checkpoint is written; the same job with --resume continues it"
    local again="resubmit this job, or the chain from this stage with its submit.sh --from N"
    if [ -n "${SLURM_JOB_ID:-}" ] && [ "${LONGCTX_REQUEUE:-1}" = 1 ]; then
      echo "longctx: requeueing job $SLURM_JOB_ID (LONGCTX_REQUEUE=0 to leave it ended)"
      scontrol requeue "$SLURM_JOB_ID" || echo "longctx: requeue refused: $again"
    elif [ -n "${PBS_JOBID:-}" ] && [ "${LONGCTX_REQUEUE:-1}" = 1 ]; then
      # The job is rerunnable (-r y); qrerun puts it back in the queue, so afterok dependants keep
      # waiting. Sites that keep qrerun to operators refuse it: then the chain's later stages are
      # deleted with this one's non-zero status, and submit.sh --from N starts again from here.
      echo "longctx: rerunning job $PBS_JOBID with qrerun (LONGCTX_REQUEUE=0 to leave it ended)"
      qrerun "$PBS_JOBID" || echo "longctx: qrerun refused (operators only at this site?): $again"
    fi
  elif [ "$rc" -ne 0 ]; then
    echo "longctx: failed with status $rc"
  fi
  return "$rc"
}

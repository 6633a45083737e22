// slurm.cpp — the private one-node Slurm of the [slurm] tests (slurm.h).
#include "slurm.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "catch.h"
#include "util.h"

namespace fs = std::filesystem;

namespace longctx::test {

namespace {

int free_port() {  // a TCP port nobody listens on now (bound to 0, then released)
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  int port = -1;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) == 0)
    port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Stops the process of a PID file if it is alive and is `comm` (ours from an earlier run).
void stop_pid_file(const fs::path& pidfile, const std::string& comm) {
  if (!fs::exists(pidfile)) return;
  const long pid = std::atol(read_file(pidfile).c_str());
  fs::remove(pidfile);
  if (pid <= 1) return;
  std::string name = read_file(fs::path("/proc") / std::to_string(pid) / "comm");
  while (!name.empty() && name.back() == '\n') name.pop_back();
  if (name != comm) return;
  ::kill(pid_t(pid), SIGTERM);
  for (int i = 0; i < 100 && fs::exists(fs::path("/proc") / std::to_string(pid)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// A private Slurm: munged and slurmctld, plus slurmd for the one real node (localhost). `nodes`
// is the NodeName/PartitionName part of slurm.conf; without slurmd its nodes are CLOUD ones
// (powered down, "resumed" by /bin/true), which the controller schedules against but never runs.
struct Daemons {
  std::string dir, name;
  bool with_slurmd = true;
  ~Daemons() { stop(); }
  std::string conf() const { return dir + "/slurm.conf"; }
  void stop() {
    if (dir.empty()) return;
    stop_pid_file(fs::path(dir) / "slurmd.pid", "slurmd");
    stop_pid_file(fs::path(dir) / "slurmctld.pid", "slurmctld");
    stop_pid_file(fs::path(dir) / "munged.pid", "munged");
  }
  // Runs a client command against this Slurm.
  int client(const std::string& cmd, std::string* out = nullptr) const {
    return run_command("SLURM_CONF=" + conf() + " " + cmd, out);
  }
  void start(const std::string& where, const std::string& cluster, const std::string& nodes, bool slurmd) {
    dir = fs::absolute(where).string(), name = cluster, with_slurmd = slurmd;
    stop();  // stale daemons of an earlier run of the suite, by their PID files
    fs::remove_all(dir);
    for (const char* d : {"state", "spool", "log"}) fs::create_directories(fs::path(dir) / d);
    fs::permissions(dir, fs::perms::owner_all);
    std::string out;
    REQUIRE(run_command("dd if=/dev/urandom bs=1 count=1024 of=" + dir + "/munge.key 2>/dev/null && chmod 400 " +
                        dir + "/munge.key") == 0);
    const std::string sock = dir + "/munge.socket";
    const int rc = run_command("/usr/sbin/munged --force --socket=" + sock + " --key-file=" + dir + "/munge.key" +
                                   " --pid-file=" + dir + "/munged.pid --log-file=" + dir + "/log/munged.log" +
                                   " --seed-file=" + dir + "/munged.seed", &out);
    INFO(out);
    REQUIRE(rc == 0);
    const int ctld = free_port(), slurmd_port = free_port();
    std::ofstream(conf())
        << "ClusterName=" << cluster << "\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\n"
        << "SlurmctldPort=" << ctld << "\nSlurmdPort=" << slurmd_port << "\n"
        << "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" << sock << "\n"
        << "MpiDefault=none\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
        << "SchedulerType=sched/backfill\nKillWait=10\nMinJobAge=600\n"
        << "StateSaveLocation=" << dir << "/state\nSlurmdSpoolDir=" << dir << "/spool\n"
        << "SlurmctldPidFile=" << dir << "/slurmctld.pid.auto\nSlurmdPidFile=" << dir << "/slurmd.pid.auto\n"
        << "SlurmctldLogFile=" << dir << "/log/slurmctld.log\nSlurmdLogFile=" << dir << "/log/slurmd.log\n"
        << "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
        << "JobCompType=jobcomp/none\n"
        << (slurmd ? "" : "GresTypes=gpu\nSuspendProgram=/bin/true\nResumeProgram=/bin/true\nSuspendTime=600\n"
                          "PrivateData=cloud\n")  // PrivateData=cloud: sinfo lists the powered-down nodes
        << nodes;
    REQUIRE(run_command("/usr/sbin/slurmctld -D -i -f " + conf() + " > " + dir + "/log/slurmctld.fg 2>&1 & echo $! > " +
                        dir + "/slurmctld.pid") == 0);
    if (slurmd)
      REQUIRE(run_command("/usr/sbin/slurmd -D -N localhost -f " + conf() + " > " + dir +
                          "/log/slurmd.fg 2>&1 & echo $! > " + dir + "/slurmd.pid") == 0);
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      up = client("sinfo -h -o '%T' 2>/dev/null", &out) == 0 && contains(out, "idle");
    }
    if (!up) run_command("tail -n 20 " + dir + "/log/*", &out);
    INFO("the private Slurm '" << cluster << "' did not come up:\n" << out);
    REQUIRE(up);
  }
};

Daemons& daemons() {
  static Daemons d;
  return d;
}
Daemons& gpu_cluster() {
  static Daemons d;
  return d;
}

}  // namespace

const std::string& local_slurm() {
  if (daemons().dir.empty()) {
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    daemons().start("build/tmp/slurm", "longctxtest",
                    "NodeName=localhost CPUs=" + std::to_string(cpus) + " RealMemory=2000 State=UNKNOWN\n"
                    "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
                    true);
    ::setenv("SLURM_CONF", daemons().conf().c_str(), 1);  // for every client the tests run
  }
  return daemons().dir;
}

std::string gpu_cluster_conf() {
  if (gpu_cluster().dir.empty())
    gpu_cluster().start("build/tmp/slurm-gpu", "longctxgpu",
                        "NodeName=gpu[001-064] CPUs=64 RealMemory=500000 Gres=gpu:8 State=CLOUD\n"
                        "PartitionName=gpu Nodes=gpu[001-064] Default=YES MaxTime=INFINITE State=UP\n",
                        false);
  return gpu_cluster().conf();
}

std::string job_field(const std::string& id, const std::string& field) {
  std::string out;
  if (run_command("scontrol show job -o " + id + " 2>/dev/null", &out) != 0) return "";
  const std::string key = " " + field + "=";
  const size_t at = out.find(key);
  if (at == std::string::npos) return "";
  const size_t b = at + key.size();
  return out.substr(b, out.find_first_of(" \n", b) - b);
}

std::string wait_job_end(const std::string& id, double seconds) {
  std::string state;
  for (auto t0 = std::chrono::steady_clock::now();
       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds;) {
    state = job_field(id, "JobState");
    if (state != "PENDING" && state != "RUNNING" && state != "CONFIGURING" && state != "COMPLETING" &&
        state != "REQUEUED" && !state.empty())
      return state;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return "still " + state + " (timed out)";
}

}  // namespace longctx::test

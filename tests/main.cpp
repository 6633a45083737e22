// Test driver: MPI is initialised once for the whole suite (tests tagged [mpi] run under mpirun;
// the rest run as a single-rank MPI program, which Open MPI allows without mpirun).
//
// Tests that cannot run here are left out before the run and reported by name, never counted as
// passed (Catch2 v2 has no SKIP): the [gpu] tests where no GPU is usable (without CUDA they are not
// compiled), the [h5dump] tests where h5dump is not on PATH, the [slurm] tests where Slurm and munge
// are not installed. The line `skipped: N test cases tagged
// [tag] (why): names` says so. A run that asks for such a tag (e.g. '[gpu]') or selects nothing
// else FAILS instead, so that a GPU job cannot pass without running its tests.
#if !defined(LONGCTX_CATCH3)
#define CATCH_CONFIG_RUNNER
#endif
#include "catch.h"
#if defined(LONGCTX_CATCH3)
#include <catch2/catch_test_case_info.hpp>
#include <catch2/internal/catch_test_case_registry_impl.hpp>
#endif

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#if defined(LONGCTX_CUDA)
#include "longctx/flash.h"
#endif
#include "util.h"

namespace {

struct Missing {  // test cases tagged [tag] cannot run here
  std::string tag, why;
  bool compiled = true;  // false: the tests are not in this binary at all
};

bool on_path(const std::string& tool) {
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "";
  for (size_t i = 0; i <= path.size();) {
    size_t j = path.find(':', i);
    if (j == std::string::npos) j = path.size();
    const std::string dir = j > i ? path.substr(i, j - i) : ".";
    if (::access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
    i = j + 1;
  }
  return false;
}

std::vector<Missing> missing_here() {
  std::vector<Missing> m;
#if defined(LONGCTX_CUDA)
  if (!longctx::gpu::gpu_available()) m.push_back({"gpu", "no usable GPU"});
#else
  m.push_back({"gpu", "built without CUDA: not compiled", false});
#endif
  if (!on_path("h5dump")) m.push_back({"h5dump", "h5dump not on PATH; hint: apt-get install hdf5-tools"});
  for (const char* tool : {"slurmctld", "slurmd", "sbatch", "munged"})
    if (!on_path(tool) && ::access((std::string("/usr/sbin/") + tool).c_str(), X_OK) != 0) {
      m.push_back({"slurm", std::string(tool) + " not found; hint: apt-get install slurmctld slurmd slurm-client munge"});
      break;
    }
  return m;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
#if defined(LONGCTX_CATCH3)
std::string tag_text(const Catch::Tag& t) { return std::string(t.original); }
#else
std::string tag_text(const std::string& t) { return t; }
#endif

struct Selected {
  std::string name;
  std::vector<std::string> tags;  // lower case, without brackets
};

// The test cases the current configuration would run (no filter: all but the hidden ones).
std::vector<Selected> selected(Catch::Config& cfg) {
  std::vector<Selected> out;
  auto add = [&](const auto& tc) {
    const auto& info = tc.getTestCaseInfo();
    Selected s{info.name, {}};
    for (const auto& t : info.tags) s.tags.push_back(lower(tag_text(t)));
    out.push_back(s);
  };
  const auto& all = Catch::getAllTestCasesSorted(cfg);
  if (!cfg.hasTestFilters()) {
    for (const auto& tc : all)
      if (!tc.getTestCaseInfo().isHidden()) add(tc);
  } else {
    for (const auto& tc : Catch::filterTests(all, cfg.testSpec(), cfg)) add(tc);
  }
  return out;
}

// Whether a test spec names [tag] other than as an exclusion (~[tag]).
bool asks_for(const std::vector<std::string>& spec, const std::string& tag) {
  const std::string t = "[" + tag + "]";
  for (const std::string& arg : spec) {
    const std::string s = lower(arg);
    for (size_t at = s.find(t); at != std::string::npos; at = s.find(t, at + 1))
      if (at == 0 || s[at - 1] != '~') return true;
  }
  return false;
}
bool only_exclusions(const std::vector<std::string>& spec) {
  return std::all_of(spec.begin(), spec.end(), [](const std::string& s) { return !s.empty() && s[0] == '~'; });
}

// Leaves out the test cases that cannot run here (see the top of the file). 0, or 1 to fail.
int leave_out_missing(Catch::Session& session, bool report) {
  // Hidden tests ([.], e.g. the 8-GPU [gpu8] ones) run only when a spec asks for them: Catch
  // would select them for a spec of exclusions alone, which the ones added below make of none.
  if (only_exclusions(session.configData().testsOrTags)) {
    Catch::ConfigData hide = session.configData();
    hide.testsOrTags.push_back("~[.]");
    session.useConfigData(hide);
  }
  const std::vector<Selected> before = selected(session.config());
  Catch::ConfigData data = session.configData();
  std::vector<std::string> expect;  // the names that must remain
  for (const Selected& s : before) expect.push_back(s.name);
  int rc = 0;
  for (const Missing& m : missing_here()) {
    std::vector<std::string> names;
    for (const Selected& s : before)
      if (std::find(s.tags.begin(), s.tags.end(), m.tag) != s.tags.end()) names.push_back(s.name);
    if (asks_for(data.testsOrTags, m.tag) || (!names.empty() && names.size() == before.size())) {
      if (report)
        std::fflush(stdout), std::fprintf(stderr, "FAILED: the [%s] tests were asked for but cannot run here (%s)\n", m.tag.c_str(),
                     m.why.c_str());
      rc = 1;
      continue;
    }
    if (!m.compiled) {
      if (report && only_exclusions(data.testsOrTags))
        std::printf("skipped: the test cases tagged [%s] (%s)\n", m.tag.c_str(), m.why.c_str());
      continue;
    }
    if (names.empty()) continue;
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : "; ") + n;
    if (report)
      std::printf("skipped: %zu test case%s tagged [%s] (%s): %s\n", names.size(), names.size() == 1 ? "" : "s",
                  m.tag.c_str(), m.why.c_str(), list.c_str());
    data.testsOrTags.push_back("~[" + m.tag + "]");
    for (const std::string& n : names) expect.erase(std::remove(expect.begin(), expect.end(), n), expect.end());
  }
  if (rc != 0 || data.testsOrTags.size() == session.configData().testsOrTags.size()) return rc;
  session.useConfigData(data);
  // Catch ANDs an added exclusion into the last comma-separated part of the spec only: check that
  // exactly the left-out test cases are gone, rather than trust it.
  std::vector<std::string> after;
  for (const Selected& s : selected(session.config())) after.push_back(s.name);
  if (after != expect) {
    if (report)
      std::fflush(stdout), std::fprintf(stderr, "FAILED: could not leave the tests above out of this test spec; add the ~[tag] "
                           "exclusions to each comma-separated part yourself\n");
    return 1;
  }
  return 0;
}

}  // namespace

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
  if (rc == 0) rc = leave_out_missing(session, rank == 0);  // after every other configData change
  std::fflush(stdout);
  if (rc == 0) rc = session.run();
  MPI_Finalize();
  return rc;
}

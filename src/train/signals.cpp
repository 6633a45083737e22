// signals.cpp — the stop flag of SIGTERM/SIGUSR1 (signals.h).
#include "longctx/signals.h"

#include <csignal>
#include <cstdio>

#include "longctx/common.h"

namespace longctx {

namespace {
volatile std::sig_atomic_t g_signal = 0;  // the first stop signal
volatile std::sig_atomic_t g_count = 0;   // how many arrived

extern "C" void on_stop_signal(int sig) {  // async-signal-safe: two stores, nothing else
  if (g_signal == 0) g_signal = sig;
  g_count = g_count + 1;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGUSR1})
    CHECK(sigaction(sig, &sa, nullptr) == 0, "sigaction({}) failed", signal_name(sig));
}

int stop_signal() { return int(g_signal); }
int stop_signal_count() { return int(g_count); }

int stop_signal_any(MPI_Comm comm) {
  int mine = int(g_signal), any = 0;
  CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm) == MPI_SUCCESS, "MPI_Allreduce(stop flag) failed");
  return any;
}

const char* signal_name(int sig) {
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGUSR1) return "SIGUSR1";
  static thread_local char buf[32];
  std::snprintf(buf, sizeof buf, "signal %d", sig);
  return buf;
}

}  // namespace longctx

// run_suite_probe.cpp — a doctest binary whose third case breaks the way a faulty GPU kernel
// can (PROBE_MODE: sticky, segv, hang, kill, teardown; anything else: it passes), for the test
// of tools/run_suite.py (tests/test_run_suite.py). "sticky" mimics a lost CUDA context: the
// case throws what CUDA_CHECK throws on cudaErrorIllegalAddress, and every later case in the
// same process throws it too. One case always fails, to tell failures from culprits.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <csignal>    // std::raise
#include <cstdio>     // std::printf
#include <cstdlib>    // std::getenv
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string

#include <unistd.h>  // sleep, getpid
#include <signal.h>  // kill, SIGKILL

namespace {
bool g_lost = false;  // the mimicked CUDA context is gone
std::string mode() {
  const char* m = std::getenv("PROBE_MODE");
  return m ? m : "";
}
void use_context() {
  if (g_lost)
    throw std::runtime_error("CUDA call failed: cudaMemcpyAsync(...) (cudaErrorIllegalAddress: an illegal memory "
                             "access was encountered) at engine/cuda/runtime.cu:1");
}
struct Teardown {
  ~Teardown() {
    if (mode() == "teardown") std::raise(SIGSEGV);
  }
} g_teardown;
}  // namespace

TEST_CASE("probe a: passes") { use_context(); CHECK(1 + 1 == 2); }

TEST_CASE("probe b: fails, [with] a comma, and *stars*") { use_context(); CHECK(1 + 1 == 3); }

TEST_CASE("probe c: the faulty kernel") {
  std::printf("probe c: output of its own\n");
  const std::string m = mode();
  if (m == "sticky") {
    g_lost = true;
    use_context();
  } else if (m == "segv") {
    std::raise(SIGSEGV);
  } else if (m == "hang") {
    for (;;) sleep(1);
  } else if (m == "kill") {
    kill(getpid(), SIGKILL);
  }
  CHECK(true);
}

TEST_CASE("probe d: passes") { use_context(); CHECK(true); }

TEST_CASE("probe e: passes") { use_context(); CHECK(true); }

// main.cpp — doctest's main for the lcam_tests binary (suites live in tests/test_*.cpp), run in a
// temporary folder of its own: every test's scratch files (fs::temp_directory_path(), TMPDIR for
// the lcam processes the tests start) go to TMPDIR/lcam-tests-PID, removed at the end, so that
// two runs at once (ctest -j, two checkouts on one machine) never share a file.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>  // the test runner

#include <unistd.h>  // getpid

#include <cstdlib>       // setenv, getenv
#include <filesystem>    // create_directories, remove_all
#include <string>        // std::string
#include <system_error>  // std::error_code

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / ("lcam-tests-" + std::to_string(::getpid()));
  const bool own = !ec && fs::create_directories(dir, ec) && !ec;
  if (own) setenv("TMPDIR", dir.c_str(), 1);
  doctest::Context context(argc, argv);
  const int status = context.run();
  if (own) fs::remove_all(dir, ec);
  return status;
}

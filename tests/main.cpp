// main.cpp — doctest's main for the lcam_tests binary (suites live in tests/test_*.cpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>  // the test runner

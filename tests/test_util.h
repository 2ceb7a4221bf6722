// test_util.h — helpers shared by the doctest suites: seeded random tensors, comparison with a
// relative-to-max tolerance that reports where it failed, central differences in double, and
// the paths of fixtures and of the built binary.
#pragma once
#include <algorithm>   // std::max
#include <cmath>       // std::fabs, std::sqrt, INFINITY
#include <cstdlib>     // std::getenv
#include <functional>  // std::function
#include <random>      // std::mt19937
#include <string>      // std::string
#include <utility>     // std::move (on_exit)
#include <vector>      // std::vector

#include <doctest/doctest.h>  // CHECK, INFO

#include "engine/backend.h"  // cpu::set_conv_bf16
#include "engine/tensor.h"   // Tensor

namespace lcam::test {

// The source tree (fixtures, ../shared beside it) and the lcam binary: compiled in, or taken
// from LCAM_SOURCE_DIR / LCAM_BINARY in the environment when the tests run elsewhere (a bundle
// copied to a GPU machine).
inline std::string source_dir() {
  const char* e = std::getenv("LCAM_SOURCE_DIR");
  return e && *e ? e : LCAM_SOURCE_DIR;
}
// ../shared beside the checkout (the sample photos), or LCAM_SHARED_DIR.
inline std::string shared_dir() {
  const char* e = std::getenv("LCAM_SHARED_DIR");
  return e && *e ? e : source_dir() + "/../shared";
}
inline std::string lcam_binary() {
  const char* e = std::getenv("LCAM_BINARY");
  return e && *e ? e : LCAM_BINARY;
}
// The CPU's emulation of the bf16 convolutions on for a scope, off again after it.
struct CpuBf16Scope {
  CpuBf16Scope() { cpu::set_conv_bf16(true); }
  ~CpuBf16Scope() { cpu::set_conv_bf16(false); }
  CpuBf16Scope(const CpuBf16Scope&) = delete;
  CpuBf16Scope& operator=(const CpuBf16Scope&) = delete;
};

inline std::string fixture(const std::string& name) { return source_dir() + "/tests/fixtures/" + name; }

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline Tensor randn_t(std::vector<int64_t> shape, uint32_t seed, float scale = 1.f) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return Tensor::from_vector(randn(static_cast<size_t>(n), seed, scale), shape);
}

// max |a - b| / max(max |b|, floor); the usual measure for whole tensors.
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b, double floor = 1e-12) {
  double m = floor, e = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    m = std::max(m, std::fabs(b[i]));
    e = std::max(e, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return e / m;
}

// ||ref - got|| / ||ref|| over all elements (any devices): a whole tensor's drift.
inline double rel_l2(const Tensor& ref, const Tensor& got) {
  const std::vector<float> a = ref.to_vector(), b = got.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(a[i]) * a[i];
  }
  return a.size() == b.size() ? std::sqrt(num / std::max(den, 1e-30)) : INFINITY;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
inline std::vector<double> to_double(const Tensor& t) { return to_double(t.to_vector()); }

// Runs f when the scope ends: restores a global switch after a test, failing or not.
template <class F>
struct ScopeExit {
  F f;
  ~ScopeExit() { f(); }
};
template <class F>
ScopeExit<F> on_exit(F f) {
  return ScopeExit<F>{std::move(f)};
}

inline void check_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                        double tol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": size " << got.size() << " vs " << want.size());
  const double e = rel_err(got, want);
  CHECK_MESSAGE(e <= tol, what << ": max relative error " << e << " > " << tol);
}

// Central differences of f(x) = sum_i out(x)_i * g_i at x, in double.
inline std::vector<double> numeric_grad(const std::function<std::vector<double>(const std::vector<double>&)>& f,
                                        std::vector<double> x, const std::vector<double>& g, double eps = 1e-4) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    std::vector<double> yp = f(x);
    x[i] = x0 - eps;
    std::vector<double> ym = f(x);
    x[i] = x0;
    double s = 0;
    for (size_t j = 0; j < g.size(); ++j) s += (yp[j] - ym[j]) * g[j];
    grad[i] = s / (2 * eps);
  }
  return grad;
}

}  // namespace lcam::test

// common.cpp — formatting of check failures and byte counts (see common.h).
#include "engine/common.h"

#include <unistd.h>  // getpid

#include <atomic>       // std::atomic (temp_path_for)
#include <cstdio>       // std::snprintf
#include <string_view>  // std::string_view

#include <fmt/format.h>  // fmt::format

namespace lcam {

std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / static_cast<double>(size_t{1} << 30));
  return buf;
}

std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}.tmp-{}-{}", path, static_cast<long>(::getpid()), counter++);
}

void check_classes(const int* v, int64_t n, int64_t K, const char* noun, const std::string& suffix) {
  for (int64_t i = 0; i < n; ++i)
    if (v[i] < 0 || v[i] >= K) throw InputError(fmt::format("{} {} out of range [0,{}){}", noun, v[i], K, suffix));
}

void throw_check_failure(const char* what, const char* expr, const std::string& detail,
                         const char* file, int line, const char* func) {
  const std::string msg = fmt::format("{} failed: {} ({}) at {}:{} in {}", what, expr, detail, file, line, func);
  if (std::string_view(what) == "cuDNN call") throw CudnnError(msg);  // CUDNN_CHECK's kind
  throw InternalError(msg);
}

}  // namespace lcam

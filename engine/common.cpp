// common.cpp — formatting of check failures (see common.h).
#include "engine/common.h"

#include <string_view>  // std::string_view

#include <fmt/format.h>  // fmt::format

namespace lcam {

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

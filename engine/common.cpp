// common.cpp — formatting of check failures (see common.h).
#include "engine/common.h"

#include <string_view>  // std::string_view

#include <fmt/format.h>  // fmt::format

namespace lcam {

void throw_check_failure(const char* what, const char* expr, const std::string& detail,
                         const char* file, int line, const char* func) {
  const std::string msg = fmt::format("{} failed: {} ({}) at {}:{} in {}", what, expr, detail, file, line, func);
  if (std::string_view(what) == "cuDNN call") throw CudnnError(msg);  // CUDNN_CHECK's kind
  throw InternalError(msg);
}

}  // namespace lcam

// common.cpp — formatting of check failures (see common.h).
#include "engine/common.h"

#include <fmt/format.h>  // fmt::format

namespace lcam {

void throw_check_failure(const char* what, const char* expr, const std::string& detail,
                         const char* file, int line, const char* func) {
  throw InternalError(fmt::format("{} failed: {} ({}) at {}:{} in {}", what, expr, detail, file,
                                  line, func));
}

}  // namespace lcam

// common.h — the engine's error types, check macros and the host/device qualifier.
// Deliberately omits logging and formatting helpers: callers build messages with fmt.
#pragma once
#include <cstddef>    // size_t
#include <cstdint>    // int64_t
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string
#include <vector>     // std::vector (check_classes)

#if defined(__CUDACC__)
#define ENGINE_HD __host__ __device__
#else
#define ENGINE_HD
#endif

namespace lcam {

// Bad usage or bad input (a flag, a file, a tensor): the CLI prints the message on one line
// and exits with status 2.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Something inside the engine failed (a CUDA call): exit status 1.
struct InternalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An allocation the host or the device could not satisfy (a batch too large for the machine):
// the CLI prints the message with a hint to lower --batch and exits with status 2. Not an
// InputError, so that code skipping bad images (which catches InputError) never skips it.
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A cuDNN call that returned an error status (CUDNN_CHECK), or no algorithm cuDNN would run:
// the one failure the bf16 convolutions answer by falling back to float32.
struct CudnnError : InternalError {
  using InternalError::InternalError;
};

// "1.50 GiB": byte counts in error messages.
std::string gib(size_t bytes);

// Where a file is written before it is renamed to `path`: beside it (the same file system),
// "PATH.tmp-PID-N", unique to this process and call, so that neither another lcam writing the
// same output nor a user's own PATH.tmp is overwritten.
std::string temp_path_for(const std::string& path);

// Throws InputError "{noun} {c} out of range [0,{K}){suffix}" for the first class index in
// v[0, n) outside [0, K): labels and requested classes, checked on the host before they are
// uploaded (device kernels only keep out-of-range rows from reading outside their tables).
void check_classes(const int* v, int64_t n, int64_t K, const char* noun, const std::string& suffix = "");
inline void check_classes(const std::vector<int>& v, int64_t K, const char* noun, const std::string& suffix = "") {
  check_classes(v.data(), static_cast<int64_t>(v.size()), K, noun, suffix);
}

[[noreturn]] void throw_check_failure(const char* what, const char* expr, const std::string& detail,
                                      const char* file, int line, const char* func);

}  // namespace lcam

// One template for every library check: evaluates expr once, tests it with ok(v), and throws an
// InternalError naming the expression, file, line and function, plus to_string(v).
#define ENGINE_CHECK_GEN(kind, expr, ok, to_string)                                              \
  do {                                                                                          \
    auto engine_check_v_ = (expr);                                                              \
    if (!(ok(engine_check_v_)))                                                                 \
      ::lcam::throw_check_failure(kind, #expr, to_string(engine_check_v_), __FILE__, __LINE__,  \
                                  __func__);                                                    \
  } while (0)

// Shape and argument checks inside the engine: violations are programming errors of a caller
// (exit 1), unless the caller validated user input first, as the loaders do.
#define LCAM_REQUIRE(cond, msg)                                                                 \
  do {                                                                                          \
    if (!(cond)) ::lcam::throw_check_failure("requirement", #cond, (msg), __FILE__, __LINE__,   \
                                             __func__);                                         \
  } while (0)

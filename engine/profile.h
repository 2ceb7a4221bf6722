// profile.h — an in-process range profiler (`lcam bench --profile`): while it is on, every
// cuda::TraceRange — the profiler ranges the engine already marks: each op (engine/ops.cpp),
// each module's forward and backward, the L-CAM step's phases, the saliency methods — is timed, and the times are summed
// per path of range names (a module inside the masked forward pass is another row than the same
// module in the unmasked one). On the CPU a range's time is the host's wall clock (the CPU ops
// run synchronously); on the GPU it is the device time between two events recorded on the
// engine's stream at the range's start and end, so the work queued inside it and nothing else,
// without a synchronization per range (a host slower than the device shows as gaps inside).
// Only the thread that started it is timed. Omits sampling, per-kernel times (nsys has them)
// and ranges inside a CUDA graph capture (start() refuses while capturing; ranges opened in
// one later read as 0 ms).
#pragma once
#include <cstdint>  // int64_t
#include <string>   // std::string
#include <vector>   // std::vector

#include "engine/tensor.h"  // Device

namespace lcam::prof {

// Clears what was recorded and times ranges from now on, on `dev`'s clock.
void start(Device dev);
// Stops timing (ranges still open are closed by their TraceRange as usual).
void stop();
// One row per path of range names, in the order each path was first entered: the last name,
// its depth (0 for an outermost range), how often it ran, and its total and self time in ms
// (self: without the ranges nested in it). Waits for the device. After stop().
struct Row {
  std::string name;
  int depth = 0;
  int64_t calls = 0;
  double total_ms = 0, self_ms = 0;
};
std::vector<Row> rows();

// For cuda::TraceRange: whether this thread is being timed, and the range's start and end
// (never throwing: a range that cannot be timed reads as 0 ms; so do ranges inside a CUDA graph
// capture, whose events could not be read back).
bool timing();
void push(const char* name) noexcept;
void pop() noexcept;

}  // namespace lcam::prof

// profile.cpp — see profile.h. Each push opens an interval under the current path node and
// records a start marker (host time, or a device event); pop records the end. rows() turns the
// markers into milliseconds once the device has passed them, then sums them per node.
#include "engine/profile.h"

#include <atomic>   // std::atomic<bool>
#include <chrono>   // std::chrono::steady_clock
#include <map>      // child lookup
#include <thread>   // std::this_thread::get_id
#include <utility>  // std::pair

#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // record_timed_event, elapsed_ms, destroy_event, capturing

namespace lcam::prof {
namespace {

struct Node {
  std::string name;
  int depth = 0, parent = -1;
};

struct Interval {
  int node = 0;
  double t0 = 0, t1 = 0;                   // host ms (CPU)
  void *e0 = nullptr, *e1 = nullptr;       // device events (CUDA)
};

struct State {
  std::atomic<bool> on{false};
  std::atomic<std::thread::id> owner{};
  Device dev = Device::CPU;
  std::vector<Node> nodes;
  std::map<std::pair<int, std::string>, int> children;
  std::vector<Interval> done;
  std::vector<Interval> open;  // the stack of open ranges
  bool broken = false;         // a push or pop ran out of memory: nothing more is recorded
  void clear() {
    broken = false;
    for (Interval& i : done) {
      cuda::destroy_event(i.e0);
      cuda::destroy_event(i.e1);
    }
    for (Interval& i : open) cuda::destroy_event(i.e0);
    nodes.clear();
    children.clear();
    done.clear();
    open.clear();
  }
};

State& state() {
  static State s;
  return s;
}

// A timing event for the current point of the engine's stream, or nullptr (then the interval
// reads as 0 ms): never inside a graph capture (such an event cannot be read back), never a
// throw (TraceRange calls this from a destructor, perhaps while unwinding from a CUDA error).
void* event_now() noexcept {
  try {
    return cuda::capturing() ? nullptr : cuda::record_timed_event();
  } catch (...) {
    return nullptr;
  }
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Opens an interval under the current path node (push).
void push_node(State& s, const char* name) {
  const int parent = s.open.empty() ? -1 : s.open.back().node;
  const auto key = std::make_pair(parent, std::string(name));
  auto it = s.children.find(key);
  int node;
  if (it == s.children.end()) {
    node = static_cast<int>(s.nodes.size());
    s.nodes.push_back({key.second, parent < 0 ? 0 : s.nodes[parent].depth + 1, parent});
    s.children.emplace(key, node);
  } else {
    node = it->second;
  }
  Interval i;
  i.node = node;
  if (s.dev == Device::CUDA) i.e0 = event_now();
  else i.t0 = now_ms();
  s.open.push_back(i);
}

}  // namespace

void start(Device dev) {
  State& s = state();
  if (dev == Device::CUDA && cuda::capturing())
    throw InputError("profile: not inside a CUDA graph capture (its ranges would not run when replayed)");
  s.clear();
  s.dev = dev;
  s.owner = std::this_thread::get_id();
  s.on = true;
}

void stop() { state().on = false; }

bool timing() {
  const State& s = state();
  return s.on.load(std::memory_order_relaxed) && std::this_thread::get_id() == s.owner.load(std::memory_order_relaxed);
}

void push(const char* name) noexcept {
  State& s = state();
  if (s.broken) return;
  try {
    push_node(s, name);
  } catch (...) {  // out of host memory: stop recording rather than pair the wrong intervals
    s.broken = true;
  }
}

void pop() noexcept {
  State& s = state();
  if (s.broken || s.open.empty()) return;  // empty: opened before start()
  Interval i = s.open.back();
  s.open.pop_back();
  if (s.dev == Device::CUDA) i.e1 = event_now();
  else i.t1 = now_ms();
  try {
    s.done.push_back(i);
  } catch (...) {
    cuda::destroy_event(i.e0);
    cuda::destroy_event(i.e1);
    s.broken = true;
  }
}

std::vector<Row> rows() {
  State& s = state();
  if (s.broken) return {};
  std::vector<Row> out(s.nodes.size());
  for (size_t n = 0; n < s.nodes.size(); ++n) out[n].name = s.nodes[n].name, out[n].depth = s.nodes[n].depth;
  for (const Interval& i : s.done) {
    const double ms = s.dev == Device::CUDA ? cuda::elapsed_ms(i.e0, i.e1) : i.t1 - i.t0;
    out[i.node].calls += 1;
    out[i.node].total_ms += ms;
  }
  for (size_t n = 0; n < s.nodes.size(); ++n) out[n].self_ms += out[n].total_ms;
  for (size_t n = 0; n < s.nodes.size(); ++n)
    if (s.nodes[n].parent >= 0) out[s.nodes[n].parent].self_ms -= out[n].total_ms;
  // Depth-first, children in the order they were first entered (node ids grow in that order).
  std::vector<Row> ordered;
  ordered.reserve(out.size());
  std::vector<std::vector<int>> kids(s.nodes.size());
  std::vector<int> roots;
  for (size_t n = 0; n < s.nodes.size(); ++n)
    (s.nodes[n].parent < 0 ? roots : kids[s.nodes[n].parent]).push_back(static_cast<int>(n));
  std::vector<int> stack(roots.rbegin(), roots.rend());
  while (!stack.empty()) {
    const int n = stack.back();
    stack.pop_back();
    ordered.push_back(out[n]);
    stack.insert(stack.end(), kids[n].rbegin(), kids[n].rend());
  }
  return ordered;
}

}  // namespace lcam::prof

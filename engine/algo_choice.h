// algo_choice.h — which of the convolution algorithms cuDNN timed to keep (engine/cuda/conv.cu),
// as a function of plain numbers so that it is tested without a GPU: among the candidates that
// succeeded and fit the workspace limit, those within `slack` (a fraction) of the fastest one's
// time, and of these the one with the smallest workspace (then the fastest). A workspace is
// device memory held for the whole run, so a few percent of one convolution's time is not
// worth hundreds of megabytes of it. With `deterministic`, only the candidates reported
// deterministic count (`usable`: also the rule for a heuristic's untimed list, taken in its
// order). Omits anything cuDNN-specific.
#pragma once
#include <cstddef>  // size_t
#include <vector>   // std::vector

namespace lcam {

struct AlgoCandidate {
  bool ok = false;     // the timing run succeeded
  float ms = 0.f;      // its time
  size_t memory = 0;   // its workspace in bytes
  bool deterministic = true;  // the same bits on every run
};

// Succeeded (or, untimed, is supported), fits `limit`, and is deterministic where asked.
inline bool usable(const AlgoCandidate& c, size_t limit, bool deterministic) {
  return c.ok && c.memory <= limit && (!deterministic || c.deterministic);
}


// Index of the chosen candidate, or -1 when none succeeded within `limit`.
inline int choose_algo(const std::vector<AlgoCandidate>& c, size_t limit, double slack, bool deterministic = false) {
  int fastest = -1;
  for (int i = 0; i < static_cast<int>(c.size()); ++i)
    if (usable(c[i], limit, deterministic) && (fastest < 0 || c[i].ms < c[fastest].ms)) fastest = i;
  if (fastest < 0) return -1;
  const double bound = static_cast<double>(c[fastest].ms) * (1.0 + slack);
  int best = fastest;
  for (int i = 0; i < static_cast<int>(c.size()); ++i) {
    if (!usable(c[i], limit, deterministic) || c[i].ms > bound) continue;
    if (c[i].memory < c[best].memory || (c[i].memory == c[best].memory && c[i].ms < c[best].ms)) best = i;
  }
  return best;
}

}  // namespace lcam

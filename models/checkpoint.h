// checkpoint.h — the L-CAM checkpoint: HDF5 with `attnM.op.weight` [K,C,1,1] and
// `attnM.op.bias` [K] (the official state_dict names, so released models convert by copying
// tensors), attributes describing the run, and the optimizer's momentum buffers under
// `optimizer/`. Written to a temporary file and renamed: a crash never leaves half a file.
#pragma once
#include <cstdint>  // int64_t
#include <string>   // std::string

#include "models/lcam.h"  // Attention

namespace lcam {

struct CheckpointState {
  std::string arch, method;
  int64_t epoch = 0;           // epochs completed
  int64_t batch = 0;           // batches done in the current epoch (0 at an epoch boundary)
  int64_t batch_size = 0;      // images per step (0: not recorded, a checkpoint of an older lcam)
  int64_t step = 0;            // optimizer steps so far
  double lr_w = 0, lr_b = 0;   // learning rates in force
  uint64_t seed = 0;
  Tensor momentum_w, momentum_b;  // undefined when no step was taken
};

// Writes the checkpoint; InputError, and nothing written, when a weight or a momentum is NaN or
// infinite (a diverged run: such a file would only be refused when read).
void save_checkpoint(const std::string& path, const Attention& a, const CheckpointState& s);
// Reads a checkpoint (weights on `dev`). Optimizer state is read when present. InputError for a
// missing file, missing tensors or shapes that do not fit C feature channels.
Attention load_checkpoint(const std::string& path, int C, Device dev, CheckpointState* state);

}  // namespace lcam

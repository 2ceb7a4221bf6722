// checkpoint.cpp — see checkpoint.h.
#include "models/checkpoint.h"

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError
#include "loaders/hdf5.h"   // h5::Reader, h5::Writer
#include "loaders/torch_file.h"  // pth::Reader, pth::looks_like
#include "models/model.h"          // require_finite
#include "models/torch_weights.h"  // find_attention

namespace lcam {

void save_checkpoint(const std::string& path, const Attention& a, const CheckpointState& s) {
  const int64_t K = a.w.dim(0), C = a.w.dim(1);
  const Tensor aw = a.w.to(Device::CPU), ab = a.b.to(Device::CPU);
  const Tensor mw = s.momentum_w.defined() ? s.momentum_w.to(Device::CPU) : Tensor();
  const Tensor mb = s.momentum_b.defined() ? s.momentum_b.to(Device::CPU) : Tensor();
  const std::string why = " (training diverged: lower --lr; nothing was written)";
  require_finite(aw, path, "attnM.op.weight", why);
  require_finite(ab, path, "attnM.op.bias", why);
  if (mw.defined()) require_finite(mw, path, "optimizer/weight_momentum", why);
  if (mb.defined()) require_finite(mb, path, "optimizer/bias_momentum", why);
  h5::Writer w(path);
  w.write("attnM.op.weight", aw.reshape({K, C, 1, 1}));
  w.write("attnM.op.bias", ab);
  if (mw.defined()) {
    w.write("optimizer/weight_momentum", mw.reshape({K, C, 1, 1}));
    w.write("optimizer/bias_momentum", mb);
  }
  w.attr_string("arch", s.arch);
  w.attr_string("method", s.method);
  w.attr_int("epoch", s.epoch);
  w.attr_int("batch", s.batch);
  w.attr_int("batch_size", s.batch_size);
  w.attr_int("step", s.step);
  w.attr_double("lr", s.lr_w);
  w.attr_double("lr_bias", s.lr_b);
  w.attr_int("seed", static_cast<int64_t>(s.seed));
  w.commit();
}

namespace {

// Checks that w [K,C,1,1] and b [K] fit C channels (InputError naming both tensors) and
// returns them as the attention on `dev`.
Attention attention_from(const std::string& path, const std::string& wname, const Tensor& w,
                         const std::string& bname, const Tensor& b, int C, Device dev) {
  if (w.ndim() != 4 || w.dim(1) != C || w.dim(2) != 1 || w.dim(3) != 1 || b.ndim() != 1 || b.dim(0) != w.dim(0))
    throw InputError(fmt::format("{}: {} {} / {} {} do not fit [K,{},1,1] / [K]", path, wname, w.shape_str(), bname,
                                 b.shape_str(), C));
  require_finite(w, path, wname);
  require_finite(b, path, bname);
  return Attention{w.reshape({w.dim(0), C}).to(dev), b.to(dev)};
}

// The attention of an L-CAM model saved by torch.save (the authors' released models): the
// weights only; the variant comes from --lcam-method, the optimizer state is not read.
Attention load_torch_attention(const std::string& path, int C, Device dev, CheckpointState* state) {
  pth::Reader f(path);
  const TorchAttention names = find_attention(f);
  Attention a = attention_from(path, names.weight, f.read(names.weight), names.bias, f.read(names.bias), C, dev);
  if (state) {
    *state = CheckpointState{};
    state->epoch = f.int_value("epoch").value_or(0);
  }
  return a;
}

}  // namespace

Attention load_checkpoint(const std::string& path, int C, Device dev, CheckpointState* state) {
  if (pth::looks_like(path)) return load_torch_attention(path, C, dev, state);
  h5::Reader f(path);
  const Tensor w = f.read("attnM.op.weight"), b = f.read("attnM.op.bias");
  Attention a = attention_from(path, "attnM.op.weight", w, "attnM.op.bias", b, C, dev);
  const int64_t K = w.dim(0);
  if (state) {
    state->arch = f.attr_string("arch").value_or("");
    state->method = f.attr_string("method").value_or("");
    state->epoch = f.attr_int("epoch").value_or(0);
    state->batch = f.attr_int("batch").value_or(0);
    state->batch_size = f.attr_int("batch_size").value_or(0);
    state->step = f.attr_int("step").value_or(0);
    state->lr_w = f.attr_double("lr").value_or(0);
    state->lr_b = f.attr_double("lr_bias").value_or(0);
    state->seed = static_cast<uint64_t>(f.attr_int("seed").value_or(0));
    if (f.has("optimizer/weight_momentum")) {
      Tensor mw = f.read("optimizer/weight_momentum"), mb = f.read("optimizer/bias_momentum");
      if (mw.shape() != w.shape() || mb.shape() != b.shape())
        throw InputError(fmt::format("{}: optimizer/weight_momentum {} / optimizer/bias_momentum {} do not match the "
                                     "attention's {} / {}",
                                     path, mw.shape_str(), mb.shape_str(), w.shape_str(), b.shape_str()));
      require_finite(mw, path, "optimizer/weight_momentum");
      require_finite(mb, path, "optimizer/bias_momentum");
      state->momentum_w = mw.reshape({K, C}).to(dev);
      state->momentum_b = mb.to(dev);
    }
  }
  return a;
}

}  // namespace lcam

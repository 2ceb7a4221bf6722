// layers.h — the layers of the frozen backbones behind a narrow Module interface: forward
// optionally records on a Tape exactly what the data-gradient backward needs (a conv: its
// input shape; a ReLU: its mask packed 32 to a word, 1/32 of its output; a max-pool: its
// argmax, a byte per output), and backward pops it in reverse order. Omits parameter gradients
// of the backbone (it is frozen) and any autograd: the order of backward calls is written out
// by the containers.
// Letters: N,C,H,W input; K,R,S weight; P,Q output.
#pragma once
#include <memory>  // std::unique_ptr
#include <string>  // std::string
#include <vector>  // std::vector

#include "engine/ops.h"     // ConvParams, PoolParams, the ops
#include "engine/tensor.h"  // Tensor

namespace lcam {

// What forward saved for backward, as a stack.
class Tape {
 public:
  void push(Tensor t) { tensors_.push_back(std::move(t)); }
  void push_shape(const std::vector<int64_t>& s) { shapes_.push_back(s); }
  Tensor pop();
  std::vector<int64_t> pop_shape();
  bool empty() const { return tensors_.empty() && shapes_.empty(); }
  void clear() { tensors_.clear(), shapes_.clear(); }

 private:
  std::vector<Tensor> tensors_;
  std::vector<std::vector<int64_t>> shapes_;
};

// A named parameter as stored in the weights file (torchvision state_dict key).
struct Param {
  std::string name;
  std::vector<int64_t> shape;
  Tensor* tensor;
};

class Module {
 public:
  virtual ~Module() = default;
  // "conv3x3+relu", "bottleneck", ... (for timing tables).
  virtual std::string kind() const = 0;
  // tape == nullptr: inference, nothing is kept.
  virtual Tensor forward(const Tensor& x, Tape* tape) = 0;
  // dL/dx from dL/dy, popping what forward pushed.
  virtual Tensor backward(Tape& tape, const Tensor& dy) = 0;
  // Parameters as the weights file names them (appended to out).
  virtual void params(std::vector<Param>&) {}
  // Called once the parameters are loaded (folds batch-norm, ...).
  virtual void finalize() {}
  virtual void to(Device) {}
};

// Convolution with bias, optionally followed by a frozen batch-norm (folded into the weights
// at finalize()) and a ReLU (fused into the convolution's epilogue).
class Conv2d : public Module {
 public:
  Conv2d(std::string name, int C, int K, int R, int stride, int pad, bool bias,
         std::string bn_name = "", bool relu = false);
  std::string kind() const override;
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
  // act(conv(x) + b + z), act a ReLU when `relu` (this layer's own ReLU flag is ignored): the
  // convolution that ends a bottleneck, with the shortcut z. The tape gets x's shape, then the
  // ReLU's mask, which the caller pops itself (backward() pops only what forward() pushes).
  Tensor forward_add(const Tensor& x, const Tensor& z, bool relu, Tape* tape);
  // Inference through this layer (with its ReLU) and a 2x2/2 max-pool after it, in one pass
  // where the backend fuses them (pools_in_one_pass); conv2d_relu_maxpool2_forward.
  bool pools_in_one_pass(const Tensor& x) const;
  Tensor forward_pooled(const Tensor& x);
  void params(std::vector<Param>& out) override;
  void finalize() override;
  void to(Device d) override;
  ConvParams shape_for(const Tensor& x) const;

  std::string name_, bn_name_;
  int C_, K_, R_, stride_, pad_;
  bool has_bias_, relu_;
  Tensor w_, b_;                        // effective (after folding) weight and bias
  Tensor bn_w_, bn_b_, bn_mean_, bn_var_;  // raw batch-norm tensors until finalize()
};

class ReLU : public Module {
 public:
  std::string kind() const override { return "relu"; }
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int k, int stride, int pad) : k_(k), stride_(stride), pad_(pad) {}
  std::string kind() const override;
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
  PoolParams shape_for(const std::vector<int64_t>& x) const;
  bool is_2x2_stride2() const { return k_ == 2 && stride_ == 2 && pad_ == 0; }

 private:
  int k_, stride_, pad_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int P, int Q) : P_(P), Q_(Q) {}
  std::string kind() const override;
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;

 private:
  int P_, Q_;
};

// [N, ...] -> [N, prod(...)]
class Flatten : public Module {
 public:
  std::string kind() const override { return "flatten"; }
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
};

// Identity in eval mode (the default: the backbone is frozen). In training mode (the official
// L-CAM VGG-16 run left its classifier's dropout on) it drops with probability p from a seeded
// hash, keeping the mask on the tape for backward.
class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f) : p_(p) {}
  std::string kind() const override { return training_ ? "dropout" : "dropout(eval)"; }
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
  void set_training(bool on, uint64_t seed) { training_ = on, seed_ = seed; }

 private:
  float p_;
  bool training_ = false;
  uint64_t seed_ = 0;
};

class Linear : public Module {
 public:
  Linear(std::string name, int F, int O, bool relu = false);
  std::string kind() const override;
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
  void params(std::vector<Param>& out) override;
  void to(Device d) override;

  std::string name_;
  int F_, O_;
  bool relu_;
  Tensor w_, b_;
};

// torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 convolution).
class Bottleneck : public Module {
 public:
  Bottleneck(const std::string& name, int inplanes, int planes, int stride);
  std::string kind() const override { return "bottleneck"; }
  Tensor forward(const Tensor& x, Tape* tape) override;
  Tensor backward(Tape& tape, const Tensor& dy) override;
  void params(std::vector<Param>& out) override;
  void finalize() override;
  void to(Device d) override;

 private:
  std::unique_ptr<Conv2d> conv1_, conv2_, conv3_, down_;
};

}  // namespace lcam

// test_ops_torch.cpp — the op set against PyTorch's own results (tests/fixtures/ops.ref.h5,
// float64, written by tools/make_fixtures.py): conv2d, max-pool, adaptive average pool,
// linear, eval-mode batch-norm, softmax, log-softmax and cross-entropy, forward and backward.
// Where test_ops.cpp checks the maths, this checks that the maths is PyTorch's (padding,
// bins, tie rules, reductions).
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <cmath>  // std::sqrt

#include "engine/ops.h"       // the ops under test
#include "loaders/hdf5.h"     // h5::Reader
#include "tests/test_util.h"  // fixture, check_close

using namespace lcam;
using lcam::test::check_close;
using lcam::test::to_double;

namespace {

struct Ref {
  h5::Reader f{lcam::test::fixture("ops.ref.h5")};
  Tensor get(const std::string& g, const std::string& n) const { return f.read(g + "/" + n, true); }
  std::vector<double> want(const std::string& g, const std::string& n) const { return to_double(get(g, n)); }
  int attr(const std::string& g, const std::string& n) const { return static_cast<int>(f.attr_int(n, g).value()); }
};

constexpr double kTol = 2e-6;  // float32 engine vs float64 PyTorch on tiny shapes

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("ops match PyTorch: conv2d") {
  Ref r;
  for (const char* g : {"conv_3x3_s2_p1", "conv_1x1_s1_p0", "conv_7x7_s2_p3"}) {
    CAPTURE(g);
    Tensor x = r.get(g, "x"), w = r.get(g, "w"), b = r.get(g, "b"), dy = r.get(g, "dy");
    const int k = r.attr(g, "kernel"), s = r.attr(g, "stride"), pad = r.attr(g, "padding");
    ConvParams p{static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
                 static_cast<int>(x.dim(3)), static_cast<int>(w.dim(0)), k, k, s, s, pad, pad};
    Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()),
           db = Tensor::empty(b.shape());
    conv2d_forward(y, x, w, b, p);
    conv2d_backward_data(dx, dy, w, p);
    conv2d_backward_weight(dw, db, dy, x, p);
    check_close("y", y.to_vector(), r.want(g, "y"), kTol);
    check_close("dx", dx.to_vector(), r.want(g, "dx"), kTol);
    check_close("dw", dw.to_vector(), r.want(g, "dw"), kTol);
    check_close("db", db.to_vector(), r.want(g, "db"), kTol);
  }
}

TEST_CASE("ops match PyTorch: pooling") {
  Ref r;
  for (const char* g : {"maxpool_3x3_s2_p1", "maxpool_2x2_s2"}) {
    CAPTURE(g);
    Tensor x = r.get(g, "x"), dy = r.get(g, "dy");
    const int k = r.attr(g, "kernel"), s = r.attr(g, "stride"), pad = r.attr(g, "padding");
    PoolParams p{static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
                 static_cast<int>(x.dim(3)), k, k, s, s, pad, pad};
    Tensor y = Tensor::empty(dy.shape()), am = maxpool2d_argmax_for(y), dx = Tensor::empty(x.shape());
    maxpool2d_forward(y, am, x, p);
    maxpool2d_backward(dx, dy, am, p);
    check_close("y", y.to_vector(), r.want(g, "y"), 0);
    check_close("dx", dx.to_vector(), r.want(g, "dx"), kTol);
  }
  for (const char* g : {"adaptive_avg_1x1_from_5x4", "adaptive_avg_7x7_from_10x9", "adaptive_avg_7x7_from_3x2"}) {
    CAPTURE(g);
    Tensor x = r.get(g, "x"), dy = r.get(g, "dy");
    Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape());
    adaptive_avgpool2d_forward(y, x);
    adaptive_avgpool2d_backward(dx, dy);
    check_close("y", y.to_vector(), r.want(g, "y"), kTol);
    check_close("dx", dx.to_vector(), r.want(g, "dx"), kTol);
  }
}

TEST_CASE("ops match PyTorch: linear, batch-norm, softmax, cross-entropy") {
  Ref r;
  {
    const std::string g = "linear";
    Tensor x = r.get(g, "x"), w = r.get(g, "w"), b = r.get(g, "b"), dy = r.get(g, "dy");
    Tensor y = Tensor::empty(dy.shape()), dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()),
           db = Tensor::empty(b.shape());
    linear_forward(y, x, w, b);
    linear_backward_data(dx, dy, w);
    linear_backward_weight(dw, db, dy, x);
    check_close("linear y", y.to_vector(), r.want(g, "y"), kTol);
    check_close("linear dx", dx.to_vector(), r.want(g, "dx"), kTol);
    check_close("linear dw", dw.to_vector(), r.want(g, "dw"), kTol);
    check_close("linear db", db.to_vector(), r.want(g, "db"), kTol);
  }
  {
    const std::string g = "batchnorm_eval";
    const double eps = r.f.attr_double("eps", g).value();
    auto wv = r.get(g, "weight").to_vector(), bv = r.get(g, "bias").to_vector(),
         mv = r.get(g, "running_mean").to_vector(), vv = r.get(g, "running_var").to_vector();
    std::vector<float> scale(wv.size()), shift(wv.size());
    for (size_t c = 0; c < wv.size(); ++c) {
      const double s = wv[c] / std::sqrt(static_cast<double>(vv[c]) + eps);
      scale[c] = static_cast<float>(s);
      shift[c] = static_cast<float>(bv[c] - mv[c] * s);
    }
    Tensor sc = Tensor::from_vector(scale, {static_cast<int64_t>(scale.size())});
    Tensor sh = Tensor::from_vector(shift, {static_cast<int64_t>(shift.size())});
    Tensor x = r.get(g, "x"), dy = r.get(g, "dy");
    Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
    channel_affine_forward(y, x, sc, sh);
    channel_affine_backward(dx, dy, sc);
    check_close("batch-norm y", y.to_vector(), r.want(g, "y"), kTol);
    check_close("batch-norm dx", dx.to_vector(), r.want(g, "dx"), kTol);
  }
  {
    Tensor x = r.get("softmax", "x"), y = Tensor::empty(x.shape());
    softmax_forward(y, x);
    check_close("softmax", y.to_vector(), r.want("softmax", "y"), kTol);
    Tensor lx = r.get("log_softmax", "x"), ly = Tensor::empty(lx.shape());
    log_softmax_forward(ly, lx);
    check_close("log_softmax", ly.to_vector(), r.want("log_softmax", "y"), kTol);
  }
  {
    Tensor logits = r.get("cross_entropy", "logits"), labels = r.f.read_i32("cross_entropy/labels");
    Tensor dl = Tensor::empty(logits.shape());
    const float loss = cross_entropy(dl, logits, labels);
    check_close("cross-entropy loss", {loss}, r.want("cross_entropy", "loss"), kTol);
    check_close("cross-entropy dlogits", dl.to_vector(), r.want("cross_entropy", "dlogits"), kTol);
  }
}

}  // TEST_SUITE

// cmd_bench.cpp — `lcam bench`: forward-pass timing of VGG-16 / ResNet-50 at given batch sizes
// (random weights unless --weights), median over repetitions after warm-up: ms per batch,
// images/s, peak memory, and a per-layer table (each module timed with a device sync, so the
// per-layer sum slightly exceeds the unsynchronized total).
#include <algorithm>  // std::max
#include <cstdio>     // std::printf
#include <sys/resource.h>  // getrusage (peak RSS)
#include <vector>     // std::vector

#include <fmt/format.h>       // fmt::format
#include <nlohmann/json.hpp>  // nlohmann::json

#include "apps/cli.h"             // RuntimeOptions
#include "apps/progress.h"        // now_seconds, median, parse_int_list
#include "engine/backend.h"       // cpu::num_threads
#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::synchronize, device_summary
#include "engine/ops.h"           // sgd_step
#include "models/lcam.h"          // Lcam (training-step benchmark)
#include "models/model.h"         // random_model, load_model

namespace lcam::app {
namespace {

struct BenchOptions {
  RuntimeOptions rt;
  std::string arch, weights, batches = "1,32", train;
  int iters = 5, warmup = 2, size = 224;
  bool json = false, layers = false;
};

double now_ms() { return 1000.0 * now_seconds(); }

// Peak resident set size of the process so far, MiB (Linux reports KiB).
double max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

int run_bench(const BenchOptions& o) {
  const Device dev = o.rt.apply();
  const std::vector<int> batches = parse_int_list("--batch", o.batches, 1 << 16);
  std::unique_ptr<Model> model;
  if (o.weights.empty()) {
    model = random_model(ModelConfig::standard(o.arch), 0);
    model->finalize();
    model->to(dev);
  } else {
    model = load_model(o.weights, o.arch, dev);
  }
  auto sync = [&] {
    if (dev == Device::CUDA) cuda::synchronize();
  };
  const std::string where = dev == Device::CUDA ? cuda::device_summary() : fmt::format("cpu, {} threads", cpu::num_threads());
  if (!o.json && !o.train.empty()) std::printf("L-CAM-%s training step (forward, backward, SGD):\n", o.train.c_str());
  if (!o.json) std::printf("lcam bench: %s on %s, %dx%d, median of %d after %d warm-up\n", o.arch.c_str(), where.c_str(), o.size, o.size, o.iters, o.warmup);
  for (int B : batches) {
    Tensor x = Tensor::zeros({B, 3, o.size, o.size}, dev);
    reset_peak_memory(dev);
    const size_t base = memory_stats(dev).current;
    const double rss_base = max_rss_mb();
    std::vector<double> totals;
    // --train: one L-CAM training step (forward, backward to the attention, two SGD updates)
    // on random [0,1] images with random labels; otherwise the plain forward pass.
    std::unique_ptr<Lcam> lcam;
    Attention att;
    Tensor dw, db, mw, mb;
    std::vector<int> labels(B);
    if (!o.train.empty()) {
      LcamOptions lo;
      lo.method = parse_lcam_method(o.train);
      lcam = std::make_unique<Lcam>(*model, lo);
      att = Attention::init(model->num_classes(), lcam->channels(), 1, dev);
      dw = Tensor::empty(att.w.shape(), dev), db = Tensor::empty(att.b.shape(), dev);
      mw = Tensor::zeros(att.w.shape(), dev), mb = Tensor::zeros(att.b.shape(), dev);
      std::vector<float> xv(static_cast<size_t>(x.numel()));
      for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.f;
      x = Tensor::from_vector(xv, x.shape(), dev);
      for (int n = 0; n < B; ++n) labels[n] = (n * 37) % model->num_classes();
    }
    for (int it = 0; it < o.warmup + o.iters; ++it) {
      sync();
      const double t0 = now_ms();
      if (lcam) {
        lcam->forward_backward(att, x, labels, dw, db);
        sgd_step(att.w, mw, dw, 1e-3f, 0.9f, 5e-4f, true, it == 0);
        sgd_step(att.b, mb, db, 1e-3f, 0.9f, 5e-4f, true, it == 0);
      } else {
        Tensor y = model->logits(x);
      }
      sync();
      if (it >= o.warmup) totals.push_back(now_ms() - t0);
    }
    const double peak_mb = static_cast<double>(memory_stats(dev).peak - base) / (1 << 20);
    const double rss_rise = max_rss_mb() - rss_base;
    const double ms = median(totals);
    std::vector<std::vector<double>> per(model->size());
    if (o.layers && !lcam) {
      for (int it = 0; it < std::max(1, o.iters); ++it) {
        sync();
        double t = now_ms();
        model->forward_range(x, 0, model->size(), nullptr, [&](int i) {
          sync();
          const double t1 = now_ms();
          per[i].push_back(t1 - t);
          t = t1;
        });
      }
    }
    if (o.json) {
      nlohmann::json j{{"impl", "lcam"}, {"arch", o.arch}, {"work", o.train.empty() ? "forward" : "lcam-train-" + o.train}, {"device", device_name(dev)}, {"batch", B},
                       {"threads", cpu::num_threads()}, {"median_ms", ms}, {"images_per_s", 1000.0 * B / ms},
                       {"peak_mem_mb", peak_mb}, {"peak_rss_rise_mb", rss_rise}};
      if (o.layers && !lcam) {
        nlohmann::json l = nlohmann::json::array();
        for (int i = 0; i < model->size(); ++i)
          l.push_back({{"name", model->module_name(i)}, {"kind", model->module_kind(i)}, {"ms", median(per[i])}});
        j["layers"] = l;
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("batch %3d: %9.2f ms/batch  %8.2f images/s  peak %.1f MiB %s, peak RSS rise %.1f MiB\n", B, ms,
                  1000.0 * B / ms, peak_mb, dev == Device::CUDA ? "device (reserved)" : "tensors", rss_rise);
      if (o.layers && !lcam) {
        std::printf("  %-16s %-22s %10s %6s\n", "layer", "kind", "ms", "%");
        double sum = 0;
        for (int i = 0; i < model->size(); ++i) sum += median(per[i]);
        for (int i = 0; i < model->size(); ++i) {
          const double m = median(per[i]);
          std::printf("  %-16s %-22s %10.3f %5.1f%%\n", model->module_name(i).c_str(), model->module_kind(i).c_str(), m, 100.0 * m / sum);
        }
      }
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

Run setup_bench(CLI::App& sub) {
  auto o = std::make_shared<BenchOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "weights file (default: random weights)");
  sub.add_option("--batch", o->batches, "comma-separated batch sizes");
  sub.add_option("--iters", o->iters, "timed repetitions")->check(CLI::PositiveNumber);
  sub.add_option("--warmup", o->warmup, "untimed repetitions first")->check(CLI::NonNegativeNumber);
  sub.add_option("--size", o->size, "input height and width")->check(CLI::Range(32, 4096));
  sub.add_flag("--layers", o->layers, "also time each layer");
  sub.add_option("--train", o->train, "time an L-CAM training step instead: img, fm or img7x7")
      ->check(CLI::IsMember({"img", "fm", "img7x7"}));
  sub.add_flag("--json", o->json, "one JSON object per batch size");
  o->rt.add_to(sub);
  return [o] { return run_bench(*o); };
}

}  // namespace lcam::app

// cmd_bench.cpp — `lcam bench`: timing of pieces of work on VGG-16 / ResNet-50 batches (random
// weights unless --weights, random [0,1] images; several models and works in one run): the
// forward pass, an L-CAM training step, the saliency maps of L-CAM, Grad-CAM(++), Score-CAM or
// RISE, or the AD/IC evaluation of a batch of maps. Median over repetitions after warm-up: ms
// per batch, images/s, seconds per image, peak memory; for the forward pass optionally a
// per-layer table (each module timed with a device sync, so the per-layer sum slightly exceeds
// the unsynchronized total); for any work optionally a profile of its ranges (engine/profile.h:
// each module's forward and backward, the L-CAM step's phases, timed without syncs).
#include <algorithm>  // std::max
#include <cstdio>     // std::printf
#include <functional>  // std::function (the work)
#include <memory>     // std::shared_ptr (the work's state)
#include <optional>   // std::optional (the timed calls' range)
#include <sys/resource.h>  // getrusage (peak RSS)
#include <vector>     // std::vector

#include <fmt/format.h>       // fmt::format
#include <nlohmann/json.hpp>  // nlohmann::json

#include "apps/cli.h"             // RuntimeOptions
#include "apps/progress.h"        // now_seconds, median, parse_int_list, parse_name_list
#include "engine/backend.h"       // cpu::num_threads
#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // cuda::synchronize, device_summary
#include "engine/ops.h"           // sgd_step
#include "engine/profile.h"       // prof::start, rows (--profile)
#include "models/cams.h"          // grad_cam, score_cam, rise, rise_masks
#include "models/evaluation.h"    // class_scores, kept_scores
#include "models/lcam.h"          // Lcam, Attention
#include "models/model.h"         // random_model, load_model

namespace lcam::app {
namespace {

struct BenchOptions {
  RuntimeOptions rt;
  std::string arch, weights, batches = "1,32", train, work = "forward";
  int iters = 5, warmup = 2, size = 224, chunk = 64, rise_masks = 0;
  bool json = false, layers = false, graph = false, profile = false;
};

double now_ms() { return 1000.0 * now_seconds(); }

// Peak resident set size of the process so far, MiB (Linux reports KiB).
double max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// Deterministic [0,1] values (a multiplicative hash): images, and maps for the AD/IC work.
Tensor hashed01(const std::vector<int64_t>& shape, uint32_t salt, Device dev) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<float>((static_cast<uint32_t>(i) * 2654435761u + salt) % 1000) / 1000.f;
  return dev == Device::CPU ? t : t.to(dev);
}

// The work timed per batch: one call of queue() then finish() does one batch. queue() only
// queues device work (so that --graph can capture it); finish() reads what the host needs
// (the training step's loss terms). Works that read results on the host part-way have all of
// their work in queue() and cannot be captured.
struct Work {
  std::function<void()> queue, finish = [] {};
};

// The works whose queue() has no host read part-way, so that --graph can capture it.
bool graph_capturable(const std::string& w) { return w == "forward" || w == "explain" || w.rfind("train-", 0) == 0; }

// Builds the work `w` for batch x [B,3,S,S] (random [0,1]) with one class per image.
// State the work needs across calls (the attention and its optimizer, the RISE masks, the maps
// to threshold) lives in the returned closures.
Work make_work(const BenchOptions& o, const std::string& w, Model& model, const Tensor& x, const std::vector<int>& classes) {
  const Device dev = x.device();
  if (w == "forward") return {[&model, x] { Tensor y = model.logits(x); }};
  if (w.rfind("train-", 0) == 0 || w == "explain") {
    LcamOptions lo;
    lo.method = parse_lcam_method(w == "explain" ? "img" : w.substr(6));
    auto lcam = std::make_shared<Lcam>(model, lo);
    auto att = std::make_shared<Attention>(Attention::init(model.num_classes(), lcam->channels(), 1, dev));
    if (w == "explain") {
      const Tensor rows = Lcam::class_rows(*att, classes, dev);
      return {[lcam, att, x, rows] { Tensor sm = lcam->saliency(*att, x, rows); }};
    }
    struct Sgd {
      Tensor dw, db, mw, mb;
      Lcam::StepIndex idx;
      Lcam::StepStats stats;
      int steps = 0;
    };
    auto s = std::make_shared<Sgd>();
    s->dw = Tensor::empty(att->w.shape(), dev), s->db = Tensor::empty(att->b.shape(), dev);
    s->mw = Tensor::zeros(att->w.shape(), dev), s->mb = Tensor::zeros(att->b.shape(), dev);
    s->idx = lcam->step_index(*att, classes, dev);
    // As lcam train runs it: the step, SGD, then the one read of the loss terms.
    return {[lcam, att, s, x] {
              s->stats = lcam->enqueue_forward_backward(*att, x, s->idx, s->dw, s->db);
              cuda::TraceRange range("sgd");
              sgd_step(att->w, s->mw, s->dw, 1e-3f, 0.9f, 5e-4f, true, s->steps == 0);
              sgd_step(att->b, s->mb, s->db, 1e-3f, 0.9f, 5e-4f, true, s->steps == 0);
              ++s->steps;
            },
            [lcam, s, classes] { (void)lcam->loss_terms(s->stats, classes); }};
  }
  if (w == "gradcam" || w == "gradcampp") {
    const GradCam m = parse_grad_cam(w);
    return {[&model, x, classes, m] { CamResult r = grad_cam(model, x, classes, m); }};
  }
  if (w == "scorecam") return {[&model, x, classes, chunk = o.chunk] { Tensor sm = score_cam(model, x, classes, chunk); }};
  if (w == "rise") {
    const int n = o.rise_masks > 0 ? o.rise_masks : model.config().arch == "vgg16" ? 4000 : 8000;
    Tensor masks = rise_masks(n, 7, 0.5f, o.size, o.size, 0).to(dev);
    return {[&model, x, classes, masks, chunk = o.chunk] { Tensor sm = lcam::rise(model, x, classes, masks, chunk); }};
  }
  if (w == "adic") {
    // The evaluation of one batch of maps: the unmasked scores, then the three thresholds.
    Tensor sm = hashed01({x.dim(0), 1, x.dim(2), x.dim(3)}, 7, dev);
    return {[&model, x, classes, sm] {
      std::vector<float> Y = class_scores(model, x, Tensor(), classes);
      auto O = kept_scores(model, x, sm, {100, 50, 15}, classes);
    }};
  }
  throw InputError(fmt::format("--work: '{}' is unknown", w));
}

const std::vector<std::string> kWorks = {"forward", "train-img", "train-fm", "train-img7x7", "explain", "gradcam",
                                         "gradcampp", "scorecam", "rise", "adic"};

// Every batch size of one work on one model.
void bench_work(const BenchOptions& o, const std::string& arch, const std::string& work_name, Model& model, Device dev,
                const std::vector<int>& batches) {
  auto sync = [&] {
    if (dev == Device::CUDA) cuda::synchronize();
  };
  const bool forward = work_name == "forward";
  const std::string where = dev == Device::CUDA ? cuda::device_summary() : fmt::format("cpu, {} threads, OpenBLAS {}", cpu::num_threads(), cpu::blas_core());
  if (!o.json) std::printf("lcam bench: %s%s, %s on %s, %dx%d, median of %d after %d warm-up\n", work_name.c_str(),
                           o.graph ? " (CUDA graph replays)" : "", arch.c_str(), where.c_str(), o.size, o.size, o.iters, o.warmup);
  for (int B : batches) {
    reset_peak_memory(dev);
    const Tensor x = forward ? Tensor::zeros({B, 3, o.size, o.size}, dev) : hashed01({B, 3, o.size, o.size}, 0, dev);
    std::vector<int> classes(B);
    for (int n = 0; n < B; ++n) classes[n] = (n * 37) % model.num_classes();
    const size_t base = memory_stats(dev).in_use;
    const double rss_base = max_rss_mb();
    const Work work = make_work(o, work_name, model, x, classes);
    // --graph: the first warm-up call runs eagerly (it chooses the cuDNN algorithms), the
    // second captures the work and replays it, every later call replays it.
    cuda::Graph graph;
    std::vector<double> totals;
    for (int it = 0; it < o.warmup + o.iters; ++it) {
      // Peak memory of the steady state: the warm-up's one-off costs (algorithm timing, lazily
      // made state) are not counted.
      if (it == o.warmup) reset_peak_memory(dev);
      sync();
      const double t0 = now_ms();
      {
        // The timed calls inside an NVTX range of their own, so that a kernel profiler can
        // take those alone (tools/gpu-check.sh: `ncu --nvtx --nvtx-include "bench timed/"`),
        // without the warm-up's algorithm searches.
        std::optional<cuda::TraceRange> timed;
        if (it >= o.warmup) timed.emplace("bench timed");
        if (o.graph && it > 0) {
          if (!graph.captured()) graph.capture(work.queue);
          graph.replay();
        } else {
          work.queue();
        }
        work.finish();
        sync();
      }
      if (it >= o.warmup) totals.push_back(now_ms() - t0);
    }
    // Peak memory as the PyTorch side reports it: on the GPU all bytes in use at the peak
    // (weights, input and work, as max_memory_allocated), on the CPU the rise over the start.
    const MemoryStats mem = memory_stats(dev);
    const double peak_mb = static_cast<double>(dev == Device::CUDA ? mem.peak_in_use : mem.peak_in_use - base) / (1 << 20);
    const double reserved_mb = static_cast<double>(mem.peak) / (1 << 20);
    const double rss_rise = max_rss_mb() - rss_base;
    const double ms = median(totals);
    // --profile: the same number of calls again with every range timed (engine/profile.h).
    std::vector<prof::Row> profile;
    if (o.profile) {
      sync();
      prof::start(dev);
      for (int it = 0; it < o.iters; ++it) {
        work.queue();
        work.finish();
      }
      prof::stop();
      profile = prof::rows();
      for (prof::Row& r : profile) r.total_ms /= o.iters, r.self_ms /= o.iters;  // per batch
    }
    double profiled_ms = 0;
    for (const prof::Row& r : profile) profiled_ms += r.depth == 0 ? r.total_ms : 0;
    std::vector<std::vector<double>> per(model.size());
    if (o.layers && forward) {
      for (int it = 0; it < std::max(1, o.iters); ++it) {
        sync();
        double t = now_ms();
        model.forward_range(x, 0, model.size(), nullptr, [&](int i) {
          sync();
          const double t1 = now_ms();
          per[i].push_back(t1 - t);
          t = t1;
        });
      }
    }
    if (o.json) {
      nlohmann::json j{{"impl", "lcam"}, {"arch", arch}, {"work", work_name}, {"device", device_name(dev)}, {"batch", B},
                       {"threads", cpu::num_threads()}, {"blas", cpu::blas_core()}, {"median_ms", ms}, {"images_per_s", 1000.0 * B / ms}, {"s_per_image", ms / 1000.0 / B},
                       {"peak_mem_mb", peak_mb}, {"peak_rss_rise_mb", rss_rise}, {"graph", o.graph}};
      if (dev == Device::CUDA) {
        j["peak_reserved_mb"] = reserved_mb;
        // Convolution shapes so far (this process) that run cuDNN's fused bias/ReLU call.
        const cuda::FusionCounts fc = cuda::conv_fusion_counts();
        j["conv_fusion"] = o.rt.fusion;
        j["conv_fused"] = fc.fused;
        j["conv_fusion_decided"] = fc.decided;
        j["precision"] = o.rt.precision;
        const cuda::Bf16Counts bc = cuda::conv_bf16_counts();
        j["conv_bf16"] = bc.used;
        j["conv_bf16_refused"] = bc.refused;
        // Convolution directions (and fused calls) with an algorithm so far, and how many of
        // them cuDNN reports nondeterministic (none with --deterministic).
        const cuda::AlgoCounts ac = cuda::conv_algo_counts();
        j["deterministic"] = o.rt.deterministic;
        j["conv_algos"] = ac.chosen;
        j["conv_algos_nondeterministic"] = ac.nondeterministic;
      }
      if (o.layers && forward) {
        nlohmann::json l = nlohmann::json::array();
        for (int i = 0; i < model.size(); ++i)
          l.push_back({{"name", model.module_name(i)}, {"kind", model.module_kind(i)}, {"ms", median(per[i])}});
        j["layers"] = l;
      }
      if (o.profile) {
        nlohmann::json l = nlohmann::json::array();
        for (const prof::Row& r : profile)
          l.push_back({{"name", r.name}, {"depth", r.depth}, {"calls", static_cast<double>(r.calls) / o.iters},
                       {"ms", r.total_ms}, {"self_ms", r.self_ms}});
        j["profile"] = l;
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      const cuda::FusionCounts fc = cuda::conv_fusion_counts();
      const cuda::Bf16Counts bc = cuda::conv_bf16_counts();
      const std::string bf16 = o.rt.precision == "bf16" && dev == Device::CUDA
                                   ? fmt::format(", {} convolution shapes in bf16 ({} refused by cuDNN)", bc.used, bc.refused)
                                   : std::string();
      const cuda::AlgoCounts ac = cuda::conv_algo_counts();
      const std::string mem = dev == Device::CUDA ? fmt::format("peak {:.1f} MiB in use on the device ({:.1f} MiB reserved), "
                                                                "{} of {} convolution variants fused so far{}, {} of {} "
                                                                "algorithms nondeterministic",
                                                                peak_mb, reserved_mb, fc.fused, fc.decided, bf16,
                                                                ac.nondeterministic, ac.chosen)
                                                  : fmt::format("peak {:.1f} MiB tensors", peak_mb);
      std::printf("batch %3d: %9.2f ms/batch  %8.2f images/s  %s, peak RSS rise %.1f MiB\n", B, ms, 1000.0 * B / ms, mem.c_str(),
                  rss_rise);
      if (o.layers && forward) {
        std::printf("  %-16s %-22s %10s %6s\n", "layer", "kind", "ms", "%");
        double sum = 0;
        for (int i = 0; i < model.size(); ++i) sum += median(per[i]);
        for (int i = 0; i < model.size(); ++i) {
          const double m = median(per[i]);
          std::printf("  %-16s %-22s %10.3f %5.1f%%\n", model.module_name(i).c_str(), model.module_kind(i).c_str(), m, 100.0 * m / sum);
        }
      }
      if (o.profile) {
        std::printf("  %-52s %6s %10s %10s %6s\n", "range (per batch; nested ranges indented)", "calls", "ms", "self ms", "%");
        for (const prof::Row& r : profile)
          std::printf("  %-52s %6.4g %10.3f %10.3f %5.1f%%\n",
                      (std::string(2 * static_cast<size_t>(r.depth), ' ') + r.name).c_str(),
                      static_cast<double>(r.calls) / o.iters, r.total_ms, r.self_ms,
                      profiled_ms > 0 ? 100.0 * r.total_ms / profiled_ms : 0.0);
      }
    }
    std::fflush(stdout);
  }
}

int run_bench(const BenchOptions& o_in) {
  BenchOptions o = o_in;
  if (!o.train.empty()) o.work = "train-" + o.train;  // --train M is --work train-M
  const std::vector<std::string> archs = parse_name_list("--arch", o.arch, {"vgg16", "resnet50"});
  const std::vector<std::string> works = parse_name_list("--work", o.work, kWorks);
  if (o.layers && (works.size() != 1 || works[0] != "forward")) throw InputError("--layers: only with --work forward");
  if (o.layers && o.graph) throw InputError("--layers: not with --graph (a graph runs as one launch)");
  if (o.profile && o.graph) throw InputError("--profile: not with --graph (a graph runs as one launch)");
  for (const std::string& w : works)
    if (o.graph && !graph_capturable(w))
      throw InputError(fmt::format("--graph: --work {} reads results on the host part-way and cannot be captured "
                                   "(forward, explain and train-* can)", w));
  if (!o.weights.empty() && archs.size() != 1) throw InputError("--weights: give one --arch with it");
  for (const std::string& w : works)
    if (w == "train-img7x7" && std::find(archs.begin(), archs.end(), "resnet50") != archs.end())
      throw InputError("--work train-img7x7 needs --arch vgg16 (it reads VGG-16's 7x7 maps after the last max-pool)");
  const Device dev = o.rt.apply();
  if (o.graph && dev != Device::CUDA) throw InputError("--graph: needs --device cuda (it replays a CUDA graph)");
  if (o.graph && o.warmup < 2)
    throw InputError("--graph: needs --warmup 2 or more (one eager call, then the capture)");
  const std::vector<int> batches = parse_int_list("--batch", o.batches, 1 << 16);
  for (const std::string& arch : archs) {
    std::unique_ptr<Model> model;
    if (o.weights.empty()) {
      model = random_model(ModelConfig::standard(arch), 0);
      model->finalize();
      model->to(dev);
    } else {
      model = load_model(o.weights, arch, dev);
    }
    for (const std::string& w : works) bench_work(o, arch, w, *model, dev, batches);
  }
  return 0;
}

}  // namespace

Run setup_bench(CLI::App& sub) {
  auto o = std::make_shared<BenchOptions>();
  sub.add_option("--arch", o->arch, "vgg16, resnet50, or both comma-separated")->required();
  sub.add_option("--weights", o->weights, "weights file (default: random weights; one --arch only)");
  sub.add_option("--batch", o->batches, "comma-separated batch sizes");
  sub.add_option("--iters", o->iters, "timed repetitions")->transform(kPositive);
  sub.add_option("--warmup", o->warmup, "untimed repetitions first")->transform(kNonNegative);
  sub.add_option("--size", o->size, "input height and width")->transform(integer_in(32, 4096, "an integer from 32 to 4096"));
  sub.add_flag("--layers", o->layers,
               "also time each layer (forward; each layer on its own, a device sync after each: no convolution + max-pool in one pass)");
  sub.add_flag("--profile", o->profile,
               "also time every profiler range of the work (each layer's forward and backward, the L-CAM step's "
               "phases; on the GPU with events, no syncs)");
  auto* work = sub.add_option("--work", o->work,
                              "what one timed call does to a batch (several comma-separated: each in turn): forward "
                              "(the logits), train-img, train-fm, train-img7x7 (an L-CAM training step: forward, backward, "
                              "SGD), explain (L-CAM-Img saliency maps), gradcam, gradcampp, scorecam, rise (their maps), adic "
                              "(the unmasked scores and those at the 100/50/15% thresholds of a given map)");
  sub.add_option("--train", o->train, "same as --work train-M")->check(CLI::IsMember({"img", "fm", "img7x7"}))->excludes(work);
  sub.add_option("--chunk", o->chunk, "masked images per forward pass (scorecam, rise)")->transform(kPositive);
  sub.add_option("--rise-masks", o->rise_masks, "RISE masks (default 4000 vgg16, 8000 resnet50)")->transform(integer_in(1, 65536, "a number of masks from 1 to 65536"));
  sub.add_flag("--graph", o->graph,
               "capture the work in a CUDA graph after one eager call and time its replays (forward, explain, "
               "train-*; --device cuda)");
  sub.add_flag("--json", o->json, "one JSON object per model, work and batch size");
  o->rt.add_to(sub);
  return [o] { return run_bench(*o); };
}

}  // namespace lcam::app

// cmd_train.cpp — `lcam train`: trains the L-CAM attention mechanism on a frozen VGG-16 /
// ResNet-50 with our own SGD (Nesterov momentum, weight decay, separate learning rates for the
// weight and the bias, decayed at the start of chosen epochs). Checkpoints are written
// atomically at the end of every epoch, every --checkpoint-every steps, when --max-steps is
// reached and on Ctrl-C or SIGTERM (with the position inside the epoch, so --resume continues
// exactly where the run stopped: the loader's order and augmentation depend only on the seed);
// a run killed outright resumes from the last of them. A NaN or infinite loss stops the run;
// the checkpoint on disk is then the last good one.
// Test hook: LCAM_KILL_AFTER_STEP=N makes the process SIGKILL itself right after step N.
#include <csignal>  // std::signal, SIGINT
#include <cmath>    // std::isfinite, std::pow
#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::getenv, std::atoll
#include <filesystem>  // std::filesystem::exists
#include <optional>    // std::optional (the step in flight)

#include <fmt/format.h>  // fmt::format

#include "apps/commands.h"         // TrainOptions, run_train
#include "apps/progress.h"         // Progress, image_error, split_items
#include "engine/common.h"         // InputError, InternalError
#include "engine/ops.h"            // sgd_step
#include "engine/tensor.h"         // PendingRead
#include "loaders/batch_loader.h"  // BatchLoader
#include "loaders/dataset.h"       // Dataset
#include "models/checkpoint.h"     // save_checkpoint, load_checkpoint
#include "models/lcam.h"           // Lcam, Attention
#include "models/model.h"          // load_model

namespace lcam::app {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

// "1-7" or "1,3,5" or "1-3,6" -> epoch numbers, each from 1 to kMaxEpoch.
std::vector<int> parse_epochs(const std::string& s) {
  constexpr long long kMaxEpoch = 100000;
  const auto bad = [&] {
    return InputError(fmt::format("--decay-epochs: '{}' is not a list of epochs (1 to {}) like 1-7 or 2,4,6", s, kMaxEpoch));
  };
  const auto epoch = [&](const std::string& t) {
    long long v = 0;
    if (t.empty() || t[0] == '+' || t[0] == '-' || !parse_integer(t, v) || v < 1 || v > kMaxEpoch) throw bad();
    return static_cast<int>(v);
  };
  std::vector<int> out;
  for (const std::string& item : split_items(s)) {
    const size_t dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(epoch(item));
    } else {
      const int a = epoch(item.substr(0, dash)), b = epoch(item.substr(dash + 1));
      if (a > b) throw bad();
      for (int e = a; e <= b; ++e) out.push_back(e);
    }
  }
  return out;
}

}  // namespace

int run_train(TrainOptions o) {
  check_output_file(o.out, "--out", {{"--weights", o.weights}, {"--list", o.list}, {"--init", o.init}});
  if (o.resume && !std::filesystem::exists(o.out))
    throw InputError(fmt::format("{}: no checkpoint to resume (--resume continues the run saved in --out)", o.out));
  const bool vgg = o.arch == "vgg16";
  if (!vgg && o.official_dropout)
    throw InputError("--official-dropout: ResNet-50 has no dropout (VGG-16's classifier has; --official alone is fine)");
  // Defaults: what the official code effectively ran for each backbone.
  double lr_w = vgg ? 1e-2 : 1e-4, lr_b = vgg ? 2e-2 : 2e-4;
  if (!o.lr.empty()) {
    const size_t comma = o.lr.find(',');
    const bool read = parse_real(o.lr.substr(0, comma), lr_w) &&
                      (comma == std::string::npos ? (lr_b = 2 * lr_w, true) : parse_real(o.lr.substr(comma + 1), lr_b));
    // Finite in float too (the step runs in float32): 1e300 would be an infinity there.
    if (!read || !(lr_w > 0) || !(lr_b > 0) || !(lr_w <= 1e30) || !(lr_b <= 1e30))
      throw InputError(fmt::format("--lr: '{}' is not W or W,B (positive learning rates of the weight and the bias, at most 1e30)", o.lr));
  }
  if (o.epochs <= 0) o.epochs = vgg ? 8 : 26;
  if (o.lr_decay <= 0) o.lr_decay = vgg ? 0.75 : 0.95;
  const std::vector<int> decay_at = parse_epochs(o.decay_epochs.empty() ? (vgg ? "1-7" : "1-12") : o.decay_epochs);
  auto rate = [&](double base, int64_t epoch) {
    int n = 0;
    for (int e : decay_at) n += e <= epoch;
    return base * std::pow(o.lr_decay, n);
  };

  const Device dev = o.rt.apply();
  auto model = load_model(o.weights, o.arch, dev);
  Dataset data = Dataset::from_list(o.data, o.list, model->num_classes());
  check_outputs_not_listed(data, o.list, {{"--out", o.out}});
  LcamOptions lo;
  lo.method = parse_lcam_method(o.method);
  lo.ce_only = o.loss == "ce";
  lo.official_selection = o.official || o.official_selection;
  lo.official_dropout = o.official || o.official_dropout;
  Lcam lcam(*model, lo);
  const int C = lcam.channels(), K = model->num_classes();

  CheckpointState st;
  Attention att;
  if (o.resume) {
    att = load_checkpoint(o.out, C, dev, &st);
    if (st.arch != o.arch || st.method != o.method)
      throw InputError(fmt::format("{}: checkpoint is {} / {}, but this run is {} / {}", o.out, st.arch, st.method, o.arch, o.method));
    if (st.seed != o.seed) throw InputError(fmt::format("{}: checkpoint was trained with --seed {}, not {}", o.out, st.seed, o.seed));
    // Its position is counted in batches: another batch size would resume elsewhere.
    if (st.batch_size > 0 && st.batch_size != o.batch)
      throw InputError(fmt::format("{}: checkpoint was trained with --batch {}, not {} (resume with --batch {})", o.out,
                                   st.batch_size, o.batch, st.batch_size));
    std::fprintf(stderr, "resuming %s at epoch %lld, batch %lld (step %lld)\n", o.out.c_str(),
                 static_cast<long long>(st.epoch), static_cast<long long>(st.batch), static_cast<long long>(st.step));
  } else if (!o.init.empty()) {
    att = load_checkpoint(o.init, C, dev, nullptr);
  } else {
    att = Attention::init(K, C, o.seed, dev);
  }
  if (att.w.dim(0) != K)
    throw InputError(fmt::format("{}: its attention has {} classes, the model of --weights {} ({})", o.resume ? o.out : o.init,
                                 att.w.dim(0), K, o.resume ? "--resume" : "--init"));
  st.arch = o.arch;
  st.method = o.method;
  st.seed = o.seed;
  st.batch_size = o.batch;
  if (!st.momentum_w.defined()) {
    st.momentum_w = Tensor::zeros(att.w.shape(), dev);
    st.momentum_b = Tensor::zeros(att.b.shape(), dev);
  }
  LoaderOptions lopt = o.size.loader(o.batch, o.workers, dev, data.size());
  lopt.shuffle = !o.no_shuffle;
  lopt.augment = !o.no_augment;
  lopt.seed = o.seed;
  BatchLoader loader(data, lopt);
  if (st.batch > loader.batches_per_epoch())
    throw InputError(fmt::format("{}: checkpoint is at batch {} of its epoch, but --list gives {} batches of {}: resume "
                                 "with the --list and --batch it was trained with", o.out, st.batch, loader.batches_per_epoch(), o.batch));
  if (st.batch > 0 && st.batch == loader.batches_per_epoch()) {  // stopped right at an epoch's end: it is complete
    st.epoch += 1, st.batch = 0;
    save_checkpoint(o.out, att, st);
  }
  if (st.epoch >= o.epochs) {
    std::fprintf(stderr, "%s has already completed %lld of %d epochs: nothing to do\n", o.out.c_str(),
                 static_cast<long long>(st.epoch), o.epochs);
    return 0;
  }
  Tensor dw = Tensor::empty(att.w.shape(), dev), db = Tensor::empty(att.b.shape(), dev);
  g_interrupted = 0;
  struct Restore {
    void (*int_h)(int), (*term_h)(int);
    ~Restore() { std::signal(SIGINT, int_h), std::signal(SIGTERM, term_h); }
  } restore{std::signal(SIGINT, on_sigint), std::signal(SIGTERM, on_sigint)};
  const char* kill_env = std::getenv("LCAM_KILL_AFTER_STEP");
  const int64_t kill_after = kill_env ? std::atoll(kill_env) : 0;

  std::fprintf(stderr, "training L-CAM-%s (%s loss%s) on %s: %zu images, batch %d, %d epochs, lr %g/%g x%g at epochs %s\n",
               o.method.c_str(), lo.ce_only ? "CE" : "lcam",
               lo.official_selection ? (lo.official_dropout ? ", official selection and dropout" : ", official selection")
                                     : (lo.official_dropout ? ", official dropout" : ""),
               o.arch.c_str(), data.size(), o.batch, o.epochs, lr_w, lr_b, o.lr_decay,
               o.decay_epochs.empty() ? (vgg ? "1-7" : "1-12") : o.decay_epochs.c_str());
  for (int64_t e = st.epoch; e < o.epochs; ++e) {
    st.lr_w = rate(lr_w, e);
    st.lr_b = rate(lr_b, e);
    loader.start_epoch(e, st.batch);
    LossTerms sum;
    int64_t seen = 0;
    Progress progress(fmt::format("epoch {}/{}", e + 1, o.epochs), static_cast<int64_t>(data.size()));
    // A step's loss terms are read only after the next step has been queued: the device always
    // has work while the host waits for that one small copy, reports and takes the next batch.
    // The batch stays in flight with its step: its page-locked images must not be refilled by
    // the loader before the device has copied them.
    // Members go in reverse: an unread PendingRead waits for its copy (and so for the step and
    // the batch's upload before it) before the batch goes back to the loader.
    struct InFlight {
      Batch batch;
      Lcam::StepStats stats;
      int64_t step = 0, seen = 0;
      PendingRead read;
    };
    std::optional<InFlight> inflight;
    auto settle = [&] {
      if (!inflight) return;
      InFlight f = std::move(*inflight);
      inflight.reset();
      const LossTerms t = lcam.loss_terms(f.read.wait(), f.stats, f.batch.labels);
      if (!std::isfinite(t.total)) {
        // A diverged run is a matter of settings (the learning rate), not of the engine.
        const std::string kept = std::filesystem::exists(o.out)
                                     ? fmt::format("{} keeps the last good checkpoint", o.out)
                                     : std::string("no checkpoint was written yet");
        throw InputError(fmt::format("the loss became {} at epoch {}, step {} (ce {}, area {}, tv {}): training "
                                     "diverged, lower --lr; {}",
                                     t.total, e + 1, f.step, t.ce, t.area, t.tv, kept));
      }
      sum.ce += t.ce * t.count, sum.area += t.area * t.count, sum.tv += t.tv * t.count, sum.total += t.total * t.count;
      sum.correct += t.correct, sum.count += t.count;
      const double n = std::max(1, sum.count);
      progress.update(f.seen, fmt::format("loss {:.4f} (ce {:.4f} area {:.4f} tv {:.4f}) masked top-1 {:.1f}%",
                                          sum.total / n, sum.ce / n, sum.area / n, sum.tv / n, 100.0 * sum.correct / n));
    };
    Batch b;
    bool stop = false;
    while (loader.next(b)) {
      for (const auto& f : b.failed) image_error(f, "skipped");
      st.batch = b.index + 1;
      seen += static_cast<int64_t>(b.indices.size() + b.failed.size());
      if (b.indices.empty()) continue;
      Tensor x01 = b.images.to_async(dev);
      // Dropout masks (--official-dropout) from (seed, step): a resumed run draws the same ones.
      const Lcam::StepStats stats = lcam.enqueue_forward_backward(att, x01, lcam.step_index(att, b.labels, dev), dw, db,
                                                                  o.seed * 0x9E3779B97F4A7C15ull + st.step);
      // SGD is queued before the loss is seen: a diverged step stops the run at settle() without
      // a checkpoint of its weights.
      const bool first = st.step == 0;
      sgd_step(att.w, st.momentum_w, dw, static_cast<float>(st.lr_w), static_cast<float>(o.momentum),
               static_cast<float>(o.weight_decay), true, first);
      sgd_step(att.b, st.momentum_b, db, static_cast<float>(st.lr_b), static_cast<float>(o.momentum),
               static_cast<float>(o.weight_decay), true, first);
      ++st.step;
      PendingRead read(stats.values);
      settle();  // the previous step, while this one runs
      inflight = InFlight{std::move(b), stats, st.step, seen, std::move(read)};
      b = Batch();
      if (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0) {
        settle();
        save_checkpoint(o.out, att, st);
      }
      if (kill_after > 0 && st.step == kill_after) std::raise(SIGKILL);
      if (g_interrupted || (o.max_steps > 0 && st.step >= o.max_steps)) {
        stop = true;
        break;
      }
    }
    settle();
    if (!stop && seen > 0) require_images_read(sum.count, static_cast<size_t>(seen), o.list);
    const double n = std::max(1, sum.count);
    if (stop) {
      loader.stop();
      save_checkpoint(o.out, att, st);
      std::fprintf(stderr, "\n%s at step %lld: wrote %s (epoch %lld, batch %lld; --resume continues there)\n",
                   g_interrupted ? "interrupted" : "--max-steps reached", static_cast<long long>(st.step), o.out.c_str(),
                   static_cast<long long>(e + 1), static_cast<long long>(st.batch));
      return g_interrupted ? 130 : 0;
    }
    st.epoch = e + 1;
    st.batch = 0;
    save_checkpoint(o.out, att, st);
    progress.finish(fmt::format("loss {:.4f} (ce {:.4f} area {:.4f} tv {:.4f}) masked top-1 {:.1f}%, lr {:g}/{:g}",
                                sum.total / n, sum.ce / n, sum.area / n, sum.tv / n, 100.0 * sum.correct / n,
                                st.lr_w, st.lr_b));
  }
  std::fprintf(stderr, "wrote %s\n", o.out.c_str());
  return 0;
}

Run setup_train(CLI::App& sub) {
  auto o = std::make_shared<TrainOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "backbone weights: HDF5 with torchvision names, or a torch.save .pth")->required();
  sub.add_option("--method", o->method, "img (L-CAM-Img), fm (L-CAM-Fm) or img7x7 (VGG-16's 7x7 maps)")
      ->check(CLI::IsMember({"img", "fm", "img7x7"}));
  sub.add_option("--loss", o->loss, "lcam (CE + area + TV) or ce (cross-entropy only)")->check(CLI::IsMember({"lcam", "ce"}));
  sub.add_option("--data", o->data, "folder the list's paths are relative to")->required();
  sub.add_option("--list", o->list, "training list: PATH LABEL per line (model-truth labels, see lcam labels)")->required();
  sub.add_option("--epochs", o->epochs, "epochs (default 8 for vgg16, 26 for resnet50)")->transform(kPositive);
  sub.add_option("--batch", o->batch, "images per step")->transform(kPositive);
  sub.add_option("--lr", o->lr, "learning rates W,B of weight and bias (default 1e-2,2e-2 vgg16; 1e-4,2e-4 resnet50)");
  sub.add_option("--lr-decay", o->lr_decay, "factor applied at each decay epoch, above 0, at most 1 (default 0.75 vgg16, 0.95 resnet50)")
      ->check(kFraction & CLI::Validator([](std::string& in) -> std::string {
                double v = 0;
                return parse_real(in, v) && v == 0 ? "'0' is not a decay factor (above 0, at most 1)" : "";
              }, "ABOVE0"));
  sub.add_option("--decay-epochs", o->decay_epochs, "epochs whose start decays the rate (default 1-7 vgg16, 1-12 resnet50)");
  sub.add_option("--momentum", o->momentum, "SGD momentum (Nesterov)")->check(kFraction);
  sub.add_option("--weight-decay", o->weight_decay, "SGD weight decay")->check(kNonNegativeReal);
  sub.add_flag("--official", o->official, "the official code's behaviour: --official-selection and --official-dropout");
  sub.add_flag("--official-dropout", o->official_dropout, "VGG-16's classifier dropout (p=0.5) active during training");
  sub.add_flag("--official-selection", o->official_selection, "regularize every image's maps for every label of the batch");
  CLI::Option* init = sub.add_option("--init", o->init, "start from this checkpoint's attention weights");
  sub.add_flag("--resume", o->resume, "continue the run saved in --out (its weights, not --init's)")->excludes(init);
  sub.add_option("--seed", o->seed, "seed for initialization, order and augmentation")->transform(kSeed);
  sub.add_flag("--no-augment", o->no_augment, "center crops instead of random crops and flips");
  sub.add_flag("--no-shuffle", o->no_shuffle, "list order instead of a seeded shuffle");
  sub.add_option("--max-steps", o->max_steps, "stop (with a checkpoint) after this many steps")->transform(kNonNegative);
  sub.add_option("--checkpoint-every", o->checkpoint_every,
                 "also write the checkpoint every N steps, so that a killed run resumes from there")
      ->transform(kNonNegative);
  sub.add_option("--workers", o->workers, "decoding threads (0 = all cores; at most 4 per hardware thread)")->transform(kWorkers);
  sub.add_option("--out", o->out, "checkpoint to write (HDF5)")->required();
  o->rt.add_to(sub);
  o->size.add_to(sub);
  return [o] { return run_train(*o); };
}

}  // namespace lcam::app

// cmd_demo.cpp — `lcam demo`: the whole paper on a small scale, with nothing to download. The
// committed demo classifier (weights/demo_vgg_scenes.h5: a VGG with VGG-16's builder and names,
// trained on Fashion-MNIST scenes, tools/train_demo_classifier.py) is explained end to end:
//   1. scenes: training scenes (train split) and held-out scenes (test split), with boxes;
//   2. labels: the classifier's top-1 on the training scenes (the model-truth labels);
//   3. train:  L-CAM-Img and L-CAM-Fm on those labels;
//   4. eval:   every method on the held-out scenes: Table 1 (AD/IC), the pointing game and the
//              energy inside the item's box, with two controls that look at nothing (a centred
//              blob and smooth random noise);
//   5. explain: overlays and a grid figure of a few held-out scenes, boxes drawn.
// Everything goes into one folder (--out). The GPU is used when there is one (--device).
#include <cstdio>      // std::printf, std::fprintf
#include <filesystem>  // paths, create_directories, read_symlink
#include <vector>      // std::vector

#include <fmt/format.h>       // fmt::format

#include "apps/commands.h"  // run_scenes, run_labels, run_train, run_eval, run_explain
#include "apps/progress.h"  // now_seconds
#include "apps/saliency.h"  // SaliencyMethods::parse_names
#include "engine/common.h"  // InputError
#include "loaders/idx.h"   // kFashionMnistDir, require_fashion_mnist
#include "models/model.h"   // load_model (checked up front)

namespace fs = std::filesystem;

namespace lcam::app {
namespace {

constexpr const char* kWeightsFile = "demo_vgg_scenes.h5";

struct DemoOptions {
  RuntimeOptions rt;
  std::string out = "lcam-demo", weights, methods;  // methods: empty = all (with --quick: a short list)
  std::string fashion = kFashionMnistDir;
  int64_t train_scenes = 4000, eval_scenes = 200;
  int epochs = 2, batch = 32, rise_masks = 400, figures = 6, size = 112;
  uint64_t seed = 1;
  bool quick = false;
};

// The demo classifier: --weights, else weights/ beside the binary (a bundle), then the source
// tree the binary was built from.
std::string find_weights(const DemoOptions& o) {
  if (!o.weights.empty()) return o.weights;
  std::vector<fs::path> tried;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(exe.parent_path() / "weights" / kWeightsFile);
#ifdef LCAM_WEIGHTS_DIR
  tried.push_back(fs::path(LCAM_WEIGHTS_DIR) / kWeightsFile);
#endif
  std::string list;
  for (const auto& p : tried) {
    if (fs::is_regular_file(p, ec)) return p.string();
    list += (list.empty() ? "" : ", ") + p.string();
  }
  throw InputError(fmt::format("demo classifier {} not found (looked at {}); pass --weights", kWeightsFile, list));
}

void step(int i, const char* what) { std::fprintf(stderr, "\n== demo %d/5: %s\n", i, what); }

int run_demo(DemoOptions o) {
  if (o.quick) o.train_scenes = 1500, o.eval_scenes = 200, o.epochs = 1, o.figures = 0;
  if (o.methods.empty())
    o.methods = o.quick ? "lcam-img,gradcam,center,random" : "lcam-img,lcam-fm,gradcam,gradcampp,scorecam,rise,center,random";
  const double t0 = now_seconds();
  // Everything that can be checked before minutes of work is: methods, weights, output folder.
  const std::vector<std::string> methods = SaliencyMethods::parse_names(o.methods);
  for (const std::string& m : methods)
    if (m == "lcam" || m == "lcam-img7x7")
      throw InputError(fmt::format("--method {}: the demo trains and evaluates lcam-img and lcam-fm; ask for those", m));
  (void)o.rt.apply();  // --device cuda without a usable GPU, refused here rather than after the scenes
  const std::string weights = find_weights(o);
  require_fashion_mnist(o.fashion, true);
  require_fashion_mnist(o.fashion, false);
  if (const std::string arch = read_model_config(weights).arch; arch != "vgg16")
    throw InputError(fmt::format("{}: a {} classifier; the demo explains a VGG like {} (--weights)", weights, arch, kWeightsFile));
  if (load_model(weights, "vgg16", Device::CPU)->num_classes() != 10)
    throw InputError(fmt::format("{}: the demo needs a 10-class classifier (Fashion-MNIST)", weights));
  const fs::path out(o.out), train_dir = out / "scenes" / "train", test_dir = out / "scenes" / "test";
  std::error_code ec;
  fs::create_directories(out, ec);
  if (!fs::is_directory(out)) throw InputError(fmt::format("{}: cannot create output folder (--out)", o.out));
  std::fprintf(stderr, "lcam demo: explaining %s on Fashion-MNIST scenes; everything goes to %s/\n", weights.c_str(),
               o.out.c_str());
  ImageSizeOptions size;
  size.resize = size.crop = o.size;

  step(1, "scenes (training: train split; held-out: test split)");
  ScenesOptions sc;
  sc.scene.size = o.size;
  sc.scene.seed = o.seed;
  sc.quiet = true;
  sc.source = o.fashion;
  sc.out = train_dir.string(), sc.count = o.train_scenes, sc.first = 0, sc.split = "train";
  run_scenes(sc);
  sc.out = test_dir.string(), sc.count = o.eval_scenes, sc.first = 1000000, sc.split = "test";
  run_scenes(sc);

  step(2, "labels (the classifier's top-1 on the training scenes)");
  LabelsOptions lb;
  lb.rt = o.rt, lb.size = size, lb.arch = "vgg16", lb.weights = weights;
  lb.data = train_dir.string(), lb.list = (train_dir / "list.txt").string(), lb.out = (out / "train_labels.txt").string();
  if (int rc = run_labels(lb)) return rc;

  step(3, "train L-CAM (the attention mechanism; the classifier stays frozen)");
  std::vector<std::string> ckpts;
  for (const std::string& m : methods)
    if (m == "lcam-img" || m == "lcam-fm" || m == "lcam-img7x7") {
      TrainOptions tr;
      tr.rt = o.rt, tr.size = size, tr.arch = "vgg16", tr.weights = weights, tr.method = m.substr(5);
      tr.data = train_dir.string(), tr.list = lb.out, tr.epochs = o.epochs, tr.batch = o.batch, tr.seed = o.seed;
      tr.out = (out / fmt::format("lcam_{}.h5", tr.method)).string();
      if (int rc = run_train(tr)) return rc;
      ckpts.push_back(tr.out);
    }

  step(4, "evaluate on the held-out scenes (Table 1 and localization)");
  EvalOptions ev;
  ev.rt = o.rt, ev.size = size, ev.arch = "vgg16", ev.weights = weights;
  ev.data = test_dir.string(), ev.list = (test_dir / "list.txt").string(), ev.boxes = (test_dir / "boxes.txt").string();
  ev.names_file = (test_dir / "classes.txt").string();
  ev.sal.methods = o.methods, ev.sal.lcam_ckpts = ckpts, ev.sal.rise_n = o.rise_masks;
  ev.sal.rise_seed = o.seed, ev.sal.rise_cache = (out / "rise_masks.h5").string();
  ev.report = (out / "report").string();
  ev.batch = o.batch;
  std::printf("\n");
  if (int rc = run_eval(ev)) return rc;

  if (o.figures > 0) {
    step(5, "pictures of held-out scenes");
    ExplainOptions ex;
    ex.rt = o.rt, ex.size = size, ex.arch = "vgg16", ex.weights = weights, ex.quiet = true;
    ex.sal = ev.sal;
    // The controls look at nothing: left out of the pictures.
    ex.sal.methods.clear();
    for (const std::string& m : methods)
      if (m != "center" && m != "random") ex.sal.methods += (ex.sal.methods.empty() ? "" : ",") + m;
    ex.names_file = ev.names_file, ex.boxes = ev.boxes, ex.out = (out / "figures").string();
    for (int i = 0; i < o.figures && i < o.eval_scenes; ++i)
      ex.images.push_back((test_dir / fmt::format("images/scene_{:07d}.png", 1000000 + i)).string());
    if (int rc = run_explain(ex)) return rc;
  }
  std::printf("\ndemo finished in %.0f s. Table: %s.csv/.json; pictures: %s; checkpoints: %s\n", now_seconds() - t0,
              ev.report.c_str(), o.figures > 0 ? (out / "figures" / "grid.png").string().c_str() : "(none with --quick)",
              ckpts.empty() ? "(none)" : (out / "lcam_*.h5").string().c_str());
  return 0;
}

}  // namespace

Run setup_demo(CLI::App& sub) {
  auto o = std::make_shared<DemoOptions>();
  sub.add_option("--out", o->out, "output folder (scenes, checkpoints, report, figures)");
  sub.add_option("--weights", o->weights, "demo classifier (default: weights/demo_vgg_scenes.h5)");
  sub.add_option("--fashion-mnist", o->fashion, "folder with the Fashion-MNIST IDX files (train and t10k, .gz or not)");
  sub.add_option("--method", o->methods, "methods to evaluate (default: lcam-img, lcam-fm, gradcam, gradcampp, scorecam, rise, center, random)");
  sub.add_option("--train-scenes", o->train_scenes, "scenes L-CAM trains on")->transform(integer_in(1, 10000000, "a number of scenes from 1 to 10000000"));
  sub.add_option("--eval-scenes", o->eval_scenes, "held-out scenes evaluated")->transform(integer_in(1, 10000000, "a number of scenes from 1 to 10000000"));
  sub.add_option("--epochs", o->epochs, "L-CAM training epochs")->transform(kPositive);
  sub.add_option("--batch", o->batch, "images per step")->transform(kPositive);
  sub.add_option("--rise-masks", o->rise_masks, "RISE masks (the paper: 4000 for VGG-16; fewer keep the demo short)")
      ->transform(integer_in(1, 65536, "a number of masks from 1 to 65536"));
  sub.add_option("--figures", o->figures, "held-out scenes drawn in the grid")->transform(kNonNegative);
  sub.add_option("--seed", o->seed, "seed of the scenes, the training and the RISE masks")->transform(kSeed);
  sub.add_flag("--quick", o->quick, "a short run (L-CAM-Img, Grad-CAM and the controls on 1500 + 200 scenes, one epoch; no pictures)")
      ->excludes("--train-scenes")
      ->excludes("--eval-scenes")
      ->excludes("--epochs")
      ->excludes("--figures");
  o->rt.add_to(sub);
  return [o] { return run_demo(*o); };
}

}  // namespace lcam::app

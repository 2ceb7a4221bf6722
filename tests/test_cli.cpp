// test_cli.cpp — the `lcam` binary end to end: predict on real sample JPEGs (from
// ../shared/data/imagenet-sample) agrees with the in-process model, bad input of every kind
// exits 2 with a one-line reason naming the culprit, and good images are still classified
// when others in the same call fail.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <algorithm>   // std::find
#include <array>       // std::array
#include <cstdio>      // popen, pclose
#include <filesystem>  // paths, temp dir
#include <fstream>     // std::ifstream, std::ofstream
#include <sstream>     // std::stringstream
#include <sys/wait.h>  // WEXITSTATUS

#include <nlohmann/json.hpp>  // nlohmann::json

#include "engine/cuda_runtime.h"  // cuda::available (the demo on a machine without a GPU)
#include "engine/ops.h"       // normalize_forward, kImagenetMean/Std
#include "loaders/hdf5.h"     // h5::Reader, h5::Writer (checkpoints)
#include "loaders/idx.h"      // kFashionMnistDir
#include "models/checkpoint.h"  // save_checkpoint (explain test)
#include "loaders/image.h"    // load_eval_image, decode_image
#include "models/model.h"     // load_model
#include "tests/test_util.h"  // fixture, source_dir

namespace fs = std::filesystem;
using namespace lcam;

namespace {

struct Result {
  int status;
  std::string out, err;
};

Result run(const std::string& args) {
  const fs::path err_file = fs::temp_directory_path() / "lcam_cli_stderr.txt";
  const std::string cmd = lcam::test::lcam_binary() + " " + args + " 2>" + err_file.string();
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string sample(const std::string& name) {
  return lcam::test::shared_dir() + "/data/imagenet-sample/" + name;
}

const std::string kTiny = "--arch vgg16 --weights " + lcam::test::fixture("tiny_vgg16.weights.h5");

}  // namespace

TEST_SUITE("cli") {

TEST_CASE("predict --json on sample JPEGs matches the in-process model") {
  const std::vector<std::string> imgs = {sample("n01440764_tench.JPEG"), sample("n01530575_brambling.JPEG"),
                                         sample("n01601694_water_ouzel.JPEG")};
  if (!fs::exists(imgs[0])) {
    MESSAGE("cli: skipped (sample images not found at " << imgs[0] << ")");
    return;
  }
  Result r = run("predict " + kTiny + " --device cpu --json --all-logits --topk 3 " + imgs[0] + " " + imgs[1] + " " + imgs[2]);
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(count_lines(r.out) == 3);
  auto model = load_model(lcam::test::fixture("tiny_vgg16.weights.h5"), "vgg16", Device::CPU);
  std::stringstream lines(r.out);
  std::string line;
  for (const auto& img : imgs) {
    std::getline(lines, line);
    auto j = nlohmann::json::parse(line);
    CHECK(j["image"] == img);
    REQUIRE(j["top"].size() == 3);
    Tensor x01 = Tensor::empty({1, 3, 224, 224});
    load_eval_image(img, x01.data());
    Tensor x = Tensor::empty(x01.shape());
    normalize_forward(x, x01, kImagenetMean, kImagenetStd);
    std::vector<float> want = model->logits(x).to_vector();
    std::vector<float> got = j["logits"].get<std::vector<float>>();
    lcam::test::check_close("cli logits " + img, got, lcam::test::to_double(want), 1e-6);
    int best = static_cast<int>(std::max_element(want.begin(), want.end()) - want.begin());
    CHECK(j["top"][0]["class"] == best);
    double p0 = j["top"][0]["prob"], p1 = j["top"][1]["prob"];
    CHECK(p0 >= p1);
    CHECK(p0 <= 1.0);
  }
  Result text = run("predict " + kTiny + " --topk 2 " + imgs[0]);
  CHECK(text.status == 0);
  CHECK(text.out.find("1. ") != std::string::npos);
}

TEST_CASE("torch.save files serve as --weights and --lcam: the same predictions and maps as HDF5") {
  const std::string img = sample("n01440764_tench.JPEG");
  if (!fs::exists(img)) {
    MESSAGE("cli: skipped (sample images not found at " << img << ")");
    return;
  }
  const std::string pth = lcam::test::fixture("pth/tiny_vgg16_lcam.pth");
  Result a = run("predict --arch vgg16 --weights " + pth + " --device cpu --json --all-logits " + img);
  Result b = run("predict " + kTiny + " --device cpu --json --all-logits " + img);
  INFO(a.err);
  REQUIRE(a.status == 0);
  CHECK(a.out == b.out);

  const fs::path dir = fs::temp_directory_path() / "lcam_cli_pth";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ckpt = (dir / "attn.h5").string();  // the same attention, as lcam writes it
  {
    h5::Reader ref(lcam::test::fixture("pth/tiny_vgg16_lcam.ref.h5"));
    CheckpointState st;
    st.arch = "vgg16";
    st.method = "img";
    save_checkpoint(ckpt, Attention{ref.read("attnM.op.weight").reshape({10, 32}), ref.read("attnM.op.bias")}, st);
  }
  // On the CPU, as the predictions above: on a GPU each process times its own convolution
  // algorithms, and two choices may round differently.
  Result p = run("explain --arch vgg16 --weights " + pth + " --lcam " + pth + " --lcam-method img --device cpu --save-maps " +
                 (dir / "a.h5").string() + " --out " + (dir / "a").string() + " " + img);
  Result q = run("explain " + kTiny + " --lcam " + ckpt + " --device cpu --save-maps " + (dir / "b.h5").string() +
                 " --out " + (dir / "b").string() + " " + img);
  INFO(p.err);
  REQUIRE(p.status == 0);
  REQUIRE(q.status == 0);
  h5::Reader ma((dir / "a.h5").string()), mb((dir / "b.h5").string());
  REQUIRE(ma.datasets().size() == 1);
  const std::string name = ma.datasets()[0].name;
  CHECK(ma.read(name).to_vector() == mb.read(name).to_vector());
  // A torch.save file that is not an L-CAM model, as --lcam: named, exit 2.
  Result bad = run("explain " + kTiny + " --lcam " + lcam::test::fixture("pth/tiny_vgg16.legacy.pth") +
                   " --lcam-method img --out " + (dir / "c").string() + " " + img);
  CHECK(bad.status == 2);
  CHECK(bad.err.find("tiny_vgg16.legacy.pth: no attnM.op.weight") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("predict --pillow 13 resizes tall images as Pillow 13 does; 12 as the Pillows before it") {
  // A noisy image three times as tall as wide: Pillow 13 runs the vertical pass first there.
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_pillow";
  fs::create_directories(dir);
  ImageU8 img;
  img.width = 300, img.height = 900;  // Resize(256) shrinks it: 256x768
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i)
    img.rgb[i] = static_cast<uint8_t>((i * 2654435761u >> 13) % 97 + (i / 900) % 128);
  const std::string path = (dir / "tall.png").string();
  write_png(path, img);
  auto model = load_model(lcam::test::fixture("tiny_vgg16.weights.h5"), "vgg16", Device::CPU);
  std::vector<std::vector<float>> got;
  for (const PillowResize v : {PillowResize::k12, PillowResize::k13}) {
    const int major = static_cast<int>(v);
    CAPTURE(major);
    Result r = run("predict " + kTiny + " --device cpu --json --all-logits --pillow " + std::to_string(major) + " " + path);
    INFO(r.err);
    REQUIRE(r.status == 0);
    got.push_back(nlohmann::json::parse(r.out)["logits"].get<std::vector<float>>());
    const PillowResize before = set_pillow_resize(v);
    Tensor x01 = Tensor::empty({1, 3, 224, 224});
    load_eval_image(path, x01.data());
    set_pillow_resize(before);
    Tensor x = Tensor::empty(x01.shape());
    normalize_forward(x, x01, kImagenetMean, kImagenetStd);
    lcam::test::check_close("--pillow logits", got.back(), lcam::test::to_double(model->logits(x).to_vector()), 1e-6);
  }
  CHECK(got[0] != got[1]);  // the two orders do differ on this image
  fs::remove_all(dir);
}

TEST_CASE("bad input exits 2 with one line naming the culprit") {
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_bad";
  fs::create_directories(dir);
  const std::string notimg = (dir / "notes.jpg").string();
  std::ofstream(notimg) << "this is not a JPEG\n";
  const std::string trunc = (dir / "half.h5").string();
  fs::copy_file(lcam::test::fixture("tiny_vgg16.weights.h5"), trunc, fs::copy_options::overwrite_existing);
  fs::resize_file(trunc, fs::file_size(trunc) / 2);
  const std::string good = sample("n01440764_tench.JPEG");
  const std::string samples = lcam::test::shared_dir() + "/data/imagenet-sample";
  const std::string list = lcam::test::shared_dir() + "/data/imagenet-sample.txt";
  int list_lines = 0;  // 100 here; the GPU bundle carries 20 of the photos and their lines
  {
    std::ifstream in(list);
    for (std::string line; std::getline(in, line);) list_lines += line.find_first_not_of(" \r") != std::string::npos;
  }
  const std::string boxes = (dir / "boxes.txt").string();
  std::ofstream(boxes) << "n01440764_tench.JPEG 70 20 300 200\n";

  struct Case {
    const char* what;
    std::string args, needle;
  };
  const Case cases[] = {
      {"missing image", "predict " + kTiny + " /nonexistent/cat.jpg", "/nonexistent/cat.jpg"},
      {"not an image", "predict " + kTiny + " " + notimg, notimg},
      {"missing weights", "predict --arch vgg16 --weights /nonexistent/w.h5 " + good, "/nonexistent/w.h5"},
      {"truncated weights", "predict --arch vgg16 --weights " + trunc + " " + good, trunc},
      {"weights are not HDF5", "predict --arch vgg16 --weights " + notimg + " " + good, notimg},
      {"wrong arch", "predict --arch resnet50 --weights " + lcam::test::fixture("tiny_vgg16.weights.h5") + " " + good,
       "weights are for vgg16"},
      {"unknown arch", "predict --arch vgg19 --weights x.h5 " + good, "--arch"},
      {"unknown flag", "predict " + kTiny + " --bogus " + good, "--bogus"},
      {"no subcommand", "", "give a command first: one of demo, predict"},
      {"not a command", "nosuch", "'nosuch' is not a command (one of demo, predict"},
      {"bad topk", "predict " + kTiny + " --topk 0 " + good, "--topk"},
      {"bad fusion mode", "predict " + kTiny + " --conv-fusion maybe " + good, "--conv-fusion"},
      {"unknown Pillow version", "predict " + kTiny + " --pillow 11 " + good, "--pillow: '11' is not 12 or 13"},
      {"empty Pillow version", "predict " + kTiny + " --pillow '' " + good, "--pillow: '' is not 12 or 13"},
      {"img7x7 on ResNet-50 in bench", "bench --arch resnet50 --work train-img7x7 --device cpu",
       "--work train-img7x7 needs --arch vgg16"},
      {"a file where the output's folder goes", "init --arch vgg16 --out " + notimg + "/w.h5",
       notimg + "/w.h5: " + notimg + " is a file, not a folder (--out)"},
      {"a binary file as class names", "predict " + kTiny + " --classes " + trunc + " " + good,
       trunc + ": not a text file (control byte"},
      {"graph on the CPU", "bench --arch vgg16 --device cpu --graph", "--graph"},
      {"graph of a work with host reads", "bench --arch vgg16 --work adic --graph", "--work adic"},
      {"a count that must be positive", "predict " + kTiny + " --batch 0 " + good, "--batch: '0' is not a positive integer"},
      {"a count past int", "predict " + kTiny + " --topk 99999999999 " + good, "--topk: '99999999999' is too large (at most 2147483647)"},
      {"a count with trailing characters", "predict " + kTiny + " --batch 3x " + good, "--batch: '3x' is not a positive integer"},
      {"threads beyond any machine", "predict " + kTiny + " --threads 65536 " + good, "--threads: '65536' is too large (at most "},
      {"decoding threads beyond any machine", "labels " + kTiny + " --data " + samples + " --list " + list +
       " --workers 1073741824 --out " + (dir / "l.txt").string(), "--workers: '1073741824' is too large"},
      {"a negative seed", "init --arch vgg16 --seed -1 --out " + (dir / "i.h5").string(), "--seed: '-1' is not a seed"},
      {"a seed past 2^64 - 1", "init --arch vgg16 --seed 18446744073709551616 --out " + (dir / "i.h5").string(),
       "--seed: '18446744073709551616' is not a seed"},
      {"NaN where a fraction goes", "train " + kTiny + " --data " + samples + " --list " + list + " --momentum nan --out " +
       (dir / "t.h5").string(), "--momentum: 'nan' is not a number from 0 to 1"},
      {"a learning rate with trailing characters", "train " + kTiny + " --data " + samples + " --list " + list +
       " --lr 3x --out " + (dir / "t.h5").string(), "--lr: '3x' is not W or W,B"},
      {"decay epochs past any run", "train " + kTiny + " --data " + samples + " --list " + list +
       " --decay-epochs 1-2147483647 --out " + (dir / "t.h5").string(), "--decay-epochs: '1-2147483647' is not a list of epochs"},
      {"a decay factor of 0", "train " + kTiny + " --data " + samples + " --list " + list + " --lr-decay 0 --out " +
       (dir / "t.h5").string(), "--lr-decay: '0' is not a decay factor"},
      {"--resume with --init", "train " + kTiny + " --data " + samples + " --list " + list + " --resume --init x.h5 --out " +
       (dir / "t.h5").string(), "--init excludes --resume"},
      {"--all-logits without --json", "predict " + kTiny + " --all-logits " + good, "--all-logits requires --json"},
      {"--quick with --train-scenes", "demo --quick --train-scenes 8", "--train-scenes excludes --quick"},
      {"an empty --out", "init --arch vgg16 --out ''", "--out: empty path"},
      {"scenes past the limit", "scenes --out " + (dir / "s").string() + " --count 9223372036854775807",
       "--count: '9223372036854775807' is not a number of scenes from 1 to 10000000"},
      {"min item above max item", "scenes --out " + (dir / "s").string() + " --size 64 --min-item 40 --max-item 10",
       "--min-item 40 is larger than --max-item 10"},
      {"a learning rate past float", "train " + kTiny + " --data " + samples + " --list " + list + " --lr 1e308 --out " +
       (dir / "t.h5").string(), "--lr: '1e308' is not W or W,B"},
      {"RISE masks past any memory", "explain " + kTiny + " --method rise --rise-masks 2147483647 --out " + (dir / "x").string() +
       " " + good, "--rise-masks: '2147483647' is too large (at most 65536)"},
      {"a class asked for twice", "explain " + kTiny + " --method center --class 3,3 --out " + (dir / "x").string() + " " + good,
       "--class: class 3 is given twice (in '3,3')"},
      {"a leading zero is decimal, not octal (09 is nine)", "scenes --out " + (dir / "s").string() + " --count 09 --size 08",
       "--size: '08' is not an integer from 16 to 1024"},
      {"a trailing comma in the classes to explain", "explain " + kTiny + " --method center --class 3, --out " + (dir / "x").string() +
       " " + good, "--class: '3,' has an empty item"},
      {"a box wholly outside the crop (given in the photo's pixels)", "explain " + kTiny + " --method center --resize 64 --crop 64 "
       "--boxes " + boxes + " --out " + (dir / "x").string() + " " + good, boxes + ":1: box 70 20 300 200 lies wholly outside the 64x64 crop"},
      {"a trailing comma in an integer list", "bench --arch vgg16 --device cpu --batch 1, --iters 1 --warmup 0",
       "--batch: '1,' is not a comma-separated list of integers"},
      {"class names for another model", "predict " + kTiny + " --classes " + list + " " + good,
       list + ": " + std::to_string(list_lines) + " class names, but the model has 10 classes (--classes)"},
      {"a newline in a flag value", "predict " + kTiny + " --batch '1\n2' " + good, "--batch: '1\\x0a2' is not a positive integer"},
      {"a folder as a list", "labels " + kTiny + " --data " + samples + " --list " + dir.string() + " --out " +
       (dir / "l.txt").string(), dir.string() + ": is a folder, not a list file (--list)"},
      // A file to write is checked before any work: a long training run must not end with
      // nowhere to put its checkpoint.
      {"train --out is a folder", "train " + kTiny + " --method img --data " + samples + " --list " + list + " --out " + dir.string(),
       dir.string() + ": is a folder (--out names the file to write)"},
      {"train --out in a missing folder", "train " + kTiny + " --method img --data " + samples + " --list " + list +
       " --out /nonexistent/run/c.h5", "/nonexistent/run/c.h5: folder /nonexistent/run does not exist (--out)"},
      {"train --resume without a checkpoint", "train " + kTiny + " --method img --data " + samples + " --list " + list +
       " --resume --out " + (dir / "never_written.h5").string(), "never_written.h5: no checkpoint to resume"},
      {"eval --report in a missing folder", "eval " + kTiny + " --method center --data " + samples + " --list " + list +
       " --report /nonexistent/table", "/nonexistent/table.json: folder /nonexistent does not exist (--report)"},
      {"labels --out where nothing can be written", "labels " + kTiny + " --data " + samples + " --list " + list +
       " --out /proc/labels.txt", "/proc/labels.txt: cannot write in /proc (--out"},
      {"a batch larger than memory (768 GiB of input)",
       "bench --arch resnet50 --device cpu --batch 65536 --size 1024 --iters 1 --warmup 0", "out of host memory"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    Result r = run(c.args);
    INFO(r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find(c.needle) != std::string::npos);
    CHECK(r.err.find("internal error") == std::string::npos);
  }
  {  // A file whose name starts with '-' is taken for a flag; the message says how to give it.
    const fs::path dash = fs::current_path() / "-dash.jpg";
    fs::copy_file(good, dash, fs::copy_options::overwrite_existing);
    Result r = run("predict " + kTiny + " -dash.jpg");
    CHECK(r.status == 2);
    CHECK(r.err.find("the file -dash.jpg was read as a flag (put -- before file names that start with -)") != std::string::npos);
    CHECK(run("predict " + kTiny + " -- -dash.jpg").status == 0);
    fs::remove(dash);
  }
  {  // A newline inside a name stays inside the one line of its message, written as \x0a.
    Result r = run("predict " + kTiny + " '/nonexistent/two\nlines.jpg'");
    CHECK(r.status == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("two\\x0alines.jpg") != std::string::npos);
  }
  {  // An output that is one of the inputs is refused before anything is written; so is a
     // --rise-cache that is not a cache (a weights file named by mistake stays as it was).
    const std::string weights = (dir / "w.h5").string();
    fs::copy_file(lcam::test::fixture("tiny_vgg16.weights.h5"), weights, fs::copy_options::overwrite_existing);
    const auto size = fs::file_size(weights);
    Result t = run("train --arch vgg16 --weights " + weights + " --data " + samples + " --list " + list + " --out " + weights);
    CHECK(t.status == 2);
    CHECK(t.err.find(weights + ": --out names the file --weights reads") != std::string::npos);
    CHECK(count_lines(t.err) == 1);
    Result c = run("explain " + kTiny + " --method rise --rise-masks 4 --resize 64 --crop 64 --rise-cache " + weights +
                   " --out " + (dir / "pics").string() + " " + good);
    CHECK(c.status == 2);
    CHECK(c.err.find(weights + ": not a RISE mask cache") != std::string::npos);
    CHECK(count_lines(c.err) == 1);
    CHECK(fs::file_size(weights) == size);
    CHECK(run("predict --arch vgg16 --weights " + weights + " --device cpu " + good).status == 0);
  }
  if (fs::exists(lcam::kFashionMnistDir)) {  // a leading 0 is decimal (CLI11 alone would read 010 as octal 8)
    const fs::path s = dir / "zeros";
    Result z = run("scenes --out " + s.string() + " --count 010 --size 016 --min-item 08 --max-item 08");
    CHECK(z.status == 0);
    std::ifstream l(s / "list.txt");
    int lines = 0;
    for (std::string line; std::getline(l, line);) lines += !line.empty();
    CHECK(lines == 10);
    CHECK(lcam::decode_image((s / "images" / "scene_0000000.png").string()).width == 16);
  }
  {  // explain's pictures are named after each image's stem: two images of one name, or an image
     // inside --out that a picture would replace, are refused before any work.
    const fs::path a = dir / "a", b = dir / "b";
    fs::create_directories(a);
    fs::create_directories(b);
    fs::copy_file(good, a / "x.JPEG", fs::copy_options::overwrite_existing);
    fs::copy_file(good, b / "x.JPEG", fs::copy_options::overwrite_existing);
    Result twice = run("explain " + kTiny + " --method center --out " + (dir / "pics").string() + " " + (a / "x.JPEG").string() +
                       " " + (b / "x.JPEG").string());
    CHECK(twice.status == 2);
    CHECK(twice.err.find("both would be written as") != std::string::npos);
    const fs::path png = a / "x.png";
    fs::copy_file(lcam::test::fixture("image/img_97x131.png"), png, fs::copy_options::overwrite_existing);
    const auto before = fs::file_size(png);
    Result inside = run("explain " + kTiny + " --method center --out " + a.string() + " " + png.string());
    CHECK(inside.status == 2);
    CHECK(inside.err.find(png.string() + ": --out " + a.string() + " would overwrite it") != std::string::npos);
    CHECK(fs::file_size(png) == before);
    Result maps = run("explain " + kTiny + " --method center --save-maps " + png.string() + " --out " + (dir / "pics").string() +
                      " " + png.string());
    CHECK(maps.status == 2);
    CHECK(maps.err.find(png.string() + ": --save-maps names the file an IMAGE reads") != std::string::npos);
    CHECK(fs::file_size(png) == before);
  }
  {  // Nor may an output be one of the list's images (read only once the list is).
    const fs::path data = dir / "listed";
    fs::create_directories(data / "sub");
    fs::copy_file(good, data / "sub" / "a.JPEG", fs::copy_options::overwrite_existing);
    const std::string own = (data / "own.txt").string(), image = (data / "sub" / "a.JPEG").string();
    std::ofstream(own) << "sub/a.JPEG 1\n";
    const auto before = fs::file_size(image);
    for (const std::string& args :
         {"train " + kTiny + " --data " + data.string() + " --list " + own + " --batch 1 --epochs 1 --out " + image,
          "labels " + kTiny + " --data " + data.string() + " --list " + own + " --out " + image}) {
      CAPTURE(args);
      Result r = run(args);
      CHECK(r.status == 2);
      CHECK(r.err.find(image + ": --out names image sub/a.JPEG of " + own + "; write elsewhere") != std::string::npos);
    }
    const std::string renamed = (data / "sub" / "a.json").string();  // a report's REPORT.json
    fs::copy_file(image, renamed, fs::copy_options::overwrite_existing);
    std::ofstream(own) << "sub/a.json 1\n";
    Result ev = run("eval " + kTiny + " --method center --data " + data.string() + " --list " + own + " --report " +
                    (data / "sub" / "a").string());
    CHECK(ev.status == 2);
    CHECK(ev.err.find(renamed + ": --report names image sub/a.json of " + own) != std::string::npos);
    CHECK(fs::file_size(image) == before);
    CHECK(fs::file_size(renamed) == before);
  }
  {  // A list none of whose images can be read writes nothing: no checkpoint, no labels, no report.
    const std::string missing = (dir / "missing.txt").string();
    std::ofstream(missing) << "nosuch1.JPEG 1\nnosuch2.JPEG 2\n";
    const std::string ck = (dir / "none.h5").string(), labels = (dir / "none.txt").string(), report = (dir / "none").string();
    for (const std::string& args :
         {"train " + kTiny + " --data " + samples + " --list " + missing + " --batch 2 --epochs 1 --out " + ck,
          "labels " + kTiny + " --data " + samples + " --list " + missing + " --out " + labels,
          "eval " + kTiny + " --method center --data " + samples + " --list " + missing + " --report " + report}) {
      CAPTURE(args);
      Result r = run(args);
      CHECK(r.status == 2);
      CHECK(r.err.find(missing + ": none of its 2 images could be read") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(ck));
    CHECK_FALSE(fs::exists(labels));
    CHECK_FALSE(fs::exists(report + ".json"));
    CHECK_FALSE(fs::exists(report + ".csv"));
  }
  SUBCASE("good images are still classified when others fail") {
    if (!fs::exists(good)) return;
    Result r = run("predict " + kTiny + " --json " + good + " " + notimg + " " + good);
    CHECK(r.status == 2);
    CHECK(count_lines(r.out) == 2);
    CHECK(r.err.find(notimg) != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("demo: bad methods, weights and folders are named before any work") {
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_demo";
  fs::remove_all(dir);
  Result m = run("demo --quick --method lcam-img,cam9 --out " + dir.string());
  CHECK(m.status == 2);
  CHECK(m.err.find("'cam9'") != std::string::npos);
  CHECK(count_lines(m.err) == 1);
  Result w = run("demo --quick --weights " + (dir / "none.h5").string() + " --out " + dir.string());
  CHECK(w.status == 2);
  CHECK(w.err.find("none.h5") != std::string::npos);
  CHECK(count_lines(w.err) == 1);
  Result r = run("demo --quick --weights " + lcam::test::fixture("tiny_resnet50.weights.h5") + " --out " + dir.string());
  CHECK(r.status == 2);
  CHECK(r.err.find("tiny_resnet50.weights.h5: a resnet50 classifier; the demo explains a VGG") != std::string::npos);
  CHECK(count_lines(r.err) == 1);
  Result f = run("demo --quick --fashion-mnist " + (dir / "nofashion").string() + " --out " + dir.string());
  CHECK(f.status == 2);
  CHECK(f.err.find("nofashion/train-images-idx3-ubyte[.gz]: not found") != std::string::npos);
  CHECK(count_lines(f.err) == 1);
  if (!lcam::cuda::available()) {  // no GPU here: refused before the scenes are drawn
    Result g = run("demo --quick --device cuda --out " + dir.string());
    CHECK(g.status == 2);
    CHECK(g.err.find("--device cuda") != std::string::npos);
    CHECK(count_lines(g.err) == 1);
  }
  CHECK_FALSE(fs::exists(dir));  // nothing written
}

TEST_CASE("init writes weights that load, and bench runs") {
  const fs::path w = fs::temp_directory_path() / "lcam_cli_init.h5";
  Result r = run("init --arch resnet50 --seed 3 --num-classes 7 --out " + w.string());
  REQUIRE(r.status == 0);
  auto m = load_model(w.string(), "resnet50", Device::CPU);
  CHECK(m->num_classes() == 7);
  fs::remove(w);
  Result b = run("bench --arch resnet50 --batch 1 --iters 1 --warmup 0 --size 64 --json --device cpu");
  INFO(b.err);
  REQUIRE(b.status == 0);
  auto j = nlohmann::json::parse(b.out);
  CHECK(j["images_per_s"].get<double>() > 0);
}

TEST_CASE("bench: every work runs and reports; flags that do not fit are refused") {
  const std::string tiny = lcam::test::fixture("tiny_resnet50.weights.h5");
  for (const char* w : {"forward", "train-img", "train-fm", "explain", "gradcam", "gradcampp", "scorecam", "rise", "adic"}) {
    CAPTURE(w);
    Result b = run(std::string("bench --arch resnet50 --weights ") + tiny + " --work " + w +
                   " --batch 1,2 --iters 1 --warmup 0 --size 64 --rise-masks 8 --chunk 4 --json --device cpu");
    INFO(b.err);
    REQUIRE(b.status == 0);
    std::istringstream lines(b.out);
    std::string line;
    int n = 0;
    for (int batch : {1, 2}) {
      REQUIRE(std::getline(lines, line));
      auto j = nlohmann::json::parse(line);
      CHECK(j["work"] == w);
      CHECK(j["batch"] == batch);
      CHECK(j["s_per_image"].get<double>() > 0);
      ++n;
    }
    CHECK(n == 2);
  }
  // Several works in one run: one record per work and batch, in order.
  Result two = run("bench --arch resnet50 --weights " + tiny + " --work explain,adic --batch 1 --iters 1 --warmup 0 --size 64 --json --device cpu");
  REQUIRE(two.status == 0);
  CHECK(count_lines(two.out) == 2);
  CHECK(two.out.find("\"work\":\"explain\"") < two.out.find("\"work\":\"adic\""));
  // --profile: the training step's phases, and each module inside them.
  Result prof = run("bench --arch resnet50 --weights " + tiny +
                    " --work train-img --batch 2 --iters 2 --warmup 0 --size 64 --json --profile --device cpu");
  INFO(prof.err);
  REQUIRE(prof.status == 0);
  {
    const auto j = nlohmann::json::parse(prof.out);
    std::vector<std::string> names;
    for (const auto& r : j["profile"]) names.push_back(std::string(r["depth"].get<int>(), ' ') + r["name"].get<std::string>());
    auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    CHECK(has("lcam train step img"));
    CHECK(has(" features"));
    CHECK(has("  layer4.2 bottleneck"));  // a module inside the unmasked features
    CHECK(has(" masked forward"));
    CHECK(has(" backward"));
    CHECK(has("  backward conv1 conv7x7/2+bn+relu"));
    CHECK(has("sgd"));
    CHECK(j["profile"][0]["calls"].get<double>() == 1.0);  // per batch
    // Each convolution names the schedule it ran in a range nested in the op's.
    const std::vector<std::string> schedules = {"direct AVX-512", "direct AVX2", "direct AVX-512, ReLU mask fused",
                                                "direct AVX2, ReLU mask fused", "direct AVX-512, 2x2 max-pool fused",
                                                "direct AVX2, 2x2 max-pool fused", "Winograd F(2x2,3x3)", "Winograd F(4x4,3x3)",
                                                "GEMM over images side by side", "GEMM per image by output channels",
                                                "GEMM per tile of pixels", "GEMM per image", "GEMM per image, col2im"};
    const auto& rows = j["profile"];
    int convs = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string name = rows[i]["name"].get<std::string>();
      if (name != "conv2d_forward" && name != "conv2d_backward_data") continue;
      ++convs;
      REQUIRE(i + 1 < rows.size());
      CHECK(rows[i + 1]["depth"].get<int>() == rows[i]["depth"].get<int>() + 1);
      const std::string next = rows[i + 1]["name"].get<std::string>();
      CHECK_MESSAGE(std::find(schedules.begin(), schedules.end(), next) != schedules.end(), "after " << name << ": " << next);
    }
    CHECK(convs > 10);
  }
  for (const char* bad : {"--work rise --layers", "--work forward --graph --profile", "--work explain --train img", "--work nope", "--work explain, --arch vgg",
                          "--arch resnet50,vgg16 --weights w.h5"}) {
    CAPTURE(bad);
    Result b = run(std::string("bench --device cpu ") + (std::string(bad).find("--arch") == std::string::npos ? "--arch resnet50 " : "") + bad);
    CHECK(b.status == 2);
    CHECK(count_lines(b.err) == 1);
  }
}

}  // TEST_SUITE

TEST_SUITE("cli") {

TEST_CASE("train: checkpoints, and a resumed run equals an uninterrupted one") {
  const std::string samples = lcam::test::shared_dir() + "/data/imagenet-sample";
  if (!fs::exists(samples)) {
    MESSAGE("cli: skipped (sample images not found at " << samples << ")");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_train";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // 20 sample photos with labels in the tiny model's 10 classes.
  std::ifstream in(samples + ".txt");
  std::ofstream list(dir / "list.txt");
  std::string path;
  int label, listed = 0;
  for (; listed < 20 && (in >> path >> label); ++listed) list << path << " " << (label / 10) % 10 << "\n";
  list.close();
  if (listed < 20) {  // the step counts below assume 3 batches of 8 per epoch
    MESSAGE("cli: skipped (needs 20 sample photos, " << samples << " lists " << listed << ")");
    return;
  }
  const std::string common = "train " + kTiny + " --method img --data " + samples + " --list " + (dir / "list.txt").string() +
                             " --epochs 2 --batch 8 --seed 5 --device cpu --out ";
  const std::string a = (dir / "a.h5").string(), b = (dir / "b.h5").string();
  Result ra = run(common + a);
  INFO(ra.err);
  REQUIRE(ra.status == 0);
  Result rb = run(common + b + " --max-steps 4");  // stops inside the second epoch (3 steps each)
  INFO(rb.err);
  REQUIRE(rb.status == 0);
  {
    h5::Reader mid(b);
    CHECK(mid.attr_int("epoch").value() == 1);
    CHECK(mid.attr_int("batch").value() == 1);
    CHECK(mid.attr_int("step").value() == 4);
  }
  {  // Its position is counted in batches of 8: another --batch is refused, the file kept.
    std::string other = common;
    other.replace(other.find("--batch 8"), 9, "--batch 4");
    Result rw = run(other + b + " --resume");
    CHECK(rw.status == 2);
    CHECK(rw.err.find("checkpoint was trained with --batch 8, not 4") != std::string::npos);
    CHECK(h5::Reader(b).attr_int("step").value() == 4);
  }
  Result rr = run(common + b + " --resume");
  INFO(rr.err);
  REQUIRE(rr.status == 0);
  // Killed outright (SIGKILL right after step 5) with a checkpoint every 2 steps: the file holds
  // step 4, and --resume from it ends where the uninterrupted run did.
  const std::string k = (dir / "k.h5").string();
  setenv("LCAM_KILL_AFTER_STEP", "5", 1);
  Result rk = run(common + k + " --checkpoint-every 2");
  unsetenv("LCAM_KILL_AFTER_STEP");
  CHECK((rk.status == 128 + 9 || rk.status == -1));  // died by SIGKILL (as the shell reports it, or directly)
  {
    h5::Reader killed(k);
    CHECK(killed.attr_int("step").value() == 4);
    CHECK(killed.attr_int("epoch").value() == 1);
    CHECK(killed.attr_int("batch").value() == 1);
  }
  Result rkr = run(common + k + " --resume");
  INFO(rkr.err);
  REQUIRE(rkr.status == 0);
  h5::Reader fa(a), fb(b), fk(k);
  CHECK(fb.attr_int("step").value() == 6);
  CHECK(fk.attr_int("step").value() == 6);
  {  // Stopped by --max-steps on the last batch of the last epoch: --resume completes that epoch
     // in the file and has nothing left to do.
    const std::string e = (dir / "e.h5").string();
    REQUIRE(run(common + e + " --max-steps 6").status == 0);
    CHECK(h5::Reader(e).attr_int("epoch").value() == 1);
    Result re = run(common + e + " --resume");
    CHECK(re.status == 0);
    CHECK(re.err.find("has already completed 2 of 2 epochs") != std::string::npos);
    CHECK(h5::Reader(e).attr_int("epoch").value() == 2);
    CHECK(h5::Reader(e).attr_int("batch").value() == 0);
  }
  for (const char* t : {"attnM.op.weight", "attnM.op.bias", "optimizer/weight_momentum", "optimizer/bias_momentum"}) {
    CHECK_MESSAGE(fa.read(t).to_vector() == fb.read(t).to_vector(), t << " differs after resuming");
    CHECK_MESSAGE(fa.read(t).to_vector() == fk.read(t).to_vector(), t << " differs after resuming a killed run");
  }
  CHECK(fa.read("attnM.op.weight").shape() == std::vector<int64_t>{10, 32, 1, 1});
  // Bad input: a list whose labels do not fit the model; a resume without a checkpoint.
  std::ofstream(dir / "bad.txt") << "n01440764_tench.JPEG 10\n";
  Result bad = run("train " + kTiny + " --data " + samples + " --list " + (dir / "bad.txt").string() + " --out " + (dir / "c.h5").string());
  CHECK(bad.status == 2);
  CHECK(bad.err.find("bad.txt:1: label 10 out of range [0,10)") != std::string::npos);
  Result diverged = run(common + (dir / "nan.h5").string() + " --lr 1e30,1e30");
  CHECK(diverged.status == 2);
  CHECK(diverged.err.find("training diverged, lower --lr; no checkpoint was written yet") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "nan.h5"));
  Result nores = run(common + (dir / "none.h5").string() + " --resume");
  CHECK(nores.status == 2);
  CHECK(nores.err.find("none.h5") != std::string::npos);
  fs::remove_all(dir);
}

}  // TEST_SUITE

TEST_SUITE("cli") {

TEST_CASE("predict and labels over a folder of odd files: good ones classified, bad ones named once") {
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_odd";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto fix = [](const char* n) { return fs::path(lcam::test::fixture(std::string("image/") + n)); };
  const std::vector<std::string> good = {"grey.jpg", "cmyk.jpg", "progressive.jpg", "alpha.png", "png_named.JPEG"};
  fs::copy_file(fix("small_grey.jpg"), dir / "grey.jpg");
  fs::copy_file(fix("small_cmyk.jpg"), dir / "cmyk.jpg");
  fs::copy_file(fix("small_progressive.jpg"), dir / "progressive.jpg");
  fs::copy_file(fix("rgba.png"), dir / "alpha.png");
  fs::copy_file(fix("grey.png"), dir / "png_named.JPEG");  // the extension lies
  {
    std::ifstream in(fix("small.jpg"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "truncated.jpg", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  std::ofstream(dir / "notes.jpg") << "not an image\n";
  const std::vector<std::string> bad = {"truncated.jpg", "notes.jpg"};
  std::string args, list;
  for (const auto& g : {good[0], bad[0], good[1], good[2], bad[1], good[3], good[4]}) {
    args += " " + (dir / g).string();
    list += g + "\n";
  }
  std::ofstream(dir / "list.txt") << list;

  Result p = run("predict " + kTiny + " --json --topk 1" + args);
  INFO(p.err);
  CHECK(p.status == 2);
  CHECK(count_lines(p.out) == static_cast<int>(good.size()));
  for (const auto& g : good) CHECK(p.out.find((dir / g).string()) != std::string::npos);
  for (const auto& b : bad) {
    const std::string name = (dir / b).string();
    const size_t at = p.err.find(name);
    CHECK(at != std::string::npos);
    CHECK(p.err.find(name, at + 1) == std::string::npos);  // named once
  }

  Result l = run("labels " + kTiny + " --data " + dir.string() + " --list " + (dir / "list.txt").string() + " --out " +
                 (dir / "labels.txt").string() + " --batch 3");
  INFO(l.err);
  CHECK(l.status == 2);
  std::ifstream out(dir / "labels.txt");
  std::string line;
  std::vector<std::string> names;
  while (std::getline(out, line)) names.push_back(line.substr(0, line.find(' ')));
  CHECK(names == std::vector<std::string>{good[0], good[1], good[2], good[3], good[4]});
  for (const auto& b : bad) CHECK(l.err.find(b) != std::string::npos);
  fs::remove_all(dir);
}

}  // TEST_SUITE

TEST_SUITE("cli") {

TEST_CASE("explain: L-CAM overlays and raw maps in [0,1]; bad classes and missing checkpoints are named") {
  const std::string img = sample("n01440764_tench.JPEG");
  if (!fs::exists(img)) {
    MESSAGE("cli: skipped (sample images not found at " << img << ")");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / "lcam_cli_explain";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ckpt = (dir / "attn.h5").string();
  CheckpointState st;
  st.arch = "vgg16";
  st.method = "img";
  save_checkpoint(ckpt, Attention::init(10, 32, 1, Device::CPU), st);
  Result r = run("explain " + kTiny + " --lcam " + ckpt + " --class top1,3 --save-maps " + (dir / "maps.h5").string() +
                 " --out " + (dir / "pics").string() + " " + img);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(fs::exists(dir / "pics" / "n01440764_tench.png"));
  CHECK(fs::exists(dir / "pics" / "n01440764_tench_lcam_3.png"));
  h5::Reader maps((dir / "maps.h5").string());
  const std::vector<float> m = maps.read("n01440764_tench/lcam/3").to_vector();
  REQUIRE(m.size() == 224u * 224u);
  // Min-max at feature resolution, then upsampled: inside [0,1], reaching close to both ends.
  const float lo = *std::min_element(m.begin(), m.end()), hi = *std::max_element(m.begin(), m.end());
  CHECK(lo >= 0.f);
  CHECK(lo < 0.1f);
  CHECK(hi <= 1.f);
  CHECK(hi > 0.9f);
  {  // A checkpoint whose optimizer state does not match its attention.
    const std::string odd = (dir / "odd_momentum.h5").string();
    h5::Writer w(odd);
    w.write("attnM.op.weight", Tensor::zeros({10, 32, 1, 1}));
    w.write("attnM.op.bias", Tensor::zeros({10}));
    w.write("optimizer/weight_momentum", Tensor::zeros({10, 32, 2, 1}));
    w.write("optimizer/bias_momentum", Tensor::zeros({10}));
    w.commit();
    Result r2 = run("explain " + kTiny + " --lcam " + odd + " --out " + (dir / "pics").string() + " " + img);
    CHECK(r2.status == 2);
    CHECK(r2.err.find(odd + ": optimizer/weight_momentum [10,32,2,1]") != std::string::npos);
  }
  Result bad = run("explain " + kTiny + " --lcam " + ckpt + " --class 12 --out " + (dir / "pics").string() + " " + img);
  CHECK(bad.status == 2);
  CHECK(bad.err.find("--class: '12'") != std::string::npos);
  {  // A checkpoint that no asked-for method reads is a slip in the command, not something to ignore.
    Result unused = run("explain " + kTiny + " --method gradcam --lcam " + ckpt + " --out " + (dir / "pics").string() + " " + img);
    CHECK(unused.status == 2);
    CHECK(unused.err.find("--lcam " + ckpt + ": an L-CAM-img checkpoint, but --method gradcam asks for no L-CAM map") !=
          std::string::npos);
    const std::string fm = (dir / "attn_fm.h5").string();
    CheckpointState fst = st;
    fst.method = "fm";
    save_checkpoint(fm, Attention::init(10, 32, 1, Device::CPU), fst);
    Result half = run("explain " + kTiny + " --method lcam-img --lcam " + ckpt + "," + fm + " --out " + (dir / "pics").string() +
                      " " + img);
    CHECK(half.status == 2);
    CHECK(half.err.find("--lcam " + fm + ": an L-CAM-fm checkpoint, but --method lcam-img asks for no lcam-fm map") !=
          std::string::npos);
  }
  Result gc = run("explain " + kTiny + " --method gradcam,gradcampp --class 3 --out " + (dir / "pics").string() + " " + img);
  CHECK(gc.status == 0);
  CHECK(fs::exists(dir / "pics" / "n01440764_tench_gradcampp_3.png"));
  CHECK(fs::exists(dir / "pics" / "grid.png"));
  // Other image sizes (the demo's 64x64 scenes): --resize / --crop reach the maps.
  Result small = run("explain " + kTiny + " --method gradcam --class 3 --resize 64 --crop 64 --save-maps " +
                     (dir / "small.h5").string() + " --out " + (dir / "small").string() + " " + img);
  CHECK(small.status == 0);
  CHECK(h5::Reader((dir / "small.h5").string()).read("n01440764_tench/gradcam/3").shape() == std::vector<int64_t>{64, 64});
  Result badm = run("explain " + kTiny + " --method gradcam,cam9 --out " + (dir / "pics").string() + " " + img);
  CHECK(badm.status == 2);
  CHECK(badm.err.find("'cam9'") != std::string::npos);
  // eval: the Table 1 layout over eight sample photos, with JSON and CSV reports.
  Result ev = run("eval " + kTiny + " --method lcam,gradcam,gradcampp,scorecam,rise --rise-masks 40 --lcam " + ckpt + " --data " +
                  lcam::test::shared_dir() + "/data/imagenet-sample --list " + lcam::test::shared_dir() +
                  "/data/imagenet-sample.txt --limit 8 --batch 4 --report " + (dir / "table").string());
  INFO(ev.err);
  CHECK(ev.status == 0);
  CHECK(ev.out.find("| gradcampp |") != std::string::npos);
  CHECK(ev.out.find("AD(15%)") != std::string::npos);
  {
    std::ifstream js(dir / "table.json");
    auto j = nlohmann::json::parse(js);
    CHECK(j["images"] == 8);
    REQUIRE(j["methods"].size() == 5);
    CHECK(j["methods"][3]["forward_passes"] == 32);  // Score-CAM: one per channel of the tiny VGG
    CHECK(j["methods"][4]["forward_passes"] == 40);
    const double ad = j["methods"][0]["AD50"];
    CHECK(ad >= 0.0);
    CHECK(ad <= 100.0);
    CHECK(fs::exists(dir / "table.csv"));
  }
  // Misclassification analysis: labels in the tiny model's 10 classes, most of them wrong.
  {
    std::ifstream in(lcam::test::shared_dir() + "/data/imagenet-sample.txt");
    std::ofstream list(dir / "l10.txt");
    std::string p;
    int label;
    for (int i = 0; i < 12 && (in >> p >> label); ++i) list << p << " " << (label / 10) % 10 << "\n";
  }
  Result mis = run("eval " + kTiny + " --method gradcam --data " + lcam::test::shared_dir() +
                   "/data/imagenet-sample --list " + (dir / "l10.txt").string() + " --misclassified " +
                   (dir / "mis").string());
  INFO(mis.err);
  CHECK(mis.status == 0);
  {
    std::ifstream csv(dir / "mis" / "misclassified.csv");
    std::string header, first;
    std::getline(csv, header);
    CHECK(header == "path,true_class,true_name,predicted_class,predicted_name,correlation");
    CHECK(std::getline(csv, first));
    CHECK(fs::exists(dir / "mis" / "misclassified.png"));
  }
  // Several L-CAM variants in one table, the two controls, and localization against boxes.
  {
    const std::string fm = (dir / "attn_fm.h5").string();
    st.method = "fm";
    save_checkpoint(fm, Attention::init(10, 32, 2, Device::CPU), st);
    std::ifstream in(lcam::test::shared_dir() + "/data/imagenet-sample.txt");
    std::ofstream boxes(dir / "boxes.txt");
    std::string p;
    int label;
    for (int i = 0; i < 4 && (in >> p >> label); ++i) boxes << p << " 60 60 160 160\n";
  }
  const std::string data = " --data " + lcam::test::shared_dir() + "/data/imagenet-sample --list " +
                           lcam::test::shared_dir() + "/data/imagenet-sample.txt --limit 6";
  Result loc = run("eval " + kTiny + " --method lcam-img,lcam-fm,center,random --lcam " + ckpt + "," +
                   (dir / "attn_fm.h5").string() + " --boxes " + (dir / "boxes.txt").string() + data + " --report " +
                   (dir / "loc").string());
  INFO(loc.err);
  CHECK(loc.status == 0);
  CHECK(loc.out.find("| PG | energy |") != std::string::npos);
  CHECK(loc.out.find("4 of 6 images have a box") != std::string::npos);
  {
    std::ifstream js(dir / "loc.json");
    auto j = nlohmann::json::parse(js);
    REQUIRE(j["methods"].size() == 4);
    CHECK(j["methods"][1]["method"] == "lcam-fm");
    CHECK(j["methods"][2]["forward_passes"] == 0);
    // The centred blob's maximum is the crop's centre, (111, 111) or so: inside every box.
    CHECK(j["methods"][2]["pointing_game"] == 100.0);
    const double e = j["methods"][2]["energy_in_box"];
    CHECK(e > 40.0);
    CHECK(e < 100.0);
  }
  Result two = run("eval " + kTiny + " --method lcam --lcam " + ckpt + "," + (dir / "attn_fm.h5").string() + data);
  CHECK(two.status == 2);
  CHECK(two.err.find("lcam-img, lcam-fm") != std::string::npos);
  Result same = run("eval " + kTiny + " --method lcam-img --lcam " + ckpt + "," + ckpt + data);
  CHECK(same.status == 2);
  CHECK(same.err.find("both L-CAM-img checkpoints") != std::string::npos);
  Result missing = run("eval " + kTiny + " --method lcam-img7x7 --lcam " + ckpt + data);
  CHECK(missing.status == 2);
  CHECK(missing.err.find("--method lcam-img7x7 needs an L-CAM-img7x7 checkpoint") != std::string::npos);
  std::ofstream(dir / "badboxes.txt") << "a.png 1 2 3\n";
  Result badbox = run("eval " + kTiny + " --method center --boxes " + (dir / "badboxes.txt").string() + data);
  CHECK(badbox.status == 2);
  CHECK(badbox.err.find("badboxes.txt:1: expected PATH X0 Y0 X1 Y1") != std::string::npos);
  Result nock = run("explain " + kTiny + " --out " + (dir / "pics").string() + " " + img);
  CHECK(nock.status == 2);
  CHECK(nock.err.find("--lcam") != std::string::npos);
  fs::remove_all(dir);
}

}  // TEST_SUITE

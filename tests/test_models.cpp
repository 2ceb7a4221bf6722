// test_models.cpp — the model builders against PyTorch: tiny VGG-16 / ResNet-50
// configurations (same layer names as torchvision, random weights, randomized batch-norm
// statistics) whose float64 outputs and gradients tools/make_fixtures.py wrote. Also the
// weights loader's checks: missing, extra, misshapen and mistyped datasets, truncated files,
// the wrong architecture.
#include <doctest/doctest.h>  // TEST_CASE, CHECK
#include <hdf5.h>              // a dataset declared but never written
#include <sys/wait.h>          // waitpid (the crash guard's child process)
#include <unistd.h>            // fork, pipe

#include <cmath>               // std::nanf, INFINITY
#include <csignal>             // SIGSEGV

#include <cstdio>      // std::remove
#include <cstring>     // std::memcmp
#include <filesystem>  // temp paths, file_size, resize_file

#include "engine/backend.h"   // cpu::fuses_conv_pool
#include "engine/common.h"    // InputError
#include "engine/profile.h"   // prof::start, rows (which layers ran fused)
#include "loaders/hdf5.h"     // h5::Reader, h5::Writer
#include "models/model.h"     // load_model, random_model, save_weights
#include "tests/test_util.h"  // fixture, check_close

using namespace lcam;
using lcam::test::check_close;
using lcam::test::fixture;
using lcam::test::to_double;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lcam_test_" + name)).string();
}

// Forward to the split points, backward to the input, compared to the reference file.
// Tolerances: the forward agrees with float64 to ~1e-6 relative; the gradient to the input of
// a deep ReLU/max-pool network only to the float32 floor the fixture records (a few kink
// decisions flip), so dinput is held to 4x that floor (at least 1e-4).
void check_model(const std::string& name) {
  const std::string ref_path = fixture(name + ".ref.h5");
  h5::Reader ref(ref_path);
  REQUIRE(ref.attr_string("magic").value_or("") == "lcam-fixture");
  REQUIRE(ref.attr_int("version").value_or(0) == 1);
  auto model = load_model(fixture(name + ".weights.h5"), ref.attr_string("arch").value(), Device::CPU);
  Tensor x = ref.read("input", true);
  Tape tape;
  Tensor f = model->forward_range(x, 0, model->features_end(), &tape);
  check_close(name + " features", f.to_vector(), to_double(ref.read("features", true)), 2e-6);
  if (ref.has("pool")) {
    Tensor pool = model->forward_range(f, model->features_end(), model->pool_end(), nullptr);
    check_close(name + " pool", pool.to_vector(), to_double(ref.read("pool", true)), 2e-6);
  }
  Tensor logits = model->forward_range(f, model->features_end(), model->size(), &tape);
  check_close(name + " logits", logits.to_vector(), to_double(ref.read("logits", true)), 2e-6);

  Tensor dlogits = ref.read("dlogits", true);
  Tensor df = model->backward_range(tape, dlogits, model->features_end(), model->size());
  check_close(name + " dfeatures", df.to_vector(), to_double(ref.read("dfeatures", true)), 2e-6);
  Tensor dx = model->backward_range(tape, df, 0, model->features_end());
  CHECK(tape.empty());
  const auto want = to_double(ref.read("dinput", true));
  const double floor = lcam::test::rel_err(ref.read("input_f32_dinput", true).to_vector(), want);
  MESSAGE(name << ": float32 PyTorch dinput vs float64: " << floor);
  check_close(name + " dinput", dx.to_vector(), want, std::max(1e-4, 4 * floor));
}

ModelConfig tiny_vgg() {
  ModelConfig c = ModelConfig::standard("vgg16");
  c.cfg = {4, 4, -1, 8, -1, 8, -1};
  c.hidden = 16;
  c.num_classes = 5;
  return c;
}

}  // namespace

TEST_SUITE("models") {

TEST_CASE("tiny VGG-16 matches PyTorch (float64 reference)") { check_model("tiny_vgg16"); }

TEST_CASE("early layers in chunks of the batch: the same logits and input gradient") {
  for (const char* name : {"tiny_vgg16", "tiny_resnet50"}) {
    CAPTURE(name);
    h5::Reader ref(fixture(std::string(name) + ".ref.h5"));
    auto model = load_model(fixture(std::string(name) + ".weights.h5"), ref.attr_string("arch").value(), Device::CPU);
    REQUIRE(model->chunk_end() > 0);
    const Tensor x = lcam::test::randn_t({5, 3, 48, 48}, 41);
    const Tensor dl = lcam::test::randn_t({5, model->num_classes()}, 42);
    auto run = [&](Tensor& logits) {
      Tape tape;
      logits = model->forward_range(x, 0, model->size(), &tape);
      Tensor dx = model->backward_range(tape, dl, 0, model->size());
      CHECK(tape.empty());
      return dx;
    };
    Tensor l_whole, l_chunks;
    const Tensor dx_whole = run(l_whole);
    CHECK(model->chunk_images(x, 0) == 5);  // the default threshold: no split here
    model->set_chunk_bytes(1);
    CHECK(model->chunk_images(x, 0) == 1);
    // The smallest threshold that allows two images per chunk (twice the largest activation).
    size_t lo = 1, hi = size_t{1} << 30;
    while (lo + 1 < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      model->set_chunk_bytes(mid);
      (model->chunk_images(x, 0) <= 1 ? lo : hi) = mid;
    }
    // One image per chunk, then two (5 = 2 + 2 + 1).
    for (size_t bytes : {size_t{1}, hi}) {
      model->set_chunk_bytes(bytes);
      CAPTURE(model->chunk_images(x, 0));
      CHECK(model->chunk_images(x, 0) < 5);
      const Tensor dx = run(l_chunks);
      check_close("chunked logits", l_chunks.to_vector(), to_double(l_whole), 1e-6);
      check_close("chunked input gradient", dx.to_vector(), to_double(dx_whole), 1e-6);
    }
    model->set_chunk_bytes(hi);
    CHECK(model->chunk_images(x, 0) == 2);
  }
}
TEST_CASE("inference through a convolution and its 2x2 max-pool in one pass: the layers' bits") {
  // The tiny VGG's blocks 2 to 5 end in convolutions of 8 to 32 channels, which the direct kernel
  // runs (on CPUs with AVX2/FMA): without a tape or hook each runs with its pool in one pass
  // (block 1's 4 channels take the GEMM, then the pool). A per-layer hook turns that off; odd
  // sizes leave last rows and columns that the pools drop.
  h5::Reader ref(fixture("tiny_vgg16.ref.h5"));
  auto model = load_model(fixture("tiny_vgg16.weights.h5"), ref.attr_string("arch").value(), Device::CPU);
  for (const int size : {48, 45}) {
    CAPTURE(size);
    const Tensor x = lcam::test::randn_t({3, 3, size, size}, 43);
    prof::start(Device::CPU);
    const Tensor fused = model->logits(x);
    prof::stop();
    int fused_ranges = 0;
    for (const prof::Row& r : prof::rows())
      if (r.name.find(" + ") != std::string::npos) ++fused_ranges;
    const Tensor layers = model->forward_range(x, 0, model->size(), nullptr, [](int) {});
    const std::vector<float> a = fused.to_vector(), b = layers.to_vector();
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    if (lcam::cpu::fuses_conv_pool(ConvParams{3, 8, 12, 12, 8, 3, 3, 1, 1, 1, 1})) CHECK(fused_ranges == 4);
    else MESSAGE("convolution + max-pool in one pass: not on this CPU (no AVX2/FMA)");
  }
}

TEST_CASE("tiny ResNet-50 matches PyTorch (float64 reference)") { check_model("tiny_resnet50"); }

TEST_CASE("standard configurations have torchvision's parameter names and counts") {
  Model vgg(ModelConfig::standard("vgg16"));
  int64_t n = 0;
  for (auto& p : vgg.params()) {
    int64_t k = 1;
    for (auto d : p.shape) k *= d;
    n += k;
  }
  CHECK(n == 138357544);  // torchvision vgg16
  CHECK(vgg.params().front().name == "features.0.weight");
  CHECK(vgg.params().back().name == "classifier.6.bias");
  CHECK(vgg.module_name(vgg.features_end() - 1) == "features.28");
  CHECK(vgg.module_name(vgg.pool_end() - 1) == "features.30");
  Model res(ModelConfig::standard("resnet50"));
  n = 0;
  for (auto& p : res.params()) {
    int64_t k = 1;
    for (auto d : p.shape) k *= d;
    if (p.name.find("running_") == std::string::npos) n += k;
  }
  CHECK(n == 25557032);  // torchvision resnet50 trainable parameters
  CHECK(res.module_name(res.features_end() - 1) == "layer4.2");
  CHECK(res.feature_channels() == 2048);
}

TEST_CASE("weights loader rejects bad files with the dataset named") {
  auto model = random_model(tiny_vgg(), 1);
  const std::string good = temp_path("good.h5");
  save_weights(*model, good);
  CHECK_NOTHROW(load_model(good, "vgg16", Device::CPU));

  // Copies `good` with one change: drop a dataset, add one, reshape one or retype one.
  auto variant = [&](const std::string& name, auto&& edit) {
    h5::Reader in(good);
    const std::string path = temp_path(name);
    h5::Writer out(path);
    for (auto& d : in.datasets()) edit(out, d.name, in.read(d.name));
    out.attr_string("arch", "vgg16");
    out.attr_ints("cfg", {4, 4, -1, 8, -1, 8, -1});
    out.attr_int("hidden", 16);
    out.attr_int("num_classes", 5);
    out.commit();
    return path;
  };
  auto message_of = [](const std::string& path, const std::string& arch) {
    try {
      load_model(path, arch, Device::CPU);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string missing = variant("missing.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    if (n != "features.5.weight") w.write(n, t);
  });
  CHECK(message_of(missing, "vgg16").find("missing dataset 'features.5.weight'") != std::string::npos);
  const std::string extra = variant("extra.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    w.write(n, t);
    if (n == "features.0.bias") w.write("features.1.weight", t);
  });
  CHECK(message_of(extra, "vgg16").find("unexpected dataset 'features.1.weight'") != std::string::npos);
  const std::string shape = variant("shape.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    w.write(n, n == "classifier.6.weight" ? Tensor::zeros({6, 16}) : t);
  });
  const std::string msg = message_of(shape, "vgg16");
  CHECK(msg.find("'classifier.6.weight' has shape [6,16], expected [5,16]") != std::string::npos);
  const std::string dtype = variant("dtype.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    w.write(n, n == "features.0.bias" ? Tensor::zeros({4}, Device::CPU, DType::I32) : t);
  });
  CHECK(message_of(dtype, "vgg16").find("'features.0.bias' is int32, expected float32") != std::string::npos);
  // Damaged values: a NaN or an infinity would give believable-looking predictions.
  const std::string nan = variant("nan.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    Tensor c = t.clone();
    if (n == "features.0.weight") c.data()[5] = std::nanf("");
    w.write(n, c);
  });
  CHECK(message_of(nan, "vgg16") == nan + ": dataset 'features.0.weight' holds NaN (at index 5); weights must be finite");
  const std::string inf = variant("inf.h5", [](h5::Writer& w, const std::string& n, const Tensor& t) {
    Tensor c = t.clone();
    if (n == "classifier.0.bias") c.data()[2] = -INFINITY;
    w.write(n, c);
  });
  CHECK(message_of(inf, "vgg16") == inf + ": dataset 'classifier.0.bias' holds an infinity (at index 2); weights must be finite");
  CHECK(message_of(good, "resnet50").find("weights are for vgg16") != std::string::npos);

  const std::string truncated = temp_path("truncated.h5");
  std::filesystem::copy_file(good, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(good) / 2);
  CHECK(message_of(truncated, "vgg16").find(truncated) != std::string::npos);
  CHECK(message_of(temp_path("does-not-exist.h5"), "vgg16").find("cannot open") != std::string::npos);
  const std::string text = temp_path("text.h5");
  std::FILE* tf = std::fopen(text.c_str(), "w");
  std::fputs("these are not weights\n", tf);
  std::fclose(tf);
  CHECK(message_of(text, "vgg16").find("not an HDF5 file") != std::string::npos);
  // Configurations a damaged file's attributes may describe: refused before any model is built,
  // with the file named.
  auto attrs_only = [&](const std::string& name, const std::string& arch, auto&& set) {
    const std::string path = temp_path(name);
    h5::Writer out(path);
    out.attr_string("arch", arch);
    set(out);
    out.commit();
    return path;
  };
  const std::string huge_attr = attrs_only("huge_attr.h5", "resnet50", [](h5::Writer& w) {
    w.attr_ints("blocks", {1, 4295360513LL, 1, 1});
  });
  CHECK(message_of(huge_attr, "resnet50") == huge_attr + ": attribute 'blocks' value 4295360513 out of range");
  const std::string many_blocks = attrs_only("many_blocks.h5", "resnet50", [](h5::Writer& w) {
    w.attr_ints("blocks", {1, 1, 100000, 1});
  });
  CHECK(message_of(many_blocks, "resnet50") == many_blocks + ": resnet50 config: 100000 blocks in a stage (1 to 256)");
  const std::string no_hidden = attrs_only("no_hidden.h5", "vgg16", [](h5::Writer& w) { w.attr_int("hidden", 0); });
  CHECK(message_of(no_hidden, "vgg16") == no_hidden + ": vgg16 config: hidden width 0 out of range [1, 65536]");
  // A dataset whose shape is declared but whose data was never written (a damaged or
  // half-written file): refused before its 4 GiB are allocated.
  const std::string unwritten = temp_path("unwritten.h5");
  {
    const hid_t f = H5Fcreate(unwritten.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {hsize_t{1} << 20, hsize_t{1} << 10};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t ds = H5Dcreate2(f, "x", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(ds >= 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(f);
  }
  try {
    (void)h5::Reader(unwritten).read("x");
    FAIL("no exception");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()) == unwritten + ": dataset 'x' holds 0 bytes, its shape needs 4294967296 (file damaged?)");
  }
  for (const auto& p : {good, missing, extra, shape, dtype, nan, inf, truncated, text, huge_attr, many_blocks, no_hidden, unwritten})
    std::remove(p.c_str());
}

TEST_CASE("a fault inside libhdf5 ends lcam with an error naming the file and exit status 2") {
  // A damaged file can crash Debian's libhdf5 1.10 itself (tools/fuzz.sh found reads out of
  // bounds there). In a child process: a SIGSEGV inside a Reader's libhdf5 scope must end it
  // with lcam's one-line error; one outside such a scope is not the guard's to report.
  const std::string path = temp_path("guarded.h5");
  save_weights(*random_model(tiny_vgg(), 1), path);
  auto child = [&](bool inside) {
    int fd[2];
    REQUIRE(pipe(fd) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // The test runner's own crash handler would report the child's fault as a crashed test
      // case: the child starts from the default action, which the guard then chains to.
      std::signal(SIGSEGV, SIG_DFL);
      std::signal(SIGBUS, SIG_DFL);
      dup2(fd[1], 2);
      close(fd[0]);
      {
        const h5::Reader r(path);
        (void)r.attr_string("arch");
        if (inside) h5::detail::fault_inside_library(r);
      }
      if (!inside) std::raise(SIGSEGV);
      _exit(99);  // not reached: the fault ends the process
    }
    close(fd[1]);
    std::string err;
    char buf[512];
    for (ssize_t k; (k = read(fd[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(k));
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return std::make_pair(status, err);
  };
  const auto [status, err] = child(true);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(err == "lcam: error: " + path + ": damaged HDF5 file (the HDF5 library crashed reading it)\n");
  const auto [status2, err2] = child(false);
  CHECK_FALSE((WIFEXITED(status2) && (WEXITSTATUS(status2) == 2 || WEXITSTATUS(status2) == 99)));  // not swallowed
  CHECK(err2.find("damaged HDF5 file") == std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("a weights file round-trips through save and load") {
  auto model = random_model(tiny_vgg(), 7);
  const std::string path = temp_path("roundtrip.h5");
  save_weights(*model, path);
  model->finalize();
  auto loaded = load_model(path, "vgg16", Device::CPU);
  Tensor x = lcam::test::randn_t({1, 3, 32, 32}, 3);
  check_close("round-trip logits", loaded->logits(x).to_vector(), to_double(model->logits(x)), 0);
  std::remove(path.c_str());
}

}  // TEST_SUITE

// test_torch_file.cpp — reading torch.save files against what torch.save was given
// (tests/fixtures/pth, written by tools/make_pth_fixtures.py): every tensor of the zip
// format (pickle protocols 2 and 4) and of the legacy format, bit for bit after the
// conversion torch's .float() does; scalars; opaque objects skipped; the tiny models loaded
// from .pth giving the same parameters and logits as from their HDF5 files; the attention of
// an L-CAM model; and damaged files (truncated, bytes flipped) failing with an InputError.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <cstdio>      // std::remove, std::FILE
#include <cstring>     // std::memcmp
#include <filesystem>  // temp paths, copy_file, resize_file
#include <fstream>     // std::ifstream, std::ofstream
#include <iterator>    // std::istreambuf_iterator
#include <random>      // std::mt19937
#include <set>         // std::set

#include "engine/common.h"        // InputError
#include "engine/ops.h"           // ops (logits compared)
#include "loaders/hdf5.h"         // h5::Reader
#include "loaders/torch_file.h"   // pth::Reader
#include "models/checkpoint.h"    // load_checkpoint
#include "models/model.h"         // load_model
#include "models/torch_weights.h" // find_backbone
#include "tests/test_util.h"      // fixture, randn_t

using lcam::Device;
using lcam::InputError;
using lcam::Tensor;
using lcam::test::fixture;
namespace pth = lcam::pth;

namespace {

std::string pth_fixture(const std::string& name) { return fixture("pth/" + name); }

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lcam_test_pth_" + name)).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spill(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

// The message of the InputError that opening (and reading everything of) `path` throws.
std::string open_error(const std::string& path) {
  try {
    pth::Reader r(path);
    for (const auto& t : r.tensors()) r.read(t.name);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_SUITE("torch files") {

TEST_CASE("every tensor and scalar of torch.save's formats reads as torch wrote it") {
  lcam::h5::Reader ref(pth_fixture("zoo.ref.h5"));
  std::set<std::string> float_names, int_names;
  for (const auto& d : ref.datasets())
    (d.name.rfind("int/", 0) == 0 ? int_names.insert(d.name.substr(4)) : float_names.insert(d.name));
  for (const char* file : {"zoo.pth", "zoo.p4.pth", "zoo.legacy.pth", "zoo.torch2.pth"}) {
    CAPTURE(file);
    const std::string path = pth_fixture(file);
    CHECK(pth::looks_like(path));
    pth::Reader r(path);
    std::set<std::string> names;
    for (const auto& t : r.tensors()) names.insert(t.name);
    CHECK(names == float_names);
    for (const auto& name : float_names) {
      CAPTURE(name);
      const Tensor got = r.read(name), want = ref.read(name);
      CHECK(same_bits(got, want));
      CHECK(r.find(name)->shape == want.shape());
    }
    for (const auto& name : int_names) {
      CAPTURE(name);
      const Tensor want = ref.read("int/" + name, true);  // these integers are exact in float32 too
      std::vector<int64_t> got = r.read_i64(name);
      REQUIRE(static_cast<int64_t>(got.size()) == want.numel());
      for (size_t k = 0; k < got.size(); ++k) CHECK(static_cast<float>(got[k]) == want.data()[k]);
    }
    CHECK(r.find("f16")->dtype == "float16");
    CHECK(r.find("bf16")->dtype == "bfloat16");
    CHECK(r.find("f64")->dtype == "float64");
    CHECK(r.find("i64")->dtype == "int64");
    CHECK(r.find("flag")->dtype == "bool");
    CHECK(r.find("scalar")->shape.empty());
    CHECK(r.read_i64("i64").back() == (int64_t{1} << 40));
    CHECK_THROWS_AS(r.read_i64("f32"), InputError);
    CHECK(r.int_value("epoch") == 12);
    CHECK(r.int_value("big") == (int64_t{1} << 62) + 5);
    CHECK(r.int_value("neg") == -70000);
    CHECK(r.int_value("yes") == 1);
    CHECK(r.int_value("nested.k") == 3);
    CHECK(r.float_value("lr") == 0.125);
    CHECK(r.string_value("name") == std::string("vgg16 \xc3\xa9"));
    CHECK(r.string_value("tuple.1") == std::string("x"));
    CHECK(r.int_value("epoch") == ref.attr_int("int_epoch"));
    CHECK(r.string_value("name") == ref.attr_string("str_name"));
    // argparse.Namespace is an object lcam does not rebuild: skipped, with its fields.
    CHECK_FALSE(r.find("args"));
    CHECK_FALSE(r.int_value("args.lr"));
    CHECK_FALSE(r.int_value("nothing"));
  }
}

TEST_CASE("HDF5 files, plain pickles and missing files are told apart") {
  CHECK_FALSE(pth::looks_like(fixture("tiny_vgg16.weights.h5")));
  CHECK_FALSE(pth::looks_like(temp_path("does-not-exist.pth")));
  const std::string plain = temp_path("plain.pkl");
  spill(plain, std::string("\x80\x02}q\x00.", 6));  // pickle.dumps({}, 2)
  CHECK(pth::looks_like(plain));
  CHECK(open_error(plain).find("not one written by torch.save") != std::string::npos);
  CHECK(open_error(temp_path("does-not-exist.pth")).find("cannot open") != std::string::npos);
  // A legacy-format file whose object is a list holding itself twice: refused, not unfolded
  // for ever.
  const std::string magic = std::string("\x80\x02\x8a\x0a", 4) +
                            std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10) + ".";
  const std::string version("\x80\x02M\xe9\x03.", 6), info("\x80\x02}.", 4), keys("\x80\x02].", 4);
  const std::string cycle("\x80\x02]q\x00(h\x00h\x00" "e.", 12);
  spill(plain, magic + version + info + cycle + keys);
  CHECK(open_error(plain).find("nested more than 64 levels deep") != std::string::npos);
  std::string doubling("\x80\x02]q\x00", 5);  // L0 = [], L(k) = [L(k-1), L(k-1)]: 2^40 leaves
  for (char k = 1; k <= 40; ++k) {
    const char prev = static_cast<char>(k - 1);
    doubling += std::string("]q") + k + "(h" + prev + "h" + prev + "e";
  }
  spill(plain, magic + version + info + doubling + "." + keys);
  CHECK(open_error(plain).find("values once nested containers are unfolded") != std::string::npos);
  spill(plain, magic + version + info + std::string("\x80\x02]q\x00.", 6) + keys);  // an empty list: no tensors
  CHECK(open_error(plain) == "no error");
  std::remove(plain.c_str());
}

TEST_CASE("the tiny models load from torch.save files as from HDF5: same parameters, same logits") {
  struct Case {
    const char* pth;
    const char* h5;
    const char* arch;
  };
  for (const Case& c : {Case{"tiny_vgg16.legacy.pth", "tiny_vgg16.weights.h5", "vgg16"},
                        Case{"tiny_resnet50.ckpt.pth", "tiny_resnet50.weights.h5", "resnet50"},
                        Case{"tiny_vgg16_lcam.pth", "tiny_vgg16.weights.h5", "vgg16"}}) {
    CAPTURE(c.pth);
    const std::string path = pth_fixture(c.pth);
    const lcam::ModelConfig got = lcam::read_model_config(path), want = lcam::read_model_config(fixture(c.h5));
    CHECK(got.arch == want.arch);
    CHECK(got.cfg == want.cfg);
    CHECK(got.hidden == want.hidden);
    CHECK(got.width == want.width);
    CHECK(got.blocks == want.blocks);
    CHECK(got.num_classes == want.num_classes);
    auto a = lcam::load_model(path, c.arch, Device::CPU);
    auto b = lcam::load_model(fixture(c.h5), c.arch, Device::CPU);
    const Tensor x = lcam::test::randn_t({2, 3, 64, 64}, 5);
    CHECK(same_bits(a->logits(x), b->logits(x)));
    // Unfolded parameters, tensor by tensor, against the HDF5 file.
    pth::Reader r(path);
    lcam::h5::Reader h(fixture(c.h5));
    const lcam::TorchBackbone bb = lcam::find_backbone(r);
    CHECK(bb.names.size() >= h.datasets().size());
    for (const auto& d : h.datasets()) {
      CAPTURE(d.name);
      REQUIRE(bb.names.count(d.name));
      CHECK(same_bits(r.read(bb.names.at(d.name)), h.read(d.name)));
    }
  }
  const std::string vgg = pth_fixture("tiny_vgg16.legacy.pth");
  try {
    lcam::load_model(vgg, "resnet50", Device::CPU);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("weights are for vgg16") != std::string::npos);
  }
  try {
    lcam::load_model(pth_fixture("zoo.pth"), "", Device::CPU);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("no VGG-16 or ResNet-50 state_dict") != std::string::npos);
  }
}

TEST_CASE("the attention of an L-CAM model saved by torch.save") {
  lcam::CheckpointState st;
  const lcam::Attention a = lcam::load_checkpoint(pth_fixture("tiny_vgg16_lcam.pth"), 32, Device::CPU, &st);
  lcam::h5::Reader ref(pth_fixture("tiny_vgg16_lcam.ref.h5"));
  CHECK(same_bits(a.w, ref.read("attnM.op.weight").reshape({10, 32})));
  CHECK(same_bits(a.b, ref.read("attnM.op.bias")));
  CHECK(st.epoch == 3);
  CHECK(st.method.empty());  // the variant comes from --lcam-method
  try {
    lcam::load_checkpoint(pth_fixture("tiny_vgg16_lcam.pth"), 64, Device::CPU, nullptr);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("do not fit [K,64,1,1]") != std::string::npos);
  }
  try {
    lcam::load_checkpoint(pth_fixture("tiny_vgg16.legacy.pth"), 32, Device::CPU, nullptr);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("no attnM.op.weight") != std::string::npos);
  }
}

TEST_CASE("damaged torch.save files fail with an InputError naming the file") {
  for (const char* file : {"zoo.pth", "zoo.legacy.pth", "zoo.p4.pth", "zoo.torch2.pth"}) {
    CAPTURE(file);
    const std::string good = slurp(pth_fixture(file));
    const std::string path = temp_path(std::string("damaged_") + file);
    // Every truncation point of the small files: the zip loses its directory, the legacy
    // format its pickle or the end of a storage.
    for (size_t n = 0; n < good.size(); n += 7) {
      CAPTURE(n);
      spill(path, good.substr(0, n));
      const std::string msg = open_error(path);
      CHECK(msg.find(path) != std::string::npos);
    }
    // Bytes overwritten at random: read or refused, never a crash (the sanitizer build runs
    // this too).
    std::mt19937 rng(7);
    int refused = 0;
    for (int k = 0; k < 400; ++k) {
      std::string bad = good;
      for (int j = 0; j < 1 + k % 4; ++j)
        bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
      spill(path, bad);
      refused += open_error(path) != "no error";
    }
    CHECK(refused > 0);
    std::remove(path.c_str());
  }
}

}  // TEST_SUITE

// cmd_init.cpp — `lcam init`: writes a weights file with torchvision's default random
// initialisation (seeded), for trying the tools without pretrained weights. Random weights
// classify nothing: the predictions they give are meaningless.
#include <cstdio>  // std::printf

#include "apps/cli.h"      // Run
#include "models/model.h"  // ModelConfig, random_model, save_weights

namespace lcam::app {

Run setup_init(CLI::App& sub) {
  struct Opts {
    std::string arch, out;
    uint64_t seed = 0;
    int num_classes = 1000;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--seed", o->seed, "random seed")->transform(kSeed);
  sub.add_option("--num-classes", o->num_classes, "classifier outputs")->transform(integer_in(1, 65536, "a number of classes from 1 to 65536"));
  sub.add_option("--out", o->out, "weights file to write (HDF5)")->required();
  return [o] {
    check_output_file(o->out, "--out");
    ModelConfig cfg = ModelConfig::standard(o->arch);
    cfg.num_classes = o->num_classes;
    auto model = random_model(cfg, o->seed);
    save_weights(*model, o->out);
    std::printf("wrote %s (%s, random init, seed %llu)\n", o->out.c_str(), o->arch.c_str(),
                static_cast<unsigned long long>(o->seed));
    return 0;
  };
}

}  // namespace lcam::app

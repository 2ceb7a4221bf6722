// main.cpp — the `lcam` binary: dispatches subcommands from one table and turns errors into
// exit statuses (0 ok, 2 bad usage, bad input or out of memory with a one-line reason, 1 internal
// error).
#include <cstdio>     // std::fprintf
#include <exception>  // std::exception
#include <filesystem> // is_regular_file (a file name taken for a flag)
#include <malloc.h>   // mallopt
#include <new>        // std::bad_alloc

#include <CLI/CLI.hpp>    // CLI::App, CLI::ParseError
#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"        // Command, setup_*
#include "apps/progress.h"   // one_line
#include "engine/backend.h"  // cpu::set_num_threads
#include "engine/common.h"   // InputError, OutOfMemory

namespace {

const lcam::app::Command kCommands[] = {
    {"demo", "train and evaluate L-CAM on the built-in scenes classifier: Table 1, localization, pictures",
     lcam::app::setup_demo},
    {"predict", "classify images with a VGG-16 / ResNet-50 weights file", lcam::app::setup_predict},
    {"scenes", "write a reproducible Fashion-MNIST scenes data set (images, labels, boxes)",
     lcam::app::setup_scenes},
    {"init", "write a weights file with torchvision's random initialisation", lcam::app::setup_init},
    {"labels", "write the model-truth label (top-1 prediction) of every image of a list",
     lcam::app::setup_labels},
    {"train", "train the L-CAM attention mechanism on a frozen backbone", lcam::app::setup_train},
    {"explain", "saliency maps as heat-map overlays and a grid (L-CAM, Grad-CAM, Grad-CAM++, Score-CAM, RISE)",
     lcam::app::setup_explain},
    {"eval", "Average Drop / Increase in Confidence of saliency methods over a list (Table 1)",
     lcam::app::setup_eval},
    {"bench", "time a work (forward, training step, a saliency method, AD/IC): images/s, peak memory, per layer/op",
     lcam::app::setup_bench},
    {"bench-data", "time image decoding + transforms: images/s per core and with all cores",
     lcam::app::setup_bench_data},
};

}  // namespace

int main(int argc, char** argv) {
  // Activations of a step are freed and allocated again at the same sizes every step. Above
  // glibc's mmap threshold (at most 32 MiB, adjusted as it goes) each one would be a fresh
  // mapping, zeroed by the kernel page by page; kept on the heap they are reused.
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1024 << 20);
  CLI::App app{"lcam — learned class activation maps for VGG-16 and ResNet-50"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lcam 0.1");
  std::vector<std::pair<CLI::App*, lcam::app::Run>> subs;
  for (const auto& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    subs.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = lcam::app::one_line(e.what());  // a value may hold a newline
    bool any = false;
    for (auto& [sub, run] : subs) any = any || sub->parsed();
    if (!any) {  // CLI11 says only "A subcommand is required": name the commands
      std::string names;
      for (const auto& c : kCommands) names += (names.empty() ? "" : ", ") + std::string(c.name);
      const bool word = argc > 1 && argv[1][0] != '-';
      what = word ? "'" + lcam::app::one_line(argv[1]) + "' is not a command (one of " + names + ")"
                  : "give a command first: one of " + names;
    }
    // A file whose name starts with '-' is taken for a flag: say how to give it.
    for (int i = 1; i < argc && std::string(argv[i]) != "--"; ++i) {
      std::error_code ec;
      if (argv[i][0] == '-' && argv[i][1] != '\0' && std::filesystem::is_regular_file(argv[i], ec)) {
        what += "; the file " + lcam::app::one_line(argv[i]) + " was read as a flag (put -- before file names that start with -)";
        break;
      }
    }
    std::fprintf(stderr, "lcam: error: %s (see lcam --help)\n", what.c_str());
    return 2;
  }
  // The out-of-memory hint names the flags that bound memory, where the command has them.
  std::string hint;
  for (auto& [sub, run] : subs)
    if (sub->parsed()) {
      const bool batch = sub->get_option_no_throw("--batch") != nullptr, chunk = sub->get_option_no_throw("--chunk") != nullptr;
      if (batch || chunk)
        hint = fmt::format(" (a smaller {}{}{} needs less)", batch ? "--batch" : "", batch && chunk ? " or " : "",
                           chunk ? "--chunk" : "");
    }
  try {
    for (auto& [sub, run] : subs)
      if (sub->parsed()) return run();
  } catch (const lcam::InputError& e) {
    std::fprintf(stderr, "lcam: error: %s\n", lcam::app::one_line(e.what()).c_str());
    return 2;
  } catch (const lcam::OutOfMemory& e) {
    std::fprintf(stderr, "lcam: error: %s%s\n", lcam::app::one_line(e.what()).c_str(), hint.c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lcam: error: out of host memory%s\n", hint.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lcam: internal error: %s\n", lcam::app::one_line(e.what()).c_str());
    return 1;
  }
  return 2;
}

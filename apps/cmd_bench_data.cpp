// cmd_bench_data.cpp — `lcam bench-data`: times the input pipeline of evaluation, image file ->
// [0,1] 3x224x224 float tensor (read, decode, Resize(256), CenterCrop(224), ToTensor; the same
// bytes as PIL + torchvision), over every image of a directory or list, with 1..N std::threads
// sharing the images; reports images/s and ms/image per thread count (median over repetitions) and
// a per-stage split on one thread. tools/bench_data_torch.py does the same work with PIL +
// torchvision and prints the same JSON fields.
// Deliberately omits: normalization and the host-to-device copy (done by the batch loader and the
// device), random-crop training transforms, and DCT-domain JPEG scaling (faster but not Pillow's
// pixels).
#include <algorithm>   // std::sort
#include <atomic>      // std::atomic<size_t> work counter
#include <chrono>      // std::chrono::steady_clock
#include <cstdio>      // std::printf
#include <exception>   // std::exception_ptr, std::current_exception, std::rethrow_exception
#include <filesystem>  // directory listing, is_regular_file
#include <fstream>     // reading the list
#include <memory>      // std::make_shared
#include <mutex>       // std::mutex guarding the first error
#include <sstream>     // parsing --threads and list lines
#include <string>      // std::string
#include <system_error>  // std::system_error (a thread the system refuses)
#include <thread>      // std::thread, hardware_concurrency
#include <vector>      // std::vector

#include <fmt/format.h>       // fmt::format
#include <nlohmann/json.hpp>  // nlohmann::json

#include "apps/cli.h"        // Run, setup_bench_data, max_threads
#include "apps/progress.h"   // now_seconds, median, parse_int_list
#include "engine/common.h"   // InputError
#include "loaders/image.h"   // read_file_bytes, eval_transform_memory, EvalTimings

namespace lcam::app {
namespace {

struct BenchDataOptions {
  std::string data, list, threads = "1,2";
  int reps = 5, resize = 256, crop = 224;
  bool json = false;
};

// The images: DIR/PATH for each `PATH [LABEL]` line of the list, or every regular file in DIR
// (sorted by name).
std::vector<std::string> image_paths(const BenchDataOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(o.data, ec)) throw InputError(o.data + ": not a directory");
  std::vector<std::string> paths;
  if (!o.list.empty()) {
    std::ifstream f(o.list);
    if (!f) throw InputError(o.list + ": cannot open list");
    std::string line;
    while (std::getline(f, line)) {
      std::istringstream ss(line);
      std::string rel;
      if (!(ss >> rel) || rel[0] == '#') continue;
      paths.push_back((fs::path(o.data) / rel).string());
    }
    if (paths.empty()) throw InputError(o.list + ": no images listed");
  } else {
    for (const auto& e : fs::directory_iterator(o.data, ec))
      if (e.is_regular_file()) paths.push_back(e.path().string());
    if (ec) throw InputError(o.data + ": cannot list (" + ec.message() + ")");
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) throw InputError(o.data + ": no files");
  }
  return paths;
}

// One pass over all images with `threads` threads taking the next image from a shared counter;
// returns the wall time in seconds. The first InputError (an undecodable file) is rethrown.
double run_pass(const std::vector<std::string>& paths, int threads, const BenchDataOptions& o) {
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const size_t per = static_cast<size_t>(3) * o.crop * o.crop;
  auto work = [&] {
    std::vector<float> out(per);
    try {
      for (size_t i = next++; i < paths.size(); i = next++) {
        const std::vector<uint8_t> bytes = read_file_bytes(paths[i]);
        eval_transform_memory(bytes.data(), bytes.size(), paths[i], out.data(), o.resize, o.crop);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = paths.size();
    }
  };
  const double t0 = now_seconds();
  std::vector<std::thread> pool;
  try {
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  } catch (const std::system_error& e) {  // the system's thread limit: stop the ones started
    next = paths.size();
    for (auto& th : pool) th.join();
    throw InputError(fmt::format("--threads {}: could not start thread {} ({})", threads, pool.size() + 2, e.what()));
  }
  work();
  for (auto& th : pool) th.join();
  const double seconds = now_seconds() - t0;
  if (error) std::rethrow_exception(error);
  return seconds;
}

// Per-stage seconds over all images on this thread: read, decode, resize, crop + to_float.
struct Stages {
  double read = 0, decode = 0, resize = 0, to_float = 0;
};

Stages run_stages(const std::vector<std::string>& paths, const BenchDataOptions& o) {
  Stages s;
  EvalTimings t;
  std::vector<float> out(static_cast<size_t>(3) * o.crop * o.crop);
  for (const auto& p : paths) {
    const double t0 = now_seconds();
    const std::vector<uint8_t> bytes = read_file_bytes(p);
    s.read += now_seconds() - t0;
    eval_transform_memory(bytes.data(), bytes.size(), p, out.data(), o.resize, o.crop, &t);
  }
  s.decode = t.decode;
  s.resize = t.resize;
  s.to_float = t.to_float;
  return s;
}

int run_bench_data(const BenchDataOptions& o) {
  const std::vector<int> counts = parse_int_list("--threads", o.threads, max_threads());
  const std::vector<std::string> paths = image_paths(o);
  const double n = static_cast<double>(paths.size());
  run_pass(paths, 1, o);  // warm-up: page cache, allocator; fails early on a bad file
  if (!o.json)
    std::printf("lcam bench-data: %zu images from %s, Resize(%d) + CenterCrop(%d) + ToTensor, "
                "median of %d repetitions, %u hardware threads\n",
                paths.size(), o.data.c_str(), o.resize, o.crop, o.reps,
                std::thread::hardware_concurrency());
  for (int threads : counts) {
    std::vector<double> secs;
    for (int r = 0; r < o.reps; ++r) secs.push_back(run_pass(paths, threads, o));
    const double med = median(secs);
    const double ips = n / med;
    if (o.json) {
      nlohmann::json j{{"impl", "lcam"}, {"mode", "threads"}, {"threads", threads},
                       {"images", paths.size()}, {"reps", o.reps}, {"median_s", med},
                       {"images_per_s", ips}, {"images_per_s_per_worker", ips / threads},
                       {"ms_per_image", 1000.0 * med / n}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("threads %3d: %9.1f images/s  %7.3f ms/image  (%.1f images/s per thread)\n",
                  threads, ips, 1000.0 * med / n, ips / threads);
    }
    std::fflush(stdout);
  }
  // Stage split on one thread, averaged over the repetitions.
  Stages total;
  for (int r = 0; r < o.reps; ++r) {
    const Stages s = run_stages(paths, o);
    total.read += s.read;
    total.decode += s.decode;
    total.resize += s.resize;
    total.to_float += s.to_float;
  }
  const double k = 1000.0 / (n * o.reps);  // seconds summed over reps -> ms per image
  if (o.json) {
    nlohmann::json j{{"impl", "lcam"}, {"mode", "stages"}, {"threads", 1},
                     {"images", paths.size()}, {"reps", o.reps},
                     {"stages_ms", {{"read", total.read * k}, {"decode", total.decode * k},
                                    {"resize", total.resize * k},
                                    {"crop_to_float", total.to_float * k}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("stages, 1 thread, ms/image: read %.3f  decode %.3f  resize %.3f  "
                "crop+to_float %.3f  (sum %.3f)\n",
                total.read * k, total.decode * k, total.resize * k, total.to_float * k,
                (total.read + total.decode + total.resize + total.to_float) * k);
  }
  return 0;
}

}  // namespace

Run setup_bench_data(CLI::App& sub) {
  auto o = std::make_shared<BenchDataOptions>();
  sub.add_option("--data", o->data, "directory of images")->required();
  sub.add_option("--list", o->list, "list of `PATH [LABEL]` lines, PATH relative to --data "
                                    "(default: every file in --data)");
  sub.add_option("--threads", o->threads, "comma-separated thread counts to time");
  sub.add_option("--reps", o->reps, "timed passes over all images per thread count")
      ->transform(integer_in(1, 1000, "an integer from 1 to 1000"));
  sub.add_option("--resize", o->resize, "Resize: shorter side")->transform(integer_in(1, 4096, "an integer from 1 to 4096"));
  sub.add_option("--crop", o->crop, "CenterCrop: side")->transform(integer_in(1, 4096, "an integer from 1 to 4096"));
  sub.add_flag("--json", o->json, "one JSON object per thread count, then one for the stages");
  return [o] { return run_bench_data(*o); };
}

}  // namespace lcam::app

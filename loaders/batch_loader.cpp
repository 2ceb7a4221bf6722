// batch_loader.cpp — see batch_loader.h. Workers claim whole batches in index order under one
// mutex and publish them into a map; the consumer takes them strictly in order. Buffers are
// pooled: a buffer is free again once the consumer has dropped every handle to it.
#include "loaders/batch_loader.h"

#include <algorithm>  // std::min
#include <utility>    // std::exchange, std::swap

#include "kernels/bodies.h"  // kern::splitmix64
#include "engine/common.h"  // InputError, LCAM_REQUIRE
#include "loaders/image.h"  // decode_image, resize_shorter_side, crop, hflip, to_chw_float

namespace lcam {
namespace {

// The default prefetch's memory cap (LoaderOptions::prefetch).
constexpr double kPrefetchBytes = 512.0 * (1 << 20);

// Uniform integer in [0, n) from a 64-bit draw (n small: the bias is negligible).
uint64_t below(uint64_t draw, uint64_t n) { return n ? draw % n : 0; }

}  // namespace

BatchLoader::BatchLoader(const Dataset& data, LoaderOptions opt) : data_(data), opt_(opt) {
  if (opt_.batch <= 0) throw InputError("--batch must be positive");
  if (opt_.workers <= 0) opt_.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (opt_.prefetch <= 0) {
    const double batch_bytes = 4.0 * 3 * opt_.batch * opt_.crop * opt_.crop;
    const int by_memory = static_cast<int>(std::max(2.0, kPrefetchBytes / batch_bytes));
    opt_.prefetch = std::min(2 * opt_.workers, by_memory);
    opt_.workers = std::min(opt_.workers, opt_.prefetch);  // a worker needs a batch to claim
  }
}

BatchLoader::~BatchLoader() { stop(); }

int64_t BatchLoader::batches_per_epoch() const {
  return (static_cast<int64_t>(data_.size()) + opt_.batch - 1) / opt_.batch;
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop();
  epoch_ = epoch;
  total_ = batches_per_epoch();
  order_.resize(data_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  if (opt_.shuffle) {  // Fisher-Yates with a stream seeded by (seed, epoch)
    uint64_t state = kern::splitmix64(opt_.seed ^ kern::splitmix64(static_cast<uint64_t>(epoch) + 1));
    for (size_t i = order_.size(); i > 1; --i) {
      state = kern::splitmix64(state);
      std::swap(order_[i - 1], order_[below(state, i)]);
    }
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    claim_ = deliver_ = std::min(std::max<int64_t>(first_batch, 0), total_);
    stopping_ = false;
    ready_.clear();
  }
  for (int t = 0; t < opt_.workers; ++t) threads_.emplace_back(&BatchLoader::worker, this);
}

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_work_.notify_all();
  cv_ready_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lk(mu_);
  ready_.clear();
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lk(mu_);
  if (stopping_ || deliver_ >= total_) return false;
  cv_ready_.wait(lk, [&] { return stopping_ || error_ || ready_.count(deliver_); });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  if (stopping_) return false;
  auto it = ready_.find(deliver_);
  out = std::move(it->second);
  ready_.erase(it);
  ++deliver_;
  lk.unlock();
  cv_work_.notify_all();
  return true;
}

void BatchLoader::worker() {
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stopping_ || claim_ >= total_ || claim_ < deliver_ + opt_.prefetch; });
      if (stopping_ || claim_ >= total_) return;
      b = claim_++;
    }
    Batch batch;
    try {
      batch = make_batch(b);
    } catch (...) {  // not a bad image (those are in Batch::failed): hand it to the consumer
      std::lock_guard<std::mutex> lk(mu_);
      error_ = std::current_exception();
      cv_ready_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      ready_[b] = std::move(batch);
    }
    cv_ready_.notify_all();
  }
}

Tensor BatchLoader::acquire_buffer() {
  std::lock_guard<std::mutex> lk(pool_mu_);
  for (Tensor& t : pool_)
    if (t.sole_owner()) return t;
  const std::vector<int64_t> shape = {opt_.batch, 3, opt_.crop, opt_.crop};
  pool_.push_back(opt_.pinned ? Tensor::empty_pinned(shape) : Tensor::empty(shape));
  return pool_.back();
}

Batch BatchLoader::make_batch(int64_t b) {
  Batch out;
  out.index = b;
  const int64_t begin = b * opt_.batch;
  const int64_t end = std::min<int64_t>(begin + opt_.batch, static_cast<int64_t>(order_.size()));
  Tensor buf = acquire_buffer();
  const int64_t per = 3LL * opt_.crop * opt_.crop;
  int64_t rows = 0;
  for (int64_t pos = begin; pos < end; ++pos) {
    const size_t idx = order_[pos];
    const std::string path = data_.full_path(idx);
    try {
      float* dst = buf.data() + rows * per;
      if (opt_.augment) {
        // Per-sample stream from (seed, epoch, position): thread timing cannot change it.
        const ImageU8 img = decode_image(path);
        int rw = 0, rh = 0;
        shorter_side_size(img.width, img.height, opt_.resize, &rw, &rh);
        uint64_t r = kern::splitmix64(opt_.seed ^ kern::splitmix64((static_cast<uint64_t>(epoch_) << 40) ^ static_cast<uint64_t>(pos)));
        const uint64_t r1 = kern::splitmix64(r), r2 = kern::splitmix64(r1), r3 = kern::splitmix64(r2);
        const int top = static_cast<int>(below(r1, static_cast<uint64_t>(std::max(0, rh - opt_.crop) + 1)));
        const int left = static_cast<int>(below(r2, static_cast<uint64_t>(std::max(0, rw - opt_.crop) + 1)));
        // RandomCrop of the resized image, computing only the crop (the same bytes).
        ImageU8 cropped = rw >= opt_.crop && rh >= opt_.crop
                              ? resize_bilinear_pil_region(img, rw, rh, left, top, opt_.crop, opt_.crop)
                              : crop(resize_bilinear_pil(img, rw, rh), top, left, opt_.crop, opt_.crop);
        if (r3 >> 63) cropped = hflip(cropped);
        to_chw_float(cropped, dst);
      } else {
        load_eval_image(path, dst, opt_.resize, opt_.crop);  // decodes and resizes only the center crop
      }
      out.labels.push_back(data_[idx].label);
      out.indices.push_back(idx);
      ++rows;
    } catch (const InputError& e) {
      out.failed.push_back(e.what());
    }
  }
  out.images = buf.slice0(0, rows);
  return out;
}

}  // namespace lcam

// batch_loader.h — decodes and transforms images on worker threads into host batches
// ([n,3,crop,crop] floats in [0,1], page-locked when they are bound for a GPU) and hands them
// to the training or evaluation loop in order through a bounded queue. The order of samples
// (seeded shuffle per epoch) and every random crop and flip depend only on the seed, the epoch
// and the sample's position, never on thread timing, so a run is reproducible and can resume
// at any batch. An image that cannot be read is left out of its batch and reported in
// Batch::failed; it never stops the run. Omits normalization (done on the device).
#pragma once
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // int64_t, uint64_t
#include <exception>           // std::exception_ptr
#include <map>                 // ready batches by index
#include <mutex>               // std::mutex
#include <string>              // std::string
#include <thread>              // std::thread
#include <vector>              // std::vector

#include "engine/tensor.h"    // Tensor
#include "loaders/dataset.h"  // Dataset

namespace lcam {

struct LoaderOptions {
  int batch = 64;
  bool shuffle = false;
  bool augment = false;  // RandomCrop(crop) + RandomHorizontalFlip instead of CenterCrop(crop)
  uint64_t seed = 0;
  int workers = 0;       // decoding threads; 0 = all cores
  // Batches decoded ahead of the consumer; 0 = 2 x workers, but no more than about 512 MiB of
  // batches (at least 2): each is a buffer of the pool, page-locked for a GPU, and a dozen
  // batches ahead keep any device fed. Workers beyond it would only wait.
  int prefetch = 0;
  int resize = 256, crop = 224;
  bool pinned = false;   // page-locked host buffers (when a GPU is present)
};

struct Batch {
  Tensor images;                    // [n,3,crop,crop], n = rows that decoded
  std::vector<int> labels;          // the list's label per row (-1 when none)
  std::vector<size_t> indices;      // dataset index per row
  std::vector<std::string> failed;  // "PATH: reason" for samples left out
  int64_t index = 0;                // batch number within the epoch
};

class BatchLoader {
 public:
  BatchLoader(const Dataset& data, LoaderOptions opt);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const;
  // Starts decoding epoch `epoch` from batch `first_batch` (to resume mid-epoch).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch in order; false at the end of the epoch or after stop().
  bool next(Batch& out);
  // Stops the workers (safe mid-epoch, idempotent); next() then returns false.
  void stop();
  // The dataset positions of the epoch in order (the seeded permutation).
  const std::vector<size_t>& order() const { return order_; }
  // The decoding threads and the batches ahead, after the defaults and the memory cap.
  int workers() const { return opt_.workers; }
  int prefetch() const { return opt_.prefetch; }

 private:
  void worker();
  Batch make_batch(int64_t b);
  Tensor acquire_buffer();

  const Dataset& data_;
  LoaderOptions opt_;
  int64_t epoch_ = 0, total_ = 0;
  std::vector<size_t> order_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  int64_t claim_ = 0, deliver_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Batch> ready_;
  std::exception_ptr error_;  // a worker's unexpected failure, rethrown by next()
  std::mutex pool_mu_;
  std::vector<Tensor> pool_;
};

}  // namespace lcam

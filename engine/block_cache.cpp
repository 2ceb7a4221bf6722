// block_cache.cpp — see block_cache.h.
#include "engine/block_cache.h"

#include <algorithm>  // std::max, std::find, std::remove
#include <iterator>   // std::next
#include <utility>    // std::move

#include "engine/common.h"  // InternalError

namespace lcam {

namespace {
constexpr size_t kMiB = size_t{1} << 20;
}  // namespace

BlockCache::BlockCache(RawAlloc raw_alloc, RawFree raw_free)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}

size_t BlockCache::rounded(size_t bytes) {
  const size_t g = bytes <= kMiB ? 512 : 2 * kMiB;
  return (bytes + g - 1) / g * g;
}

void* BlockCache::take(FreeList& list, size_t want, size_t& size) {
  auto it = list.lower_bound(want);
  if (it == list.end() || it->first > want + want / 4) return nullptr;
  void* p = it->second;
  size = it->first;
  list.erase(it);
  return p;
}

void* BlockCache::alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t want = rounded(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  size_t size = 0;
  void* p = take(open_ ? pools_[open_] : shared_, want, size);
  const bool held = p && open_;  // a pool's free block: counted in use already (see free)
  if (!p && open_) {
    // A capture may also take what the eager calls before it left cached; the block is the
    // graph's from then on, so that a capture costs no second copy of the working memory.
    p = take(shared_, want, size);
    if (p) owner_[p] = {open_};
  }
  if (!p) {
    p = raw_alloc_(want, open_ != 0);
    if (!p) return nullptr;
    size = want;
    s_.reserved += size;
    s_.peak_reserved = std::max(s_.peak_reserved, s_.reserved);
    if (open_) owner_[p] = {open_};
  }
  live_.emplace(p, size);
  if (!held) s_.in_use += size;
  s_.peak_in_use = std::max(s_.peak_in_use, s_.in_use);
  return p;
}

bool BlockCache::free(void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return false;
  const size_t size = it->second;
  live_.erase(it);
  // A block that goes to a pool stays in use: the captured graph writes it at every replay.
  auto own = owner_.find(p);
  if (open_) {  // used by the graph being captured: kept for its replays (and any earlier graph's)
    if (own == owner_.end()) {
      owner_[p] = {open_};
    } else if (std::find(own->second.begin(), own->second.end(), open_) == own->second.end()) {
      own->second.push_back(open_);
    }
    pools_[open_].emplace(size, p);
  } else if (own != owner_.end()) {
    pools_[own->second.back()].emplace(size, p);
  } else {
    shared_.emplace(size, p);
    s_.in_use -= size;
  }
  return true;
}

void BlockCache::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, p] : shared_) {
    raw_free_(p);
    s_.reserved -= size;
  }
  shared_.clear();
}

bool BlockCache::has_cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !shared_.empty();
}

int BlockCache::open_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_) throw InternalError("BlockCache::open_pool: a pool is open already (one graph capture at a time)");
  open_ = next_id_++;
  pools_[open_];
  return open_;
}

void BlockCache::close_pool(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_ == id) open_ = 0;
}

bool BlockCache::pool_open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_ != 0;
}

void BlockCache::drop_pool(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_ == id) open_ = 0;
  auto pool = pools_.find(id);
  if (pool == pools_.end()) return;
  FreeList freed = std::move(pool->second);
  pools_.erase(pool);
  // The pool leaves every block's owners; a block nobody owns any more is an ordinary one.
  for (auto it = owner_.begin(); it != owner_.end();) {
    auto& ids = it->second;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    it = ids.empty() ? owner_.erase(it) : std::next(it);
  }
  // Its free blocks: to the shared cache, or to the free list of the pool that still owns them.
  for (auto& [size, p] : freed) {
    auto own = owner_.find(p);
    if (own != owner_.end()) {
      pools_[own->second.back()].emplace(size, p);
    } else {
      shared_.emplace(size, p);
      s_.in_use -= size;
    }
  }
}

BlockCache::Stats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return s_;
}

void BlockCache::reset_peaks() {
  std::lock_guard<std::mutex> lock(mu_);
  s_.peak_reserved = s_.reserved;
  s_.peak_in_use = s_.in_use;
}

}  // namespace lcam

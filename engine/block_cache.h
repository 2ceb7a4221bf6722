// block_cache.h — the bookkeeping of a caching allocator, apart from where its memory comes
// from (cudaMalloc for the device, cudaHostAlloc for page-locked host memory: engine/cuda/
// runtime.cu), so that it is tested on any machine.
// Requests are rounded up (512 B granularity up to 1 MiB, 2 MiB above); freed blocks are kept
// by size and handed out again for requests at most 25% smaller; memory goes back to its source
// only through release_cached(), which the owner calls when a fresh allocation fails.
// Pools, for CUDA graphs: while a pool is open, blocks are taken from it (else from the shared
// cache, and then they join the pool) and freed to it, and any block freed meanwhile joins it
// (the graph being captured keeps using those addresses at every replay); close_pool() ends
// that; drop_pool() gives the pool's free blocks to the shared cache, and its blocks still in
// use become ordinary ones. A block of one graph's pool freed while another graph is captured
// belongs to both (both replay it): it goes back to the shared cache only when both pools have
// been dropped.
// Statistics: reserved bytes (cached + in use, as PyTorch's memory_reserved) and bytes in use
// (as memory_allocated, plus the free blocks of pools not yet dropped: a captured graph writes
// them at every replay, so a replayed work's peak counts its working memory), each with its
// peak. Threading: every call takes the lock; the raw functions are called under it.
#pragma once
#include <cstddef>        // size_t
#include <functional>     // std::function
#include <map>            // std::map, std::multimap
#include <mutex>          // std::mutex
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector (a block's pools)

namespace lcam {

class BlockCache {
 public:
  // raw_alloc(bytes, for_pool): a new block, nullptr when the source has none; for_pool says
  // that a pool is open (a CUDA graph is being captured). raw_free gives a block back.
  using RawAlloc = std::function<void*(size_t bytes, bool for_pool)>;
  using RawFree = std::function<void(void* p)>;
  BlockCache(RawAlloc raw_alloc, RawFree raw_free);
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  static size_t rounded(size_t bytes);
  // A block of at least `bytes` (nullptr for 0 bytes, or when raw_alloc fails: the caller may
  // release_cached() and try again).
  void* alloc(size_t bytes);
  // Returns a block; false (and nothing changes) for a pointer this cache did not hand out.
  bool free(void* p);
  // Gives every block of the shared cache back through raw_free (pools keep theirs).
  void release_cached();
  bool has_cached() const;

  // Opens a pool (InternalError when one is open already) and returns its id (> 0).
  int open_pool();
  // Closes pool `id` if it is the open one (a failed capture's clean-up must not close another's).
  void close_pool(int id);
  bool pool_open() const;
  // The pool's free blocks go to the shared cache; its blocks in use become ordinary blocks.
  void drop_pool(int id);

  struct Stats {
    size_t reserved = 0, peak_reserved = 0, in_use = 0, peak_in_use = 0;
  };
  Stats stats() const;
  void reset_peaks();

 private:
  using FreeList = std::multimap<size_t, void*>;  // block size -> pointer
  static void* take(FreeList& list, size_t want, size_t& size);

  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mu_;
  FreeList shared_;
  std::map<int, FreeList> pools_;        // pool id -> its free blocks
  // Blocks (in use or free) that belong to pools -> those pools, the latest last; a free one
  // lies in the latest's free list.
  std::unordered_map<void*, std::vector<int>> owner_;
  std::unordered_map<void*, size_t> live_;  // blocks in use -> size
  int open_ = 0, next_id_ = 1;
  Stats s_;
};

}  // namespace lcam

// test_block_cache.cpp — the caching allocator's bookkeeping (engine/block_cache.h) with host
// memory standing in for the device: rounding, reuse, statistics, release, failures, and the
// pools that keep a CUDA graph's blocks from being handed out while the graph may replay.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <cstdlib>  // std::malloc, std::free
#include <set>      // std::set
#include <vector>   // std::vector

#include "engine/block_cache.h"  // BlockCache
#include "engine/common.h"       // InternalError

using lcam::BlockCache;

namespace {

// A raw source that records what it did, and can be told to fail.
struct Source {
  std::set<void*> out;          // blocks handed out and not yet given back
  std::vector<bool> for_pool;   // the flag of each raw allocation
  int frees = 0;
  bool fail = false;
  BlockCache cache{[this](size_t n, bool pool) -> void* {
                     if (fail) return nullptr;
                     void* p = std::malloc(n);
                     out.insert(p);
                     for_pool.push_back(pool);
                     return p;
                   },
                   [this](void* p) {
                     out.erase(p);
                     ++frees;
                     std::free(p);
                   }};
  ~Source() {
    for (void* p : out) std::free(p);
  }
};

constexpr size_t kMiB = size_t{1} << 20;

}  // namespace

TEST_SUITE("engine") {

TEST_CASE("block cache: rounding, reuse within 25%, statistics, release") {
  CHECK(BlockCache::rounded(1) == 512);
  CHECK(BlockCache::rounded(1000) == 1024);
  CHECK(BlockCache::rounded(kMiB) == kMiB);
  CHECK(BlockCache::rounded(kMiB + 1) == 2 * kMiB);
  CHECK(BlockCache::rounded(3 * kMiB) == 4 * kMiB);

  Source s;
  CHECK(s.cache.alloc(0) == nullptr);
  void* a = s.cache.alloc(1000);  // a 1024-byte block
  REQUIRE(a);
  CHECK(s.cache.stats().reserved == 1024);
  CHECK(s.cache.stats().in_use == 1024);
  CHECK(s.cache.free(a));
  CHECK(s.cache.stats().in_use == 0);
  CHECK(s.cache.stats().peak_in_use == 1024);
  CHECK(s.cache.alloc(900) == a);          // same rounded size: the cached block
  CHECK(s.cache.free(a));
  void* small = s.cache.alloc(300);        // 512 bytes: 1024 is more than 25% larger
  CHECK(small != a);
  CHECK(s.out.size() == 2);
  CHECK(!s.cache.free(reinterpret_cast<void*>(0x10)));  // not ours: nothing changes
  CHECK(s.cache.stats().reserved == 1536);

  s.cache.reset_peaks();
  CHECK(s.cache.stats().peak_in_use == 512);
  CHECK(s.cache.has_cached());
  s.cache.release_cached();  // gives back the cached 1024-byte block, not the one in use
  CHECK(!s.cache.has_cached());
  CHECK(s.frees == 1);
  CHECK(s.cache.stats().reserved == 512);
  CHECK(s.cache.free(small));
}

TEST_CASE("block cache: a failed raw allocation leaves everything as it was") {
  Source s;
  void* a = s.cache.alloc(4096);
  s.cache.free(a);
  s.fail = true;
  CHECK(s.cache.alloc(100 * kMiB) == nullptr);
  CHECK(s.cache.stats().reserved == 4096);
  CHECK(s.cache.stats().in_use == 0);
  CHECK(s.cache.alloc(4096) == a);  // the cache still serves what it has
}

TEST_CASE("block cache: a capture takes what the shared cache holds, and keeps it") {
  Source s;
  void* eager = s.cache.alloc(1 << 16);  // an eager call's temporary, cached after it
  CHECK(s.cache.free(eager));
  const int id = s.cache.open_pool();
  void* t = s.cache.alloc(1 << 16);      // the capture reuses it: no second copy of the memory
  CHECK(t == eager);
  CHECK(s.for_pool.size() == 1);
  CHECK(s.cache.free(t));
  s.cache.close_pool(id + 1);  // not the open pool: nothing changes
  CHECK(s.cache.pool_open());
  s.cache.close_pool(id);
  void* after = s.cache.alloc(1 << 16);  // the block is the graph's now: not handed out again
  CHECK(after != eager);
  CHECK(s.cache.stats().in_use == 2u << 16);
  s.cache.drop_pool(id);
  CHECK(s.cache.free(after));
  CHECK(s.cache.stats().in_use == 0);
  s.cache.release_cached();
  CHECK(s.out.empty());
}

TEST_CASE("block cache: a pool keeps a graph's blocks until it is dropped") {
  Source s;
  void* before = s.cache.alloc(8192);   // made before the capture, freed during it
  void* kept = s.cache.alloc(2048);     // in use across the capture (an input)
  const int id = s.cache.open_pool();
  CHECK(id > 0);
  CHECK(s.cache.pool_open());
  CHECK_THROWS_AS(s.cache.open_pool(), lcam::InternalError);
  CHECK(s.cache.free(before));          // joins the pool
  void* t1 = s.cache.alloc(8000);       // served from the pool: the block just freed
  CHECK(t1 == before);
  void* t2 = s.cache.alloc(3 * kMiB);   // a new block for the pool
  CHECK(s.for_pool.back());
  CHECK(s.cache.free(t1));              // a temporary of the captured work
  s.cache.close_pool(id);
  CHECK(!s.cache.pool_open());
  // The pool's free block (before's, t1's) still counts as in use: the replays write it.
  const size_t big = lcam::BlockCache::rounded(3 * kMiB);
  CHECK(s.cache.stats().in_use == 8192 + 2048 + big);

  // After the capture the shared cache must not hand out the pool's blocks: the graph's
  // replays still write them.
  void* other = s.cache.alloc(8192);
  CHECK(other != before);
  CHECK(!s.for_pool.back());
  s.cache.release_cached();             // nor give them back to the source
  CHECK(s.out.count(before) == 1);

  // The graph's output (t2) is still in use when the graph goes; it becomes ordinary.
  s.cache.drop_pool(id);
  CHECK(s.cache.stats().in_use == 2048 + big + 8192);  // kept, t2, other: the pool's block is free now
  CHECK(s.cache.stats().peak_in_use == 8192 + 2048 + big + 8192);
  CHECK(s.cache.free(t2));
  CHECK(s.cache.alloc(3 * kMiB) == t2);  // now shared
  CHECK(s.cache.free(other));
  void* again = s.cache.alloc(8192);     // before's block or other's: both shared now
  CHECK((again == before || again == other));
  CHECK(s.cache.free(kept));
  CHECK(s.cache.free(again));
  CHECK(s.cache.free(t2));
  s.cache.release_cached();
  CHECK(s.out.empty());
  CHECK(s.cache.stats().reserved == 0);
  CHECK(s.cache.stats().in_use == 0);
}

TEST_CASE("block cache: a block of one graph freed while another is captured belongs to both") {
  Source s;
  const int g1 = s.cache.open_pool();
  void* out1 = s.cache.alloc(4096);  // graph 1's output, used after its capture
  s.cache.close_pool(g1);
  const int g2 = s.cache.open_pool();
  CHECK(s.cache.free(out1));         // consumed and freed inside graph 2's capture
  void* t = s.cache.alloc(4096);     // graph 2 may reuse it: it is in graph 2's pool now
  CHECK(t == out1);
  CHECK(s.cache.free(t));
  s.cache.close_pool(g2);
  s.cache.drop_pool(g1);             // graph 1 goes first: graph 2 still replays the block
  void* eager = s.cache.alloc(4096);
  CHECK(eager != out1);
  s.cache.release_cached();
  CHECK(s.out.count(out1) == 1);
  s.cache.drop_pool(g2);             // now nobody replays it
  CHECK(s.cache.free(eager));
  void* again = s.cache.alloc(4096);
  CHECK((again == out1 || again == eager));
  CHECK(s.cache.free(again));
  s.cache.release_cached();
  CHECK(s.out.empty());
  CHECK(s.cache.stats().in_use == 0);

  // The other order: graph 2 dropped first, graph 1 keeps the block.
  const int h1 = s.cache.open_pool();
  void* b = s.cache.alloc(4096);
  s.cache.close_pool(h1);
  const int h2 = s.cache.open_pool();
  CHECK(s.cache.free(b));
  s.cache.close_pool(h2);
  s.cache.drop_pool(h2);
  CHECK(s.cache.alloc(4096) != b);   // still graph 1's
  s.cache.drop_pool(h1);
  CHECK(s.cache.stats().in_use == 4096);  // only the eager block
}

}  // TEST_SUITE("engine")

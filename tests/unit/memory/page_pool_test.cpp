// PagePool / PageList accounting: grow, release, moves, destruction, failed grows that take
// nothing, page ids unique and in range, and the pool back to full after every scenario.
// Also PageStore layout (per-layer buffers of num_pages * page_size * kv_width floats).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "memory/page_pool.h"
#include "memory/page_store.h"

namespace ls {
namespace {

// Every page of every list is in range and owned once.
void expect_disjoint_and_valid(const PagePool& pool, const std::vector<const PageList*>& lists) {
  std::set<int32_t> seen;
  size_t total = 0;
  for (const PageList* l : lists) {
    EXPECT_EQ(l->size(), l->pages().size());
    for (int32_t p : l->pages()) {
      EXPECT_GE(p, 0);
      EXPECT_LT(p, pool.num_pages());
      EXPECT_TRUE(seen.insert(p).second) << "page " << p << " owned twice";
      ++total;
    }
  }
  EXPECT_EQ(static_cast<int32_t>(total), pool.num_used());
  EXPECT_EQ(pool.num_free() + pool.num_used(), pool.num_pages());
}

TEST(PagePool, StartsFull) {
  PagePool pool(10);
  EXPECT_EQ(pool.num_pages(), 10);
  EXPECT_EQ(pool.num_free(), 10);
  EXPECT_EQ(pool.num_used(), 0);
  PagePool empty(0);
  EXPECT_EQ(empty.num_free(), 0);
}

TEST(PagePool, GrowAndReleaseAccounting) {
  PagePool pool(10);
  {
    PageList a(&pool);
    EXPECT_EQ(a.size(), 0u);
    ASSERT_TRUE(a.grow(3).ok());
    EXPECT_EQ(a.size(), 3u);
    EXPECT_EQ(pool.num_free(), 7);
    ASSERT_TRUE(a.grow(2).ok());  // grows append
    EXPECT_EQ(a.size(), 5u);
    EXPECT_EQ(pool.num_free(), 5);
    ASSERT_TRUE(a.grow(0).ok());
    EXPECT_EQ(a.size(), 5u);

    PageList b(&pool);
    ASSERT_TRUE(b.grow(5).ok());  // exactly what is left
    EXPECT_EQ(pool.num_free(), 0);
    expect_disjoint_and_valid(pool, {&a, &b});

    a.release();
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(pool.num_free(), 5);
    a.release();  // idempotent
    EXPECT_EQ(pool.num_free(), 5);

    ASSERT_TRUE(a.grow(4).ok());  // a list can grow again after a release
    EXPECT_EQ(pool.num_free(), 1);
    expect_disjoint_and_valid(pool, {&a, &b});
  }
  EXPECT_EQ(pool.num_free(), 10);
}

TEST(PagePool, FailedGrowTakesNothing) {
  PagePool pool(8);
  {
    PageList a(&pool), b(&pool);
    ASSERT_TRUE(a.grow(5).ok());
    const std::vector<int32_t> before = a.pages();
    Status s = b.grow(4);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
    EXPECT_NE(s.message().find("4"), std::string::npos) << s.message();
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(pool.num_free(), 3);
    EXPECT_EQ(a.pages(), before);

    // A failing grow on a list that already owns pages keeps them all.
    Status s2 = a.grow(100);
    EXPECT_EQ(s2.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(a.pages(), before);
    EXPECT_EQ(pool.num_free(), 3);

    ASSERT_TRUE(b.grow(3).ok());  // what is left can still be had
    Status s3 = b.grow(1);
    EXPECT_EQ(s3.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(b.size(), 3u);
    expect_disjoint_and_valid(pool, {&a, &b});
  }
  EXPECT_EQ(pool.num_free(), 8);
}

TEST(PagePool, ReleasedPagesAreReusedAndUnique) {
  PagePool pool(6);
  {
    PageList a(&pool), b(&pool), c(&pool);
    ASSERT_TRUE(a.grow(2).ok());
    ASSERT_TRUE(b.grow(2).ok());
    ASSERT_TRUE(c.grow(2).ok());
    const std::vector<int32_t> b_pages = b.pages();
    b.release();
    ASSERT_TRUE(b.grow(2).ok());
    std::vector<int32_t> again = b.pages();
    std::vector<int32_t> sorted_before = b_pages;
    std::sort(again.begin(), again.end());
    std::sort(sorted_before.begin(), sorted_before.end());
    EXPECT_EQ(again, sorted_before) << "the only free pages were b's old ones";
    expect_disjoint_and_valid(pool, {&a, &b, &c});
    std::set<int32_t> all;
    for (const PageList* l : {&a, &b, &c}) all.insert(l->pages().begin(), l->pages().end());
    EXPECT_EQ(all, (std::set<int32_t>{0, 1, 2, 3, 4, 5}));
  }
  EXPECT_EQ(pool.num_free(), 6);
}

TEST(PagePool, DestructionReturnsPages) {
  PagePool pool(5);
  {
    PageList a(&pool);
    ASSERT_TRUE(a.grow(4).ok());
    EXPECT_EQ(pool.num_free(), 1);
  }
  EXPECT_EQ(pool.num_free(), 5);
  {
    std::vector<PageList> lists;
    for (int i = 0; i < 5; ++i) {
      lists.emplace_back(&pool);
      ASSERT_TRUE(lists.back().grow(1).ok());
    }
    EXPECT_EQ(pool.num_free(), 0);
    lists.erase(lists.begin() + 1, lists.begin() + 3);  // moves the tail down, drops two
    EXPECT_EQ(pool.num_free(), 2);
    std::vector<const PageList*> ptrs;
    for (const auto& l : lists) ptrs.push_back(&l);
    expect_disjoint_and_valid(pool, ptrs);
  }
  EXPECT_EQ(pool.num_free(), 5);
}

TEST(PagePool, MoveConstructionTransfersOwnership) {
  PagePool pool(6);
  {
    PageList a(&pool);
    ASSERT_TRUE(a.grow(3).ok());
    const std::vector<int32_t> pages = a.pages();
    PageList b(std::move(a));
    EXPECT_EQ(b.pages(), pages);
    EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(pool.num_free(), 3);
    a.release();  // releasing the moved-from list returns nothing
    EXPECT_EQ(pool.num_free(), 3);
    ASSERT_TRUE(b.grow(1).ok());  // the new owner can still grow from the pool
    EXPECT_EQ(pool.num_free(), 2);
  }
  EXPECT_EQ(pool.num_free(), 6);
}

TEST(PagePool, MoveAssignmentReleasesTheTargetsPages) {
  PagePool pool(10);
  {
    PageList a(&pool), b(&pool);
    ASSERT_TRUE(a.grow(3).ok());
    ASSERT_TRUE(b.grow(4).ok());
    EXPECT_EQ(pool.num_free(), 3);
    const std::vector<int32_t> a_pages = a.pages();
    b = std::move(a);
    EXPECT_EQ(b.pages(), a_pages);
    EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(pool.num_free(), 7) << "b's old 4 pages go back to the pool";

    PageList& self = b;
    b = std::move(self);  // self-move keeps everything
    EXPECT_EQ(b.pages(), a_pages);
    EXPECT_EQ(pool.num_free(), 7);

    PageList empty;  // default: no pool, nothing owned
    EXPECT_EQ(empty.size(), 0u);
    b = std::move(empty);
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(pool.num_free(), 10);
  }
  EXPECT_EQ(pool.num_free(), 10);
}

TEST(PagePool, MoveBetweenPools) {
  PagePool p1(4), p2(4);
  {
    PageList a(&p1), b(&p2);
    ASSERT_TRUE(a.grow(2).ok());
    ASSERT_TRUE(b.grow(3).ok());
    b = std::move(a);  // b's pages go back to p2; b now owns p1's pages
    EXPECT_EQ(p2.num_free(), 4);
    EXPECT_EQ(p1.num_free(), 2);
    ASSERT_TRUE(b.grow(2).ok());  // grows from p1 now
    EXPECT_EQ(p1.num_free(), 0);
    EXPECT_EQ(p2.num_free(), 4);
  }
  EXPECT_EQ(p1.num_free(), 4);
  EXPECT_EQ(p2.num_free(), 4);
}

TEST(PagePool, RandomScenarioKeepsInvariants) {
  PagePool pool(32);
  {
    std::vector<PageList> lists;
    for (int i = 0; i < 6; ++i) lists.emplace_back(&pool);
    uint64_t state = 12345;
    auto next = [&]() {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<uint32_t>(state >> 33);
    };
    int32_t owned = 0;
    for (int step = 0; step < 400; ++step) {
      PageList& l = lists[next() % lists.size()];
      if (next() % 3 == 0) {
        owned -= static_cast<int32_t>(l.size());
        l.release();
      } else {
        const size_t want = next() % 9;
        const bool fits = static_cast<int32_t>(want) <= pool.num_free();
        const size_t before = l.size();
        Status s = l.grow(want);
        EXPECT_EQ(s.ok(), fits);
        if (s.ok()) {
          owned += static_cast<int32_t>(want);
          EXPECT_EQ(l.size(), before + want);
        } else {
          EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
          EXPECT_EQ(l.size(), before);
        }
      }
      ASSERT_EQ(pool.num_used(), owned);
    }
    std::vector<const PageList*> ptrs;
    for (const auto& l : lists) ptrs.push_back(&l);
    expect_disjoint_and_valid(pool, ptrs);
  }
  EXPECT_EQ(pool.num_free(), 32);
}

TEST(PagePool, ConcurrentGrowAndRelease) {
  PagePool pool(64);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&pool, t] {
        PageList l(&pool);
        for (int i = 0; i < 200; ++i) {
          if (l.grow(static_cast<size_t>(1 + (i + t) % 4)).ok() && i % 3 == 0) l.release();
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(pool.num_free(), 64);
}

TEST(PagePoolDeathTest, DestroyingPoolWithOwnedPagesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto* pool = new PagePool(4);
        auto* l = new PageList(pool);
        (void)l->grow(2);
        delete pool;  // pages still owned by l
      },
      "pages still owned");
}

TEST(PageStore, LayoutAndBytes) {
  auto backend = make_cpu_backend();
  PageStore kv(*backend, 3, 5, 4, 6);
  EXPECT_EQ(kv.chunk_elems(), 4 * 6);
  EXPECT_EQ(kv.page_bytes(), 2 * 3 * 4 * 6 * 4);
  EXPECT_EQ(kv.dtype(), DType::kF32);
  EXPECT_EQ(kv.layer(0).dtype, DType::kF32);
  EXPECT_EQ(kv.chunk(1, 2, 0), static_cast<float*>(kv.layer(1).k) + 2 * 4 * 6);
  EXPECT_EQ(kv.chunk(2, 4, 1), static_cast<float*>(kv.layer(2).v) + 4 * 4 * 6);
  EXPECT_EQ(kv.num_pages(), 5);
  EXPECT_EQ(kv.page_size(), 4);
  EXPECT_EQ(kv.bytes(), 3u * 2u * 5u * 4u * 6u * sizeof(float));
  std::set<const void*> ptrs;
  for (int32_t l = 0; l < 3; ++l) {
    LayerKv lk = kv.layer(l);
    auto* k = static_cast<float*>(lk.k);
    auto* v = static_cast<float*>(lk.v);
    EXPECT_EQ(lk.page_size, 4);
    EXPECT_EQ(lk.kv_width, 6);
    ASSERT_NE(lk.k, nullptr);
    ASSERT_NE(lk.v, nullptr);
    EXPECT_TRUE(ptrs.insert(lk.k).second);
    EXPECT_TRUE(ptrs.insert(lk.v).second);
    // Every slot of every page is writable (ASan checks the bounds).
    for (int32_t i = 0; i < 5 * 4 * 6; ++i) k[i] = v[i] = static_cast<float>(l * 1000 + i);
  }
  for (int32_t l = 0; l < 3; ++l) {
    EXPECT_EQ(static_cast<float*>(kv.layer(l).k)[5 * 4 * 6 - 1],
              static_cast<float>(l * 1000 + 5 * 4 * 6 - 1));
    EXPECT_EQ(static_cast<float*>(kv.layer(l).v)[0], static_cast<float>(l * 1000));
  }
}

TEST(PageStore, Bf16HalvesTheBytes) {
  auto backend = make_cpu_backend();
  PageStore kv(*backend, 3, 5, 4, 6, DType::kBF16);
  EXPECT_EQ(kv.dtype(), DType::kBF16);
  EXPECT_EQ(kv.chunk_elems(), 4 * 6);
  EXPECT_EQ(kv.page_bytes(), 2 * 3 * 4 * 6 * 2);
  EXPECT_EQ(PageStore::page_bytes(3, 4, 6, DType::kBF16), kv.page_bytes());
  EXPECT_EQ(PageStore::page_bytes(3, 4, 6, DType::kF32), 2 * kv.page_bytes());
  EXPECT_EQ(kv.bytes(), 3u * 2u * 5u * 4u * 6u * 2u);
  const LayerKv lk = kv.layer(2);
  EXPECT_EQ(lk.dtype, DType::kBF16);
  EXPECT_EQ(kv.chunk(2, 4, 1), static_cast<uint16_t*>(lk.v) + 4 * 4 * 6);
  // The last element of the last page is writable (ASan checks the bounds).
  static_cast<uint16_t*>(lk.k)[5 * 4 * 6 - 1] = f32_to_bf16(1.5f);
  EXPECT_EQ(bf16_to_f32(static_cast<uint16_t*>(kv.chunk(2, 4, 0))[4 * 6 - 1]), 1.5f);
}

TEST(PageStoreDeathTest, RejectsOtherDtypes) {
  auto backend = make_cpu_backend();
  EXPECT_DEATH(PageStore(*backend, 1, 1, 1, 4, DType::kF16), "fp32 or bf16");
}

TEST(PagePool, CountsPagesByKind) {
  PagePool pool(10);
  {
    PageList kv(&pool, PageKind::kKv), adapter(&pool, PageKind::kAdapter);
    ASSERT_TRUE(kv.grow(3).ok());
    ASSERT_TRUE(adapter.grow(5).ok());
    EXPECT_EQ(pool.num_used(PageKind::kKv), 3);
    EXPECT_EQ(pool.num_used(PageKind::kAdapter), 5);
    EXPECT_FALSE(kv.grow(3).ok());  // one free list: adapters and KV compete
    PageList moved = std::move(adapter);
    EXPECT_EQ(pool.num_used(PageKind::kAdapter), 5);
    moved.release();
    EXPECT_EQ(pool.num_used(PageKind::kAdapter), 0);
  }
  EXPECT_EQ(pool.num_used(PageKind::kKv), 0);
  EXPECT_EQ(pool.num_free(), 10);
}

}  // namespace
}  // namespace ls

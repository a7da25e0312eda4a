// Decode graphs (src/model/decode_graphs.h) on the CPU: a backend that wraps the CPU backend
// and implements the graph API by recording each op with its arguments (pointers and sizes
// baked in, as a CUDA graph bakes them) and replaying the list, so the bucketing, padding,
// fixed tables and re-capture logic are checked here without a GPU. Buffers allocated while
// recording are kept alive by the graph, as the CUDA allocator's graph pool does.
// tests/cuda/cuda_graph_test.cpp runs the same checks on real CUDA graphs.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "engine/batch_generator.h"
#include "model/decode_graphs.h"
#include "support/test_support.h"

namespace ls {
namespace {

class RecordingBackend final : public Backend {
 public:
  RecordingBackend() : cpu_(make_cpu_backend()) {}
  std::string_view name() const override { return "cpu-recording"; }

  Buffer alloc(size_t bytes) override {
    Buffer b = cpu_->alloc(bytes);
    if (recording_) recording_->keep.push_back(b);
    return b;
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    // Adapter loader threads upload at any time (the CUDA backend orders those on its copy
    // stream); the capturing thread must not.
    EXPECT_FALSE(recording_ && std::this_thread::get_id() == capture_thread_)
        << "upload while capturing";
    cpu_->upload(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    EXPECT_FALSE(recording_) << "download while capturing";
    cpu_->download(dst, src, bytes);
  }
  void fill_zero(void* dst, size_t bytes) override {
    op([=, this] { cpu_->fill_zero(dst, bytes); });
  }
  Weight make_weight(DType dtype, const void* data, int64_t rows, int64_t cols) override {
    return cpu_->make_weight(dtype, data, rows, cols);
  }
  void embedding(const Weight& t, const int32_t* ids, int64_t n, float* out) override {
    op([=, this] { cpu_->embedding(t, ids, n, out); });
  }
  void rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) override {
    op([=, this] { cpu_->rms_norm(x, w, eps, n, out); });
  }
  void add_rms_norm(float* r, const float* d, const Weight& w, float eps, int64_t n,
                    float* out) override {
    op([=, this] { cpu_->add_rms_norm(r, d, w, eps, n, out); });
  }
  void gemm(const float* x, int64_t n, const Weight& w, const Weight* bias, float* out,
            bool acc) override {
    std::optional<Weight> b;
    if (bias) b = *bias;
    op([=, this] { cpu_->gemm(x, n, w, b ? &*b : nullptr, out, acc); });
  }
  void rope(float* q, float* k, const RopeParams& p, const int32_t* pos, int64_t n) override {
    op([=, this] { cpu_->rope(q, k, p, pos, n); });
  }
  void kv_write(const float* k, const float* v, const int64_t* slots, int64_t n,
                const LayerKv& kv) override {
    op([=, this] { cpu_->kv_write(k, v, slots, n, kv); });
  }
  void attention(const float* q, const AttentionBatch& b, const LayerKv& kv, float* out) override {
    op([=, this] { cpu_->attention(q, b, kv, out); });
  }
  void silu_mul(const float* g, const float* u, int64_t n, int64_t inter, float* out) override {
    op([=, this] { cpu_->silu_mul(g, u, n, inter, out); });
  }
  void lora_shrink(const float* x, int64_t n, const LoraModuleBatch& l, float* v) override {
    ++lora_launches_;
    op([=, this] { cpu_->lora_shrink(x, n, l, v); });
  }
  void lora_expand(const float* v, int64_t n, const LoraModuleBatch& l, float* y) override {
    op([=, this] { cpu_->lora_expand(v, n, l, y); });
  }
  void compressed_lora(const float* x, int64_t n, const CompressedLoraBatch& b, float* y) override {
    op([=, this] { cpu_->compressed_lora(x, n, b, y); });
  }
  void log_softmax(const float* l, int64_t rows, int64_t vocab, float* out) override {
    op([=, this] { cpu_->log_softmax(l, rows, vocab, out); });
  }
  void apply_penalties(float* l, int64_t vocab, const PenaltyBatch& p) override {
    op([=, this] { cpu_->apply_penalties(l, vocab, p); });
  }
  void top_logprobs(const float* l, int64_t rows, int64_t vocab, int32_t k, int32_t* ids,
                    float* lps) override {
    op([=, this] { cpu_->top_logprobs(l, rows, vocab, k, ids, lps); });
  }
  void sample(const float* l, int64_t rows, int64_t vocab, const SampleParams* p, int32_t* t,
              float* lps) override {
    EXPECT_FALSE(recording_) << "sample while capturing";
    cpu_->sample(l, rows, vocab, p, t, lps);
  }

  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    ASSERT_FALSE(recording_);
    capture_thread_ = std::this_thread::get_id();
    recording_ = std::make_shared<Recorded>();
  }
  Graph end_capture() override {
    Graph g = recording_;
    recording_.reset();
    return g;
  }
  void replay(const Graph& g) override {
    ASSERT_FALSE(recording_);
    for (const auto& f : static_cast<Recorded*>(g.get())->ops) f();
  }
  int64_t lora_launches() const { return lora_launches_; }

 private:
  struct Recorded {
    std::vector<std::function<void()>> ops;
    std::vector<Buffer> keep;
  };
  void op(std::function<void()> f) {
    if (recording_)
      recording_->ops.push_back(std::move(f));
    else
      f();
  }
  std::unique_ptr<Backend> cpu_;
  std::shared_ptr<Recorded> recording_;
  std::thread::id capture_thread_;
  int64_t lora_launches_ = 0;
};

TEST(DecodeGraphs, Buckets) {
  EXPECT_EQ(DecodeGraphs::bucket(1), 1);
  EXPECT_EQ(DecodeGraphs::bucket(3), 4);
  EXPECT_EQ(DecodeGraphs::bucket(5), 8);
  EXPECT_EQ(DecodeGraphs::bucket(9), 16);
  EXPECT_EQ(DecodeGraphs::bucket(64), 64);
  EXPECT_EQ(DecodeGraphs::bucket(65), 80);
  EXPECT_EQ(DecodeGraphs::bucket(129), 160);
  EXPECT_EQ(DecodeGraphs::bucket(256), 256);
  for (int32_t n = 1; n <= 300; ++n) {
    EXPECT_GE(DecodeGraphs::bucket(n), n);
    EXPECT_LE(DecodeGraphs::bucket(n) - n, std::max(7, n / 4)) << "padding waste at " << n;
  }
}

TEST(DecodeGraphs, OnlyPureDecodeBatchesAreEligible) {
  ForwardBatch b;
  b.tokens = {1, 2};
  b.positions = {3, 4};
  b.token_seq = {0, 1};
  b.kv_indptr = {0, 1, 2};
  b.logit_rows = {0, 1};
  EXPECT_TRUE(DecodeGraphs::eligible(b, 8));
  EXPECT_FALSE(DecodeGraphs::eligible(b, 1)) << "above the graph batch limit";
  b.token_seq = {0, 0};
  b.kv_indptr = {0, 1};
  EXPECT_FALSE(DecodeGraphs::eligible(b, 8)) << "two tokens of one sequence (prefill)";
  b.token_seq = {0, 1};
  b.kv_indptr = {0, 1, 2};
  b.logit_rows = {1};
  EXPECT_FALSE(DecodeGraphs::eligible(b, 8)) << "not every row's logits wanted";
}

class DecodeGraphsFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(DecodeGraphsFixture, ReplaysEqualEagerWhileAdaptersChange) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  auto rec = std::make_unique<RecordingBackend>();
  RecordingBackend* r = rec.get();
  test::LoadedModel graphs = test::load_fixture(std::move(rec), dir);
  test::LoadedModel plain = test::load_fixture(make_cpu_backend(), dir);
  ASSERT_TRUE(graphs.model && plain.model);
  // Padding changes only OpenBLAS's blocking for the larger row count (summation order);
  // gqa_bf16's 16 narrow layers amplify that about 50-fold (see cuda_golden_test).
  test::expect_graphs_match_plain(graphs, plain, GetParam() == "gqa_bf16" ? 1e-4 : 1e-5);
  EXPECT_GT(r->lora_launches(), 0);
  const GraphStats s = graphs.model->graph_stats();
  // Steps whose adapters did not change kept their LoRA tables (and still matched eager).
  EXPECT_GT(s.lora_tables_reused, 0);
  EXPECT_LT(s.lora_tables_reused, s.replays);
  std::printf(
      "[ graphs   ] %s: %lld captures, %lld replays (%lld with the LoRA tables of the step "
      "before), %d graphs held\n",
      GetParam().c_str(), static_cast<long long>(s.captures), static_cast<long long>(s.replays),
      static_cast<long long>(s.lora_tables_reused), s.graphs);
}

TEST_P(DecodeGraphsFixture, OffMeansNoCapture) {
  const std::string dir = test::fixture_dir() + "/golden/" + GetParam();
  test::LoadedModel m = test::load_fixture(std::make_unique<RecordingBackend>(), dir);
  ASSERT_TRUE(m.model);
  m.model->set_max_graph_batch(0);
  GenerationRequest req;
  req.prompt_ids = {1, 2, 3};
  req.max_tokens = 4;
  BatchGenerator gen(*m.model, m.adapters);
  ASSERT_TRUE(gen.run({req, req}).ok());
  EXPECT_EQ(m.model->graph_stats().captures, 0);
  EXPECT_EQ(m.model->graph_stats().replays, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, DecodeGraphsFixture, ::testing::Values("gqa_bf16", "mha_f32"));

}  // namespace
}  // namespace ls

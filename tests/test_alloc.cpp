// No heap allocation in the right-hand side / Jacobian-vector product hot path (issue 5): this
// executable replaces the global operator new/delete and interposes malloc/calloc/realloc (Eigen
// allocates with std::malloc, not operator new) to count every allocation, then calls rhs and jvp
// repeatedly after a warm-up for every flow kind on a linear K = 1, a deep linear and a 2-layer
// ReLU network (with and without a frozen activation pattern, as in event-driven integration).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "gfsim/flow.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
}

namespace {
std::atomic<long> g_mallocs{0}, g_news{0};
}  // namespace

// Interposed allocation functions: the executable's definitions win over glibc's for every call
// in this program, including those from the statically linked gfsim_core.
extern "C" void* malloc(std::size_t size) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
extern "C" void* calloc(std::size_t count, std::size_t size) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, size);
}
extern "C" void* realloc(void* p, std::size_t size) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}

void* operator new(std::size_t size) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = __libc_malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace gfsim {
namespace {

struct Case {
  std::vector<Index> widths;
  Activation activation;
  bool frozen_pattern;
  double kink_width = 0.0;
};

struct Counts {
  long mallocs, news;
};

Counts count_allocations(const std::function<void()>& f) {
  const long m0 = g_mallocs.load(), n0 = g_news.load();
  f();
  return {g_mallocs.load() - m0, g_news.load() - n0};
}

class NoAllocation : public ::testing::TestWithParam<std::tuple<int, FlowKind>> {};

const std::vector<Case> kCases = {
    {{12, 1}, Activation::linear, false},         // linear K = 1
    {{12, 8, 6, 1}, Activation::linear, false},   // deep linear, K = 3
    {{12, 16, 1}, Activation::relu, false},       // 2-layer ReLU, pattern from the signs
    {{12, 16, 1}, Activation::relu, true},        // 2-layer ReLU, frozen pattern (events)
    {{12, 16, 1}, Activation::relu, false, 0.1},  // 2-layer smoothed ReLU (kinks = "smooth")
};

TEST_P(NoAllocation, RhsAndJvpAfterWarmup) {
  const auto [case_index, kind] = GetParam();
  const Case& c = kCases[std::size_t(case_index)];
  const Dataset data = test::separable_data(200, c.widths.front(), 3);
  Flow flow(Network(c.widths, c.activation, c.kink_width), data, LossKind::exp, kind, 2.0);
  const Vec theta = test::random_vector(flow.num_params(), 5, 0.5);
  const Vec y = flow.initial_state(theta);
  KinkPattern pattern(flow);
  if (c.frozen_pattern) pattern.freeze(y);
  const Vec v = test::random_vector(flow.state_size(), 7);
  Vec dy(flow.state_size()), jv(flow.state_size());
  const double log_scale = 3.0;
  // Warm-up: the workspace takes its sizes.
  flow.rhs(y, log_scale, dy);
  flow.jvp(y, log_scale, v, jv);
  const Counts rhs_counts = count_allocations([&] {
    for (int i = 0; i < 20; ++i) flow.rhs(y, log_scale, dy);
  });
  const Counts jvp_counts = count_allocations([&] {
    for (int i = 0; i < 20; ++i) flow.jvp(y, log_scale, v, jv);
  });
  const Counts mixed_counts = count_allocations([&] {
    for (int i = 0; i < 5; ++i) {
      flow.rhs(y, log_scale, dy);
      flow.jvp(y, log_scale, v, jv);
    }
  });
  EXPECT_EQ(rhs_counts.mallocs, 0);
  EXPECT_EQ(rhs_counts.news, 0);
  EXPECT_EQ(jvp_counts.mallocs, 0);
  EXPECT_EQ(jvp_counts.news, 0);
  EXPECT_EQ(mixed_counts.mallocs + mixed_counts.news, 0);
  EXPECT_TRUE(dy.allFinite() && jv.allFinite());
}

// The counter itself works: an Eigen heap vector and a std::vector are both seen.
TEST(AllocationCounter, SeesEigenAndStdAllocations) {
  const Counts eigen = count_allocations([] {
    Vec x = Vec::Ones(1000);
    EXPECT_EQ(x.sum(), 1000.0);
  });
  EXPECT_GE(eigen.mallocs, 1);
  const Counts stl = count_allocations([] {
    std::vector<double> x(1000, 1.0);
    EXPECT_EQ(x.size(), 1000u);
  });
  EXPECT_GE(stl.news, 1);
}

// The K = 1 gd Jacobian (used by the default dense CVODE solver) also reuses its buffers.
TEST(NoAllocationJacobian, LinearGdAfterWarmup) {
  const Dataset data = test::separable_data(300, 20, 4);
  Flow flow(Network({20, 1}, Activation::linear), data, LossKind::logistic, FlowKind::gd);
  const Vec y = test::random_vector(20, 6);
  Mat J;
  flow.jacobian(y, 1.0, J);
  const Counts counts = count_allocations([&] {
    for (int i = 0; i < 5; ++i) flow.jacobian(y, 1.0, J);
  });
  EXPECT_EQ(counts.mallocs + counts.news, 0);
}

INSTANTIATE_TEST_SUITE_P(AllFlowsAndNetworks, NoAllocation,
                         ::testing::Combine(::testing::Range(0, 4),
                                            ::testing::Values(FlowKind::gd, FlowKind::gd_polar, FlowKind::wn,
                                                              FlowKind::fixed_rho)));
// kinks = "smooth" is gd only (the smoothed net is not homogeneous).
INSTANTIATE_TEST_SUITE_P(SmoothedRelu, NoAllocation, ::testing::Combine(::testing::Values(4), ::testing::Values(FlowKind::gd)));

}  // namespace
}  // namespace gfsim

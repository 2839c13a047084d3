// Generalization observables (generalization.hpp): the normalized-network loss is invariant under
// rescaling a layer (positive homogeneity); the measures equal a direct computation; the records
// are the declared ones, with the test and rho ones only where they apply.
#include "gfsim/generalization.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.hpp"

namespace gfsim {
namespace {

Dataset noisy_data(Index n, Index dim, std::uint64_t seed) {
  Dataset d = test::separable_data(n, dim, seed);
  for (Index i = 0; i < n; i += 5) d.y(i) = -d.y(i);  // misclassified points make the error non-zero
  return d;
}

TEST(Generalization, NormalizedLossInvariantUnderRescalingALayer) {
  const Network net({4, 6, 5, 1}, Activation::relu);
  const Dataset data = noisy_data(30, 4, 3);
  const Loss loss(LossKind::exp);
  const Vec theta = test::random_vector(net.num_params(), 9, 0.7);
  const DataMeasures base = measure_on(net, theta, data, loss, 3.0);
  for (Index k = 0; k < net.num_layers(); ++k) {
    for (double c : {1e-3, 0.37, 25.0}) {
      Vec scaled = theta;
      scaled.segment(net.layer_offset(k), net.layer_size(k)) *= c;
      const DataMeasures m = measure_on(net, scaled, data, loss, 3.0);
      EXPECT_NEAR(m.nloss, base.nloss, 1e-13 * base.nloss) << "layer " << k << " c " << c;
      EXPECT_NEAR(m.nloss_rho, base.nloss_rho, 1e-12 * base.nloss_rho);
      EXPECT_EQ(m.error, base.error);  // the sign of f is unchanged by c > 0
      // The raw loss does change: f scales by c, log mean loss moves.
      if (c != 1.0) EXPECT_GT(std::abs(m.log_mean_loss - base.log_mean_loss), 1e-6);
    }
  }
}

TEST(Generalization, MeasuresEqualADirectComputation) {
  // Two-layer linear network f(x) = w2 . (W1 x): every quantity by hand.
  const Network net({3, 2, 1}, Activation::linear);
  const Dataset data = noisy_data(25, 3, 5);
  const Vec theta = test::random_vector(net.num_params(), 4);
  const Eigen::Map<const RowMat> W1(theta.data(), 2, 3);
  const Vec w2 = theta.tail(2);
  const double rho = W1.norm() * w2.norm();
  for (LossKind kind : {LossKind::exp, LossKind::logistic, LossKind::square}) {
    auto l = [&](double u) {
      return kind == LossKind::exp ? std::exp(-u) : kind == LossKind::logistic ? std::log1p(std::exp(-u))
                                                                              : (1 - u) * (1 - u);
    };
    double errors = 0, raw = 0, normalized = 0, at_rho = 0;
    for (Index i = 0; i < data.n(); ++i) {
      const double f = w2.dot(W1 * data.X.row(i).transpose());
      const double u = data.y(i) * f;
      errors += u <= 0;
      raw += l(u);
      normalized += l(u / rho);
      at_rho += l(2.5 * u / rho);
    }
    const double n = double(data.n());
    const DataMeasures m = measure_on(net, theta, data, Loss(kind), 2.5);
    EXPECT_DOUBLE_EQ(m.error, errors / n);
    EXPECT_NEAR(m.log_mean_loss, std::log(raw / n), 1e-13);
    EXPECT_NEAR(m.nloss, normalized / n, 1e-13 * normalized / n);
    EXPECT_NEAR(m.nloss_rho, at_rho / n, 1e-13 * at_rho / n);
    EXPECT_GT(m.error, 0.0);
  }
}

TEST(Generalization, ZeroLayerStaysZero) {
  const Network net({2, 3, 1}, Activation::relu);
  const Vec V = net.layer_directions(Vec::Zero(net.num_params()));
  EXPECT_TRUE(V.isZero(0));
  const Dataset data = noisy_data(10, 2, 1);
  const DataMeasures m = measure_on(net, Vec::Zero(net.num_params()), data, Loss(LossKind::exp), 0.0);
  EXPECT_DOUBLE_EQ(m.nloss, 1.0);  // f = 0: l(0) = 1 for every point
  EXPECT_DOUBLE_EQ(m.error, 1.0);  // y f <= 0 counts as an error
  EXPECT_TRUE(std::isnan(m.nloss_rho));
}

TEST(Generalization, RecordsAreTheDeclaredOnesAndGapsAreDifferences) {
  const Network net({3, 4, 1}, Activation::relu);
  const Dataset train = noisy_data(20, 3, 2), held = noisy_data(15, 3, 6);
  const Vec theta = test::random_vector(net.num_params(), 8);
  const Loss loss(LossKind::logistic);

  GeneralizationObserver only_train(net, train, nullptr, LossKind::logistic, 0.0);
  const auto train_values = only_train.values_at(theta);
  ASSERT_EQ(train_values.size(), 3u);
  EXPECT_EQ(train_values[0].first, "train_error");
  EXPECT_EQ(train_values[1].first, "train_log_mean_loss");
  EXPECT_EQ(train_values[2].first, "train_nloss");

  GeneralizationObserver both(net, train, &held, LossKind::logistic, 2.0);
  const auto values = both.values_at(theta);
  ASSERT_EQ(values.size(), 12u);
  const auto& names = generalization_observable_names();
  ASSERT_EQ(names.size(), 12u);
  const DataMeasures a = measure_on(net, theta, train, loss, 2.0), b = measure_on(net, theta, held, loss, 2.0);
  const double expected[4][2] = {{a.error, b.error}, {a.log_mean_loss, b.log_mean_loss}, {a.nloss, b.nloss},
                                 {a.nloss_rho, b.nloss_rho}};
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(values[i].first, names[i]);
    const std::size_t q = i / 3, side = i % 3;
    const double want = side == 2 ? expected[q][1] - expected[q][0] : expected[q][side];
    EXPECT_DOUBLE_EQ(values[i].second, want) << names[i];
  }

  // The observable records compute the same from a state (here the state is theta).
  auto records = both.observables([](const Vec& y) { return y; });
  ASSERT_EQ(records.size(), 12u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    double out = 0;
    records[i].compute(0.0, theta, std::span<double>(&out, 1));
    EXPECT_DOUBLE_EQ(out, values[i].second) << records[i].name;
    EXPECT_FALSE(records[i].description.empty());
  }
}

}  // namespace
}  // namespace gfsim

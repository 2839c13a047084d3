// Generalization observables (generalization.hpp): the quantity table, the measures of a weight
// vector on a data set, and the observable records of a run.
#include "gfsim/generalization.hpp"

#include <fmt/format.h>

#include <cmath>
#include <span>

namespace gfsim {
namespace {

/// One quantity, declared once: train_<name>, test_<name> and gap_<name> follow from it.
struct Quantity {
  const char* name;
  const char* description;  ///< of the quantity on one data set; the records say which
  bool needs_rho;
  double DataMeasures::*member;
};

const std::vector<Quantity>& quantities() {
  static const std::vector<Quantity> table = {
      {"error", "classification error: fraction of points with y f(W; x) <= 0", false, &DataMeasures::error},
      {"log_mean_loss", "log of the raw network's mean loss, log (1/n) sum_n l(y_n f(W; x_n))", false,
       &DataMeasures::log_mean_loss},
      {"nloss", "mean loss of the normalized network at rho = 1, (1/n) sum_n l(y_n f(V; x_n)), V_k = W_k/||W_k||_F",
       false, &DataMeasures::nloss},
      {"nloss_rho", "mean loss of the normalized network at rho = generalization.rho, (1/n) sum_n l(rho y_n f(V; x_n))",
       true, &DataMeasures::nloss_rho},
  };
  return table;
}

constexpr const char* kSides[] = {"train", "test", "gap"};

std::string record_description(const Quantity& q, int side) {
  switch (side) {
    case 0: return fmt::format("training set: {}", q.description);
    case 1: return fmt::format("test set: {}", q.description);
    default: return fmt::format("generalization gap, test minus training: {}", q.description);
  }
}

Mat transposed(const Mat& X) { return X.transpose(); }

}  // namespace

DataMeasures measure_on(const Network& net, const Vec& theta, const Dataset& data, const Loss& loss, double rho) {
  DataMeasures m;
  const Index n = data.n();
  if (n == 0) return m;
  const Mat XT = transposed(data.X);
  Network::Workspace ws;
  net.forward(theta, XT, ws);
  const Vec u = data.y.cwiseProduct(ws.f);
  const double log_n = std::log(double(n));
  auto log_mean = [&](const Vec& margins) {
    return loss.log_total(std::span<const double>(margins.data(), std::size_t(margins.size()))) - log_n;
  };
  m.error = double((u.array() <= 0.0).count()) / double(n);
  m.log_mean_loss = log_mean(u);
  net.forward(net.layer_directions(theta), XT, ws);
  const Vec u_normalized = data.y.cwiseProduct(ws.f);
  m.nloss = std::exp(log_mean(u_normalized));
  if (rho > 0) m.nloss_rho = std::exp(log_mean(rho * u_normalized));
  return m;
}

const std::vector<std::string>& generalization_observable_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Quantity& q : quantities())
      for (const char* side : kSides) out.push_back(fmt::format("{}_{}", side, q.name));
    return out;
  }();
  return names;
}

GeneralizationObserver::GeneralizationObserver(const Network& net, const Dataset& train, const Dataset* test,
                                               LossKind loss, double rho)
    : net_(net), train_(train), test_(test ? *test : Dataset{}), loss_(loss), rho_(rho) {
  const bool with_test = test_.n() > 0;
  for (std::size_t q = 0; q < quantities().size(); ++q) {
    if (quantities()[q].needs_rho && !(rho_ > 0)) continue;
    for (int side = 0; side < (with_test ? 3 : 1); ++side)
      records_.push_back({fmt::format("{}_{}", kSides[side], quantities()[q].name),
                          record_description(quantities()[q], side), quantities()[q].member, side});
  }
}

std::pair<DataMeasures, DataMeasures> GeneralizationObserver::measures(const Vec& theta) const {
  return {measure_on(net_, theta, train_, loss_, rho_), measure_on(net_, theta, test_, loss_, rho_)};
}

const std::pair<DataMeasures, DataMeasures>& GeneralizationObserver::measures_of_state(const Vec& y) {
  // The records of one sample share one evaluation: they are computed in a row on the same y.
  if (!has_cache_ || cached_y_.size() != y.size() || cached_y_ != y) {
    cached_ = measures(theta_of_(y));
    cached_y_ = y;
    has_cache_ = true;
  }
  return cached_;
}

std::vector<ObservableDef> GeneralizationObserver::observables(std::function<Vec(const Vec& y)> theta_of) {
  theta_of_ = std::move(theta_of);
  has_cache_ = false;
  std::vector<ObservableDef> out;
  for (const Record& record : records_) {
    out.push_back({record.name, 0, record.description, {}, [this, record](double, const Vec& y, std::span<double> v) {
                     const auto& [train, test] = measures_of_state(y);
                     v[0] = record.value(train, test);
                   }});
  }
  return out;
}

std::vector<std::pair<std::string, double>> GeneralizationObserver::values_at(const Vec& theta) const {
  const auto [train, test] = measures(theta);
  std::vector<std::pair<std::string, double>> out;
  for (const Record& record : records_) out.emplace_back(record.name, record.value(train, test));
  return out;
}

}  // namespace gfsim

#pragma once
// Generalization observables (issue 17; docs/file-format.md): functions of the weights on the
// training and the held-out test set, recorded along every trajectory, summarised at the end and
// read into the sweep index. Declared once, in the quantity table of generalization.cpp: each
// quantity gives the observables train_<q>, test_<q> and gap_<q> = test_<q> - train_<q> (the test
// and gap ones only when the model has a test set, the _rho ones only with generalization.rho).
//
// With per-point mean losses, so that training and test sets of different sizes compare:
//   error          fraction of points with y f(W; x) <= 0
//   log_mean_loss  log (1/n) sum_n l(y_n f(W; x_n))              (the raw network)
//   nloss          (1/n) sum_n l(y_n f(V; x_n)), V_k = W_k / ||W_k||_F   (normalized, rho = 1)
//   nloss_rho      (1/n) sum_n l(rho y_n f(V; x_n))               (normalized, at the chosen rho)
// f(V) is evaluated by the network itself (for the exact ReLU and linear nets it is f(W) / prod_k
// ||W_k||; the smoothed ReLU is not homogeneous and is evaluated at V). A zero layer stays zero.
//
//   GeneralizationObserver g(net, data.train, &data.test, LossKind::exp, /*rho=*/0);
//   for (ObservableDef& o : g.observables(theta_of)) layout.observables.push_back(std::move(o));
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/loss.hpp"
#include "gfsim/network.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// The quantities of one weight vector on one data set (header comment).
struct DataMeasures {
  double error = 0;
  double log_mean_loss = 0;
  double nloss = 0;
  double nloss_rho = std::numeric_limits<double>::quiet_NaN();
};

/// The measures of theta on `data` (points as rows); rho <= 0 leaves nloss_rho NaN.
DataMeasures measure_on(const Network& net, const Vec& theta, const Dataset& data, const Loss& loss, double rho);

/// Every observable name a run may record, in record order (the sweep index's columns).
const std::vector<std::string>& generalization_observable_names();

/// The generalization observables of one run, computed once per sample from theta.
class GeneralizationObserver {
 public:
  /// `test` may be null or empty (then only the train_ observables); rho <= 0: no _rho ones.
  GeneralizationObserver(const Network& net, const Dataset& train, const Dataset* test, LossKind loss, double rho);

  /// The observable records (recorder.hpp) for this run; theta_of maps the ODE state to the weights.
  /// The observer must outlive them.
  std::vector<ObservableDef> observables(std::function<Vec(const Vec& y)> theta_of);
  /// (name, value) of every recorded observable at theta, in record order (the run summary).
  std::vector<std::pair<std::string, double>> values_at(const Vec& theta) const;

 private:
  struct Record {
    std::string name, description;
    double DataMeasures::*member;
    int side;  ///< 0 train, 1 test, 2 gap = test - train
    double value(const DataMeasures& train, const DataMeasures& test) const {
      return side == 0 ? train.*member : side == 1 ? test.*member : test.*member - train.*member;
    }
  };
  const std::pair<DataMeasures, DataMeasures>& measures_of_state(const Vec& y);
  std::pair<DataMeasures, DataMeasures> measures(const Vec& theta) const;

  Network net_;
  Dataset train_, test_;
  Loss loss_;
  double rho_;
  std::vector<Record> records_;
  std::function<Vec(const Vec&)> theta_of_;
  Vec cached_y_;
  std::pair<DataMeasures, DataMeasures> cached_;
  bool has_cache_ = false;
};

}  // namespace gfsim

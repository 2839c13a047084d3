#pragma once
// ModelSpec: one experiment, parsed from a TOML model file and validated once.
// Every key is documented in models/README.md. Errors are thrown as SpecError with a
// message naming the key (or file:line), the offending value and the rule it broke.
//
//   auto spec = gfsim::load_model_spec("models/linear_exp.toml", {"time.t_end=1e100"});
//   std::cout << spec.resolved_toml;   // canonical TOML with every default filled in
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfsim/enums.hpp"
#include "gfsim/errors.hpp"

namespace gfsim {

struct DataSpec {
  DataKind kind = DataKind::gaussian;
  std::string path;           ///< csv: file; stored absolute (relative in the model file = next to it)
  int n = 100;                ///< gaussian/teacher: number of points
  int dim = 5;                ///< gaussian/teacher: input dimension (before the bias feature)
  double margin = 0.1;        ///< gaussian: minimum |w_true . x| (separation margin of the generator)
  bool bias = false;          ///< append a constant-1 feature to every point
  std::uint64_t seed = 1;
  int teacher_hidden = 8;     ///< teacher: hidden width of the random 2-layer ReLU teacher
  // Held-out data and label corruption (data_split.hpp); the defaults leave the data untouched.
  double test_fraction = 0;   ///< stratified seeded split: this fraction of each class is the test set
  std::string test_path;      ///< test set from a second CSV; stored absolute like path
  int test_n = 0;             ///< gaussian/teacher: test points drawn from the same generator
  double label_noise = 0;     ///< fraction of training labels flipped (seeded), in [0, 1)
  bool random_labels = false; ///< every training label replaced by a fair +-1 draw (seeded)
  bool standardize = false;   ///< features standardized with the training set's mean and std

  bool operator==(const DataSpec&) const = default;
};

struct NetworkSpec {
  Activation activation = Activation::linear;
  std::vector<int> hidden;    ///< hidden widths d_1..d_{K-1}; empty = one-layer linear model
  double init_scale = 0.1;    ///< each W_k ~ init_scale * N(0,1)/sqrt(fan_in); 0 = start at W = 0
  std::uint64_t seed = 2;
  std::string init_file;      ///< text file, one number per line, theta layout; overrides init_scale;
                              ///< stored absolute like data.path

  bool operator==(const NetworkSpec&) const = default;
};

struct LossSpec {
  LossKind kind = LossKind::exp;

  bool operator==(const LossSpec&) const = default;
};

struct FlowSpec {
  FlowKind kind = FlowKind::gd;
  double rho = 1.0;           ///< fixed_rho: the fixed product of layer norms; rho_schedule: rho(0)
  // nm: lambda(t) of dW/dt = -grad L - lambda(t) W (schedule.hpp)
  LambdaKind lambda = LambdaKind::power;
  double lambda0 = 1.0;       ///< power, log: lambda(0)
  double lambda_power = 1.0;  ///< power: p in lambda0 (1+t)^-p, in (0, 1]
  std::string lambda_table;   ///< table: two columns t, lambda; stored absolute like data.path
  // rho_schedule: rho(t) (schedule.hpp), rho(0) = flow.rho
  RhoScheduleKind rho_schedule = RhoScheduleKind::logarithmic;
  double rho_rate = 1.0;      ///< logarithmic, power, exponential: the rate
  double rho_factor = 2.0;    ///< staircase: rescaling factor after each phase
  double rho_phase = 10.0;    ///< staircase: duration of a phase
  std::string rho_table;      ///< table: two columns t, rho

  bool operator==(const FlowSpec&) const = default;
};

struct SolverSpec {
  Method method = Method::auto_select;
  double rtol = 1e-8;
  double atol = 1e-10;
  ClockKind clock = ClockKind::auto_select;  ///< auto: log when t_end > 1e3, else t
  std::int64_t max_steps = 1000000;
  double max_wall_seconds = 0.0;             ///< 0 = no limit
  int threads = 1;                           ///< threads for Eigen's matrix products (OpenMP)
  std::int64_t max_memory = 0;               ///< bytes a run may use; 0 = what /proc/meminfo offers
  bool screening = false;                    ///< safe screening of negligible points (equations.md 9)

  bool operator==(const SolverSpec&) const = default;
};

struct TimeSpec {
  double t_end = 1e4;
  double t_first = 1e-2;      ///< first log-spaced sample after t = 0
  int samples_per_decade = 10;

  bool operator==(const TimeSpec&) const = default;
};

struct DynamicsSpec {
  KinkMode kinks = KinkMode::events;  ///< ReLU networks only
  double kink_width = 1e-3;  ///< kinks = smooth: ReLU -> eps log(1 + e^{z/eps}), eps in pre-activation units

  bool operator==(const DynamicsSpec&) const = default;
};

struct OutputSpec {
  std::string path = "gfsim_out.h5";  ///< relative paths resolve against the working directory
  double flush_interval = 2.0;        ///< seconds of wall clock between HDF5 flushes
  bool swmr = true;                   ///< SWMR writing: crash-consistent, readable while running

  bool operator==(const OutputSpec&) const = default;
};

/// Optional [spectrum]: the k smallest and k largest eigenvalues of the Riemannian Hessian of
/// V -> L(rho f~(V)) on the tangent space of the product of spheres, at the current direction V(t)
/// and rho(t) = prod_k rho_k (equations.md section 7), sampled along the trajectory of any flow.
struct SpectrumSpec {
  std::vector<double> times;   ///< sample times (ascending, in (0, t_end]); or
  int samples_per_decade = 0;  ///< log-spaced from time.t_first to time.t_end (0 = use `times`)
  int k = 5;                   ///< eigenvalues at each end
  bool enabled() const { return samples_per_decade > 0 || !times.empty(); }

  bool operator==(const SpectrumSpec&) const = default;
};

/// Optional [generalization]: the chosen rho of the normalized-network loss observables.
struct GeneralizationSpec {
  double rho = 0;             ///< > 0: also record the loss of rho f~(V) (0 = not recorded)

  bool operator==(const GeneralizationSpec&) const = default;
};

struct ModelSpec {
  std::string name;           ///< [model] name (default: file stem)
  std::string description;    ///< [model] description
  std::string source_path;    ///< the model file as given
  DataSpec data;
  NetworkSpec network;
  LossSpec loss;
  FlowSpec flow;
  SolverSpec solver;
  TimeSpec time;
  DynamicsSpec dynamics;
  OutputSpec output;
  SpectrumSpec spectrum;
  GeneralizationSpec generalization;
  std::string resolved_toml;  ///< canonical TOML of every key after defaults and overrides

  bool operator==(const ModelSpec&) const = default;
};

/// Parse and validate a model file; `overrides` are "section.key=value" strings (value in TOML
/// syntax; bare words are taken as strings). Throws SpecError.
ModelSpec load_model_spec(const std::string& path, const std::vector<std::string>& overrides = {});
/// Same from TOML text. source_name is used in messages, gives the default [model] name (its stem)
/// and the folder that relative data.path / network.init_file resolve against.
ModelSpec parse_model_spec(const std::string& toml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides = {});

/// Every model key as "section.key", in the order of the schema table (resolved model, README).
std::vector<std::string> model_keys();

/// The canonical TOML of every key of `spec` (the text of ModelSpec::resolved_toml): for writing a
/// spec changed in code.
std::string canonical_toml(const ModelSpec& spec);

/// True for the kinds whose field is built from grad L of the weights alone (gd, nm, normalized):
/// they integrate the smoothed ReLU (dynamics.kinks = "smooth") correctly. The polar, weight-
/// normalized and fixed-radius kinds are derived from f(rho V) = rho^K f(V), which it breaks.
bool integrates_smoothed_relu(FlowKind kind);

}  // namespace gfsim

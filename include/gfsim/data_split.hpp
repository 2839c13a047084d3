#pragma once
// Held-out data and label corruption (issue 17; models/README.md, [data]): the training set a run
// integrates and the test set its generalization observables are measured on.
//
//   HeldOutData d = make_held_out_data(spec.data, model_dir);
//   d.train;  d.test;  d.has_test();  d.feature_mean;  d.corrupted_rows;
//
// Order of the steps: the points (generator, CSV) -> the test set (a stratified split by
// data.test_fraction, a second CSV data.test_path, or data.test_n more points of the generator) ->
// standardization with the training set's statistics, applied to both sets -> label noise or
// random labels on the training set only -> the bias feature on both. Every random choice comes from
// std::mt19937_64 seeded with data.seed XOR a constant per purpose, through the integer draws below
// (no std:: distribution), so splits and flips are the same with every standard library.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct HeldOutData {
  Dataset train;                    ///< what the flow integrates (labels possibly corrupted)
  Dataset test;                     ///< n = 0 without held-out data
  bool has_test() const { return test.n() > 0; }
  Vec feature_mean, feature_scale;  ///< standardize: training mean and std per feature (before the
                                    ///< bias column); empty otherwise
  Vec clean_labels;                 ///< training labels before corruption (empty without it)
  std::vector<Index> corrupted_rows;  ///< training rows whose label was flipped or redrawn and changed
};

/// The data of a spec: training and test set (above). SpecError naming the data key for a split
/// that leaves a class without training or test points, a test file with other features, and the
/// errors of make_dataset.
HeldOutData make_held_out_data(const DataSpec& spec, const std::string& base_dir = ".");

// ---- The building blocks (tested directly) -----------------------------------------------------

/// Stream constants XORed into data.seed, one per purpose, so the split and the label noise of one
/// seed are independent draws.
inline constexpr std::uint64_t kSplitStream = 0x5bd1e9955bd1e995ULL;
inline constexpr std::uint64_t kLabelStream = 0x9e3779b97f4a7c15ULL;

/// Uniform integer in [0, m) from the engine by rejection (exact, library independent); m >= 1.
std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t m);

struct SplitRows {
  std::vector<Index> train, test;  ///< ascending row indices, disjoint, together every row
};
/// Stratified split: in each class (label -1, then +1) its rows are shuffled (Fisher-Yates) and the
/// first round(fraction * count) go to the test set. DomainError naming the class when a class
/// present in y would end with no training or no test point.
SplitRows stratified_split(const Vec& y, double fraction, std::uint64_t seed);

/// Flips exactly round(fraction * n) labels, at rows drawn without replacement; returns them, ascending.
std::vector<Index> flip_labels(Vec& y, double fraction, std::uint64_t seed);
/// Replaces every label by a fair +-1 draw; returns the rows whose label changed, ascending.
std::vector<Index> randomize_labels(Vec& y, std::uint64_t seed);

/// Per-feature mean and population standard deviation (features of zero spread keep scale 1).
void standardization_of(const Mat& X, Vec& mean, Vec& scale);

}  // namespace gfsim

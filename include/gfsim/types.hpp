#pragma once
// Basic numeric types shared by every gfsim header. Only <Eigen/Core> here: heavy headers
// (odeint, Spectra, CLI11, toml++, HDF5) stay inside single .cpp files.
#include <Eigen/Core>
#include <cstdint>

namespace gfsim {
using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Index = Eigen::Index;
}  // namespace gfsim

#pragma once
// SUNDIALS CVODE (BDF, variable order 1..5) as a stepper of gfsim's one integration loop: same
// options, clock, output times, stop conditions and counters as every other method
// (gfsim::integrate dispatches here for Method::cvode). SUNDIALS headers live in
// src/cvode_solver.cpp only.
//
// Linear solver for the Newton iterations:
//   dense  exact Jacobian (problem.jacobian), LU by Eigen's PartialPivLU (a small custom
//          SUNLinearSolver: 6.7x faster than SUNDIALS' own dense LU at 50x50);
//   spgmr  matrix-free GMRES (maxl = 50) with the exact Jacobian-vector product (problem.jvp).
//   auto   dense while the state has at most kCvodeDenseMaxSize components, spgmr above.
#include <vector>

#include "gfsim/integrate.hpp"

namespace gfsim {

enum class CvodeLinearSolver { auto_select, dense, spgmr };

inline constexpr Index kCvodeDenseMaxSize = 400;
inline constexpr int kCvodeKrylovDim = 50;

const char* to_string(CvodeLinearSolver);

/// Same semantics as integrate() (outputs exactly at `times`, t0 and t_end observed, the same
/// statuses); never throws for numerical trouble.
SolveResult integrate_cvode(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                            const SolverOptions& options, const SampleObserver& observe,
                            const StepMonitor& monitor = {},
                            CvodeLinearSolver linear_solver = CvodeLinearSolver::auto_select);

}  // namespace gfsim

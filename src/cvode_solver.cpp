// The only translation unit that includes SUNDIALS. CVODE runs in one-step mode as a stepper of
// the integration loop (src/stepper.hpp, detail::integrate_loop): one CVode call per attempt,
// dense output by CVodeGetDky (CVODE's Nordsieck interpolant), a restart by CVodeReInit, counters
// from CVodeGet*. A non-finite right-hand side, Jacobian or J v is reported to CVODE as a
// recoverable failure (it then cuts the step) and ends the run with Status::non_finite if CVODE
// gives up.
#include "gfsim/cvode_solver.hpp"
#include "gfsim/clock.hpp"
#include "stepper.hpp"

#include <cvode/cvode.h>
#include <cvode/cvode_ls.h>
#include <fmt/format.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>
#include <sundials/sundials_matrix.h>
#include <sunlinsol/sunlinsol_spgmr.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>

namespace gfsim {

const char* to_string(CvodeLinearSolver ls) {
  switch (ls) {
    case CvodeLinearSolver::auto_select: return "auto";
    case CvodeLinearSolver::dense: return "dense";
    case CvodeLinearSolver::spgmr: return "spgmr";
  }
  return "?";
}

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// What the CVODE callbacks see (user_data). Work vectors are allocated once: no heap allocation
// in the RHS / J v path.
struct Callbacks {
  const OdeProblem* problem;
  Clock clock;
  Index n;
  Vec y, dy, v, jv;
  bool non_finite = false;  ///< a callback produced NaN/Inf (reported as recoverable)
  std::string last_error;   ///< CVODE's last error message
  double origin = 0.0;      ///< the clock value of CVODE's time 0 (the last restart; CvodeStepper)
  /// The field's arguments at CVODE's time tau.
  TimePoint at(realtype tau) const { return clock.at(origin + tau); }
};

Eigen::Map<Vec> as_eigen(N_Vector v) { return {N_VGetArrayPointer(v), Index(N_VGetLength(v))}; }

int rhs_fn(realtype tau, N_Vector y, N_Vector ydot, void* user) {
  auto& cb = *static_cast<Callbacks*>(user);
  cb.y = as_eigen(y);
  cb.problem->rhs(cb.at(tau), cb.y, cb.dy);
  if (!cb.dy.allFinite()) {
    cb.non_finite = true;
    return 1;
  }
  as_eigen(ydot) = cb.dy;
  return 0;
}

// ---- a dense SUNMatrix holding an Eigen matrix ---------------------------------------------------
// CVODE forms M = I - gamma J by SUNMatCopy and SUNMatScaleAddI on every linear-solver setup;
// SUNDIALS' own dense kernels for those cost ~10 us at n = 50 (more than the LU), Eigen's < 1 us.
// The Jacobian callback and the LU read and write this Eigen matrix in place.
Mat& eigen_of(SUNMatrix A) { return *static_cast<Mat*>(A->content); }

SUNMatrix make_eigen_dense(Index n, SUNContext ctx);
SUNMatrix_ID eigen_dense_id(SUNMatrix) { return SUNMATRIX_CUSTOM; }
SUNMatrix eigen_dense_clone(SUNMatrix A) { return make_eigen_dense(eigen_of(A).rows(), A->sunctx); }
void eigen_dense_destroy(SUNMatrix A) {
  if (!A) return;
  delete static_cast<Mat*>(A->content);
  A->content = nullptr;
  SUNMatFreeEmpty(A);
}
int eigen_dense_zero(SUNMatrix A) {
  eigen_of(A).setZero();
  return SUNMAT_SUCCESS;
}
int eigen_dense_copy(SUNMatrix A, SUNMatrix B) {
  eigen_of(B) = eigen_of(A);
  return SUNMAT_SUCCESS;
}
int eigen_dense_scaleaddi(realtype c, SUNMatrix A) {  // A = c A + I
  Mat& M = eigen_of(A);
  M *= c;
  M.diagonal().array() += 1.0;
  return SUNMAT_SUCCESS;
}
int eigen_dense_space(SUNMatrix A, long* lenrw, long* leniw) {
  *lenrw = long(eigen_of(A).size());
  *leniw = 2;
  return SUNMAT_SUCCESS;
}
SUNMatrix make_eigen_dense(Index n, SUNContext ctx) {
  SUNMatrix A = SUNMatNewEmpty(ctx);
  if (!A) return nullptr;
  A->ops->getid = eigen_dense_id;
  A->ops->clone = eigen_dense_clone;
  A->ops->destroy = eigen_dense_destroy;
  A->ops->zero = eigen_dense_zero;
  A->ops->copy = eigen_dense_copy;
  A->ops->scaleaddi = eigen_dense_scaleaddi;
  A->ops->space = eigen_dense_space;
  A->content = new Mat(Mat::Zero(n, n));
  return A;
}

int jac_fn(realtype tau, N_Vector y, N_Vector, SUNMatrix J, void* user, N_Vector, N_Vector, N_Vector) {
  auto& cb = *static_cast<Callbacks*>(user);
  cb.y = as_eigen(y);
  Mat& Jm = eigen_of(J);
  cb.problem->jacobian(cb.at(tau), cb.y, Jm);
  if (!Jm.allFinite()) {
    cb.non_finite = true;
    return 1;
  }
  return 0;
}

// ---- serial N_Vector kernels on Eigen maps -------------------------------------------------------
// The Debian SUNDIALS is built for generic x86-64: its reductions (weighted RMS norms, dot
// products) run one element per FP-add latency. Eigen's vectorise (-march=native). The fused
// operations (linear combinations, scale-add-multi) replace loops of N_VLinearSum in the BDF
// predictor/corrector and in SPGMR's Gram-Schmidt. Clones copy the ops table, so setting them on
// the template vector covers every vector CVODE allocates.
namespace vec {
void linearsum(realtype a, N_Vector x, realtype b, N_Vector y, N_Vector z) {
  as_eigen(z) = a * as_eigen(x) + b * as_eigen(y);
}
void constant(realtype c, N_Vector z) { as_eigen(z).setConstant(c); }
void prod(N_Vector x, N_Vector y, N_Vector z) { as_eigen(z) = as_eigen(x).cwiseProduct(as_eigen(y)); }
void div(N_Vector x, N_Vector y, N_Vector z) { as_eigen(z) = as_eigen(x).cwiseQuotient(as_eigen(y)); }
void scale(realtype c, N_Vector x, N_Vector z) { as_eigen(z) = c * as_eigen(x); }
void abs(N_Vector x, N_Vector z) { as_eigen(z) = as_eigen(x).cwiseAbs(); }
void inv(N_Vector x, N_Vector z) { as_eigen(z) = as_eigen(x).cwiseInverse(); }
void addconst(N_Vector x, realtype b, N_Vector z) { as_eigen(z) = as_eigen(x).array() + b; }
realtype dotprod(N_Vector x, N_Vector y) { return as_eigen(x).dot(as_eigen(y)); }
realtype maxnorm(N_Vector x) { return as_eigen(x).size() ? as_eigen(x).cwiseAbs().maxCoeff() : 0.0; }
realtype wsqrsum(N_Vector x, N_Vector w) { return as_eigen(x).cwiseProduct(as_eigen(w)).squaredNorm(); }
realtype wrmsnorm(N_Vector x, N_Vector w) { return std::sqrt(wsqrsum(x, w) / double(N_VGetLength(x))); }
realtype l1norm(N_Vector x) { return as_eigen(x).lpNorm<1>(); }
int linearcombination(int nv, realtype* c, N_Vector* X, N_Vector z) {  // z = sum_i c_i X_i (z may be X_0)
  auto zm = as_eigen(z);
  if (X[0] == z) {
    if (c[0] != 1.0) zm *= c[0];
  } else {
    zm = c[0] * as_eigen(X[0]);
  }
  for (int i = 1; i < nv; ++i) zm += c[i] * as_eigen(X[i]);
  return 0;
}
int scaleaddmulti(int nv, realtype* a, N_Vector x, N_Vector* Y, N_Vector* Z) {  // Z_i = a_i x + Y_i
  const auto xm = as_eigen(x);
  for (int i = 0; i < nv; ++i) as_eigen(Z[i]) = a[i] * xm + as_eigen(Y[i]);
  return 0;
}
int dotprodmulti(int nv, N_Vector x, N_Vector* Y, realtype* d) {
  const auto xm = as_eigen(x);
  for (int i = 0; i < nv; ++i) d[i] = xm.dot(as_eigen(Y[i]));
  return 0;
}
void install(N_Vector v) {
  N_Vector_Ops o = v->ops;
  o->nvlinearsum = linearsum;
  o->nvconst = constant;
  o->nvprod = prod;
  o->nvdiv = div;
  o->nvscale = scale;
  o->nvabs = abs;
  o->nvinv = inv;
  o->nvaddconst = addconst;
  o->nvdotprod = dotprod;
  o->nvmaxnorm = maxnorm;
  o->nvwrmsnorm = wrmsnorm;
  o->nvl1norm = l1norm;
  o->nvdotprodlocal = dotprod;
  o->nvmaxnormlocal = maxnorm;
  o->nvl1normlocal = l1norm;
  o->nvwsqrsumlocal = wsqrsum;
  o->nvlinearcombination = linearcombination;
  o->nvscaleaddmulti = scaleaddmulti;
  o->nvdotprodmulti = dotprodmulti;
}
}  // namespace vec

int jtimes_fn(N_Vector v, N_Vector Jv, realtype tau, N_Vector y, N_Vector, void* user, N_Vector) {
  auto& cb = *static_cast<Callbacks*>(user);
  cb.y = as_eigen(y);
  cb.v = as_eigen(v);
  cb.problem->jvp(cb.at(tau), cb.y, cb.v, cb.jv);
  if (!cb.jv.allFinite()) {
    cb.non_finite = true;
    return 1;
  }
  as_eigen(Jv) = cb.jv;
  return 0;
}

void error_handler(int, const char* module, const char* function, char* msg, void* user) {
  static_cast<Callbacks*>(user)->last_error = fmt::format("{} {}: {}", module, function, msg);
}

// ---- a direct SUNLinearSolver on a SUNDenseMatrix by Eigen's PartialPivLU ------------------------
// M = I - gamma J. For gradient flows in the raw weights J = -Hessian is symmetric, and for convex
// losses of linear models M is positive definite: Cholesky then costs half an LU. Any other M
// (not exactly symmetric, or Cholesky fails) is factored by partial-pivot LU.
struct EigenLU {
  Index n;
  Eigen::PartialPivLU<Mat> lu;
  Eigen::LLT<Mat> llt;
  bool use_llt = false;
  Vec x;
};

SUNLinearSolver_Type eigen_lu_type(SUNLinearSolver) { return SUNLINEARSOLVER_DIRECT; }
SUNLinearSolver_ID eigen_lu_id(SUNLinearSolver) { return SUNLINEARSOLVER_CUSTOM; }
int eigen_lu_initialize(SUNLinearSolver) { return SUNLS_SUCCESS; }
int eigen_lu_setup(SUNLinearSolver S, SUNMatrix A) {
  auto& c = *static_cast<EigenLU*>(S->content);
  const Mat& M = eigen_of(A);
  if (!M.allFinite()) return SUNLS_LUFACT_FAIL;
  c.use_llt = false;
  if (M == M.transpose()) {
    c.llt.compute(M);
    c.use_llt = c.llt.info() == Eigen::Success;
  }
  if (!c.use_llt) c.lu.compute(M);
  return SUNLS_SUCCESS;
}
int eigen_lu_solve(SUNLinearSolver S, SUNMatrix, N_Vector x, N_Vector b, realtype) {
  auto& c = *static_cast<EigenLU*>(S->content);
  if (c.use_llt)
    c.x.noalias() = c.llt.solve(as_eigen(b));
  else
    c.x.noalias() = c.lu.solve(as_eigen(b));
  if (!c.x.allFinite()) return SUNLS_PACKAGE_FAIL_REC;
  as_eigen(x) = c.x;
  return SUNLS_SUCCESS;
}
sunindextype eigen_lu_lastflag(SUNLinearSolver) { return 0; }
int eigen_lu_free(SUNLinearSolver S) {
  if (!S) return SUNLS_SUCCESS;
  delete static_cast<EigenLU*>(S->content);
  S->content = nullptr;
  SUNLinSolFreeEmpty(S);
  return SUNLS_SUCCESS;
}

SUNLinearSolver make_eigen_lu(Index n, SUNContext ctx) {
  SUNLinearSolver S = SUNLinSolNewEmpty(ctx);
  if (!S) return nullptr;
  S->ops->gettype = eigen_lu_type;
  S->ops->getid = eigen_lu_id;
  S->ops->initialize = eigen_lu_initialize;
  S->ops->setup = eigen_lu_setup;
  S->ops->solve = eigen_lu_solve;
  S->ops->lastflag = eigen_lu_lastflag;
  S->ops->free = eigen_lu_free;
  auto* c = new EigenLU{n, Eigen::PartialPivLU<Mat>(n), Eigen::LLT<Mat>(n), false, Vec(n)};
  S->content = c;
  return S;
}

// RAII for the SUNDIALS objects of one solve.
struct Sundials {
  SUNContext ctx = nullptr;
  N_Vector y = nullptr, dky = nullptr;
  SUNMatrix A = nullptr;
  SUNLinearSolver LS = nullptr;
  void* mem = nullptr;
  ~Sundials() {
    if (mem) CVodeFree(&mem);
    if (LS) SUNLinSolFree(LS);
    if (A) SUNMatDestroy(A);
    if (dky) N_VDestroy(dky);
    if (y) N_VDestroy(y);
    if (ctx) SUNContext_Free(&ctx);
  }
};

// Hairer-Norsett-Wanner's starting step for a first-order start (BDF starts at order 1), at the
// initial time and at every restart after an event. Adds its right-hand sides to rhs_evals.
double initial_step(Callbacks& cb, const Vec& y0, double tau0, double span, double atol, double rtol,
                    std::int64_t& rhs_evals) {
  const Index n = y0.size();
  Vec f0(n), f1(n);
  ++rhs_evals;
  cb.problem->rhs(cb.at(tau0), y0, f0);
  if (!f0.allFinite()) return std::min(1e-6, span);
  const Vec scale = (atol + rtol * y0.array().abs()).matrix();
  const double rn = std::sqrt(double(n));
  const double d0 = (y0.array() / scale.array()).matrix().norm() / rn;
  const double d1 = (f0.array() / scale.array()).matrix().norm() / rn;
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  const Vec y1 = y0 + h0 * f0;
  ++rhs_evals;
  cb.problem->rhs(cb.at(tau0 + h0), y1, f1);
  if (!f1.allFinite()) return h0;
  const double d2 = ((f1 - f0).array() / scale.array()).matrix().norm() / rn / h0;
  const double dmax = std::max(d1, d2);
  const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::sqrt(0.01 / dmax);
  return std::min({100 * h0, h1, span});
}

// CVODE's name of a return flag. CVodeGetReturnFlagName returns a malloc'd string: freed here.
std::string flag_name(int flag) {
  char* name = CVodeGetReturnFlagName(flag);
  std::string out = name ? name : "unknown flag";
  std::free(name);
  return out;
}

class CvodeStepper final : public detail::Stepper {
 public:
  CvodeStepper(const OdeProblem& problem, const SolverOptions& o, CvodeLinearSolver linear_solver, Index n,
               SolverCounters& c, const Vec& y0, double tau0, double tau_end)
      : o_(o), linear_solver_(linear_solver), c_(c), tau_end_(tau_end),
        cb_{&problem, Clock{o.clock}, n, Vec(n), Vec(n), Vec(n), Vec(n), false, {}, 0.0} {
    auto check = [&](int flag, const char* what) {
      if (flag < 0)
        throw detail::StepperSetupError(fmt::format("CVODE setup: {} failed (flag {}) {}", what, flag, cb_.last_error));
    };
    check(SUNContext_Create(nullptr, &sd_.ctx), "SUNContext_Create");
    sd_.y = N_VNew_Serial(sunindextype(n), sd_.ctx);
    sd_.dky = N_VNew_Serial(sunindextype(n), sd_.ctx);
    if (!sd_.y || !sd_.dky) throw detail::StepperSetupError("CVODE setup: N_VNew_Serial failed");
    vec::install(sd_.y);
    vec::install(sd_.dky);
    as_eigen(sd_.y) = y0;
    sd_.mem = CVodeCreate(CV_BDF, sd_.ctx);
    if (!sd_.mem) throw detail::StepperSetupError("CVODE setup: CVodeCreate failed");
    check(CVodeSetErrHandlerFn(sd_.mem, error_handler, &cb_), "CVodeSetErrHandlerFn");
    check(CVodeInit(sd_.mem, rhs_fn, tau0, sd_.y), "CVodeInit");
    check(CVodeSStolerances(sd_.mem, o.rtol, o.atol), "CVodeSStolerances");
    check(CVodeSetUserData(sd_.mem, &cb_), "CVodeSetUserData");
    check(CVodeSetStopTime(sd_.mem, tau_end), "CVodeSetStopTime");
    check(CVodeSetMaxHnilWarns(sd_.mem, -1), "CVodeSetMaxHnilWarns");
    const double h0 = o.initial_step > 0 ? o.initial_step
                                         : initial_step(cb_, y0, tau0, tau_end - tau0, o.atol, o.rtol, before_.rhs_evals);
    check(CVodeSetInitStep(sd_.mem, h0), "CVodeSetInitStep");
    if (linear_solver == CvodeLinearSolver::dense) {
      sd_.A = make_eigen_dense(n, sd_.ctx);
      sd_.LS = make_eigen_lu(n, sd_.ctx);
      if (!sd_.A || !sd_.LS) throw detail::StepperSetupError("CVODE setup: dense matrix/solver allocation failed");
      check(CVodeSetLinearSolver(sd_.mem, sd_.LS, sd_.A), "CVodeSetLinearSolver");
      check(CVodeSetJacFn(sd_.mem, jac_fn), "CVodeSetJacFn");
    } else {
      sd_.LS = SUNLinSol_SPGMR(sd_.y, SUN_PREC_NONE, kCvodeKrylovDim, sd_.ctx);
      if (!sd_.LS) throw detail::StepperSetupError("CVODE setup: SUNLinSol_SPGMR failed");
      check(CVodeSetLinearSolver(sd_.mem, sd_.LS, nullptr), "CVodeSetLinearSolver");
      check(CVodeSetJacTimes(sd_.mem, nullptr, jtimes_fn), "CVodeSetJacTimes");
    }
  }

  detail::Attempt attempt(Vec& x, double& tau, double target) override {
    // The target is tau_end or a known discontinuity of the field before it (integrate.hpp,
    // Discontinuities): CVODE's stop time, so that no step, and no interpolation, crosses it.
    if (target != tstop_) {
      if (const int flag = CVodeSetStopTime(sd_.mem, target - cb_.origin); flag < 0)
        return {detail::Attempt::failed, fmt::format("CVODE failed to stop at t = {:.6g}: {} {}",
                                                     cb_.clock.time(target), flag_name(flag), cb_.last_error)};
      tstop_ = target;
    }
    double tret = tau;
    cb_.non_finite = false;
    const int flag = CVode(sd_.mem, tstop_ - cb_.origin, sd_.y, &tret, CV_ONE_STEP);
    update_counters();
    if (flag < 0) {
      if (cb_.non_finite || flag == CV_RHSFUNC_FAIL || flag == CV_FIRST_RHSFUNC_ERR || flag == CV_REPTD_RHSFUNC_ERR ||
          flag == CV_UNREC_RHSFUNC_ERR)
        return {detail::Attempt::non_finite,
                fmt::format("the right-hand side (or its Jacobian) became non-finite near t = {:.6g} ({})",
                            cb_.clock.time(tau), flag_name(flag))};
      if (flag == CV_ERR_FAILURE || flag == CV_CONV_FAILURE || flag == CV_TOO_CLOSE)
        return {detail::Attempt::collapsed, flag == CV_ERR_FAILURE
                                                ? "error test failed repeatedly (step size collapsed)"
                                                : "Newton iteration failed repeatedly (step size collapsed)"};
      return {detail::Attempt::failed, fmt::format("CVODE failed at t = {:.6g}: {} {}", cb_.clock.time(tau),
                                                   flag_name(flag), cb_.last_error)};
    }
    tau = flag == CV_TSTOP_RETURN ? tstop_ : cb_.origin + tret;
    x = as_eigen(sd_.y);
    return {detail::Attempt::accepted, {}};
  }
  void fixed_step(Vec&, double, double) override {
    throw std::invalid_argument("integrate: cvode has no fixed-step mode");
  }
  bool has_dense_output() const override { return true; }
  // CVODE's interpolant of the last step, valid on [tn - hu, tn]; the argument is clamped to it
  // (the event search asks for the step's ends, which can differ from tn - hu, tn by round-off).
  void interpolate(double s, Vec& out) override {
    double tn = 0, hu = 0;
    CVodeGetCurrentTime(sd_.mem, &tn);
    CVodeGetLastStep(sd_.mem, &hu);
    CVodeGetDky(sd_.mem, std::clamp(s - cb_.origin, tn - hu, tn), 0, sd_.dky);
    out = as_eigen(sd_.dky);
  }
  // The right-hand side jumped: BDF starts afresh at order 1 (new history, new Jacobian) from
  // (tau, x) with a new starting step. CVODE's time restarts at 0 there: the transient after a jump
  // of the field can need steps far below the round-off of tau (a staircase at rho ~ 1e5 and t ~ 90:
  // ~1e-13 against 16 ulp(90) ~ 2e-13, docs/rho_control.md), which CVODE then resolves and the
  // collapse test (step_collapsed) measures against the round-off of the time since the restart.
  std::optional<std::string> restart(const Vec& x, double tau) override { return restart_at(x, tau, 0.0); }
  // No event: the field is the same, so the step CVODE had reached is the starting step.
  bool reanchor(const Vec& x, double tau) override {
    if (tau == cb_.origin) return false;
    double h = 0;
    CVodeGetCurrentStep(sd_.mem, &h);
    return !restart_at(x, tau, std::abs(h));
  }
  double step_size() const override {
    double h = 0;
    CVodeGetCurrentStep(sd_.mem, &h);
    return h;
  }
  bool step_collapsed(double) const override {
    double hlast = 0, tn = 0;
    CVodeGetLastStep(sd_.mem, &hlast);
    CVodeGetCurrentTime(sd_.mem, &tn);  // CVODE's time, from the last restart
    // Before any restart CVODE's time is tau, whose round-off is at least that of 1; after one it is
    // exact near 0: a step is too small only against the time since the restart.
    const double scale = cb_.origin == 0.0 ? std::max(std::abs(tn), 1.0) : std::abs(tn);
    return !(std::abs(hlast) > 16 * kEps * scale);
  }
  std::optional<std::string> non_finite_cause(const std::string& what, double t) const override {
    if (!cb_.non_finite) return std::nullopt;  // else the step was cut down to nothing by NaN/Inf values
    return fmt::format("the right-hand side became non-finite near t = {:.6g} ({})", t, what);
  }
  std::string success_note() const override {
    return linear_solver_ == CvodeLinearSolver::dense ? " (cvode BDF, dense exact Jacobian)"
                                                      : " (cvode BDF, matrix-free SPGMR)";
  }

 private:
  // CVODE from (tau, x) afresh, its time 0 at tau; h0 = 0: the starting step estimated there.
  std::optional<std::string> restart_at(const Vec& x, double tau, double h0) {
    before_ = c_;
    as_eigen(sd_.y) = x;
    cb_.origin = tau;
    int flag = CVodeReInit(sd_.mem, 0.0, sd_.y);
    if (!(h0 > 0))
      h0 = o_.initial_step > 0 ? o_.initial_step
                               : initial_step(cb_, x, 0.0, tau_end_ - tau, o_.atol, o_.rtol, before_.rhs_evals);
    c_.rhs_evals = before_.rhs_evals;
    if (flag >= 0) flag = CVodeSetInitStep(sd_.mem, h0);
    if (flag >= 0) flag = CVodeSetStopTime(sd_.mem, tau_end_ - tau);  // CVodeReInit clears it
    tstop_ = tau_end_;
    if (flag < 0)
      return fmt::format("CVODE restart after the event at t = {:.6g} failed: {} {}", cb_.clock.time(tau),
                         flag_name(flag), cb_.last_error);
    return std::nullopt;
  }
  // CVODE's counters plus those of the runs before the last restart (CVodeReInit zeroes them).
  void update_counters() {
    long nst = 0, netf = 0, nncf = 0, nfe = 0, nfeLS = 0, nje = 0, njv = 0, nsetups = 0;
    CVodeGetNumSteps(sd_.mem, &nst);
    CVodeGetNumErrTestFails(sd_.mem, &netf);
    CVodeGetNumStepSolveFails(sd_.mem, &nncf);
    CVodeGetNumRhsEvals(sd_.mem, &nfe);
    CVodeGetNumLinRhsEvals(sd_.mem, &nfeLS);
    CVodeGetNumLinSolvSetups(sd_.mem, &nsetups);
    c_.accepted = before_.accepted + nst;
    c_.rejected = before_.rejected + netf + nncf;
    c_.steps = c_.accepted + c_.rejected;
    c_.rhs_evals = before_.rhs_evals + nfe + nfeLS;
    if (linear_solver_ == CvodeLinearSolver::dense) {
      CVodeGetNumJacEvals(sd_.mem, &nje);
      c_.jacobian_evals = before_.jacobian_evals + nje;
      c_.lu_decompositions = before_.lu_decompositions + nsetups;
    } else {
      CVodeGetNumJtimesEvals(sd_.mem, &njv);
      c_.jvp_evals = before_.jvp_evals + njv;
    }
  }

  SolverOptions o_;
  CvodeLinearSolver linear_solver_;
  SolverCounters& c_;
  SolverCounters before_;  ///< counters of the CVODE runs before the last restart
  double tau_end_;
  double tstop_ = tau_end_;  ///< CVODE's stop time: tau_end_ or the loop's target before it
  Callbacks cb_;
  Sundials sd_;
};

}  // namespace

SolveResult integrate_cvode(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                            const SolverOptions& o, const SampleObserver& observe, const StepMonitor& monitor,
                            CvodeLinearSolver linear_solver) {
  if (times.empty()) throw std::invalid_argument("integrate: need at least the initial time");
  if (o.fixed_step > 0) throw std::invalid_argument("integrate: method cvode has no fixed-step mode");
  const Index n = problem.size > 0 ? problem.size : y0.size();
  if (linear_solver == CvodeLinearSolver::auto_select)
    linear_solver = n <= kCvodeDenseMaxSize ? CvodeLinearSolver::dense : CvodeLinearSolver::spgmr;
  if (linear_solver == CvodeLinearSolver::dense && !problem.jacobian)
    throw std::invalid_argument("cvode with the dense linear solver needs the Jacobian of the problem");
  if (linear_solver == CvodeLinearSolver::spgmr && !problem.jvp)
    throw std::invalid_argument("cvode with the SPGMR linear solver needs the Jacobian-vector product of the problem");
  SolverOptions options = o;
  options.method = Method::cvode;
  return detail::integrate_loop(problem, y0, times, options, observe, monitor,
                                [&](SolverCounters& c, const Vec& x0, double tau0, double tau_end) {
                                  return std::make_unique<CvodeStepper>(problem, options, linear_solver, n, c, x0,
                                                                        tau0, tau_end);
                                });
}

}  // namespace gfsim

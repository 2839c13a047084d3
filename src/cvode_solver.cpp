// The only translation unit that includes SUNDIALS. CVODE runs in one-step mode so that gfsim owns
// the loop, as in integrate.cpp: outputs at the exact requested times by CVodeGetDky (CVODE's
// Nordsieck interpolant) or exactly at the stop time, counters from CVodeGet*, and the stop
// conditions (step limit, wall clock, non-finite state, step-size collapse, stall).
// A non-finite right-hand side, Jacobian or J v is reported to CVODE as a recoverable failure
// (it then cuts the step) and ends the run with Status::non_finite if CVODE gives up.
#include "gfsim/cvode_solver.hpp"
#include "gfsim/clock.hpp"
#include "event_locator.hpp"

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
#include <chrono>
#include <cmath>
#include <limits>
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
};

Eigen::Map<Vec> as_eigen(N_Vector v) { return {N_VGetArrayPointer(v), Index(N_VGetLength(v))}; }

int rhs_fn(realtype tau, N_Vector y, N_Vector ydot, void* user) {
  auto& cb = *static_cast<Callbacks*>(user);
  cb.y = as_eigen(y);
  cb.problem->rhs(cb.y, cb.clock.log_scale(tau), cb.dy);
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
  cb.problem->jacobian(cb.y, cb.clock.log_scale(tau), Jm);
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
  cb.problem->jvp(cb.y, cb.clock.log_scale(tau), cb.v, cb.jv);
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
  cb.problem->rhs(y0, cb.clock.log_scale(tau0), f0);
  if (!f0.allFinite()) return std::min(1e-6, span);
  const Vec scale = (atol + rtol * y0.array().abs()).matrix();
  const double rn = std::sqrt(double(n));
  const double d0 = (y0.array() / scale.array()).matrix().norm() / rn;
  const double d1 = (f0.array() / scale.array()).matrix().norm() / rn;
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  const Vec y1 = y0 + h0 * f0;
  ++rhs_evals;
  cb.problem->rhs(y1, cb.clock.log_scale(tau0 + h0), f1);
  if (!f1.allFinite()) return h0;
  const double d2 = ((f1 - f0).array() / scale.array()).matrix().norm() / rn / h0;
  const double dmax = std::max(d1, d2);
  const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::sqrt(0.01 / dmax);
  return std::min({100 * h0, h1, span});
}

}  // namespace

SolveResult integrate_cvode(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                            const SolverOptions& o, const SampleObserver& observe, const StepMonitor& monitor,
                            CvodeLinearSolver linear_solver) {
  using steady = std::chrono::steady_clock;
  const auto start = steady::now();
  if (times.size() < 2) throw std::invalid_argument("integrate: need at least the initial and one output time");
  if (o.fixed_step > 0) throw std::invalid_argument("integrate: solver.method = \"cvode\" has no fixed-step mode");
  const Index n = problem.size > 0 ? problem.size : y0.size();
  if (linear_solver == CvodeLinearSolver::auto_select)
    linear_solver = n <= kCvodeDenseMaxSize ? CvodeLinearSolver::dense : CvodeLinearSolver::spgmr;
  if (linear_solver == CvodeLinearSolver::dense && !problem.jacobian)
    throw std::invalid_argument("cvode with the dense linear solver needs the Jacobian of the problem");
  if (linear_solver == CvodeLinearSolver::spgmr && !problem.jvp)
    throw std::invalid_argument("cvode with the SPGMR linear solver needs the Jacobian-vector product of the problem");

  SolveResult r;
  r.clock = to_string(o.clock);
  r.method = to_string(Method::cvode);
  auto& c = r.counters;
  const Clock clock{o.clock};
  std::vector<double> taus(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) taus[i] = clock.tau(times[i]);
  const double tau_end = taus.back();
  double tau = taus.front();

  Callbacks cb{&problem, clock, n, Vec(n), Vec(n), Vec(n), Vec(n), false, {}};
  Vec x = y0, sample(n);
  double last_good_t = times.front();
  auto finish = [&](Status s, std::string msg) {
    r.status = s;
    r.message = std::move(msg);
    r.t_final = last_good_t;
    r.y_final = x;
    c.wall_seconds = std::chrono::duration<double>(steady::now() - start).count();
    return r;
  };

  // Counters of the CVODE runs before the last restart (CVodeReInit zeroes CVODE's own).
  SolverCounters before;
  Sundials sd;
  auto check = [&](int flag, const char* what) {
    if (flag < 0) throw std::runtime_error(fmt::format("CVODE setup: {} failed (flag {}) {}", what, flag, cb.last_error));
  };
  try {
    check(SUNContext_Create(nullptr, &sd.ctx), "SUNContext_Create");
    sd.y = N_VNew_Serial(sunindextype(n), sd.ctx);
    sd.dky = N_VNew_Serial(sunindextype(n), sd.ctx);
    if (!sd.y || !sd.dky) throw std::runtime_error("CVODE setup: N_VNew_Serial failed");
    vec::install(sd.y);
    vec::install(sd.dky);
    as_eigen(sd.y) = y0;
    sd.mem = CVodeCreate(CV_BDF, sd.ctx);
    if (!sd.mem) throw std::runtime_error("CVODE setup: CVodeCreate failed");
    check(CVodeSetErrHandlerFn(sd.mem, error_handler, &cb), "CVodeSetErrHandlerFn");
    check(CVodeInit(sd.mem, rhs_fn, tau, sd.y), "CVodeInit");
    check(CVodeSStolerances(sd.mem, o.rtol, o.atol), "CVodeSStolerances");
    check(CVodeSetUserData(sd.mem, &cb), "CVodeSetUserData");
    check(CVodeSetStopTime(sd.mem, tau_end), "CVodeSetStopTime");
    check(CVodeSetMaxHnilWarns(sd.mem, -1), "CVodeSetMaxHnilWarns");
    const double h0 = o.initial_step > 0 ? o.initial_step
                                         : initial_step(cb, y0, tau, tau_end - tau, o.atol, o.rtol, before.rhs_evals);
    check(CVodeSetInitStep(sd.mem, h0), "CVodeSetInitStep");
    if (linear_solver == CvodeLinearSolver::dense) {
      sd.A = make_eigen_dense(n, sd.ctx);
      sd.LS = make_eigen_lu(n, sd.ctx);
      if (!sd.A || !sd.LS) throw std::runtime_error("CVODE setup: dense matrix/solver allocation failed");
      check(CVodeSetLinearSolver(sd.mem, sd.LS, sd.A), "CVodeSetLinearSolver");
      check(CVodeSetJacFn(sd.mem, jac_fn), "CVodeSetJacFn");
    } else {
      sd.LS = SUNLinSol_SPGMR(sd.y, SUN_PREC_NONE, kCvodeKrylovDim, sd.ctx);
      if (!sd.LS) throw std::runtime_error("CVODE setup: SUNLinSol_SPGMR failed");
      check(CVodeSetLinearSolver(sd.mem, sd.LS, nullptr), "CVodeSetLinearSolver");
      check(CVodeSetJacTimes(sd.mem, nullptr, jtimes_fn), "CVodeSetJacTimes");
    }
  } catch (const std::runtime_error& e) {
    return finish(Status::solver_failure, e.what());
  }
  const char* ls_name = linear_solver == CvodeLinearSolver::dense ? "BDF, dense exact Jacobian" : "BDF, matrix-free SPGMR";

  auto update_counters = [&] {
    long nst = 0, netf = 0, nncf = 0, nfe = 0, nfeLS = 0, nje = 0, njv = 0, nsetups = 0;
    CVodeGetNumSteps(sd.mem, &nst);
    CVodeGetNumErrTestFails(sd.mem, &netf);
    CVodeGetNumStepSolveFails(sd.mem, &nncf);
    CVodeGetNumRhsEvals(sd.mem, &nfe);
    CVodeGetNumLinRhsEvals(sd.mem, &nfeLS);
    CVodeGetNumLinSolvSetups(sd.mem, &nsetups);
    c.accepted = before.accepted + nst;
    c.rejected = before.rejected + netf + nncf;
    c.steps = c.accepted + c.rejected;
    c.rhs_evals = before.rhs_evals + nfe + nfeLS;
    if (linear_solver == CvodeLinearSolver::dense) {
      CVodeGetNumJacEvals(sd.mem, &nje);
      c.jacobian_evals = before.jacobian_evals + nje;
      c.lu_decompositions = before.lu_decompositions + nsetups;
    } else {
      CVodeGetNumJtimesEvals(sd.mem, &njv);
      c.jvp_evals = before.jvp_evals + njv;
    }
  };
  auto stalled = [&](const char* what) {
    if (cb.non_finite)  // the step was cut down to nothing by NaN/Inf right-hand sides
      return finish(Status::non_finite, fmt::format("the right-hand side became non-finite near t = {:.6g} ({})",
                                                    clock.time(tau), what));
    double h = 0;
    CVodeGetCurrentStep(sd.mem, &h);
    bool at_kink = false;
    std::string why = problem.explain_stall ? problem.explain_stall(x, at_kink) : std::string();
    const Status s = at_kink ? Status::stalled_at_kink : Status::step_collapse;
    return finish(s, fmt::format("{} at t = {:.6g} ({} clock step {:.3g}){}{}", what, clock.time(tau),
                                 to_string(o.clock), h, why.empty() ? "" : ": ", why));
  };

  observe(0, times.front(), x);
  std::size_t next = 1;
  StallWindow stall(o, tau);
  auto xmap = as_eigen(sd.y);
  // Event-driven integration (ReLU kinks): the rules shared with the odeint driver.
  detail::EventLocator events(problem.events, clock);
  Vec y_before;
  double tau_before = tau;
  // CVODE's interpolant of the last step, valid on [tn - hu, tn]; the argument is clamped to it
  // (the event search asks for the step's ends, which can differ from tn - hu, tn by round-off).
  auto interpolate = [&](double s, Vec& out) {
    double tn = 0, hu = 0;
    CVodeGetCurrentTime(sd.mem, &tn);
    CVodeGetLastStep(sd.mem, &hu);
    CVodeGetDky(sd.mem, std::clamp(s, tn - hu, tn), 0, sd.dky);
    out = as_eigen(sd.dky);
  };
  // Restart at an event: the right-hand side jumped, so BDF starts afresh at order 1 (new history,
  // new Jacobian) from (tau, x) with a new starting step.
  auto restart = [&]() -> std::optional<std::string> {
    before = c;
    xmap = x;
    int flag = CVodeReInit(sd.mem, tau, sd.y);
    const double h0 = o.initial_step > 0 ? o.initial_step
                                         : initial_step(cb, x, tau, tau_end - tau, o.atol, o.rtol, before.rhs_evals);
    c.rhs_evals = before.rhs_evals;
    if (flag >= 0) flag = CVodeSetInitStep(sd.mem, h0);
    if (flag >= 0) flag = CVodeSetStopTime(sd.mem, tau_end);  // CVodeReInit clears it
    if (flag < 0) return fmt::format("CVODE restart after the event at t = {:.6g} failed: {} {}", clock.time(tau),
                                     CVodeGetReturnFlagName(flag), cb.last_error);
    return std::nullopt;
  };

  while (next < taus.size()) {
    if (auto limit = limit_reached(o, c, clock.time(tau), times.back(),
                                   std::chrono::duration<double>(steady::now() - start).count()))
      return finish(limit->first, std::move(limit->second));
    double tret = tau;
    tau_before = tau;
    if (events.active()) y_before = x;
    cb.non_finite = false;
    const int flag = CVode(sd.mem, tau_end, sd.y, &tret, CV_ONE_STEP);
    update_counters();
    if (flag < 0) {
      if (cb.non_finite || flag == CV_RHSFUNC_FAIL || flag == CV_FIRST_RHSFUNC_ERR || flag == CV_REPTD_RHSFUNC_ERR ||
          flag == CV_UNREC_RHSFUNC_ERR)
        return finish(Status::non_finite,
                      fmt::format("the right-hand side (or its Jacobian) became non-finite near t = {:.6g} ({})",
                                  clock.time(tau), CVodeGetReturnFlagName(flag)));
      if (flag == CV_ERR_FAILURE || flag == CV_CONV_FAILURE || flag == CV_TOO_CLOSE)
        return stalled(flag == CV_ERR_FAILURE ? "error test failed repeatedly (step size collapsed)"
                                              : "Newton iteration failed repeatedly (step size collapsed)");
      return finish(Status::solver_failure, fmt::format("CVODE failed at t = {:.6g}: {} {}", clock.time(tau),
                                                        CVodeGetReturnFlagName(flag), cb.last_error));
    }
    if (!xmap.allFinite())
      return finish(Status::non_finite, fmt::format("the state became non-finite (NaN or Inf) in the step from "
                                                    "t = {:.6g}", clock.time(tau)));
    tau = flag == CV_TSTOP_RETURN ? tau_end : tret;
    x = xmap;
    if (events.active() && events.crossed(y_before, x)) {
      auto stop = events.stop_at_event(tau_before, y_before, tau, x, interpolate, taus, times, next, observe, c);
      last_good_t = clock.time(tau);
      if (stop) return finish(stop->first, std::move(stop->second));
      if (next >= taus.size()) break;  // the event is at t_end
      if (auto failed = restart()) return finish(Status::solver_failure, std::move(*failed));
      stall.restart(c.accepted, tau);
      continue;
    }
    last_good_t = clock.time(tau);
    while (next < taus.size() && taus[next] <= tau) {
      if (taus[next] == tau) {
        observe(c.accepted, times[next], x);
      } else {
        CVodeGetDky(sd.mem, taus[next], 0, sd.dky);
        sample = as_eigen(sd.dky);
        observe(c.accepted, times[next], sample);
      }
      ++next;
    }
    if (monitor && !monitor(clock.time(tau), x, c))
      return finish(Status::interrupted, fmt::format("interrupted at t = {:.6g}", clock.time(tau)));
    if (next >= taus.size()) break;
    double hlast = 0;
    CVodeGetLastStep(sd.mem, &hlast);
    if (!(std::abs(hlast) > 16 * kEps * std::max(std::abs(tau), 1.0))) return stalled("step size collapsed");
    if (stall.stalled(c.accepted, tau, tau_end)) return stalled("integration stalled");
  }
  last_good_t = times.back();
  return finish(Status::success, fmt::format("reached t_end = {:.6g} (cvode {})", times.back(), ls_name));
}

}  // namespace gfsim

#pragma once
// `gfsim run --resume FILE`: what a trajectory file holds to continue its run. The model is
// rebuilt from the resolved model stored in the file (provenance), not from the original TOML;
// the restart state is the last complete sample (every observable's value and the step/time pair
// written; step is written last, docs/file-format.md), so a killed run resumes from its last flush.
// The ODE state y is /observables/state where the flow's state is not theta itself (polar, wn,
// rho_schedule, ...), else /observables/theta; both are float64, so the restart is exact. The ReLU
// discrete state is not stored: the pattern is re-derived at the restart state by freeze +
// settle_on_kinks (to_event_problem), since a state saved while sliding keeps h_j = 0 to round-off
// (equivalent control), which is what settle_on_kinks recognizes. The restart step size is the
// solver's automatic initial step: a sample lies inside a step (dense output), so no stored step
// ends there, and error control keeps the continuation within the solver tolerance.
//
//   ResumePoint from = read_resume_point("runs/a.h5", {"time.t_end=1e12"});
//   RunReport report = run_model(from.spec, {.resume = &from});   // appends to runs/a.h5
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// One observable's stored samples: values row-major [samples, max(width, 1)].
struct StoredObservable {
  std::int64_t width = 0;
  std::vector<double> values;
};

/// One column of a stored series as doubles (integer and enum columns are small integers,
/// exact in a double), row-major [rows, max(width, 1)].
using StoredColumn = std::vector<double>;

/// A series' datasets, cut to the rows up to the restart time (rows of later times were written
/// ahead of the samples). A killed writer may leave its columns of unequal length: the rows
/// complete in the columns a model records are min(rows, column length / width).
struct StoredSeries {
  std::vector<std::string> column_names;
  std::vector<StoredColumn> columns;
  std::size_t rows = 0;  ///< rows of the time column up to the restart time
};

struct ResumePoint {
  std::string path;
  ModelSpec spec;                 ///< rebuilt from the file's model_toml, with the --set overrides
  double t = 0;                   ///< time of the last complete sample: the restart time
  std::int64_t step = 0;          ///< its solver step (the continuation's steps count on from it)
  Vec state;                      ///< ODE state y at t
  std::vector<std::int64_t> steps;
  std::vector<double> times;
  std::map<std::string, StoredObservable> observables;
  std::map<std::string, StoredSeries> series;  ///< by group path ("events", "observables/hessian_eigs")
  std::vector<double> initial_theta;           ///< /initial/theta: checked against the rebuilt model
  std::string resume_history;                  ///< earlier resumes, one line each
  std::string original_created;                ///< `created` of the first run
  std::string original_git_commit;
};

/// Model keys a resume may override: they change neither the data, the net nor the flow, so
/// the stored trajectory remains the trajectory of the resumed model.
const std::vector<std::string>& resumable_keys();

/// Reads `path` for a resume to a later time. Exit-2 errors (SpecError / IoError), one line each:
/// not a gfsim trajectory file, a newer format version, a file another run is writing (its lock),
/// no complete sample, an override of a key outside resumable_keys(), t_end not beyond the stored t.
ResumePoint read_resume_point(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace gfsim

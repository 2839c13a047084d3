#!/usr/bin/env python3
"""Reader for gfsim trajectory files (the format is documented in docs/file-format.md).

    import gfsim_io
    run = gfsim_io.load("out/run.h5")
    run.metadata["model_name"], run.metadata["widths"]
    run.observables["loss"]["time"], run.observables["theta"]["value"][:, 0]
    run.complete, run.solver["status"]          # solver is None if the run did not finish
    run.data_X()                                # the data matrix [n, d]
    run.weights(-1)                             # [W_1, ..., W_K] at the last sample, as matrices
    run.events()                                # kink events: time, layer, unit, point, kind (ints)
    table = gfsim_io.load_index("out/index.h5") # a sweep index: numpy structured array, one row per run
    gfsim_io.index_frame("out/index.h5")        # the same as a pandas DataFrame (pandas needed)

Reads format_version 1 (gfsim before the v2 layout) and 2 (docs/file-format.md lists the
differences); data_X, weights and events give the same answers for both.

A killed run leaves its file flagged "open for write": load() then reads it in SWMR mode (no
h5clear needed) and returns every sample that was flushed. From the shell:

    python3 analysis/gfsim_io.py FILE         # prints a short summary

Needs numpy and h5py (Debian: sudo apt install python3-h5py).
"""
import dataclasses
import sys

import h5py
import numpy as np

FILE_TYPE = "gfsim-trajectory"
SUPPORTED_FORMAT_VERSIONS = (1, 2)
# Values of /events/kind (an HDF5 enum in version 2, float64 codes in version 1).
EVENT_KINDS = ("crossing", "sliding_entry", "sliding_exit")


@dataclasses.dataclass
class Trajectory:
    path: str
    # Root attributes as Python str/int/float (arrays as lists), e.g. model_name, widths, flow.
    metadata: dict
    # name -> {"step", "time", "value" (numpy arrays), "description", "column_names" (or None)}.
    observables: dict
    # /solver attributes (status, message, method, clock, t_final, counters), None if unfinished.
    solver: dict | None
    # Other datasets written at the end of the run ("group/name" -> numpy array).
    extra: dict
    # True when the run finished (the file has a /solver group).
    complete: bool
    # False when the file was left open for write (a killed or still running run) and had to be
    # read in SWMR mode; other HDF5 tools need `h5clear -s FILE` first.
    clean_close: bool

    def data_X(self):
        """The data matrix, [n, d] (version 1 stored it flattened as data/X_rowmajor)."""
        if "data/X" in self.extra:
            return np.asarray(self.extra["data/X"])
        y = self.extra["data/y"]
        return np.asarray(self.extra["data/X_rowmajor"]).reshape(len(y), -1)

    def weights(self, sample):
        """[W_1, ..., W_K] at trajectory sample `sample` (an index into observables["theta"]),
        each W_k a [d_k, d_{k-1}] matrix: a view of the theta layout (docs/file-format.md)."""
        return layer_matrices(self.observables["theta"]["value"][sample], self.metadata["widths"])

    def events(self):
        """Kink events as a dict of numpy arrays: time (float64); layer, unit, point, kind
        (int64; kind indexes EVENT_KINDS). Empty arrays for a run without events."""
        columns = ("time", "layer", "unit", "point", "kind")
        if "events/time" not in self.extra:
            return {name: np.zeros(0, dtype=np.float64 if name == "time" else np.int64)
                    for name in columns}
        count = min(len(self.extra[f"events/{name}"]) for name in columns)
        out = {"time": np.asarray(self.extra["events/time"][:count], dtype=np.float64)}
        for name in columns[1:]:
            out[name] = np.asarray(self.extra[f"events/{name}"][:count]).astype(np.int64)
        return out


def layer_matrices(theta, widths):
    """Splits a theta vector (W_1..W_K, each row-major d_k x d_{k-1}) into its matrices."""
    theta = np.asarray(theta)
    needed = sum(widths[k] * widths[k - 1] for k in range(1, len(widths)))
    if theta.ndim != 1 or theta.shape[0] != needed:
        raise ValueError(f"theta has shape {theta.shape}, widths {widths} need ({needed},)")
    matrices, offset = [], 0
    for k in range(1, len(widths)):
        rows, cols = widths[k], widths[k - 1]
        matrices.append(theta[offset:offset + rows * cols].reshape(rows, cols))
        offset += rows * cols
    return matrices


def _python_value(value):
    """An attribute value as plain Python: str, int, float or a list of them."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_python_value(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attributes(node):
    return {key: _python_value(value) for key, value in node.attrs.items()}


def _open(path):
    """(h5py.File, clean_close): a normal read, else the SWMR read a killed run's file needs."""
    try:
        return h5py.File(path, "r"), True
    except OSError as plain_error:
        try:
            return h5py.File(path, "r", swmr=True), False
        except OSError:
            raise plain_error from None


def _check_format(path, attrs):
    file_type = attrs.get("file_type")
    if file_type != FILE_TYPE:
        found = "no file_type attribute" if file_type is None else f"file_type {file_type!r}"
        raise ValueError(f"{path}: not a gfsim trajectory file ({found}, expected {FILE_TYPE!r})")
    version = attrs.get("format_version")
    if not isinstance(version, int) or version not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise ValueError(
            f"{path}: format_version {version!r} is not supported by this reader (supports "
            f"{supported}); use the analysis/gfsim_io.py of gfsim {attrs.get('gfsim_version')}, "
            f"which wrote the file")


def _read_observable(group):
    step, time, value = group["step"], group["time"], group["value"]
    # Equal for a finished run; a killed run may have extended some datasets past the last
    # flush, so keep the samples all three hold.
    count = min(step.shape[0], time.shape[0], value.shape[0])
    # Rows allocated but never written (a write that failed, e.g. on a full disk) read as the
    # fill value NaN; a recorded sample always has a finite time.
    times = time[:count]
    while count > 0 and np.isnan(times[count - 1]):
        count -= 1
    value_attrs = _attributes(value)
    return {
        "step": step[:count],
        "time": times[:count],
        "value": value[:count],
        "description": value_attrs.get("description", ""),
        "column_names": value_attrs.get("column_names"),
    }


def _extra_datasets(file):
    extra = {}

    def visit(name, node):
        top = name.split("/", 1)[0]
        if isinstance(node, h5py.Dataset) and top not in ("observables", "h5md"):
            extra[name] = node[()]

    file.visititems(visit)
    return extra


def load(path):
    """Reads a gfsim trajectory file; ValueError if it is not one or its format_version is not
    supported, OSError if HDF5 cannot open it."""
    file, clean_close = _open(path)
    with file:
        metadata = _attributes(file)
        _check_format(path, metadata)
        observables = {name: _read_observable(group) for name, group in file["observables"].items()}
        solver = _attributes(file["solver"]) if "solver" in file else None
        return Trajectory(path=str(path), metadata=metadata, observables=observables,
                          solver=solver, extra=_extra_datasets(file), complete=solver is not None,
                          clean_close=clean_close)


INDEX_FILE_TYPE = "gfsim-sweep-index"


def load_index(path):
    """A sweep index (docs/sweeps.md) as a numpy structured array in the index's column order:
    string columns (id, file, status, non-numeric varied keys) as str, the others float64."""
    with h5py.File(path, "r") as file:
        attrs = _attributes(file)
        if attrs.get("file_type") != INDEX_FILE_TYPE:
            raise ValueError(f"{path}: not a gfsim sweep index (file_type {attrs.get('file_type')!r})")
        runs = file["runs"]
        rows = int(runs.attrs["rows"])
        columns = []
        for name in runs.attrs["columns"]:
            name = _python_value(name)
            if name in runs:
                columns.append((name, np.asarray(runs[name][()], dtype=np.float64)))
            else:
                values = [_python_value(v) for v in runs.attrs[name]] if rows else []
                columns.append((name, np.asarray(values, dtype=str)))
    dtype = [(name, values.dtype if values.size else (np.float64 if values.dtype.kind == "f" else "U1"))
             for name, values in columns]
    table = np.zeros(rows, dtype=dtype)
    for name, values in columns:
        table[name] = values
    return table


def index_frame(path):
    """load_index(path) as a pandas DataFrame (needs pandas)."""
    import pandas  # optional dependency: only this function needs it
    return pandas.DataFrame(load_index(path))


def summary(run):
    """A few lines describing a Trajectory."""
    meta = run.metadata
    lines = [f"{run.path}: {FILE_TYPE} format {meta['format_version']}, gfsim "
             f"{meta.get('gfsim_version')} (git {meta.get('git_commit')}), created "
             f"{meta.get('created')}",
             f"model: {meta.get('model_name')}  widths {meta.get('widths')}"]
    first = next(iter(run.observables.values()), None)
    if first is not None and len(first["time"]) > 0:
        lines.append(f"samples: {len(first['time'])}, t = {first['time'][0]:g} .. "
                     f"{first['time'][-1]:g}")
    else:
        lines.append("samples: 0")
    if run.complete:
        s = run.solver
        lines.append(f"status: {s['status']} - {s['message']} ({s['method']}, clock "
                     f"{s['clock']}, t_final {s['t_final']:g}, {s['steps']} steps, "
                     f"{s['wall_seconds']:.3g} s)")
    else:
        lines.append("status: incomplete - the run did not finish (killed, or still running)")
    if not run.clean_close:
        lines.append("note: file left open for write; read in SWMR mode (other tools: h5clear -s)")
    lines.append("observables:")
    width = max((len(name) for name in run.observables), default=0)
    for name, observable in run.observables.items():
        shape = list(observable["value"].shape)
        lines.append(f"  {name:<{width}}  {str(shape):<14} {observable['description']}")
    for name, values in run.extra.items():
        lines.append(f"extra: {name} {list(np.shape(values))}")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        print("usage: gfsim_io.py FILE.h5", file=sys.stderr)
        return 2
    try:
        print(summary(load(argv[1])))
    except (ValueError, OSError) as error:
        print(f"gfsim_io: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

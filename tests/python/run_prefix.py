"""What the kill tests of tests/python share: a killed run's file must hold an exact prefix of an
uninterrupted run of the same model (runs are deterministic, so "exact" is bitwise). Not a test
itself (no test_ prefix)."""
import numpy as np


def assert_prefix(test, run, reference, label):
    """Every observable's step/time/value columns and every kink-event column of `run` (a
    gfsim_io.Trajectory) equal the first rows of `reference`'s."""
    for name, expected in reference.observables.items():
        got = run.observables[name]
        n = len(got["step"])
        test.assertLessEqual(n, len(expected["step"]), f"{label}: {name}")
        for column in ("step", "time", "value"):
            np.testing.assert_array_equal(got[column], expected[column][:n],
                                          f"{label}: {name}/{column} is not a prefix of the reference")
    events, reference_events = run.events(), reference.events()
    n = len(events["time"])
    test.assertLessEqual(n, len(reference_events["time"]), f"{label}: events")
    for column, values in events.items():
        np.testing.assert_array_equal(values, reference_events[column][:n],
                                      f"{label}: events/{column} is not a prefix of the reference")


def check_killed_file(test, path, reference, label):
    """The file a killed run left at `path`: ("no file", None), or ("prefix" | "complete", run) after
    checking that gfsim_io opens it, that it is a prefix of `reference`, and that a complete one
    ended with the reference's status."""
    import os

    import gfsim_io
    if not os.path.exists(path):
        return "no file", None
    try:
        run = gfsim_io.load(path)
    except (OSError, ValueError, KeyError) as error:
        test.fail(f"{label} left an unreadable file: {error}")
    assert_prefix(test, run, reference, label)
    if not run.complete:
        return "prefix", run
    test.assertEqual(run.solver.get("status"), reference.solver.get("status"), label)
    return "complete", run

"""What the CLI tests of tests/python share: the gfsim executable and the example models, as ctest
passes them (GFSIM_EXE, GFSIM_SOURCE_DIR). Not a test itself (no test_ prefix)."""
import os


def gfsim_exe():
    path = os.environ.get("GFSIM_EXE")
    if not path:
        raise RuntimeError("GFSIM_EXE is not set: run this test through ctest")
    return path


def model_path(name):
    return os.path.join(os.environ.get("GFSIM_SOURCE_DIR", "."), "models", name)

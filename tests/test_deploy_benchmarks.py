"""benchmarks/run_all.py knows every benchmark script and reads what they print (the runs themselves are the
scripts' business: speed is never a timed test)."""

from __future__ import annotations

import importlib.util

from tests.roles import ROOT


def load():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_script_has_a_small_size():
    run_all = load()
    names = {p.name for p in run_all.scripts(set())}
    assert names == {p.name for p in (ROOT / "benchmarks").glob("*.py")} - run_all.NOT_BENCHMARKS
    assert names <= set(run_all.SIZES["small"]), "a benchmark without a small size runs at full size everywhere"


def test_printed_figures_are_read_as_text_numbers_and_json():
    figures = load().read_figures('throughput: 4,682 messages/s (CPU time), 2,345 messages/s (wall-clock)\n'
                                  'database: sqlite\n{"planned": 5000, "planning_seconds": 0.77}\nnot a figure\n')
    assert figures["throughput"]["numbers"] == [4682.0, 2345.0]
    assert figures["database"] == "sqlite"
    assert figures["data"] == {"planned": 5000, "planning_seconds": 0.77}

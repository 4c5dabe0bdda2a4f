"""The roster import benchmark under the name the console issue (#13) gives it: benchmarks/roster.py.

    python benchmarks/import.py [--rows 100000] [--database-url URL ...] [--keep FILE]
"""

from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("roster.py")), run_name="__main__")

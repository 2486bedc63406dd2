"""Time the synthetic generator on a ~1M-order world (200k accounts) written as CSV.

    .venv/bin/python benchmarks/bench_generate.py [accounts] [preset]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from orderguard.generate import GeneratorConfig, generate_world, write_world


def main() -> None:
    accounts = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    preset = sys.argv[2] if len(sys.argv) > 2 else "default"
    t0 = time.perf_counter()
    world = generate_world(GeneratorConfig(accounts=accounts, preset=preset, seed=7))
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_world(world, Path(tmp) / "input", Path(tmp) / "labels")
        t2 = time.perf_counter()
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    summary = world.summary()
    summary.update(generate_s=round(t1 - t0, 1), write_csv_s=round(t2 - t1, 1),
                   total_s=round(t2 - t0, 1), csv_mib=round(size / 2**20))
    print(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

"""Peak memory and wall time of synthetic slide generation at two sizes.

Each slide is generated in a fresh subprocess; its peak resident set size
comes from ``os.wait4`` (the child's own rusage), so the figures do not mix.
Memory must not grow with the slide size: the script exits non-zero if any
run peaks at 1 GiB or more.

    python tools/bench_synth_memory.py                    # 20,000² and 100,000²
    python tools/bench_synth_memory.py --sizes 4096 20000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_BYTES = 1 << 30

_CHILD = """
import sys
from wsi_engine.synthetic import generate_slide
truth = generate_slide(
    sys.argv[1], width=int(sys.argv[2]), height=int(sys.argv[2]), lesion_class="tumor",
    artefacts=("pen", "black_edge", "blur"), seed=7, workers=int(sys.argv[3]),
)
print(len(truth.level_dimensions), len(truth.lesions), round(truth.tissue_fraction, 3))
"""


def run_one(size: int, out_dir: Path, workers: int) -> dict:
    """Generate one ``size``² slide in a subprocess; return its peak RSS, wall time and file size."""
    path = out_dir / f"bench_{size}.tiff"
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(size), str(workers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    output = child.stdout.read().strip() if child.stdout else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "size": size,
        "returncode": child.returncode,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "file_bytes": path.stat().st_size if path.exists() else 0,
        "summary": output,
    }
    path.unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20_000, 100_000], help="slide sides, pixels"
    )
    parser.add_argument("--workers", type=int, default=1, help="tile-rendering threads")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    print(
        f"{'size':>9} {'peak RSS':>10} {'wall':>9} {'cpu':>9} {'file':>10}  levels lesions tissue"
    )
    results = []
    with tempfile.TemporaryDirectory(dir=args.out_dir) as scratch:
        for size in args.sizes:
            r = run_one(size, Path(scratch), args.workers)
            results.append(r)
            print(
                f"{r['size']:>9} {r['peak_rss_bytes'] / 2**20:>6.0f} MiB {r['wall_s']:>8.1f}s"
                f" {r['cpu_s']:>8.1f}s {r['file_bytes'] / 2**20:>6.0f} MiB  {r['summary']}",
                flush=True,
            )
    failed = [r for r in results if r["returncode"] != 0 or r["peak_rss_bytes"] >= LIMIT_BYTES]
    for r in failed:
        print(
            f"FAIL size {r['size']}: exit {r['returncode']}, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

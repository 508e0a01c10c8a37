"""Compute the noise floors that labkit ships (labkit/floors.json), so that at_floor costs a fraction
of a second from the first call: every 2-D target at the sample sizes the course uses (300 in the
widgets, 500 and 1000 for at_floor).

    python scripts/compute_floors.py [--n 300,500,1000] [--targets ring8,moons,...]

Each floor is ``metrics.noise_floor(target, n, statistic=s)`` with the default seeded draw and
FLOOR_REPEATS pairs, exactly what labkit would compute on the first call without the file;
tests/test_at_floor.py recomputes one and compares.
"""

from __future__ import annotations

import argparse
import json
import time

from labkit import metrics, targets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="300,500,1000")
    parser.add_argument("--targets", default=",".join(targets.names(2)))
    args = parser.parse_args(argv)
    table = json.loads(metrics.FLOORS_FILE.read_text()) if metrics.FLOORS_FILE.exists() else {}
    metrics.FLOORS_FILE.unlink(missing_ok=True)  # compute afresh, not from the old file
    metrics._SHIPPED = {}
    for name in args.targets.split(","):
        target = targets.get(name)
        for n in (int(v) for v in args.n.split(",")):
            start = time.perf_counter()
            table.setdefault(name, {})[str(n)] = {
                s: metrics.noise_floor(target, n, statistic=s).values for s in metrics.STATISTICS}
            print(f"{name} n = {n}: {time.perf_counter() - start:.1f} s", flush=True)
            metrics.FLOORS_FILE.write_text(json.dumps(table, indent=0) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

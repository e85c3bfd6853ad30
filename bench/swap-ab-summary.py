#!/usr/bin/env python3
"""Medians per variant and cell of bench/swap-ab.sh output.

    bench/swap-ab-summary.py /tmp/swap-ab.out

"of disk" is the median over rounds of the cell's IOPS divided by the IOPS of
the disk cell of the same queue depth run just before it in the same round (the
disk changes speed under a noisy machine as much as Shoal does).
"""
import collections
import statistics
import sys


def main(path):
    cells = collections.defaultdict(list)
    ratios = collections.defaultdict(list)
    last_disk = {}
    for line in open(path):
        f = line.split()
        if len(f) != 7:
            continue
        variant, cell, iops, p50, p99, cpu, _errors = f
        qd = "".join(ch for ch in cell if ch.isdigit())
        cpu = float(cpu) if cpu not in ("None", "null") else float("nan")
        cells[(variant, cell)].append((float(iops), float(p50), float(p99), cpu))
        if cell.startswith("disk"):
            last_disk[(variant, qd)] = float(iops)
        elif last_disk.get((variant, qd)):
            ratios[(variant, cell)].append(float(iops) / last_disk[(variant, qd)])
    print(f"{'variant':12} {'cell':9} {'runs':>4} {'IOPS':>8} {'p50 us':>7} {'p99 us':>7} {'CPU s/GB':>8} {'of disk':>7}")
    for (variant, cell), runs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = lambda i: statistics.median(r[i] for r in runs)
        r = ratios.get((variant, cell))
        print(f"{variant:12} {cell:9} {len(runs):>4} {med(0):>8.0f} {med(1):>7.0f} {med(2):>7.0f} {med(3):>8.2f} "
              f"{statistics.median(r) if r else float('nan'):>7.2f}")


if __name__ == "__main__":
    main(sys.argv[1])

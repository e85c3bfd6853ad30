#!/usr/bin/python3
"""Chart of bench/compare.sh results: MB/s per workload and system (log
scale), and CPU seconds per GB below it.

usage: /usr/bin/python3 bench/plot_compare.py results.json out.png

results.json is the JSON array compare.sh writes (--json): one object per cell
with at least system, workload, bs, qd, mbps and cpu_s_per_gb.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

SYSTEMS = ["disk", "shoal-native", "shoal-fuse", "nfs", "nfs-warm"]
COLOURS = {"disk": "#7f7f7f", "shoal-native": "#1f77b4", "shoal-fuse": "#6baed6",
           "nfs": "#d62728", "nfs-warm": "#ff9896"}


def workload_name(cell):
    if cell["workload"] != "file":
        return "files QD%d" % cell["qd"]
    bs = cell["bs"]
    size = "%dk" % (bs >> 10) if bs < (1 << 20) else "%dm" % (bs >> 20)
    return "%s QD%d" % (size, cell["qd"])


def workload_order(cell):
    return (cell["workload"] != "file", cell.get("bs", 0), cell["qd"])


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: plot_compare.py results.json out.png\n")
        return 2
    with open(argv[1]) as f:
        cells = json.load(f)
    if not isinstance(cells, list) or not cells:
        sys.stderr.write("plot_compare.py: %s holds no cells\n" % argv[1])
        return 1
    names = []
    for cell in sorted(cells, key=workload_order):
        if workload_name(cell) not in names:
            names.append(workload_name(cell))
    systems = [s for s in SYSTEMS if any(c["system"] == s for c in cells)]
    by_key = {(workload_name(c), c["system"]): c for c in cells}

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    width = 0.8 / len(systems)
    lowest = min(max(c["mbps"], 0.01) for c in cells)
    for i, system in enumerate(systems):
        xs, mbps, cpu = [], [], []
        for j, name in enumerate(names):
            cell = by_key.get((name, system))
            if cell is None:
                continue
            xs.append(j + (i - (len(systems) - 1) / 2) * width)
            mbps.append(max(cell["mbps"], 0.01))
            cpu.append(max(cell.get("cpu_s_per_gb") or 0, 0.001))
        top.bar(xs, mbps, width, label=system, color=COLOURS.get(system))
        bottom.bar(xs, cpu, width, label=system, color=COLOURS.get(system))
    top.set_yscale("log")
    top.set_ylim(bottom=lowest / 3)  # bars start below the smallest, so every bar shows
    top.set_ylabel("MB/s (log)")
    fig.suptitle("Reads: Shoal vs local disk vs NFS-Ganesha (one machine)")
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(systems), fontsize="small", loc="upper center",
               bbox_to_anchor=(0.5, 0.955))
    top.grid(axis="y", which="both", alpha=0.3)
    bottom.set_yscale("log")
    bottom.set_ylabel("CPU s per GB (log)")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(len(names)))
    bottom.set_xticklabels(names)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

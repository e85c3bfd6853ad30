#!/usr/bin/env python3
"""PyTorch data-loading benchmark: samples/s and CPU seconds per epoch over a
dataset of small files (64-512 KiB), read whole in a shuffled epoch, for

  shoal-native   shoal.torch.ShoalDataset read through batched_loader (one
                 read_batch per batch of 64, libshoal's native batch API)
  shoal-tensor   the same with as_tensors=True: each batch is read straight into
                 one shared-memory uint8 tensor (a SampleBatch), which workers
                 hand over without pickling the bytes
  shoal-sample   shoal.torch.ShoalDataset under a plain DataLoader (one
                 read_batch per sample)
  fuse-open      a plain Dataset that open()s and reads the same files through the Shoal FUSE mount

with num_workers 0, 2 and 4. CPU: the client's (this process and its
DataLoader workers: getrusage self + children) and the servers' (utime+stime
of the pids given by --server-pids, e.g. shoal-meta, shoal-storage and
shoal-fuse; the FUSE daemon counts as server). The page cache is dropped
before every epoch (root), so storage reads come from disk.

    bench/loader.py --config FILE --mount DIR [--files N] [--workers 0,2,4]
                    [--server-pids PID,... | --server-dir DIR] [--json FILE]
Run by bench/loader.sh on the local cluster (deploy/local-cluster.sh).
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import torch.utils.data as tud

import shoal
import shoal.torch as st


class OpenDataset(tud.Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            return f.read()


def server_cpu(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def client_cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        print("loader: cannot drop the page cache (%s); numbers may be warm" % e, file=sys.stderr)


def make_dataset(client, root, files, seed=42):
    try:
        have = len(client.walk(root))
    except shoal.ShoalError:
        have = 0
    if have == files:
        return
    rng = random.Random(seed)
    start = time.monotonic()
    for i in range(files):
        path = "%s/d%03d/f%06d" % (root, i % 100, i)
        if i < 100:
            os.makedirs(args.mount + "%s/d%03d" % (root, i), exist_ok=True)
        client.write(path, os.urandom(rng.randrange(64 << 10, (512 << 10) + 1)))
    print("loader: made %d files in %.0f s" % (files, time.monotonic() - start), file=sys.stderr)


def epoch(loader, batched, pids):
    drop_caches()
    c0, s0, t0 = client_cpu(), server_cpu(pids), time.monotonic()
    n = nbytes = 0
    for batch in loader:
        n += len(batch)
        nbytes += batch.nbytes if hasattr(batch, "nbytes") else sum(len(b) for b in batch)
    secs = time.monotonic() - t0
    return dict(samples=n, bytes=nbytes, seconds=secs, samples_per_s=n / secs, mb_per_s=nbytes / secs / 1e6,
                client_cpu_s=client_cpu() - c0, server_cpu_s=server_cpu(pids) - s0)


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", required=True)
parser.add_argument("--mount", required=True)
parser.add_argument("--files", type=int, default=100000)
parser.add_argument("--root", default=None, help="dataset directory in the namespace (default /bench-loader-<files>)")
parser.add_argument("--workers", default="0,2,4")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--systems", default="shoal-tensor,shoal-native,shoal-sample,fuse-open")
parser.add_argument("--server-pids", default="")
parser.add_argument("--server-dir", default="", help="count every shoal-meta/-storage/-fuse whose command line names this directory")
parser.add_argument("--json", default=None)
args = parser.parse_args()

os.environ["SHOAL_CONFIG"] = args.config
root = args.root or "/bench-loader-%d" % args.files
pids = [int(p) for p in args.server_pids.split(",") if p]
if args.server_dir:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open("/proc/%s/comm" % pid).read().strip()
            cmdline = open("/proc/%s/cmdline" % pid, "rb").read().decode(errors="replace")
        except OSError:
            continue
        if comm in ("shoal-meta", "shoal-storage", "shoal-fuse") and args.server_dir in cmdline:
            pids.append(int(pid))
print("loader: server pids %s" % pids, file=sys.stderr)
make_dataset(shoal.client(), root, args.files)
ds = st.ShoalDataset(root)
results = []
for system in args.systems.split(","):
    for workers in [int(w) for w in args.workers.split(",")]:
        kw = dict(num_workers=workers)
        if system == "shoal-native":
            loader = st.batched_loader(ds, batch_size=args.batch, shuffle=True, **kw)
        elif system == "shoal-tensor":
            loader = st.batched_loader(ds, batch_size=args.batch, shuffle=True, as_tensors=True, **kw)
        elif system == "shoal-sample":
            loader = tud.DataLoader(ds, batch_size=args.batch, shuffle=True, collate_fn=list, **kw)
        elif system == "fuse-open":
            loader = tud.DataLoader(OpenDataset([args.mount + p for p in ds.files]), batch_size=args.batch,
                                    shuffle=True, collate_fn=list, **kw)
        else:
            sys.exit("unknown system " + system)
        r = epoch(loader, system.startswith("shoal-") and system != "shoal-sample", pids)
        r.update(system=system, workers=workers, files=args.files)
        r["cpu_ms_per_sample"] = (r["client_cpu_s"] + r["server_cpu_s"]) * 1000 / r["samples"]
        results.append(r)
        print("%-13s workers=%d  %8.0f samples/s  %7.1f MB/s  client CPU %6.1f s  server CPU %6.1f s  %.2f ms CPU/sample"
              % (system, workers, r["samples_per_s"], r["mb_per_s"], r["client_cpu_s"], r["server_cpu_s"],
                 r["cpu_ms_per_sample"]), flush=True)
if args.json:
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)

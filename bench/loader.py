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
  nfs-open       a plain Dataset that reads the same dataset whole over NFS: libnfs's
                 sync API through ctypes (bench/nfs_reader.py; one NFS context per
                 process), from a local copy of the dataset (--nfs-dir) that an
                 NFS-Ganesha serves (--nfs-url; bench/loader.sh --nfs starts it)

with num_workers 0, 2 and 4. CPU: the client's (this process and its
DataLoader workers: getrusage self + children) and the servers' (utime+stime
of the pids given by --server-pids, e.g. shoal-meta, shoal-storage and
shoal-fuse; the FUSE daemon counts as server; for nfs-open the pids of
--nfs-server-pids, i.e. ganesha). The page cache is dropped before every epoch
(root), so storage reads come from disk.

    bench/loader.py --config FILE --mount DIR [--files N] [--workers 0,2,4]
                    [--server-pids PID,... | --server-dir DIR] [--json FILE]
                    [--nfs-dir DIR [--make-only] [--nfs-url URL --nfs-server-pids PID,...]]

--nfs-dir DIR also writes the dataset's files (same names below DIR, same
sizes, same bytes) to the local directory DIR when it does not hold them yet;
--make-only stops after writing (the NFS server must start after its files
are written: NFS-Ganesha caches what it has seen).
Run by bench/loader.sh on the local cluster (deploy/local-cluster.sh).
"""
import argparse
import concurrent.futures
import json
import os
import random
import resource
import sys
import time

import torch.utils.data as tud

import shoal
import shoal.torch as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfs_reader import NfsReader  # noqa: E402


class OpenDataset(tud.Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            return f.read()


class NfsOpenDataset(tud.Dataset):
    """Item i: the whole file paths[i] (a path inside the export) read over NFS.
    The sizes come from a listing of the dataset, as ShoalDataset's come from its
    manifest, so a sample costs an OPEN, READs of the known size and a CLOSE (no
    extra READ to find the end of file)."""

    def __init__(self, url, paths, sizes):
        self.reader = NfsReader(url)
        self.paths, self.sizes = paths, sizes

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.reader.read(self.paths[i], self.sizes[i])


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


def dataset_names(files, seed=42):
    """The dataset's file names (below its root) and sizes."""
    rng = random.Random(seed)
    names = ["d%03d/f%06d" % (i % 100, i) for i in range(files)]
    sizes = [rng.randrange(64 << 10, (512 << 10) + 1) for _ in range(files)]
    return names, sizes


def make_dataset(client, root, files, local=None):
    """The dataset in Shoal under root (unless root is None) and, with local,
    the same files (names below local, sizes, bytes) in that local directory;
    whichever copy is already complete is kept (then the other gets fresh
    random bytes)."""
    names, sizes = dataset_names(files)
    need_shoal = False
    if root is not None:
        try:
            need_shoal = len(client.walk(root)) != files
        except shoal.ShoalError:
            need_shoal = True

    def local_ok(i):
        try:
            return os.stat(os.path.join(local, names[i])).st_size == sizes[i]
        except OSError:
            return False
    need_local = local is not None and not all(local_ok(i) for i in range(files))
    if not need_shoal and not need_local:
        return
    start = time.monotonic()
    for d in range(min(files, 100)):
        if need_shoal:
            os.makedirs(args.mount + "%s/d%03d" % (root, d), exist_ok=True)
        if need_local:
            os.makedirs(os.path.join(local, "d%03d" % d), exist_ok=True)

    def make(i):
        data = os.urandom(sizes[i])
        if need_shoal:
            client.write("%s/%s" % (root, names[i]), data)
        if need_local:
            with open(os.path.join(local, names[i]), "wb") as f:
                f.write(data)
    # A few writers at once: the client's writes and the local ones overlap.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in pool.map(make, range(files), chunksize=64):
            pass
    os.sync()
    print("loader: made %d files (%s) in %.0f s" % (files, " + ".join(
        w for w, n in (("Shoal " + str(root), need_shoal), ("local " + str(local), need_local)) if n),
        time.monotonic() - start), file=sys.stderr)


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
parser.add_argument("--nfs-dir", default=None, help="local copy of the dataset (written if missing), exported over NFS")
parser.add_argument("--make-only", action="store_true", help="write the dataset (and --nfs-dir) and stop")
parser.add_argument("--nfs-url", default=None, help="libnfs URL of the export of --nfs-dir (nfs-open)")
parser.add_argument("--nfs-server-pids", default="", help="the NFS server's pids (server CPU of nfs-open)")
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
systems = args.systems.split(",")
# Only nfs-open: no Shoal copy (a 100,000-file dataset is ~29 GB per copy).
shoal_copy = any(s != "nfs-open" for s in systems)
make_dataset(shoal.client(), root if shoal_copy else None, args.files, args.nfs_dir)
if args.make_only:
    sys.exit(0)
nfs_pids = [int(p) for p in args.nfs_server_pids.split(",") if p]
ds = st.ShoalDataset(root) if shoal_copy else None
results = []
for system in systems:
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
        elif system == "nfs-open":
            if not args.nfs_url or not args.nfs_dir:
                sys.exit("nfs-open needs --nfs-url and --nfs-dir (bench/loader.sh --nfs)")
            # The same files in the same order (the manifest's paths below root), sized by
            # the listing of the exported copy.
            rel = [p[len(root):] for p in ds.files] if ds else sorted("/" + n for n in dataset_names(args.files)[0])
            sizes = [os.stat(args.nfs_dir + p).st_size for p in rel]
            loader = tud.DataLoader(NfsOpenDataset(args.nfs_url, rel, sizes),
                                    batch_size=args.batch, shuffle=True, collate_fn=list, **kw)
        else:
            sys.exit("unknown system " + system)
        r = epoch(loader, system.startswith("shoal-") and system != "shoal-sample",
                  nfs_pids if system == "nfs-open" else pids)
        r.update(system=system, workers=workers, files=args.files)
        r["cpu_ms_per_sample"] = (r["client_cpu_s"] + r["server_cpu_s"]) * 1000 / r["samples"]
        results.append(r)
        print("%-13s workers=%d  %8.0f samples/s  %7.1f MB/s  client CPU %6.1f s  server CPU %6.1f s  %.2f ms CPU/sample"
              % (system, workers, r["samples_per_s"], r["mb_per_s"], r["client_cpu_s"], r["server_cpu_s"],
                 r["cpu_ms_per_sample"]), flush=True)
if args.json:
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)

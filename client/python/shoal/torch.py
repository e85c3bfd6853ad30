"""PyTorch datasets and checkpoints over Shoal's native batched reads.

    from shoal.torch import ShoalDataset, ShoalShardDataset, batched_loader, save, load
    ds = ShoalDataset("/datasets/imgs")              # every regular file, sorted: ds.files
    loader = batched_loader(ds, batch_size=64, shuffle=True, num_workers=2)
    for batch in loader: ...                         # a list of 64 samples, fetched by one read_batch
    loader = batched_loader(ds, batch_size=64, shuffle=True, num_workers=2, as_tensors=True)
    for batch in loader: ...                         # a SampleBatch: batch[i] is a uint8 tensor view

Each DataLoader worker process opens its own connection (shoal.client() is per
process), so nothing made before fork() is used after it.
"""
import io
import itertools
import os
import random
import threading

import torch
import torch.utils.data as tud
from torch.multiprocessing.reductions import StorageWeakRef

import shoal


class ShoalDataset(tud.Dataset):
    """Map-style: item i is the bytes of files[i] (or transform(bytes)).

    The manifest is made once, by one readdir-plus walk of `root` (a namespace
    path or a path under the Shoal mount): `files` holds the sorted namespace
    paths of every regular file below it. Reads go by the walk's attributes,
    so a sample costs no lookup; files are taken as immutable while in use.
    """

    def __init__(self, root, transform=None, config=None):
        self.root = os.fspath(root)
        self.transform = transform
        self.config = config
        self._handles = shoal.client(config).walk(self.root)
        self.files = [h.path for h in self._handles]

    def __len__(self):
        return len(self._handles)

    def _apply(self, data):
        return self.transform(data) if self.transform is not None else data

    def __getitem__(self, i):
        return self._apply(shoal.client(self.config).read_batch([self._handles[i]])[0])

    def get_batch(self, indices):
        """Samples for `indices`, fetched by one read_batch call."""
        data = shoal.client(self.config).read_batch([self._handles[i] for i in indices])
        return [self._apply(d) for d in data]

    # DataLoader (torch >= 2) fetches a worker's batch through this when present.
    __getitems__ = get_batch

    def get_batch_tensor(self, indices, reuse=True):
        """The samples for `indices` as one SampleBatch, read by one read_batch_into
        straight into its tensor (in shared memory inside a DataLoader worker).
        With a transform: the list of transform(sample tensor).

        Without a transform (and unless reuse=False) the tensor's memory is
        reused from batch to batch (see _BatchMemory): a batch is not
        overwritten while this process, or the DataLoader's main process it
        went to, still refers to it or to a view of it."""
        handles = [self._handles[i] for i in indices]
        offsets = [0]
        for h in handles:
            offsets.append(offsets[-1] + h.size)
        shared = tud.get_worker_info() is not None
        if self.transform is None and reuse:
            data, release, source = _batch_memory(shared).take(offsets[-1])
        else:
            data, release, source = _empty_bytes(offsets[-1], shared), None, None
        items = [(h, n) for h, n in zip(handles, range(len(handles))) if h.size]
        try:
            if items:
                got = shoal.client(self.config).read_batch_into(
                    [h for h, _ in items], [data[offsets[i]:offsets[i + 1]] for _, i in items])
                for (h, _), n in zip(items, got):
                    if n != h.size:
                        raise shoal.ShoalError("%s: read %d of its %d bytes (did the file change?)" % (h.path, n, h.size))
        except BaseException:
            if release is not None:
                release[0][release[1]] = 0  # no batch was made in it
            raise
        batch = SampleBatch(data, offsets, release, source)
        return batch if self.transform is None else [self.transform(t) for t in batch]


def _empty_bytes(n, shared):
    """An uninitialised uint8 tensor of n bytes, made in shared memory when asked
    (a worker's tensors then reach the main process without a copy)."""
    if not shared:
        return torch.empty(n, dtype=torch.uint8)
    storage = torch.ByteStorage._new_shared(max(n, 1))
    return torch.empty(0, dtype=torch.uint8).set_(storage)[:n]


class _BatchMemory:
    """Buffers for SampleBatch tensors, kept and taken again by later batches.

    Why: the first touch of fresh memory costs a page fault per 4 KiB page, and
    on a VM with shadowed page tables that is ~4 ms per MB, more than reading
    the bytes from storage (a 19 MB batch: ~80 ms fresh, ~5 ms reused).

    A buffer is taken again only when no batch made from it is referenced:
    - in the process that reads the batch (num_workers=0) a batch's tensor is
      a new storage over the buffer (torch.frombuffer), so a weak reference to
      that storage says when the last view of the batch is gone;
    - in a DataLoader worker the batch's tensor must be the shared-memory
      buffer itself (torch then passes it to the main process by descriptor,
      without a copy), and only the main process knows when it drops it. Each
      buffer has a byte in a small shared tensor, `busy`, set here when a batch
      is made and cleared by the main process (SampleBatch.__setstate__,
      _release_dropped_batches) once its copy of the batch has no reference.
    When every buffer is busy, a batch gets fresh memory, as without the pool.
    """

    SLOTS = 8
    ROUND = 1 << 20

    def __init__(self, shared):
        self.shared = shared
        self.pid = os.getpid()
        self.buffers = [None] * self.SLOTS
        self.taken = [0] * self.SLOTS
        if shared:
            self.busy = _empty_bytes(self.SLOTS, True).zero_()
            self._busy = self.busy.numpy()
        else:
            self.last_batch = [None] * self.SLOTS  # StorageWeakRef of the last batch made from each buffer

    def _free(self, i):
        if self.shared:
            return self._busy[i] == 0
        ref = self.last_batch[i]
        return ref is None or ref.expired()

    def take(self, n):
        """(a uint8 tensor of n bytes, its release for the main process or None,
        its source: (pid, buffer index, times that buffer was taken) or None)."""
        free = [i for i in range(self.SLOTS) if self._free(i)]
        if not free:
            return _empty_bytes(n, self.shared), None, None
        fits = [i for i in free if self.buffers[i] is not None and self.buffers[i].numel() >= n]
        if fits:
            i = min(fits, key=lambda k: self.buffers[k].numel())
        else:
            i = min(free, key=lambda k: 0 if self.buffers[k] is None else self.buffers[k].numel())
            # With headroom: batches vary in size, and a buffer that is a little
            # short would be made again.
            self.buffers[i] = _empty_bytes(-(-(n + n // 4 + 1) // self.ROUND) * self.ROUND, self.shared)
        self.taken[i] += 1
        source = (self.pid, i, self.taken[i])
        if self.shared:
            self._busy[i] = 1
            return self.buffers[i][:n], (self.busy, i), source
        data = torch.frombuffer(self.buffers[i].numpy(), dtype=torch.uint8)[:n]
        self.last_batch[i] = StorageWeakRef(data.storage())
        return data, None, source


_memory = None


def _batch_memory(shared):
    """This process's _BatchMemory (a forked worker makes its own)."""
    global _memory
    if _memory is None or _memory.pid != os.getpid() or _memory.shared != shared:
        _memory = _BatchMemory(shared)
    return _memory


# Batches received from workers, not yet dropped: key -> (weak reference to
# this process's storage of the batch, the worker's busy tensor, buffer index).
_received = {}
_received_lock = threading.Lock()
_received_keys = itertools.count()


def _release_dropped_batches():
    with _received_lock:
        for key, (ref, busy, i) in list(_received.items()):
            if ref.expired():
                busy[i] = 0
                del _received[key]


class SampleBatch:
    """A batch of samples in one uint8 tensor: batch[i] is sample i, a view of
    `data` (bytes(batch[i].numpy()) copies it out). Iterable; len() is the
    number of samples, `nbytes` their total size. Made by a DataLoader worker,
    it reaches the main process as one shared-memory tensor, not as pickled bytes.
    Its memory is taken again for a later batch once nothing refers to `data`
    or to any view of it (keep a view, or copy out, to keep a sample). A view
    handed on to yet another process must be a copy (`.clone()`); a whole
    SampleBatch handed on keeps its memory from being reused."""

    def __init__(self, data, offsets, release=None, source=None):
        self.data = data
        self.offsets = offsets
        self.source = source  # (pid, buffer index, times taken) when its memory is reused, else None
        self._release = release  # (busy tensor, index): see _BatchMemory
        self._received_key = None  # this batch's entry in _received

    def __getstate__(self):
        # Passed on from the process it was received in: that process can no
        # longer tell when the batch is unused, so its buffer is never reused.
        with _received_lock:
            _received.pop(self._received_key, None)
        return dict(data=self.data, offsets=self.offsets, release=self._release, source=self.source)

    def __setstate__(self, state):
        self.data, self.offsets, self.source = state["data"], state["offsets"], state["source"]
        self._release = None
        self._received_key = None
        # Arrived from a worker: the worker may take its buffers again once this
        # process lets go of the batches made in them.
        _release_dropped_batches()
        if state["release"] is not None:
            busy, i = state["release"]
            with _received_lock:
                self._received_key = next(_received_keys)
                _received[self._received_key] = (StorageWeakRef(self.data.storage()), busy, i)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("sample %d of a batch of %d" % (i, n))
        return self.data[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self):
        return self.offsets[-1]


class _BatchView(tud.Dataset):
    """Index: a list of indices (from a BatchSampler); item: the batch, collated."""

    def __init__(self, dataset, collate_fn, as_tensors):
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.as_tensors = as_tensors

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, indices):
        if self.as_tensors:
            # A collate_fn may keep views of the batch in this worker: no reuse then.
            batch = self.dataset.get_batch_tensor(list(indices), reuse=self.collate_fn is None)
        else:
            batch = self.dataset.get_batch(list(indices))
        return batch if self.collate_fn is None else self.collate_fn(batch)


def batched_loader(dataset, batch_size, shuffle=False, drop_last=False, collate_fn=None, generator=None,
                   as_tensors=False, **kwargs):
    """A DataLoader whose workers fetch each batch with one read_batch call.

    A BatchSampler hands a worker a whole batch of indices; the dataset's
    get_batch reads them together (one request per storage server rather
    than one per sample). A batch is a list of bytes, or with as_tensors a
    SampleBatch (one shared-memory tensor: workers pass it without a copy);
    collate_fn, when given, is applied to it in the worker. kwargs go to
    DataLoader (num_workers, persistent_workers, ...)."""
    base = tud.RandomSampler(dataset, generator=generator) if shuffle else tud.SequentialSampler(dataset)
    sampler = tud.BatchSampler(base, batch_size=batch_size, drop_last=drop_last)
    return tud.DataLoader(_BatchView(dataset, collate_fn, as_tensors), sampler=sampler, batch_size=None, **kwargs)


def _tar_name(header):
    name = header[0:100].split(b"\0", 1)[0]
    prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    return (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")


def _tar_size(header):
    field = header[124:136]
    if field[0] & 0x80:  # base-256 (GNU) for sizes beyond the octal field
        return int.from_bytes(field[1:], "big")
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


class _ShardStream:
    """A shard file read front to back in large windows; each window is one
    read_batch_into of several ranges (spread over the file's stripe)."""

    def __init__(self, client, path, size, window, piece):
        self.client, self.path, self.size = client, path, size
        self.window, self.piece = window, piece
        self.buf = memoryview(b"")
        self.pos = 0       # in buf
        self.offset = 0    # file offset of buf[0]

    def _fill(self, need):
        keep = bytes(self.buf[self.pos:])
        start = self.offset + self.pos
        n = min(max(self.window, need), self.size - start - len(keep))
        fresh = bytearray(len(keep) + n)
        fresh[: len(keep)] = keep
        mv = memoryview(fresh)
        items, bufs = [], []
        at = len(keep)
        while at < len(fresh):
            k = min(self.piece, len(fresh) - at)
            items.append((self.path, start + at, k))
            bufs.append(mv[at : at + k])
            at += k
        if items:
            self.client.read_batch_into(items, bufs)
        self.buf, self.pos, self.offset = mv, 0, start

    def take(self, n):
        if len(self.buf) - self.pos < n:
            self._fill(n)
            if len(self.buf) - self.pos < n:
                raise EOFError(f"{self.path}: truncated tar (wanted {n} bytes at offset {self.offset + self.pos})")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def at_end(self):
        return self.offset + self.pos >= self.size


def _tar_members(stream):
    """(name, bytes) of every regular file in an uncompressed tar."""
    long_name = None
    while not stream.at_end():
        header = bytes(stream.take(512))
        if header == b"\0" * 512:
            return  # end-of-archive marker
        size = _tar_size(header)
        kind = header[156:157]
        body = stream.take((size + 511) // 512 * 512)[:size]
        if kind == b"L":  # GNU long name for the next member
            long_name = bytes(body).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if kind == b"x":  # PAX extended header: only `path` matters here
            for rec in bytes(body).split(b"\n"):
                if b" path=" in rec:
                    long_name = rec.split(b" path=", 1)[1].decode("utf-8", "surrogateescape")
            continue
        name = long_name or _tar_name(header)
        long_name = None
        if kind in (b"0", b"\0"):
            yield name, bytes(body)


def _split_key(name):
    d, _, base = name.rpartition("/")
    key, dot, ext = base.partition(".")
    return (d + "/" + key if d else key), ext


class ShoalShardDataset(tud.IterableDataset):
    """Samples stored in uncompressed tar shards, as WebDataset writes them:
    members sharing a key (the name up to the first dot of its base name) make
    one sample, a dict {"__key__": key, "__shard__": path, ext: bytes, ...}.

    Shards are split across ranks (torch.distributed when initialised, else
    `rank`/`world_size`) and DataLoader workers, so each sample is seen once
    per epoch; shard order and a buffer of `shuffle_buffer` samples are
    shuffled with (seed, epoch) (set_epoch). Each shard is read in windows of
    `window` bytes, each one read_batch of `piece`-byte ranges.
    """

    def __init__(self, paths, shuffle_buffer=0, seed=0, rank=None, world_size=None, transform=None,
                 window=32 << 20, piece=4 << 20, config=None):
        self.paths = [os.fspath(p) for p in paths]
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.transform = transform
        self.window, self.piece = window, piece
        self.config = config
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _my_shards(self):
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                rank, world = dist.get_rank(), dist.get_world_size()
            else:
                rank, world = 0, 1
        info = tud.get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        shards = list(self.paths)
        if self.shuffle_buffer:
            random.Random(self.seed * 1000003 + self.epoch).shuffle(shards)
        return shards[rank * nworkers + wid :: world * nworkers]

    def _samples(self, client):
        for path in self._my_shards():
            size = client.stat(path)["size"]
            stream = _ShardStream(client, path, size, self.window, self.piece)
            sample = None
            for name, data in _tar_members(stream):
                key, ext = _split_key(name)
                if sample is not None and sample["__key__"] != key:
                    yield sample
                    sample = None
                if sample is None:
                    sample = {"__key__": key, "__shard__": path}
                sample[ext] = data
            if sample is not None:
                yield sample

    def __iter__(self):
        client = shoal.client(self.config)
        info = tud.get_worker_info()
        rng = random.Random((self.seed * 1000003 + self.epoch) * 997 + (info.id if info else 0))
        out = (lambda s: self.transform(s)) if self.transform is not None else (lambda s: s)
        if not self.shuffle_buffer:
            for s in self._samples(client):
                yield out(s)
            return
        buf = []
        for s in self._samples(client):
            if len(buf) < self.shuffle_buffer:
                buf.append(s)
                continue
            i = rng.randrange(len(buf))
            buf[i], s = s, buf[i]
            yield out(s)
        rng.shuffle(buf)
        for s in buf:
            yield out(s)


def save(obj, path, config=None):
    """torch.save(obj) to a Shoal file, written in parallel striped blocks
    through libshoal (the file is replaced). Returns the bytes written."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return shoal.client(config).write(os.fspath(path), buf.getbuffer())


def load(path, map_location=None, config=None, **kwargs):
    """torch.load of a Shoal file read in parallel striped blocks."""
    data = shoal.client(config).read(os.fspath(path))
    return torch.load(io.BytesIO(data), map_location=map_location, **kwargs)

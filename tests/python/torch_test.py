"""shoal.torch end to end on a real local cluster: ShoalDataset under a
shuffled DataLoader (num_workers 0 and 2, persistent workers) returns every
sample byte-exact; the batching loader fetches whole batches; the shard
dataset yields every sample exactly once per epoch across 2 workers and
across ranks; a checkpoint of a few hundred MB saves and loads back equal."""
import concurrent.futures
import hashlib
import io
import os
import random
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import LocalCluster  # noqa: E402

try:
    import torch
    import torch.utils.data as tud
except ImportError:
    torch = None

import shoal  # noqa: E402

SAMPLES = int(os.environ.get("SHOAL_PY_SAMPLES", "10000"))


@unittest.skipIf(torch is None, "python3-torch is not installed: shoal.torch is not tested")
class ShoalTorchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster()
        try:
            os.environ["SHOAL_CONFIG"] = cls.cluster.config  # what workers' shoal.client() finds
            import shoal.torch as st
            cls.st = st
            c = shoal.client()
            rng = random.Random(1234)
            cls.expected = {}
            start = time.monotonic()
            for d in range(10):
                os.makedirs("%s/ds/d%d" % (cls.cluster.mount, d))
            for i in range(SAMPLES):
                path = "/ds/d%d/s%05d" % (i % 10, i)
                size = rng.choice([0, rng.randrange(1, 512), rng.randrange(512, 8192), rng.randrange(8192, 70000)])
                cls.expected[path] = rng.randbytes(size)
            # Written from several threads (the client releases the GIL): meta
            # and storage share their syncs among concurrent writers.
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda item: c.write(*item), cls.expected.items()))
            print("wrote %d samples in %.1f s" % (SAMPLES, time.monotonic() - start), file=sys.stderr)
        except BaseException:
            cls.cluster.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def check_epoch(self, ds, num_workers, epochs):
        paths = ds.files
        loader_gen = torch.Generator().manual_seed(99)
        perms = []
        kwargs = dict(num_workers=num_workers, collate_fn=list, batch_size=32)
        if num_workers:
            kwargs.update(persistent_workers=True, prefetch_factor=4)
        sampler = tud.RandomSampler(ds, generator=loader_gen)
        loader = tud.DataLoader(ds, sampler=sampler, **kwargs)
        for epoch in range(epochs):
            # The sampler's order for this epoch, drawn from a copy of its generator's state.
            state = loader_gen.get_state()
            order = list(tud.RandomSampler(ds, generator=torch.Generator().set_state(state)))
            loader_gen.set_state(state)
            got = [s for batch in loader for s in batch]
            self.assertEqual(len(got), len(paths))
            self.assertNotEqual(order, list(range(len(paths))), "the epoch was not shuffled")
            bad = [paths[i] for i, data in zip(order, got) if data != self.expected[paths[i]]]
            self.assertEqual(bad, [], "samples not byte-exact (workers=%d, epoch %d)" % (num_workers, epoch))
            perms.append(order)
        if epochs > 1:
            self.assertNotEqual(perms[0], perms[1])

    def test_dataset_manifest_is_sorted_and_complete(self):
        ds = self.st.ShoalDataset(self.cluster.mount + "/ds")
        self.assertEqual(ds.files, sorted(self.expected))
        self.assertEqual(len(ds), SAMPLES)
        self.assertEqual(ds[3], self.expected[ds.files[3]])
        t = self.st.ShoalDataset("/ds", transform=lambda b: len(b))
        self.assertEqual(t[5], len(self.expected[t.files[5]]))

    def test_dataloader_shuffled_epoch_no_workers(self):
        self.check_epoch(self.st.ShoalDataset("/ds"), 0, 1)

    def test_dataloader_shuffled_epochs_two_persistent_workers(self):
        self.check_epoch(self.st.ShoalDataset("/ds"), 2, 2)

    def test_batched_loader_fetches_whole_batches(self):
        ds = self.st.ShoalDataset("/ds")
        for workers in (0, 2):
            loader = self.st.batched_loader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                            persistent_workers=workers > 0,
                                            collate_fn=lambda samples: [hashlib.sha1(s).digest() for s in samples])
            got = [h for batch in loader for h in batch]
            want = [hashlib.sha1(self.expected[p]).digest() for p in ds.files]
            self.assertEqual(sorted(got), sorted(want))
            self.assertNotEqual(got, want)

    def test_batched_loader_as_tensors_hands_batches_over_in_shared_memory(self):
        ds = self.st.ShoalDataset("/ds")
        for workers in (0, 2):
            loader = self.st.batched_loader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                            persistent_workers=workers > 0, as_tensors=True)
            got = {}
            for batch in loader:
                self.assertIsInstance(batch, self.st.SampleBatch)
                self.assertEqual(batch.data.dtype, torch.uint8)
                if workers:
                    self.assertTrue(batch.data.is_shared(), "a worker's batch was copied, not shared")
                self.assertEqual(batch.nbytes, sum(t.numel() for t in batch))
                for t in batch:
                    got.setdefault(bytes(t.numpy()), 0)
                    got[bytes(t.numpy())] += 1
            want = {}
            for p in ds.files:
                want.setdefault(self.expected[p], 0)
                want[self.expected[p]] += 1
            self.assertEqual(got, want, "samples not byte-exact, or not exactly once (workers=%d)" % workers)
        with self.assertRaises(IndexError):
            ds.get_batch_tensor([0, 1])[2]

    def test_as_tensors_reuses_batch_memory_but_never_under_a_held_batch(self):
        ds = self.st.ShoalDataset("/ds")
        want = sorted(self.expected[p] for p in ds.files)
        for workers in (0, 2):
            loader = self.st.batched_loader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                            persistent_workers=workers > 0, as_tensors=True)
            # An epoch whose batches are all held: no buffer is taken twice, and
            # every batch still holds its samples at the end.
            held = list(loader)
            sources = [b.source[:2] for b in held if b.source]
            self.assertTrue(sources, "no batch came from reused memory (workers=%d)" % workers)
            self.assertEqual(len(set(sources)), len(sources), "a buffer was taken again under a held batch")
            self.assertEqual(sorted(bytes(t.numpy()) for b in held for t in b), want)
            del held
            # An epoch that drops each batch but keeps one sample (a view) of the
            # first: buffers are taken again, never the kept sample's.
            kept = kept_bytes = kept_source = None
            got, sources = [], []
            for batch in loader:
                if kept is None:
                    kept, kept_source = batch[0], batch.source
                    kept_bytes = bytes(kept.numpy())
                sources.append(batch.source)
                got.extend(bytes(t.numpy()) for t in batch)
            self.assertEqual(sorted(got), want)
            self.assertEqual(bytes(kept.numpy()), kept_bytes, "a kept sample was overwritten (workers=%d)" % workers)
            self.assertTrue([s for s in sources if s and s[2] > 1], "batch memory was never reused")
            self.assertLess(len({s[:2] for s in sources if s}), len(sources))
            self.assertEqual([s for s in sources if s and kept_source and s[:2] == kept_source[:2]
                              and s[2] > kept_source[2]], [], "the kept sample's buffer was taken again")

    def write_shards(self, nshards, per_shard):
        c = shoal.client()
        os.makedirs(self.cluster.mount + "/shards", exist_ok=True)
        rng = random.Random(5)
        expected, paths = {}, []
        for s in range(nshards):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for k in range(per_shard):
                    key = "sample%03d_%04d" % (s, k)
                    if k == 3:
                        key = "long/" + "n" * 120 + key  # a PAX long name
                    fields = {"bin": rng.randbytes(rng.randrange(0, 20000)), "cls": str(k % 7).encode()}
                    for ext, data in fields.items():
                        info = tarfile.TarInfo(key + "." + ext)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    expected[key] = fields
            path = "/shards/shard-%03d.tar" % s
            c.write(path, buf.getvalue())
            paths.append(path)
        return paths, expected

    def test_shard_dataset_every_sample_once_per_epoch(self):
        paths, expected = self.write_shards(9, 150)
        ds = self.st.ShoalShardDataset(paths, shuffle_buffer=100, seed=3, window=1 << 20, piece=256 << 10)
        loader = tud.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
        orders = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            keys = []
            for sample in loader:
                key = sample["__key__"]
                keys.append(key)
                self.assertEqual({"bin": sample["bin"], "cls": sample["cls"]}, expected[key], key)
            self.assertEqual(len(keys), len(expected), "samples repeated or lost in epoch %d" % epoch)
            self.assertEqual(set(keys), set(expected))
            orders.append(keys)
        # Ranks split the shards: together they see every sample once.
        seen = []
        for rank in range(2):
            part = self.st.ShoalShardDataset(paths, rank=rank, world_size=2)
            seen += [s["__key__"] for s in tud.DataLoader(part, batch_size=None, num_workers=2)]
        self.assertEqual(sorted(seen), sorted(expected))

    def test_checkpoint_of_a_few_hundred_mb(self):
        gen = torch.Generator().manual_seed(0)
        model = {
            "embed": torch.randn(20_000_000, generator=gen),        # 80 MB
            "layers": [torch.randn(4096, 4096, generator=gen) for _ in range(3)],  # 3 x 64 MB
            "step": 1234,
        }  # ~270 MB in all
        start = time.monotonic()
        n = self.st.save(model, "/ckpt.pt")
        saved = time.monotonic() - start
        self.assertGreater(n, 250 << 20)
        start = time.monotonic()
        back = self.st.load("/ckpt.pt")
        loaded = time.monotonic() - start
        print("checkpoint %d MB: save %.1f s, load %.1f s" % (n >> 20, saved, loaded), file=sys.stderr)
        self.assertEqual(back["step"], 1234)
        self.assertTrue(torch.equal(back["embed"], model["embed"]))
        self.assertEqual(len(back["layers"]), 3)
        for a, b in zip(back["layers"], model["layers"]):
            self.assertTrue(torch.equal(a, b))
        # Plain torch.save to the mount is read back natively, and the other way round.
        small = {"w": torch.arange(1000)}
        torch.save(small, self.cluster.mount + "/plain.pt")
        self.assertTrue(torch.equal(self.st.load("/plain.pt")["w"], small["w"]))
        self.assertTrue(torch.equal(torch.load(self.cluster.mount + "/ckpt.pt")["layers"][2], model["layers"][2]))


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""The shoal module end to end on a real local cluster (tests/python/cluster.py):
whole-file write/read/stat/listdir/walk, batched reads into bytes and in place
into numpy arrays, torch tensors and bytearrays, per-item errors, mount paths,
and fork safety."""
import errno
import os
import pathlib
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import LocalCluster  # noqa: E402

import numpy as np  # noqa: E402

import shoal  # noqa: E402

try:
    import torch
except ImportError:  # python3-torch missing: the torch cases say so and skip
    torch = None


class ShoalModuleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster()
        try:
            cls.c = shoal.connect(cls.cluster.config, io_timeout_ms=2000, io_attempts=2)
            os.mkdir(cls.cluster.mount + "/m")
            rng = random.Random(7)
            cls.data = {}
            for i in range(20):
                path = "/m/f%02d" % i
                cls.data[path] = rng.randbytes(rng.choice([0, 1, 100, 4096, 65536, 300000, 3 << 20]))
                n = cls.c.write(path, cls.data[path])
                if n != len(cls.data[path]):
                    raise AssertionError("write of %s returned %d" % (path, n))
        except BaseException:
            cls.cluster.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.cluster.stop()

    def test_whole_file_read_write_stat_and_listdir(self):
        for path, data in self.data.items():
            self.assertEqual(self.c.read(path), data)
            # The same bytes through the FUSE mount, and by a path under the mount.
            with open(self.cluster.mount + path, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(self.c.read(self.cluster.mount + path), data)
            self.assertEqual(self.c.read(pathlib.Path(path)), data)
            st = self.c.stat(path)
            self.assertEqual((st["type"], st["size"]), ("file", len(data)))
        self.assertEqual(self.c.listdir("/m"), sorted(os.path.basename(p) for p in self.data))
        self.assertEqual(sorted(os.listdir(self.cluster.mount + "/m")), self.c.listdir(self.cluster.mount + "/m"))
        # A file written through the mount is read natively.
        with open(self.cluster.mount + "/m/posix", "wb") as f:
            f.write(b"written through FUSE")
        self.assertEqual(self.c.read("/m/posix"), b"written through FUSE")
        # Rewriting a file replaces it (shorter: no old byte survives).
        self.c.write("/m/posix", b"short")
        self.assertEqual(self.c.read("/m/posix"), b"short")
        self.c.write("/m/posix", bytearray(b"x" * 10))
        self.assertEqual(self.c.stat("/m/posix")["size"], 10)

    def test_walk_is_sorted_and_recursive(self):
        os.makedirs(self.cluster.mount + "/w/b/c")
        os.makedirs(self.cluster.mount + "/w/a")
        for p in ["/w/z", "/w/b/c/y", "/w/a/x", "/w/b/k"]:
            self.c.write(p, p.encode())
        files = self.c.walk("/w")
        self.assertEqual([f.path for f in files], ["/w/a/x", "/w/b/c/y", "/w/b/k", "/w/z"])
        self.assertEqual([f.size for f in files], [len(f.path) for f in files])
        self.assertEqual(self.c.read_batch(files), [f.path.encode() for f in files])
        self.assertEqual([f.path for f in self.c.walk(self.cluster.mount + "/w/b")], ["/w/b/c/y", "/w/b/k"])

    def test_read_batch_returns_every_range(self):
        rng = random.Random(11)
        items, want = [], []
        for _ in range(500):
            path = rng.choice(list(self.data))
            size = len(self.data[path])
            off = rng.randrange(size + 1)
            n = rng.randrange(size - off + 1)
            items.append((path, off, n))
            want.append(self.data[path][off : off + n])
        self.assertEqual(self.c.read_batch(items), want)
        # Whole files: a path alone, or length None.
        paths = list(self.data)
        self.assertEqual(self.c.read_batch(paths), [self.data[p] for p in paths])
        self.assertEqual(self.c.read_batch([(p, 1, None) for p in paths if self.data[p]]),
                         [self.data[p][1:] for p in paths if self.data[p]])
        self.assertEqual(self.c.read_batch([]), [])
        self.assertEqual(self.c.read_batch([(pathlib.Path(paths[0]), 0, None), paths[1].encode()]),
                         [self.data[paths[0]], self.data[paths[1]]])

    def test_read_batch_into_fills_buffers_in_place(self):
        path = "/m/f19"
        data = self.data[path]
        paths = [p for p in self.data if len(self.data[p]) >= 4096]
        arrays = [np.zeros(4096, dtype=np.uint8) for _ in paths]
        ids = [id(a) for a in arrays]
        counts = self.c.read_batch_into([(p, 0, 4096) for p in paths], arrays)
        self.assertEqual(counts, [4096] * len(paths))
        self.assertEqual([id(a) for a in arrays], ids)
        for p, a in zip(paths, arrays):
            self.assertEqual(a.tobytes(), self.data[p][:4096])
        # A slice of one big array: each item lands in its own window of it.
        big = np.zeros((len(paths), 1000), dtype=np.uint8)
        self.c.read_batch_into([(p, 10, 1000) for p in paths], list(big))
        for row, p in zip(big, paths):
            self.assertEqual(row.tobytes(), self.data[p][10:1010])
        ba = bytearray(len(data))
        self.assertEqual(self.c.read_batch_into([path], [ba]), [len(data)])
        self.assertEqual(bytes(ba), data)
        # Length None: the buffer's size.
        mv = memoryview(bytearray(100))
        self.c.read_batch_into([(path, 5, None)], [mv])
        self.assertEqual(mv.tobytes(), data[5:105])
        with self.assertRaises(ValueError):  # a read-only buffer
            self.c.read_batch_into([(path, 0, 4)], [b"xxxx"])
        with self.assertRaises(ValueError):  # the buffer is too small for the item
            self.c.read_batch_into([(path, 0, 8)], [bytearray(4)])
        with self.assertRaises(ValueError):  # not contiguous
            self.c.read_batch_into([(path, 0, 4)], [np.zeros(8, dtype=np.uint8)[::2]])

    @unittest.skipIf(torch is None, "python3-torch is not installed")
    def test_read_batch_into_fills_torch_tensors_in_place(self):
        paths = [p for p in self.data if len(self.data[p]) >= 65536]
        tensors = [torch.zeros(65536, dtype=torch.uint8) for _ in paths]
        ptrs = [t.data_ptr() for t in tensors]
        self.c.read_batch_into([(p, 0, 65536) for p in paths], tensors)
        self.assertEqual([t.data_ptr() for t in tensors], ptrs)
        for p, t in zip(paths, tensors):
            self.assertEqual(t.numpy().tobytes(), self.data[p][:65536])
        # A float tensor is filled with the raw bytes, too.
        f = torch.zeros(1024, dtype=torch.float32)
        self.c.read_batch_into([(paths[0], 0, 4096)], [f])
        self.assertEqual(f.numpy().tobytes(), self.data[paths[0]][:4096])

    def test_errors_name_the_item(self):
        path = next(p for p in sorted(self.data) if len(self.data[p]) >= 4096)
        size = len(self.data[path])
        start = time.monotonic()
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read_batch([(path, 0, 1), (path, size, 1), (path, 0, 1)])
        self.assertEqual((e.exception.code, e.exception.errno, e.exception.item), ("OUT_OF_RANGE", errno.ERANGE, 1))
        self.assertEqual(e.exception.filename, path)
        self.assertIn("item 1", str(e.exception))
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read_batch([(path, 0, 1), ("/m/missing", 0, 1)])
        self.assertEqual((e.exception.code, e.exception.errno, e.exception.item), ("NOT_FOUND", errno.ENOENT, 1))
        self.assertIn("/m/missing", str(e.exception))
        self.assertIsInstance(e.exception, OSError)
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read_batch_into([(path, size - 2, 4)], [bytearray(4)])
        self.assertEqual(e.exception.code, "OUT_OF_RANGE")
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read("/m/missing")
        self.assertEqual(e.exception.errno, errno.ENOENT)
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read("/m")
        self.assertEqual(e.exception.code, "IS_DIRECTORY")
        # errors="return": failures in place, the rest read.
        out = self.c.read_batch([(path, 0, 3), ("/m/missing", 0, 1), (path, size + 1, None)], errors="return")
        self.assertEqual(out[0], self.data[path][:3])
        self.assertIsInstance(out[1], shoal.ShoalError)
        self.assertEqual((out[1].code, out[1].item), ("NOT_FOUND", 1))
        self.assertEqual((out[2].code, out[2].item), ("OUT_OF_RANGE", 2))
        out = self.c.read_batch_into([(path, 0, 3), ("/m/missing", 0, 1)], [bytearray(3), bytearray(1)],
                                     errors="return")
        self.assertEqual(out[0], 3)
        self.assertEqual(out[1].code, "NOT_FOUND")
        with self.assertRaises(ValueError):
            self.c.read_batch([path], errors="ignore")
        with self.assertRaises(shoal.ShoalError) as e:
            self.c.read_batch(["relative/path"])
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertLess(time.monotonic() - start, 30)

    def test_connect_finds_the_config(self):
        old = os.environ.get("SHOAL_CONFIG")
        try:
            os.environ["SHOAL_CONFIG"] = self.cluster.config
            with shoal.connect() as c:
                self.assertEqual(c.config_path, self.cluster.config)
                self.assertEqual(c.read("/m/f03"), self.data["/m/f03"])
            with self.assertRaises(ValueError):
                c.read("/m/f03")  # closed
            os.environ["SHOAL_CONFIG"] = self.cluster.dir + "/absent.toml"
            with self.assertRaises(shoal.ShoalError) as e:
                shoal.connect()
            self.assertEqual(e.exception.code, "NOT_FOUND")
            self.assertIn("absent.toml", str(e.exception))
        finally:
            if old is None:
                os.environ.pop("SHOAL_CONFIG", None)
            else:
                os.environ["SHOAL_CONFIG"] = old

    def test_a_client_does_not_cross_fork(self):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report, then leave without running the parent's cleanup
            code = 1
            try:
                os.close(r)
                try:
                    self.c.read("/m/f03")
                    msg = b"parent's client was usable in the child"
                except shoal.ForkedClientError as e:
                    own = shoal.connect(self.cluster.config)
                    ok = own.read("/m/f03") == self.data["/m/f03"]
                    msg = (b"ok " if ok else b"bad read ") + str(e).encode()
                    code = 0 if ok else 1
                os.write(w, msg)
            finally:
                os._exit(code)
        os.close(w)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                self.fail("child did not finish within 60 s")
            time.sleep(0.05)
        msg = os.read(r, 4096).decode()
        os.close(r)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, msg)
        self.assertIn("fork()", msg)
        self.assertEqual(self.c.read("/m/f03"), self.data["/m/f03"])  # the parent's still works


if __name__ == "__main__":
    unittest.main(verbosity=2)

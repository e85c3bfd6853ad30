"""bench/nfs_reader.py (the ctypes libnfs reader of the loader benchmark's
nfs-open system). Without a server: a refused connection and a bad URL raise
OSError naming the URL, in bounded time. With NFS-Ganesha installed and root:
a private ganesha (bench/nfs-ganesha.sh) over a temporary directory serves
whole files byte-exact (with and without a known size), a missing path and a
file shorter than its stated size raise OSError naming the path, and a forked
child reads through its own context. Those tests skip, saying why, otherwise
(CI does not install ganesha); everything skips without libnfs."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))
import nfs_reader  # noqa: E402

try:
    nfs_reader.libnfs()
    NO_LIBNFS = None
except OSError as e:
    NO_LIBNFS = "libnfs (%s) cannot be loaded: %s" % (nfs_reader.LIBNFS, e)


def ganesha_missing():
    if shutil.which("ganesha.nfsd") is None or shutil.which("nfs-ls") is None or \
            not os.path.exists("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"):
        return "NFS-Ganesha is not installed (bench/install-bench-deps.sh installs it)"
    if os.geteuid() != 0:
        return "not root: bench/nfs-ganesha.sh needs root"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipIf(NO_LIBNFS, NO_LIBNFS)
class NoServerTest(unittest.TestCase):
    def test_refused_mount_names_the_url(self):
        url = "nfs://127.0.0.1/export?version=4&nfsport=%d" % free_port()
        start = time.monotonic()
        with self.assertRaises(OSError) as cm:
            nfs_reader.NfsReader(url).read("/f")
        self.assertEqual(cm.exception.filename, url)
        self.assertIn("mount", str(cm.exception))
        self.assertLess(time.monotonic() - start, 60)

    def test_bad_url(self):
        with self.assertRaises(OSError) as cm:
            nfs_reader.NfsReader("http://example/x").read("/f")
        self.assertEqual(cm.exception.filename, "http://example/x")


@unittest.skipIf(NO_LIBNFS, NO_LIBNFS)
@unittest.skipIf(ganesha_missing(), ganesha_missing())
class GaneshaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="shoal-nfs-reader-", dir="/var/tmp")
        cls.data = os.path.join(cls.work, "data")
        cls.state = os.path.join(cls.work, "state")
        os.makedirs(os.path.join(cls.data, "d"))
        cls.files = {"/d/a": os.urandom(300000), "/d/empty": b"", "/big": os.urandom(2500001)}
        for p, b in cls.files.items():
            with open(cls.data + p, "wb") as f:
                f.write(b)
        script = os.path.join(REPO, "bench", "nfs-ganesha.sh")
        cls.down = [script, "down", cls.state]
        try:
            out = subprocess.run([script, "up", cls.data, cls.state], check=True, timeout=120,
                                 stdout=subprocess.PIPE, text=True).stdout
        except BaseException:
            subprocess.run(cls.down, timeout=60)
            shutil.rmtree(cls.work, ignore_errors=True)
            raise
        cls.url = out.strip().splitlines()[-1]
        cls.reader = nfs_reader.NfsReader(cls.url)

    @classmethod
    def tearDownClass(cls):
        cls.reader.close()
        subprocess.run(cls.down, timeout=60)
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_whole_files(self):
        for p, b in self.files.items():
            for got in (self.reader.read(p), self.reader.read(p, len(b))):
                self.assertIsInstance(got, bytes)
                self.assertEqual(got, b, p)

    def test_missing_path_named(self):
        with self.assertRaises(OSError) as cm:
            self.reader.read("/d/nope")
        self.assertEqual(cm.exception.filename, "/d/nope")

    def test_short_file_named(self):
        with self.assertRaises(OSError) as cm:
            self.reader.read("/d/a", 300001)
        self.assertEqual(cm.exception.filename, "/d/a")
        self.assertEqual(bytes(self.reader.read("/d/a")), self.files["/d/a"])  # the context still works

    def test_forked_child_mounts_its_own(self):
        self.reader.read("/d/a")  # the parent's context exists before the fork
        parent_ctx = self.reader._ctx
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                ok = bytes(self.reader.read("/big")) == self.files["/big"] and self.reader._ctx != parent_ctx
            finally:
                os.write(w, b"1" if ok else b"0")
                os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        self.assertEqual(got, b"1")
        self.assertEqual(self.reader._ctx, parent_ctx)
        self.assertEqual(bytes(self.reader.read("/d/a")), self.files["/d/a"])


if __name__ == "__main__":
    unittest.main()

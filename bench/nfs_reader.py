"""Whole-file reads over NFS from Python: libnfs's synchronous API called
through ctypes (Debian's libnfs13, libnfs 4.0), for the `nfs-open` system of
bench/loader.py (a plain Dataset over NFS, issue 9's column (c)).

    r = NfsReader("nfs://127.0.0.1/export?version=4&nfsport=20490")
    data = r.read("/d000/f000000")            # bytes; size=N skips the EOF probe

One NFS context (one TCP connection, one mount) per process, made lazily by
the first read in that process: DataLoader workers are forked, and a context
inherited from the parent (its socket, its NFSv4 client state) is never used
in a child; the child makes its own and leaves the inherited one alone. Each
context has its own NFSv4 client name (pid + sequence), as two contexts sharing
one would expire each other's state. Every call has a 30 s timeout, so a dead
server fails the read instead of hanging it. Errors raise OSError with the
errno from libnfs, its message and the path (or the URL for the mount).

Signatures are those of /usr/include/nfsc/libnfs.h (4.0):
  struct nfs_context *nfs_init_context(void);
  void nfs_destroy_context(struct nfs_context *);
  char *nfs_get_error(struct nfs_context *);
  struct nfs_url *nfs_parse_url_dir(struct nfs_context *, const char *url);
  void nfs_destroy_url(struct nfs_url *);   struct nfs_url { char *server, *path, *file; };
  int nfs_mount(struct nfs_context *, const char *server, const char *exportname);
  int nfs_open(struct nfs_context *, const char *path, int flags, struct nfsfh **);
  int nfs_pread(struct nfs_context *, struct nfsfh *, uint64_t offset, uint64_t count, void *buf);
  int nfs_close(struct nfs_context *, struct nfsfh *);
  uint64_t nfs_get_readmax(struct nfs_context *);
  void nfs_set_timeout(struct nfs_context *, int milliseconds);
  void nfs4_set_client_name(struct nfs_context *, const char *id);
"""
import ctypes
import errno
import itertools
import os
import threading

LIBNFS = os.environ.get("SHOAL_LIBNFS", "libnfs.so.13")
TIMEOUT_MS = 30000

_lib = None
_names = itertools.count()

# A bytes object of a given size, its contents not yet set, and the address of
# its contents (the C API's way to fill a new bytes object in place, as
# io.FileIO.read does): a sample read with a known size is read straight into
# the bytes it is returned as, with no zero fill and no copy. bytes, not
# bytearray: a DataLoader worker pickles every sample to the main process, and
# a bytearray pickles (and unpickles) through an extra copy.
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.argtypes, _new_bytes.restype = [ctypes.c_void_p, ctypes.c_ssize_t], ctypes.py_object
_bytes_addr = ctypes.pythonapi.PyBytes_AsString
_bytes_addr.argtypes, _bytes_addr.restype = [ctypes.py_object], ctypes.c_void_p


class _NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


def libnfs():
    """The loaded library with every function we call typed (OSError when
    libnfs is not installed)."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(LIBNFS)
    ctx, vp, cp = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p
    sig = {
        "nfs_init_context": ([], ctx),
        "nfs_destroy_context": ([ctx], None),
        "nfs_get_error": ([ctx], cp),
        "nfs_parse_url_dir": ([ctx, cp], ctypes.POINTER(_NfsUrl)),
        "nfs_destroy_url": ([ctypes.POINTER(_NfsUrl)], None),
        "nfs_mount": ([ctx, cp, cp], ctypes.c_int),
        "nfs_open": ([ctx, cp, ctypes.c_int, ctypes.POINTER(vp)], ctypes.c_int),
        "nfs_pread": ([ctx, vp, ctypes.c_uint64, ctypes.c_uint64, vp], ctypes.c_int),
        "nfs_close": ([ctx, vp], ctypes.c_int),
        "nfs_get_readmax": ([ctx], ctypes.c_uint64),
        "nfs_set_timeout": ([ctx, ctypes.c_int], None),
        "nfs4_set_client_name": ([ctx, cp], None),
    }
    for name, (args, res) in sig.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    _lib = lib
    return lib


class NfsReader:
    """Reads whole files from the export named by a libnfs URL
    (nfs://server/export[?version=4&nfsport=N...]); paths are inside the export
    ("/d000/f000000"). Safe to share across fork (each process mounts its own)
    and across threads of one process (a lock serialises the sync calls)."""

    def __init__(self, url):
        self.url = url
        self._pid = None
        self._ctx = None
        self._readmax = 0
        self._lock = threading.Lock()

    def __getstate__(self):  # pickled into a spawned worker: no context travels
        return {"url": self.url}

    def __setstate__(self, state):
        self.__init__(state["url"])

    def _message(self, ctx, rc):
        msg = libnfs().nfs_get_error(ctx) if ctx else None
        msg = msg.decode(errors="replace") if msg else ""
        return msg or os.strerror(-rc if rc < 0 else errno.EIO)

    def _error(self, ctx, rc, what, path):
        code = -rc if rc < 0 else errno.EIO
        return OSError(code, "nfs %s on %s: %s" % (what, self.url, self._message(ctx, rc)), path)

    def _context(self):
        pid = os.getpid()
        if self._pid == pid:
            return self._ctx
        # A context from before a fork belongs to the parent: drop our
        # reference, never call libnfs on it here.
        self._ctx, self._pid = None, None
        lib = libnfs()
        ctx = lib.nfs_init_context()
        if not ctx:
            raise OSError(errno.ENOMEM, "nfs_init_context failed", self.url)
        try:
            lib.nfs_set_timeout(ctx, TIMEOUT_MS)
            lib.nfs4_set_client_name(ctx, ("shoal-loader-%d-%d" % (pid, next(_names))).encode())
            u = lib.nfs_parse_url_dir(ctx, self.url.encode())
            if not u:
                raise OSError(errno.EINVAL, "bad NFS URL: %s" % self._message(ctx, -errno.EINVAL), self.url)
            try:
                rc = lib.nfs_mount(ctx, u.contents.server, u.contents.path)
                if rc != 0:
                    raise OSError(-rc if rc < 0 else errno.EIO,
                                  "nfs mount: %s" % self._message(ctx, rc), self.url)
            finally:
                lib.nfs_destroy_url(u)
            self._readmax = int(lib.nfs_get_readmax(ctx)) or (1 << 20)
        except BaseException:
            lib.nfs_destroy_context(ctx)
            raise
        self._ctx, self._pid = ctx, pid
        return ctx

    def read(self, path, size=None):
        """The whole file at `path` as bytes. With `size` (known from a
        listing) it reads exactly that many bytes straight into the result,
        READs of at most the server's maximum each, and fails if the file ends
        sooner; without, it reads until a READ returns nothing (one more round
        trip, and a copy at the end)."""
        with self._lock:
            ctx = self._context()
            lib = libnfs()
            fh = ctypes.c_void_p()
            rc = lib.nfs_open(ctx, os.fsencode(path), os.O_RDONLY, ctypes.byref(fh))
            if rc != 0:
                raise self._error(ctx, rc, "open", path)
            try:
                buf = self._read_open(ctx, fh, path, size)
            except BaseException:
                lib.nfs_close(ctx, fh)
                raise
            rc = lib.nfs_close(ctx, fh)
            if rc != 0:
                raise self._error(ctx, rc, "close", path)
            return buf

    def _read_open(self, ctx, fh, path, size):
        lib, step = libnfs(), self._readmax
        if size is not None:
            buf = _new_bytes(None, size) if size > 0 else b""
            base = _bytes_addr(buf) if size > 0 else 0
        else:
            buf = bytearray(step)
        off = 0
        while size is None or off < size:
            if size is None:
                if len(buf) < off + step:
                    buf.extend(bytes(off + step - len(buf)))
                want = step
                addr = ctypes.addressof((ctypes.c_char * want).from_buffer(buf, off))
            else:
                want = min(step, size - off)
                addr = base + off
            n = lib.nfs_pread(ctx, fh, off, want, addr)
            if n < 0:
                raise self._error(ctx, n, "read at offset %d" % off, path)
            if n == 0:
                if size is None:
                    break
                raise OSError(errno.EIO, "nfs read on %s: file ends at %d, expected %d bytes"
                              % (self.url, off, size), path)
            off += n
        if size is None:
            del buf[off:]
            return bytes(buf)
        return buf

    def close(self):
        """Unmounts this process's context (a no-op in a forked child)."""
        with self._lock:
            if self._ctx and self._pid == os.getpid():
                libnfs().nfs_destroy_context(self._ctx)
            self._ctx, self._pid = None, None

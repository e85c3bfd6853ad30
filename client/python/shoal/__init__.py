"""Shoal from Python: libshoal's batched native reads, bypassing FUSE for data.

    import shoal
    c = shoal.connect()                       # $SHOAL_CONFIG, else the local cluster's client config
    blobs = c.read_batch([("/data/a", 0, 4096), ("/data/b", 0, None)])   # None: to end of file
    c.read_batch_into([("/data/a", 0, 4096)], [numpy.empty(4096, numpy.uint8)])
    files = c.walk("/data")                   # every regular file, one readdir-plus walk, sorted

Items are (path, offset, length), (path, offset), a path, or a shoal.File from
walk() (reads then cost no lookup). Paths are namespace paths ("/data/a") or
paths under a mounted Shoal file system. Errors raise shoal.ShoalError (an
OSError: .errno, .filename, plus .code, the Shoal error name, and .item, the
index of the failed item); with errors="return" a failed item's place in the
result holds its ShoalError instead. An item reaching past the end of its file
fails with code OUT_OF_RANGE (errno ERANGE); a missing path with NOT_FOUND
(ENOENT); an unreachable storage server, after the client's bounded retries,
with UNAVAILABLE or TIMEOUT (EIO / ETIMEDOUT).

A Client must not cross fork(): in a child it raises ForkedClientError. Use
client() below, which keeps one client per process.
"""
import os

from ._native import Client, File, ForkedClientError, ShoalError, _connect

__all__ = ["connect", "client", "Client", "File", "ShoalError", "ForkedClientError"]


def connect(config=None, *, io_timeout_ms=None, io_attempts=None, meta_timeout_ms=None, event_loops=None):
    """A new Client. `config`: a client.toml; None finds one as the shoal CLI
    does ($SHOAL_CONFIG, $SHOAL_HOME/conf/client.toml,
    /var/tmp/shoal-local/conf/client.toml, /etc/shoal/client.toml). Keyword
    options override the file's."""
    overrides = dict(io_timeout_ms=io_timeout_ms, io_attempts=io_attempts,
                     meta_timeout_ms=meta_timeout_ms, event_loops=event_loops)
    return _connect(os.fspath(config) if config is not None else "", overrides)


_per_process = {}


def client(config=None, **options):
    """This process's shared Client for `config` (made on first use; a forked
    child makes its own instead of using its parent's)."""
    key = (os.getpid(), None if config is None else os.fspath(config), tuple(sorted(options.items())))
    c = _per_process.get(key)
    if c is None:
        # Clients inherited over fork() are dropped (never used, never closed).
        for k in [k for k in _per_process if k[0] != os.getpid()]:
            _per_process.pop(k)
        c = connect(config, **options)
        _per_process[key] = c
    return c

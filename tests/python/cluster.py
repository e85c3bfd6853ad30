"""A real local Shoal cluster for Python tests: runs shoal-test-cluster
(tests/python/cluster_main.cc, a LocalCluster), which starts meta, 3 storage
nodes and the FUSE mount on fresh loopback ports in a fresh directory, and
stops and unmounts everything when its standard input closes — also when the
test process dies."""
import os
import select
import subprocess
import sys
import time
import weakref


class LocalCluster:
    def __init__(self, start_timeout=90):
        binary = os.environ.get("SHOAL_TEST_CLUSTER")
        if not binary:
            raise RuntimeError("SHOAL_TEST_CLUSTER (path of shoal-test-cluster) is not set; run through ctest")
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # The end of the cluster's input is what stops it: a process forked from
        # this one (a DataLoader worker) must not hold that pipe open, or stop()
        # waits in vain and the cluster is killed without unmounting.
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: LocalCluster._drop_input(me))
        line = self._line(start_timeout)
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError("cluster did not start: " + line)
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        self.dir, self.mount, self.config, self.meta = fields["dir"], fields["mount"], fields["config"], fields["meta"]

    @staticmethod
    def _drop_input(ref):
        cluster = ref()
        if cluster is not None and cluster.proc.stdin and not cluster.proc.stdin.closed:
            # The pipe's end is replaced by /dev/null: nothing is flushed to
            # the pipe, and the file object stays usable.
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, cluster.proc.stdin.fileno())
            os.close(null)

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("shoal-test-cluster did not answer within %ss" % timeout)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("shoal-test-cluster exited (code %s)" % self.proc.poll())
                if line.split()[:1] and line.split()[0] in ("ready", "failed", "ok", "error"):
                    return line.strip()
                print(line, end="", file=sys.stderr)  # not an answer: a log line

    def kill_storage(self, node):
        self.proc.stdin.write("kill-storage %d\n" % node)
        self.proc.stdin.flush()
        answer = self._line(30)
        if answer != "ok":
            raise RuntimeError(answer)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

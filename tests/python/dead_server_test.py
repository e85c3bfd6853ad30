"""A dead storage server: batched reads fail with the documented error
(UNAVAILABLE or TIMEOUT, naming the item) within a bounded time instead of
hanging, on a real local cluster whose storage processes are killed."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import LocalCluster  # noqa: E402

import shoal  # noqa: E402


class DeadServerTest(unittest.TestCase):
    def test_reads_fail_in_bounded_time(self):
        with LocalCluster() as cluster:
            c = shoal.connect(cluster.config, io_timeout_ms=1000, io_attempts=2)
            os.mkdir(cluster.mount + "/d")
            data = os.urandom(4 << 20)
            c.write("/d/big", data)
            files = c.walk("/d")
            self.assertEqual(c.read_batch(files), [data])
            # Every storage node dies: no replica can answer.
            for n in (1, 2, 3):
                cluster.kill_storage(n)
            start = time.monotonic()
            with self.assertRaises(shoal.ShoalError) as e:
                c.read_batch([("/d/big", 0, 1 << 20), ("/d/big", 2 << 20, 1 << 20)])
            took = time.monotonic() - start
            self.assertIn(e.exception.code, ("UNAVAILABLE", "TIMEOUT"))
            self.assertEqual(e.exception.item, 0)
            self.assertIn("item 0 (/d/big", str(e.exception))
            # io_attempts x io_timeout_ms plus back-off: well under 30 s.
            self.assertLess(took, 30, "a dead server took %.1f s to report" % took)
            out = c.read_batch_into([("/d/big", 0, 10)], [bytearray(10)], errors="return")
            self.assertIn(out[0].code, ("UNAVAILABLE", "TIMEOUT"))
            c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

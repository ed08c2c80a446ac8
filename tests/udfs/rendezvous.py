"""A function that proves calls overlap: each call leaves a file in the folder given as the job
parameter ``rendezvous.dir`` and waits (up to 20 s) until ``rendezvous.calls`` files are there; it
returns, per row, how many it saw. Calls that run one after another see fewer."""
import os
import tempfile
import time

from udfpool import ScalarFunction, udf


class Rendezvous(ScalarFunction):
    def open(self, context):
        self.dir = context.get_job_parameter("rendezvous.dir")
        self.calls = int(context.get_job_parameter("rendezvous.calls", "2"))

    def eval(self, x):
        fd, _ = tempfile.mkstemp(dir=self.dir)
        os.close(fd)
        deadline = time.monotonic() + 20
        while len(os.listdir(self.dir)) < self.calls and time.monotonic() < deadline:
            time.sleep(0.005)
        return len(os.listdir(self.dir))


rendezvous = udf(Rendezvous(), result_type="BIGINT")

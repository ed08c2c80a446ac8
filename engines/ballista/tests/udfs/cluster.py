"""Functions for the Ballista cluster test."""
import os
import time

from udfpool import ScalarFunction, udf


@udf(result_type="STRING")
def host_of(x):
    """Which executor ran the row: this process and its parent (the executor is the one in THREAD
    mode, the parent in PROCESS mode)."""
    return f"{os.getpid()} {os.getppid()}"


class SlowPlusOne(ScalarFunction):
    """x + 1, a millisecond per row: a query long enough to lose an executor in the middle. Its
    first row leaves a file named after the executor's pid in the folder given as the job parameter
    ``started.dir`` (PROCESS mode: the worker's parent)."""

    def open(self, context):
        self.started = context.get_job_parameter("started.dir")

    def eval(self, x):
        if self.started:
            open(os.path.join(self.started, str(os.getppid())), "w").close()
            self.started = None
        time.sleep(0.001)
        return None if x is None else x + 1


slow_plus_one = udf(SlowPlusOne(), result_type="BIGINT")

"""A DataStream map that SIGKILLs the udfpool host once, mid-job (tests/checkpoints.rs)."""

import os
import signal

from udfpool import MapFunction


class KillHostOnce(MapFunction):
    """Passes rows through. At the first row with ts >= the job parameter kill.at it kills the host
    process with SIGKILL — the worker's parent in PROCESS mode, this very process in THREAD mode — unless
    the file kill.marker exists, which it creates first: one kill per test, however often rows repeat."""

    def open(self, runtime_context):
        self.at = int(runtime_context.get_job_parameter("kill.at", "-1"))
        self.marker = runtime_context.get_job_parameter("kill.marker", "")
        with open("/proc/self/comm") as comm:
            in_worker = comm.read().strip() == "udfpool-worker"
        self.host = os.getppid() if in_worker else os.getpid()

    def map(self, row):
        if 0 <= self.at <= row.ts and self.marker and not os.path.exists(self.marker):
            with open(self.marker, "w") as marker:
                marker.write(str(self.host))
            os.kill(self.host, signal.SIGKILL)
        return row

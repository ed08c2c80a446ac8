"""UDFs that kill, crash or hang their worker, or wait to be killed, when they meet x == 13: once in the
whole pool (a marker file, created atomically, says it already happened), or every time with job
parameter always=yes."""
import ctypes
import os
import time

from udfpool import ScalarFunction, udf


class _Faulty(ScalarFunction):
    def open(self, context):
        self.marker = context.get_job_parameter("marker")
        self.always = context.get_job_parameter("always", "no") == "yes"

    def fires(self, x):
        if x != 13:
            return False
        if self.always:
            return True
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


class ExitOnce(_Faulty):
    def eval(self, x):
        if self.fires(x):
            os._exit(3)
        return x


class SegfaultOnce(_Faulty):
    def eval(self, x):
        if self.fires(x):
            ctypes.string_at(0)
        return x


class HangOnce(_Faulty):
    def eval(self, x):
        if self.fires(x):
            time.sleep(3600)
        return x


class AwaitKillOnce(_Faulty):
    """Once inside the batch with x == 13, publishes the worker's pid in `<marker>.pid` (written aside,
    then renamed into place, so a reader sees all of it or nothing) and waits to be killed from outside.
    Not killed within 60 s, it fails the batch, so a test that meant to kill it fails."""

    def eval(self, x):
        if self.fires(x):
            pid_file = self.marker + ".pid"
            with open(pid_file + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(pid_file + ".tmp", pid_file)
            time.sleep(60)
            raise RuntimeError("the worker was not killed within 60 s")
        return x


exits = udf(ExitOnce, result_type="int64")
segfaults = udf(SegfaultOnce, result_type="int64")
hangs = udf(HangOnce, result_type="int64")
awaits_kill = udf(AwaitKillOnce, result_type="int64")


@udf(result_type="int64")
def hungry(x):
    """Asks for 1 GiB when x == 13."""
    if x == 13:
        return len(bytearray(1 << 30))
    return x


class DiesInClose(ScalarFunction):
    """Returns its argument; its worker process dies in close(), after every result was sent."""

    def eval(self, x):
        return x

    def close(self):
        os._exit(9)


dies_in_close = udf(DiesInClose, result_type="int64")


from udfpool import AggregateFunction, udaf  # noqa: E402


class SumExitsOnce(AggregateFunction):
    """A sum whose worker exits (once in the whole pool: a marker file) when it meets x == 13, after
    some groups have accumulated rows: the replacement must rebuild them."""

    def open(self, context):
        self.marker = context.get_job_parameter("marker")

    def create_accumulator(self):
        return [0]

    def accumulate(self, acc, x):
        if x == 13:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os._exit(3)
            except FileExistsError:
                pass
        acc[0] += x

    def get_value(self, acc):
        return acc[0]


sum_exits_once = udaf(SumExitsOnce(), result_type="BIGINT")

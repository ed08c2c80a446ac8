"""UDFs that write around their results: prints, raw writes to fd 1, bytes that are not UTF-8, a long
line without a newline, and a child process that inherits the worker's output."""
import os
import subprocess
import sys

from udfpool import udf


@udf(result_type="BIGINT")
def prints(x):
    print(f"print for {x}")
    return x + 1


@udf(result_type="BIGINT")
def writes_fd_1(x):
    # Below Python's sys.stdout, as a native extension would: redirected in PROCESS workers only.
    if x == 0:
        os.write(1, b"raw write to fd 1\n")
    return x + 1


@udf(result_type="BIGINT")
def not_utf8(x):
    sys.stderr.buffer.write(b"bad bytes \xff\xfe for " + str(x).encode() + b"\n")
    sys.stderr.flush()
    return x + 1


@udf(result_type="BIGINT")
def no_newline(x):
    if x == 0:
        chunk = b"z" * (1 << 20)
        for _ in range(100):
            sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
    return x + 1


@udf(result_type="BIGINT")
def starts_a_child(x):
    if x == 0:
        # Inherits the worker's stdout and stderr, and outlives the run by far.
        subprocess.Popen(["sleep", "30"])
    return x + 1

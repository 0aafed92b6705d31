"""ist_client: drive ist's coordinator from Python (see client.py).

Needs Debian's python3-grpcio and python3-protobuf, and the stubs that
cli/python/generate_stubs.sh writes into a build directory:

    cli/python/generate_stubs.sh   # writes cli/python/build
    PYTHONPATH=cli/python:cli/python/build /usr/bin/python3 my_script.py
"""

try:
    import ist_client_stubs  # noqa: F401
except ImportError as e:
    raise ImportError(
        "ist_client: the generated stubs are not on the path: run "
        "cli/python/generate_stubs.sh OUT_DIR and add OUT_DIR to PYTHONPATH "
        f"({e})") from e

from ist_client.client import (  # noqa: E402
    DEFAULT_TIMEOUT_SECONDS, TERMINAL_STATES, Client, IstError, connect,
    model_fingerprint, parse_spec, state_name)
from ist_client_stubs import job_pb2  # noqa: E402

QUEUED = job_pb2.QUEUED
RUNNING = job_pb2.RUNNING
SUCCEEDED = job_pb2.SUCCEEDED
FAILED = job_pb2.FAILED
CANCELLED = job_pb2.CANCELLED

__all__ = [
    "Client", "IstError", "connect", "model_fingerprint", "parse_spec", "state_name", "job_pb2",
    "TERMINAL_STATES", "DEFAULT_TIMEOUT_SECONDS",
    "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
]

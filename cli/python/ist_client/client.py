"""A Python client of the coordinator's job API (proto/ist/v1/job.proto).

    client = ist_client.connect("127.0.0.1:50051", token_file="token")
    job_id = client.submit({"layers": [784, 32, 10], "rounds": 2})
    for progress in client.watch(job_id):
        print(progress.round, progress.test_accuracy)
    client.export(job_id, "model.istm")

Every call has a deadline (the client's `timeout`, 30 s unless given; watch
has none unless asked). A refused or failed call raises IstError, which
names the method, the coordinator, the gRPC status code and its message.
Bad arguments (an unreadable file, a spec that does not parse) raise
ValueError naming the argument or the file and line.

A Client wraps one gRPC channel; it may be used from several threads, as
gRPC channels may. Close it with close() or a `with` block.
"""

import os
import pathlib

import grpc
from google.protobuf import json_format
from google.protobuf import text_format

from ist_client_stubs import job_pb2
from ist_client_stubs import job_pb2_grpc

DEFAULT_TIMEOUT_SECONDS = 30.0

# istctl's limit too: job listings and model file chunks fit.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]

# The states after which a job changes no more.
TERMINAL_STATES = frozenset(
    [job_pb2.SUCCEEDED, job_pb2.FAILED, job_pb2.CANCELLED])


class IstError(Exception):
    """A call the coordinator refused or that failed on the way.

    Attributes:
      method: the RPC, e.g. "SubmitJob".
      code: the grpc.StatusCode, e.g. grpc.StatusCode.UNAUTHENTICATED.
      details: the status message, e.g. "missing or wrong bearer token".
    """

    def __init__(self, method, target, code, details):
        self.method = method
        self.target = target
        self.code = code
        self.details = details
        super().__init__(
            f"{method} at {target}: {code.name}: {details}")


def state_name(state):
    """The name of a JobState value: state_name(3) == "SUCCEEDED"."""
    return job_pb2.JobState.Name(state)


def _read_file(argument, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{argument}: cannot read {path}: {e.strerror}") from e


def _read_token_file(path):
    token = _read_file("token_file", path).decode("ascii", "replace").strip()
    if not token:
        raise ValueError(f"token_file: {path} is empty")
    return token


def _check_token(token):
    if not token or any(c <= " " or c > "~" for c in token):
        raise ValueError(
            "token: must be non-empty printable ASCII without spaces")
    return token


def parse_spec(spec):
    """A JobSpec from `spec`, which is one of:

      * a JobSpec message (returned as is);
      * a dict with JobSpec field names, e.g. {"layers": [784, 32, 10],
        "rounds": 2, "resnet": {"blocks_per_stage": 1}};
      * a pathlib.Path, or a str naming an existing file, holding a text
        proto (docs/job_spec.md);
      * any other str: a text proto, e.g. "layers: [784, 32, 10] rounds: 2".

    Raises ValueError naming the field (dict) or the file and line (text).
    """
    if isinstance(spec, job_pb2.JobSpec):
        return spec
    if isinstance(spec, dict):
        try:
            return json_format.ParseDict(spec, job_pb2.JobSpec())
        except json_format.ParseError as e:
            raise ValueError(f"spec: {e}") from e
    if isinstance(spec, (str, pathlib.Path)):
        if isinstance(spec, pathlib.Path) or os.path.isfile(spec):
            name = str(spec)
            text = _read_file("spec", name).decode("utf-8", "replace")
        else:
            name, text = "spec (no such file; read as a text proto)", spec
        try:
            return text_format.Parse(text, job_pb2.JobSpec())
        except text_format.ParseError as e:
            # e reads "LINE:COLUMN : what", or just "what".
            sep = ":" if e.GetLine() is not None else ": "
            raise ValueError(f"{name}{sep}{e}") from e
    raise TypeError(
        f"spec: want a dict, a text proto, a file path or a JobSpec, "
        f"got {type(spec).__name__}")


class Client:
    """The job API of one coordinator. Make one with connect()."""

    def __init__(self, target, channel, token, timeout):
        self._target = target
        self._channel = channel
        self._stub = job_pb2_grpc.JobServiceStub(channel)
        self._metadata = (
            (("authorization", f"Bearer {token}"),) if token else ())
        self._timeout = timeout

    @property
    def target(self):
        return self._target

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.close()

    def _unary(self, method, request, timeout):
        call = getattr(self._stub, method)
        try:
            return call(request, timeout=self._deadline(timeout),
                        metadata=self._metadata)
        except grpc.RpcError as e:
            raise IstError(method, self._target, e.code(), e.details()) from None

    def _deadline(self, timeout):
        return self._timeout if timeout is None else timeout

    def submit(self, spec, timeout=None):
        """Submits a job (see parse_spec for `spec`); returns its id, e.g.
        "job-1". A spec the coordinator refuses raises IstError with
        INVALID_ARGUMENT naming the field."""
        request = job_pb2.SubmitJobRequest(spec=parse_spec(spec))
        return self._unary("SubmitJob", request, timeout).job_id

    def get(self, job_id, timeout=None):
        """The job's JobStatus (spec with defaults filled in, progress,
        times). An unknown job raises IstError with NOT_FOUND."""
        return self._unary("GetJob", job_pb2.GetJobRequest(job_id=job_id),
                           timeout)

    def list(self, timeout=None):
        """Every job's JobStatus, as a list."""
        return list(self._unary("ListJobs", job_pb2.ListJobsRequest(),
                                timeout).jobs)

    def workers(self, timeout=None):
        """Every worker the coordinator knows, as a list of WorkerStatus."""
        return list(self._unary("ListWorkers", job_pb2.ListWorkersRequest(),
                                timeout).workers)

    def cancel(self, job_id, timeout=None):
        """Cancels the job; returns its JobState afterwards (CANCELLED, or
        the terminal state it had already reached)."""
        return self._unary("CancelJob",
                           job_pb2.CancelJobRequest(job_id=job_id),
                           timeout).state

    def eval(self, job_id, split="test", dataset="", timeout=None):
        """Evaluates the job's current model on `split` ("test" or "train")
        of `dataset` (default: the job's); returns an EvaluateResponse
        (accuracy in [0, 1], loss, samples, round)."""
        request = job_pb2.EvaluateRequest(job_id=job_id, split=split,
                                          dataset=dataset)
        return self._unary("Evaluate", request, timeout)

    def watch(self, job_id, timeout=None):
        """Yields the job's JobProgress messages (the earlier ones first,
        then one per round) and returns after the one with a terminal state
        (SUCCEEDED, FAILED or CANCELLED). No deadline unless `timeout`
        (seconds for the whole watch) is given.

        Raises IstError if the call fails (DEADLINE_EXCEEDED when `timeout`
        passes first), or with UNAVAILABLE if the coordinator ends the
        stream before the job ends. Leaving the loop early cancels the call.
        """
        call = self._stub.WatchJob(job_pb2.WatchJobRequest(job_id=job_id),
                                   timeout=timeout, metadata=self._metadata)
        try:
            for progress in call:
                yield progress
                if progress.state in TERMINAL_STATES:
                    return
        except grpc.RpcError as e:
            raise IstError("WatchJob", self._target, e.code(),
                           e.details()) from None
        finally:
            call.cancel()
        raise IstError("WatchJob", self._target, grpc.StatusCode.UNAVAILABLE,
                       f"the stream of job {job_id} ended before the job did")

    def export(self, job_id, path, timeout=None):
        """Writes the job's current model file (common/wire/model_file.h
        format, starting with "ISTMODL1") to `path`; returns its size in
        bytes. The file appears whole or not at all: it is written to
        `path`.tmp and renamed."""
        tmp = f"{path}.tmp"
        call = self._stub.ExportModel(
            job_pb2.ExportModelRequest(job_id=job_id),
            timeout=self._deadline(timeout), metadata=self._metadata)
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in call:
                    f.write(chunk.data)
                    size += len(chunk.data)
            os.replace(tmp, path)
        except grpc.RpcError as e:
            raise IstError("ExportModel", self._target, e.code(),
                           e.details()) from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return size


def connect(target, token=None, tls_ca=None, client_cert=None,
            client_key=None, token_file=None,
            timeout=DEFAULT_TIMEOUT_SECONDS):
    """A Client of the coordinator at `target` ("host:port").

    Arguments (the same as istctl's flags):
      token: the bearer token, sent as "authorization: Bearer <token>" on
        every call; or token_file: a file holding it (surrounding whitespace
        trimmed), which keeps it out of the source.
      tls_ca: PEM file of the CA that signs the coordinator's certificate;
        turns TLS on. Without it the channel is plaintext (and the token
        crosses the network in clear: loopback or trusted networks only).
      client_cert, client_key: PEM files of a client certificate for mutual
        TLS; both or neither, and only with tls_ca.
      timeout: the default deadline of every call but watch, in seconds.

    The connection is made by the first call, so an unreachable coordinator
    raises IstError (UNAVAILABLE) there. Raises ValueError naming the
    argument for bad or unreadable arguments.
    """
    if token is not None and token_file is not None:
        raise ValueError("token, token_file: give one, not both")
    if token_file is not None:
        token = _read_token_file(token_file)
    elif token is not None:
        token = _check_token(token)
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert, client_key: give both or neither")
    if client_cert is not None and tls_ca is None:
        raise ValueError("client_cert: requires tls_ca")
    if tls_ca is None:
        channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read_file("tls_ca", tls_ca),
            private_key=(_read_file("client_key", client_key)
                         if client_key else None),
            certificate_chain=(_read_file("client_cert", client_cert)
                               if client_cert else None))
        channel = grpc.secure_channel(target, credentials,
                                       options=_CHANNEL_OPTIONS)
    return Client(target, channel, token, timeout)


_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


def _mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def model_fingerprint(model_file):
    """JobProgress.model_fingerprint of the model in an exported model file
    (a path or its bytes), computed as proto/ist/v1/job.proto documents it."""
    data = pathlib.Path(model_file).read_bytes() if not isinstance(
        model_file, (bytes, bytearray)) else bytes(model_file)
    if data[:8] != b"ISTMODL1":
        raise ValueError("not an ist model file (no ISTMODL1 magic)")
    header_len = int.from_bytes(data[8:16], "little")
    header = job_pb2.ModelFileHeader()
    header.ParseFromString(data[16:16 + header_len])
    payload = memoryview(data)[16 + header_len:len(data) - 4]
    lanes = [0xCBF29CE484222325, 0x84222325CBF29CE4, 0xCBF29CE4CBF29CE4,
             0x8422232584222325]
    offset = 0
    for tensor in header.tensors.tensors:
        n = 4
        for d in tensor.shape:
            n *= d
        t = payload[offset:offset + n]
        offset += n
        i = 0
        while i + 32 <= n:
            for k in range(4):
                word = int.from_bytes(t[i + 8 * k:i + 8 * k + 8], "little")
                lanes[k] = ((lanes[k] ^ word) * _FNV_PRIME) & _MASK
            i += 32
        while i < n:
            lanes[0] = ((lanes[0] ^ t[i]) * _FNV_PRIME) & _MASK
            i += 1
        lanes[1] = ((lanes[1] ^ n) * _FNV_PRIME) & _MASK
    h = 0xCBF29CE484222325
    for x in lanes:
        h = _mix64(h ^ _mix64(x))
    return h

"""Drives a real coordinator (mutual TLS and a bearer token) and two workers
with ist_client; run by tests/python_client_test.sh.

    python_client_test.py ADDR CA CERT KEY TOKEN_FILE TMP_DIR
"""
import os
import pathlib
import sys

import grpc
import ist_client

ADDR, CA, CERT, KEY, TOKEN_FILE, TMP = sys.argv[1:]
TLS = dict(tls_ca=CA, client_cert=CERT, client_key=KEY)


def check(condition, what):
    if not condition:
        sys.exit(f"FAIL: {what}")


def refused(call, code, text):
    """Runs call(), which must raise IstError with `code` and `text`."""
    try:
        call()
    except ist_client.IstError as e:
        check(e.code == code, f"{e}: want {code.name}")
        check(code.name in str(e) and text in str(e),
              f"message lacks '{code.name}' or '{text}': {e}")
        return
    sys.exit(f"FAIL: no error, want {code.name}")


client = ist_client.connect(ADDR, token_file=TOKEN_FILE, timeout=60, **TLS)

# A small job from a dict, watched to the end.
job = client.submit({"name": "python", "layers": [784, 32, 10], "workers": 2,
                     "local_steps": 5, "rounds": 2, "batch_size": 32,
                     "lr": 0.05, "eval_every": 1})
progress = list(client.watch(job, timeout=120))
check(progress, "watch yielded nothing")
last = progress[-1]
check(last.state == ist_client.SUCCEEDED,
      f"{job} ended {ist_client.state_name(last.state)}: {last.error}")
check(last.round == 2 and last.total_rounds == 2, f"rounds: {last}")
check(0 <= last.test_accuracy <= 1, f"accuracy {last.test_accuracy}")
check([p.round for p in progress] == sorted(p.round for p in progress),
      "progress out of order")

jobs = {j.job_id: j for j in client.list()}
check(job in jobs, f"list lacks {job}: {sorted(jobs)}")
check(jobs[job].progress.state == ist_client.SUCCEEDED, f"list: {jobs[job]}")
check(list(jobs[job].spec.layers) == [784, 32, 10], f"spec: {jobs[job].spec}")
check(client.get(job).spec.local_steps == 5, "get: local_steps")

model = os.path.join(TMP, "model.istm")
size = client.export(job, model)
check(os.path.getsize(model) == size and size > 32 * 784 * 4,
      f"export: {size} bytes")
with open(model, "rb") as f:
    check(f.read(8) == b"ISTMODL1", "export: no model magic")
check(not os.path.exists(model + ".tmp"), "export left its .tmp file")
# The fingerprint the proto documents, computed from the export file alone.
check(ist_client.model_fingerprint(model) == last.model_fingerprint,
      f"fingerprint {ist_client.model_fingerprint(model):016x} != "
      f"{last.model_fingerprint:016x}")

result = client.eval(job)
check(0 <= result.accuracy <= 1, f"eval accuracy {result.accuracy}")
check(result.samples == 10000 and result.round == 2, f"eval: {result}")
refused(lambda: client.eval(job, split="validation"),
        grpc.StatusCode.INVALID_ARGUMENT, "split")

# A long job from a text proto file, cancelled.
spec_file = pathlib.Path(TMP, "long.textpb")
spec_file.write_text("layers: [784, 32, 10]\nrounds: 100000\nlocal_steps: 1\n")
long_job = client.submit(spec_file)
check(long_job != job, "two jobs, one id")
state = client.cancel(long_job)
check(state == ist_client.CANCELLED, f"cancel: {ist_client.state_name(state)}")
check(client.get(long_job).progress.state == ist_client.CANCELLED,
      "get after cancel")
ended = list(client.watch(long_job, timeout=30))
check(ended and ended[-1].state == ist_client.CANCELLED,
      "watch of a cancelled job")

# Errors name the status and the coordinator's message.
refused(lambda: client.get("job-42"), grpc.StatusCode.NOT_FOUND, "job-42")
refused(lambda: client.submit({"layers": [784, 10]}),
        grpc.StatusCode.INVALID_ARGUMENT, "layers")
refused(lambda: client.submit("layers: [784, 16, 10] dataset: 'idx:nowhere'"),
        grpc.StatusCode.NOT_FOUND, "nowhere")
for token in ("wrong-token", None):
    other = ist_client.connect(ADDR, token=token, **TLS)
    refused(other.list, grpc.StatusCode.UNAUTHENTICATED, "bearer token")
    refused(lambda: list(other.watch(job, timeout=10)),
            grpc.StatusCode.UNAUTHENTICATED, "bearer token")
    other.close()
client.close()
print("PASS")

# Our stubs and the standard health stubs import side by side (no
# "already defined" clash), and health answers per service name.
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from ist.v1 import job_pb2 as v1_job_pb2  # noqa: E402
check(v1_job_pb2.DESCRIPTOR.package == "ist.v1", f"package {v1_job_pb2.DESCRIPTOR.package}")
with open(CA, "rb") as ca, open(KEY, "rb") as key, open(CERT, "rb") as cert:
    creds = grpc.ssl_channel_credentials(ca.read(), key.read(), cert.read())
with grpc.secure_channel(ADDR, creds) as channel:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ["", "ist.v1.JobService", "ist.v1.WorkerService", "ist.v1.SliceService"]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        check(reply.status == health_pb2.HealthCheckResponse.SERVING,
              f"health of '{name}': {reply.status}")
    try:
        health.Check(health_pb2.HealthCheckRequest(service="ist.v1.NoSuchService"), timeout=10)
        sys.exit("FAIL: health of an unknown service answered")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown service: {e.code()}")
print("python_client_test: health per service OK")

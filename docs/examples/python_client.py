#!/usr/bin/python3
"""Trains a job with the Python client, prints its progress, exports and
evaluates the model.

    cli/python/generate_stubs.sh   # writes cli/python/build
    PYTHONPATH=cli/python:cli/python/build docs/examples/python_client.py \
        --coordinator=127.0.0.1:7070 [--spec=docs/examples/fashion_mnist.textpb]
        [--token_file=token --tls_ca=ca.pem --tls_cert=client.pem --tls_key=client.key]
"""
import argparse
import pathlib
import sys

import ist_client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default="127.0.0.1:7070")
    parser.add_argument("--spec", help="a text proto job spec file; "
                        "default: a small MLP on Fashion-MNIST")
    parser.add_argument("--out", default="model.istm")
    parser.add_argument("--token_file")
    parser.add_argument("--tls_ca")
    parser.add_argument("--tls_cert")
    parser.add_argument("--tls_key")
    args = parser.parse_args()

    spec = pathlib.Path(args.spec) if args.spec else {"name": "python example", "layers": [784, 256, 10],
                         "workers": 2, "local_steps": 20, "rounds": 10,
                         "lr": 0.05, "eval_every": 2}
    try:
        with ist_client.connect(args.coordinator, token_file=args.token_file,
                                tls_ca=args.tls_ca, client_cert=args.tls_cert,
                                client_key=args.tls_key) as client:
            job_id = client.submit(spec)
            print(f"submitted {job_id}")
            for p in client.watch(job_id):
                accuracy = (f"{p.test_accuracy:.4f}"
                            if p.test_accuracy >= 0 else "-")
                print(f"round {p.round}/{p.total_rounds} "
                      f"{ist_client.state_name(p.state)} "
                      f"loss {p.train_loss:.4f} accuracy {accuracy}")
            if p.state != ist_client.SUCCEEDED:
                print(f"{job_id} {ist_client.state_name(p.state)}: {p.error}")
                return 1
            size = client.export(job_id, args.out)
            print(f"wrote {args.out} ({size} bytes)")
            result = client.eval(job_id, split="test")
            print(f"test accuracy {result.accuracy:.4f} "
                  f"on {result.samples} samples")
    except (ist_client.IstError, ValueError) as e:
        print(f"python_client: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

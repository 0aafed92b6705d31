#!/usr/bin/python3
"""Runs one job through istctl and records its accuracy trace.

Submits the job, follows `istctl watch --output=json`, and cancels the job
once the test accuracy reaches --target (unless --full) or its time in
rounds (train_seconds: hand-out, training, transfers, merge; not the
coordinator's test-set evaluations) passes --max_seconds. Appends one line
per evaluation to --trace (CSV) and prints one JSON summary line.

Only the Python standard library; istctl is run through --istctl, a shell
prefix such as "ip netns exec NS /path/istctl --coordinator=ADDR".
"""
import argparse
import json
import shlex
import subprocess
import sys
import time


def submit_and_watch(ctl, submit_args):
    """Submits a job with `ctl` (istctl's argv prefix) and `submit_args`;
    returns its id and a Popen of `istctl --output=json watch` on it (one JSON
    progress per line). Exits naming istctl's error if the submit fails."""
    out = subprocess.run(ctl + ["--output=json", "submit"] + submit_args,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit("submit failed: " + out.stderr.strip())
    job = json.loads(out.stdout)["job_id"]
    # No --timeout on the watch: it would bound the whole stream.
    watch_ctl = [arg for arg in ctl if not arg.startswith("--timeout")]
    return job, subprocess.Popen(watch_ctl + ["--output=json", "watch", job],
                                 stdout=subprocess.PIPE, text=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--istctl", required=True)
    p.add_argument("--label", required=True, help="mode/bandwidth tag for the trace")
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--max_seconds", type=float, default=300)
    p.add_argument("--full", action="store_true", help="run all epochs even after the target")
    p.add_argument("--trace", required=True)
    p.add_argument("submit_args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.submit_args[:1] == ["--"]:
        a.submit_args = a.submit_args[1:]
    ctl = shlex.split(a.istctl)

    job, watch = submit_and_watch(ctl, a.submit_args)
    start = time.time()
    reached = None
    last = {}
    seen_eval = -1
    stop_reason = "finished"
    with open(a.trace, "a") as trace:
        for line in watch.stdout:
            try:
                pr = json.loads(line)
            except ValueError:
                continue
            last = pr
            rnd = int(pr.get("round", 0))
            ev = int(pr.get("eval_round", -1))
            acc = float(pr.get("test_accuracy", -1))
            train_s = float(pr.get("train_seconds", 0))
            if ev >= 0 and ev == rnd and ev != seen_eval:
                seen_eval = ev
                sent = int(pr.get("total_bytes_sent", 0))
                recv = int(pr.get("total_bytes_received", 0))
                trace.write(f"{a.label},{rnd},{train_s:.3f},{time.time() - start:.3f},"
                            f"{sent},{recv},{acc:.4f}\n")
                trace.flush()
                if reached is None and acc >= a.target:
                    reached = {"round": rnd, "train_seconds": train_s,
                               "wall_seconds": time.time() - start,
                               "bytes": sent + recv}
            stop = None
            if reached is not None and not a.full:
                stop = "target reached"
            elif train_s > a.max_seconds:
                stop = f"time cap {a.max_seconds:.0f} s"
            if stop and pr.get("state") == "RUNNING":
                stop_reason = stop
                subprocess.run(ctl + ["cancel", job], capture_output=True, timeout=60)
    watch.wait(timeout=60)
    if last.get("state") in ("RUNNING", "QUEUED"):
        # The stream ended early: never leave a job that would block the queue.
        stop_reason = "watch ended early; cancelled"
        subprocess.run(ctl + ["cancel", job], capture_output=True, timeout=60)
    rounds = max(int(last.get("round", 0)), 1)
    summary = {
        "label": a.label, "job": job, "stop": stop_reason,
        "reached": reached,
        "final_accuracy": float(last.get("test_accuracy", -1)),
        "final_eval_round": int(last.get("eval_round", -1)),
        "rounds": int(last.get("round", 0)),
        "train_seconds": float(last.get("train_seconds", 0)),
        "bytes_sent_per_round": int(last.get("round_bytes_sent", 0)),
        "total_bytes": int(last.get("total_bytes_sent", 0)) + int(last.get("total_bytes_received", 0)),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

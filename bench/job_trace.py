#!/usr/bin/python3
"""Submits one job through istctl and records every progress update.

Follows `istctl --output=json watch` and appends one CSV line per update to
--trace:

    label,wall_seconds,round,train_seconds,round_seconds,slices,test_accuracy,eval_round

(wall_seconds from the submit; slices is the round's S from
JobProgress.round_shape; test_accuracy is -1 before the first evaluation).
Then prints one JSON summary line: the median round time of the last half of
the rounds, when the accuracy first reached --target (train seconds and
wall seconds), the final accuracy and the state.

Only the Python standard library; --istctl is a shell prefix such as
"/path/istctl --coordinator=ADDR".
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time

from tta_job import submit_and_watch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--istctl", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--trace", required=True)
    p.add_argument("--max_wall_seconds", type=float, default=1800)
    p.add_argument("submit_args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.submit_args[:1] == ["--"]:
        a.submit_args = a.submit_args[1:]
    ctl = shlex.split(a.istctl)

    start = time.time()
    job, watch = submit_and_watch(ctl, a.submit_args)
    last = {}
    round_seconds = []
    reached = None
    with open(a.trace, "a") as trace:
        for line in watch.stdout:
            try:
                pr = json.loads(line)
            except ValueError:
                continue
            last = pr
            wall = time.time() - start
            rnd = int(pr.get("round", 0))
            acc = float(pr.get("test_accuracy", -1))
            ev = int(pr.get("eval_round", -1))
            train_s = float(pr.get("train_seconds", 0))
            rs = float(pr.get("round_seconds", 0))
            slices = int(pr.get("round_shape", {}).get("slices", 0))
            if rnd > 0 and rs > 0:
                round_seconds.append(rs)
            trace.write(f"{a.label},{wall:.3f},{rnd},{train_s:.3f},{rs:.4f},{slices},"
                        f"{acc:.4f},{ev}\n")
            trace.flush()
            if reached is None and ev >= 0 and acc >= a.target:
                reached = {"round": ev, "train_seconds": train_s, "wall_seconds": wall}
            if wall > a.max_wall_seconds and pr.get("state") == "RUNNING":
                subprocess.run(ctl + ["cancel", job], capture_output=True, timeout=60)
    watch.wait(timeout=60)
    tail = round_seconds[len(round_seconds) // 2:]
    print(json.dumps({
        "label": a.label, "job": job, "state": last.get("state", "?"),
        "rounds": int(last.get("round", 0)),
        "median_round_seconds": statistics.median(tail) if tail else None,
        "train_seconds": float(last.get("train_seconds", 0)),
        "wall_seconds": time.time() - start,
        "reached": reached,
        "final_accuracy": float(last.get("test_accuracy", -1)),
    }), flush=True)


if __name__ == "__main__":
    main()

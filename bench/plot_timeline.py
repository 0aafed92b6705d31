#!/usr/bin/python3
"""Plots S and test accuracy against wall time from a bench/job_trace.py
trace, with vertical lines at the events (CSV: seconds,text).

Needs Debian's python3-matplotlib (apt-get install python3-matplotlib).
"""
import argparse
import csv
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot_timeline: needs matplotlib: apt-get install python3-matplotlib")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trace", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    t, s, acc_t, acc = [], [], [], []
    seen_eval = -1
    for row in csv.reader(open(a.trace)):
        wall, rnd, slices = float(row[1]), int(row[2]), int(row[5])
        accuracy, eval_round = float(row[6]), int(row[7])
        if rnd > 0 and slices > 0:
            t.append(wall)
            s.append(slices)
        if eval_round >= 0 and eval_round == rnd and eval_round != seen_eval:
            seen_eval = eval_round
            acc_t.append(wall)
            acc.append(accuracy)
    events = [(float(r[0]), r[1]) for r in csv.reader(open(a.events)) if r]

    fig, ax_s = plt.subplots(figsize=(9, 4.5))
    ax_s.step(t, s, where="post", color="tab:blue", label="S (subnets in the round)")
    ax_s.set_xlabel("seconds since submit")
    ax_s.set_ylabel("S", color="tab:blue")
    ax_s.set_ylim(0, max(s + [4]) + 1)
    ax_acc = ax_s.twinx()
    ax_acc.plot(acc_t, acc, color="tab:orange", marker=".", label="test accuracy")
    ax_acc.set_ylabel("test accuracy", color="tab:orange")
    for when, text in events:
        ax_s.axvline(when, color="grey", linestyle=":")
        ax_s.text(when, 0.3, " " + text, rotation=90, va="bottom", fontsize=8, color="grey")
    ax_s.set_title("Elastic IST job: workers join and one is killed")
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(f"plot_timeline: wrote {a.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Table and plot of bench/time_to_accuracy.sh's results (see that script)."""
import collections
import csv
import json
import os
import sys

out_dir, target, workers = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
runs = [json.loads(l) for l in open(os.path.join(out_dir, "tta_summary.jsonl")) if l.strip()]
by_bw = collections.OrderedDict()
for r in runs:
    mode, bw = r["label"].split("@")
    by_bw.setdefault(bw, {})[mode] = r


def t(r):
    return r["reached"]["train_seconds"] if r["reached"] else None


print(f"target test accuracy {target}; time = seconds in rounds until the first evaluation "
      f">= target ('> T': not reached when the run was stopped at T); final acc = last "
      f"evaluation ('none': stopped before its first); MB/worker/round = slice payload "
      f"between the coordinator and one worker per round, each way; total MB = both ways, "
      f"all workers")
print(f"{'bandwidth':>10} {'mode':>14} {'final acc':>9} {'rounds':>7} {'time to target':>15} "
      f"{'MB/worker/round':>16} {'total MB':>9} {'vs IST':>8}")
for bw, modes in by_bw.items():
    ist_t = t(modes["ist"]) if "ist" in modes else None
    for mode in ("ist", "local_sgd", "data_parallel"):
        r = modes.get(mode)
        if r is None:
            continue
        tt = t(r)
        shown = f"{tt:.1f} s" if tt is not None else f"> {r['train_seconds']:.0f} s"
        if tt is not None and ist_t:
            ratio = f"{tt / ist_t:.2f}x"
        elif ist_t:
            ratio = f"> {r['train_seconds'] / ist_t:.1f}x"
        else:
            ratio = "-"
        per_worker = r["bytes_sent_per_round"] / workers / 1e6
        final = f"{r['final_accuracy']:.4f}" if r["final_accuracy"] >= 0 else "none"
        print(f"{bw:>10} {mode:>14} {final:>9} {r['rounds']:>7} {shown:>15} "
              f"{per_worker:>16.2f} {r['total_bytes'] / 1e6:>9.0f} {ratio:>8}")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("(no plot: python3-matplotlib missing)")
    sys.exit(0)

traces = collections.defaultdict(list)
with open(os.path.join(out_dir, "tta_trace.csv")) as f:
    for row in csv.DictReader(f):
        traces[row["label"]].append(row)
bws = list(by_bw)
fig, axes = plt.subplots(1, len(bws) + 1, figsize=(4.2 * (len(bws) + 1), 3.8))
colors = {"ist": "tab:blue", "local_sgd": "tab:orange", "data_parallel": "tab:green"}
for ax, bw in zip(axes, bws):
    for mode in colors:
        rows = traces.get(f"{mode}@{bw}", [])
        ax.plot([float(r["train_seconds"]) for r in rows], [float(r["accuracy"]) for r in rows],
                marker=".", color=colors[mode], label=mode)
    ax.axhline(target, color="gray", lw=0.8, ls="--")
    ax.set_title(f"{bw} per worker link")
    ax.set_xlabel("seconds in rounds")
    ax.set_ylim(0.6, 0.9)
axes[0].set_ylabel("test accuracy")
axes[0].legend()
ax = axes[-1]
for mode in colors:
    rows = traces.get(f"{mode}@{bws[0]}", [])
    ax.plot([(int(r["bytes_sent"]) + int(r["bytes_received"])) / 1e9 for r in rows],
            [float(r["accuracy"]) for r in rows], marker=".", color=colors[mode], label=mode)
ax.axhline(target, color="gray", lw=0.8, ls="--")
ax.set_xscale("log")
ax.set_title(f"accuracy vs bytes ({bws[0]})")
ax.set_xlabel("GB moved (all workers, both ways)")
ax.set_ylim(0.6, 0.9)
fig.tight_layout()
fig.savefig(os.path.join(out_dir, "tta_plot.png"), dpi=90)
print(f"plot: {os.path.join(out_dir, 'tta_plot.png')}")

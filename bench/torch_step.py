#!/usr/bin/python3
"""The same training step as //bench:train_step_bench, in PyTorch (CPU).

Linear layers without bias, BatchNorm1d + ReLU after each hidden layer,
BatchNorm1d(affine=False) on the output, log-softmax + NLL, plain SGD.
Prints `ms_per_step: X`.
"""
import argparse
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--layers", default="784,4096,4096,10")
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=50)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
sizes = [int(s) for s in a.layers.replace("-", ",").split(",")]
mods = []
for i in range(len(sizes) - 1):
    mods.append(torch.nn.Linear(sizes[i], sizes[i + 1], bias=False))
    if i + 2 < len(sizes):
        mods += [torch.nn.BatchNorm1d(sizes[i + 1]), torch.nn.ReLU()]
    else:
        mods.append(torch.nn.BatchNorm1d(sizes[i + 1], affine=False))
net = torch.nn.Sequential(*mods)
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.randn(a.batch, sizes[0])
y = torch.arange(a.batch) % sizes[-1]


def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.nll_loss(torch.log_softmax(net(x), dim=1), y)
    loss.backward()
    opt.step()
    return loss


for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    loss = step()
ms = (time.perf_counter() - t0) * 1000 / a.steps
print(f"torch {torch.__version__} threads {torch.get_num_threads()} loss {loss.item():.4f}")
print(f"ms_per_step: {ms:.3f}")

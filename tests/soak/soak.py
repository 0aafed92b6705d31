"""The soak: real daemons on 127.0.0.1 under a seeded schedule of chaos.

    soak.py --bin_dir=DIR --data_dir=DIR --minutes=M [--seed=N] [options]

DIR holds server/ist_coordinator, worker/ist_worker, cli/istctl and
tests/health_probe (bazel-bin, or a test's runfiles). One coordinator (with
a checkpoint directory) and --workers ist_worker daemons run; first each of
the small job specs in SPECS runs once undisturbed (its model fingerprint is
the reference). Then for M minutes of chaos time the schedule, drawn from
the seed before anything starts (the same seed gives the same schedule),
submits small jobs, cancels some of them after a delay, SIGKILLs a random
worker and restarts it, SIGKILLs the coordinator and restarts it on the same
port and checkpoint directory every --coordinator_kill_every seconds or so,
and opens hostile connections to the coordinator's port (tests/soak/
garbage.py: idle, random bytes, half an HTTP/2 preface, ...), each held a
while and closed.

Quiet points (the chaos clock stops): after the reference runs, before each
coordinator kill and some seconds after each restart, the driver closes its
hostile connections, waits for every job to end and every worker to be
registered, and samples the coordinator's descriptors (/proc/PID/fd),
threads, VmRSS and VmHWM (/proc/PID/status), and each worker's.

It fails (exit 1, saying why; the work directory is kept) when:
  * a job that was not cancelled does not end SUCCEEDED with exactly the
    model fingerprint of its spec's reference run, a job whose cancel was
    acknowledged (CancelJob answered CANCELLED) does not end CANCELLED, a
    job whose submit was acknowledged is lost, or any job ends FAILED;
  * a daemon exits that was not killed, does not answer the gRPC health
    check (5 s deadline) for --hang_seconds, or does not exit within 15 s
    of the final SIGTERM;
  * no unfinished job makes progress (state or round) for --stuck_seconds,
    or the jobs do not drain at a quiet point within --drain_seconds;
  * between the first quiet point of a coordinator's life and its last, or
    between the first quiet point after a restart and the first of the
    first coordinator, its descriptors grow by more than --fd_tolerance,
    its threads by more than --thread_tolerance or its VmRSS by more than
    --rss_tolerance_mb; or a surviving worker's do between its first and
    last quiet point.
Prints a summary table either way. Every wait is bounded; every istctl call
has a deadline.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import garbage  # noqa: E402

# Small, fast jobs: (istctl submit flags). Each runs in a few seconds on a
# 2-core machine.
SPECS = [
    ["--layers=784-16-10", "--workers=2", "--local_steps=5", "--rounds=6", "--batch=32",
     "--seed=11"],
    ["--layers=784-32-10", "--workers=2", "--local_steps=4", "--rounds=8", "--batch=32",
     "--seed=12", "--eval_every=4"],
    ["--layers=784-16-16-10", "--workers=3", "--local_steps=5", "--rounds=5", "--batch=16",
     "--seed=13"],
    ["--layers=784-24-10", "--workers=2", "--local_steps=5", "--rounds=6", "--batch=32",
     "--seed=14", "--mode=local_sgd"],
]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
HEALTH_DEADLINE_S = 5.0


class SoakFailure(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir", required=True)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--minutes", type=float, default=2.0, help="chaos time (default 2)")
    p.add_argument("--seed", type=int, default=None, help="schedule seed (default: random)")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--work_dir", default="", help="default: a new temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the work directory on success")
    p.add_argument("--coordinator_kill_every", type=float, default=0,
                   help="mean seconds between coordinator kills (default: minutes*60/3, "
                        "within [30, 180])")
    p.add_argument("--worker_kill_every", type=float, default=10)
    p.add_argument("--submit_every", type=float, default=1.5)
    p.add_argument("--cancel_fraction", type=float, default=0.3)
    p.add_argument("--garbage_every", type=float, default=3)
    p.add_argument("--max_unfinished", type=int, default=8,
                   help="a submit is skipped while this many jobs are unfinished")
    p.add_argument("--hang_seconds", type=float, default=20)
    p.add_argument("--stuck_seconds", type=float, default=90)
    p.add_argument("--drain_seconds", type=float, default=180)
    p.add_argument("--fd_tolerance", type=int, default=8)
    p.add_argument("--thread_tolerance", type=int, default=4)
    p.add_argument("--rss_tolerance_mb", type=float, default=48)
    a = p.parse_args(argv)
    if a.minutes <= 0 or a.minutes > 24 * 60:
        p.error(f"--minutes: must be in (0, 1440], got {a.minutes}")
    if a.workers < 1 or a.workers > 16:
        p.error(f"--workers: must be in [1, 16], got {a.workers}")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    if a.coordinator_kill_every <= 0:
        a.coordinator_kill_every = min(180.0, max(30.0, a.minutes * 60 / 3))
    return a


def make_schedule(a):
    """(chaos_seconds, kind, params) events, sorted, from the seed alone."""
    rng = random.Random(a.seed)
    end = a.minutes * 60
    events = []
    t = 0.0
    seq = 0
    while True:
        t += rng.uniform(0.3, 1.7) * a.submit_every
        if t >= end:
            break
        # A cancel at once (the job is queued), soon (likely running) or
        # later (it may have ended: a cancel that comes too late).
        cancel = None
        if rng.random() < a.cancel_fraction:
            cancel = rng.choice([0.0, 0.0, rng.uniform(0, 0.5), rng.uniform(0, 2)])
        events.append((t, "submit", {"seq": seq, "spec": rng.randrange(len(SPECS)),
                                     "cancel_after": cancel}))
        seq += 1
    t = 0.0
    while True:
        t += rng.uniform(0.5, 1.5) * a.worker_kill_every
        if t >= end:
            break
        events.append((t, "kill_worker", {"worker": rng.randrange(a.workers),
                                          "down": rng.uniform(0.5, 4)}))
    t = 0.0
    k = 0
    while True:
        t += rng.uniform(0.6, 1.4) * a.coordinator_kill_every
        if t >= end - 10:
            break
        k += 1
        events.append((max(0.0, t - rng.uniform(4, 10)), "quiet", {"why": f"before kill {k}"}))
        # Most kills wait for a job in its rounds (it must resume from its
        # checkpoint); the rest strike whatever is going on.
        mid_job = rng.random() < 0.75
        events.append((t, "kill_coordinator", {
            "n": k, "down": rng.uniform(0.5, 3), "mid_job": mid_job,
            "min_round": rng.randint(1, 3), "spec": rng.randrange(len(SPECS))}))
        events.append((t + rng.uniform(8, 15), "quiet", {"why": f"after restart {k}"}))
    t = 0.0
    while True:
        t += rng.uniform(0.3, 1.7) * a.garbage_every
        if t >= end:
            break
        kind = rng.choice(garbage.KINDS)
        count = rng.randint(1, 60 if kind == "idle" else 20)
        events.append((t, "garbage", {"kind": kind, "count": count,
                                      "hold": rng.uniform(0.2, 8), "seed": rng.getrandbits(32)}))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def proc_sample(pid):
    """{fds, threads, rss_kb, hwm_kb} of a live process, or None."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        out = {"fds": fds}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Threads":
                    out["threads"] = int(value)
                elif key == "VmRSS":
                    out["rss_kb"] = int(value.split()[0])
                elif key == "VmHWM":
                    out["hwm_kb"] = int(value.split()[0])
        return out
    except (OSError, ValueError):
        return None


class Daemon:
    """One started process: its Popen, log file and label."""

    def __init__(self, label, argv, log_path, cwd):
        self.label = label
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.killed = False
        self.unanswered_since = None  # monotonic time of the first failed health check

    def alive(self):
        return self.proc.poll() is None

    def sigkill(self):
        self.killed = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise SoakFailure(f"{self.label} (pid {self.pid}) survived SIGKILL for 10 s")
        self.log.close()

    def terminate(self, within):
        """SIGTERM; the exit code, or None if it did not exit within `within` s."""
        self.killed = True
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            rc = None
        self.log.close()
        return rc

    def tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError as e:
            return f"(no log: {e})"


def wait_for_file(path, seconds, daemon):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        if not daemon.alive():
            break
        time.sleep(0.05)
    raise SoakFailure(f"{daemon.label} wrote no {os.path.basename(path)} within {seconds} s "
                      f"(exit {daemon.proc.poll()}):\n{daemon.tail()}")


class Job:
    def __init__(self, name, spec):
        self.name = name          # soak-SEQ-sSPEC, or soak-ref-SPEC
        self.spec = spec
        self.job_id = None
        self.submit_acked = False
        self.cancel = None        # None, "acked" (CANCELLED), "ambiguous", "too late"
        self.state = None
        self.round = -1
        self.fingerprint = None
        self.error = ""
        self.lost_checks = 0


class Soak:
    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.bin = lambda rel: os.path.join(a.bin_dir, rel)
        self.events_log = open(os.path.join(work, "events.log"), "w")
        self.coordinator = None
        self.coordinator_gen = 0
        self.port = 0
        self.workers = [None] * a.workers
        self.worker_gen = [0] * a.workers
        self.worker_health = [None] * a.workers
        self.timers = []  # (chaos_time, kind, params)
        self.garbage_held = []  # (close_at_chaos_time, [sockets])
        self.jobs = {}  # name -> Job
        self.by_id = {}
        self.refs = {}  # spec index -> fingerprint
        self.t0 = time.monotonic()
        self.paused = 0.0
        self.last_progress = time.monotonic()
        self.progress_key = None
        self.samples = []  # (label, coordinator generation, sample, {worker label: sample})
        self.n = {"submitted": 0, "submit_skipped": 0, "submit_failed": 0, "cancel_sent": 0,
                  "worker_kills": 0, "coordinator_kills": 0, "garbage_conns": 0,
                  "garbage_refused": 0, "health_checks": 0, "quiet_points": 0,
                  "mid_job_kills": 0}
        self.garbage_by_kind = {}
        self.worker_trained = set()  # names of workers that have done a task
        self.listed = 0  # jobs in the last listing
        self.lives_with_submit = set()  # coordinator generations that took a submit

    # ---- clocks and logging ----

    def chaos_now(self):
        return time.monotonic() - self.t0 - self.paused

    def log(self, msg):
        line = f"[{time.monotonic() - self.t0:8.2f}s wall, {self.chaos_now():8.2f}s chaos] {msg}"
        self.events_log.write(line + "\n")
        self.events_log.flush()

    # ---- daemons ----

    def start_coordinator(self):
        self.coordinator_gen += 1
        g = self.coordinator_gen
        port_file = os.path.join(self.work, "coordinator.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        argv = [self.bin("server/ist_coordinator"), f"--listen=127.0.0.1:{self.port}",
                f"--port_file={port_file}", f"--data_dir={self.a.data_dir}", "--threads=1",
                "--checkpoint_dir=ckpt", "--checkpoint_every_rounds=2", "--worker_timeout_s=6",
                "--task_timeout_s=60", "--max_attempts=50"]
        for attempt in range(5):
            d = Daemon(f"coordinator #{g}", argv, os.path.join(self.work, f"coordinator-{g}.log"),
                       self.work)
            try:
                port = int(wait_for_file(port_file, 60, d))
                break
            except SoakFailure:
                # The old port may still be held for a moment after a SIGKILL.
                if d.alive() or attempt == 4:
                    raise
                d.killed = True
                d.log.close()
                time.sleep(1)
        if self.port == 0:
            self.port = port
        elif port != self.port:
            raise SoakFailure(f"coordinator #{g} bound port {port}, want {self.port}")
        self.coordinator = d
        self.log(f"coordinator #{g} started, pid {d.pid}, port {port}")

    def start_worker(self, i):
        self.worker_gen[i] += 1
        g = self.worker_gen[i]
        hp = os.path.join(self.work, f"worker-{i}.health_port")
        if os.path.exists(hp):
            os.remove(hp)
        argv = [self.bin("worker/ist_worker"), f"--coordinator=127.0.0.1:{self.port}",
                f"--data_dir={self.a.data_dir}", "--threads=1", "--poll_wait_ms=500",
                f"--name=soak-worker-{i}-{g}", "--health_listen=127.0.0.1:0",
                f"--health_port_file={hp}"]
        d = Daemon(f"worker {i} #{g}", argv, os.path.join(self.work, f"worker-{i}-{g}.log"),
                   self.work)
        self.worker_health[i] = "127.0.0.1:" + wait_for_file(hp, 30, d)
        self.workers[i] = d
        self.log(f"worker {i} #{g} started, pid {d.pid}, health {self.worker_health[i]}")

    def health(self, address):
        """The health status string, or None if no answer within the deadline."""
        self.n["health_checks"] += 1
        try:
            r = subprocess.run([self.bin("tests/health_probe"), address, str(HEALTH_DEADLINE_S)],
                               capture_output=True, timeout=HEALTH_DEADLINE_S + 10)
        except subprocess.TimeoutExpired:
            return None
        out = r.stdout.decode("utf-8", "replace").strip()
        return out if out in ("SERVING", "NOT_SERVING") else None

    def ctl(self, args, timeout=10):
        """(exit code, stdout, stderr) of istctl with a deadline of `timeout`."""
        argv = [self.bin("cli/istctl"), f"--coordinator=127.0.0.1:{self.port}",
                "--output=json", f"--timeout={timeout}"] + args
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            raise SoakFailure(f"istctl {' '.join(args)} ran 15 s past its --timeout={timeout}")
        return (r.returncode, r.stdout.decode("utf-8", "replace"),
                r.stderr.decode("utf-8", "replace"))

    def check_daemons(self):
        """Fails if a daemon exited on its own or stopped answering health."""
        now = time.monotonic()
        daemons = [(self.coordinator, f"127.0.0.1:{self.port}")] + \
            [(w, self.worker_health[i]) for i, w in enumerate(self.workers)]
        for d, address in daemons:
            if d is None or d.killed:
                continue
            if not d.alive():
                raise SoakFailure(f"{d.label} (pid {d.pid}) exited on its own with "
                                  f"{d.proc.returncode}:\n{d.tail()}")
            if self.health(address) is None:
                if d.unanswered_since is None:
                    d.unanswered_since = now
                    self.log(f"{d.label}: no health answer within {HEALTH_DEADLINE_S} s")
                elif now - d.unanswered_since > self.a.hang_seconds:
                    raise SoakFailure(f"{d.label} (pid {d.pid}) hung: no health answer for "
                                      f"{now - d.unanswered_since:.0f} s:\n{d.tail()}")
            else:
                d.unanswered_since = None

    # ---- jobs ----

    def submit(self, name, spec):
        job = Job(name, spec)
        self.jobs[name] = job
        rc, out, err = self.ctl(["submit", f"--name={name}"] + SPECS[spec])
        if rc == 0:
            job.job_id = json.loads(out)["job_id"]
            job.submit_acked = True
            self.by_id[job.job_id] = job
            self.n["submitted"] += 1
            self.lives_with_submit.add(self.coordinator_gen)
            self.log(f"submitted {name} (spec {spec}): {job.job_id}")
        else:
            # The submit may or may not have reached the coordinator; a job of
            # this name that shows up in a listing is followed like the rest.
            self.n["submit_failed"] += 1
            self.log(f"submit {name} failed (rc {rc}): {err.strip()}")
            if rc == 2:
                raise SoakFailure(f"istctl refused the submit of spec {spec}: {err}")
        return job

    def cancel(self, job):
        if job.job_id is None or job.state in TERMINAL:
            return
        self.n["cancel_sent"] += 1
        rc, out, err = self.ctl(["cancel", job.job_id])
        if rc == 0:
            state = json.loads(out).get("state", "")
            if state == "CANCELLED":
                job.cancel = "acked"
            elif state in TERMINAL:
                job.cancel = "too late"
            else:
                job.cancel = "ambiguous"  # still RUNNING 5 s later
            self.log(f"cancel {job.job_id}: {state}")
        else:
            job.cancel = "ambiguous"
            self.log(f"cancel {job.job_id} failed (rc {rc}): {err.strip()}")

    def unfinished(self):
        return [j for j in self.jobs.values() if j.state not in TERMINAL and
                (j.submit_acked or j.job_id is not None)]

    def poll_jobs(self):
        """Updates every job from one ListJobs; False if the call failed."""
        rc, out, err = self.ctl(["list"], timeout=10)
        if rc != 0:
            self.log(f"list failed (rc {rc}): {err.strip()}")
            return False
        listed = json.loads(out).get("jobs", [])
        self.listed = len(listed)
        seen = set()
        for s in listed:
            name = s.get("spec", {}).get("name", "")
            job = self.jobs.get(name)
            if job is None:
                continue
            jid = s["job_id"]
            if job.job_id is None:
                job.job_id = jid
                self.by_id[jid] = job
                self.log(f"adopted {name}: {jid} (its submit had failed)")
            elif job.job_id != jid:
                raise SoakFailure(f"{name} was {job.job_id}, now listed as {jid}")
            seen.add(name)
            p = s.get("progress", {})
            state = p.get("state", "QUEUED")
            if job.state in TERMINAL and state != job.state:
                raise SoakFailure(f"{jid} ({name}) went from {job.state} to {state}")
            job.state = state
            job.round = int(p.get("round", 0))
            job.fingerprint = p.get("model_fingerprint")
            job.error = p.get("error", "")
        # A job listed unfinished must stay listed (only finished ones may
        # be evicted); an acknowledged job must show up.
        for job in self.unfinished():
            if job.name in seen:
                job.lost_checks = 0
                continue
            job.lost_checks += 1
            if job.lost_checks >= 3:
                rc, out, err = self.ctl(["status", job.job_id])
                if rc != 0:
                    raise SoakFailure(f"{job.job_id} ({job.name}) is gone: not listed in 3 "
                                      f"listings and status says: {err.strip()}")
        key = tuple(sorted((j.name, j.state, j.round) for j in self.unfinished()))
        now = time.monotonic()
        if key != self.progress_key or not key:
            self.progress_key = key
            self.last_progress = now
        elif now - self.last_progress > self.a.stuck_seconds:
            raise SoakFailure(f"no progress for {now - self.last_progress:.0f} s; unfinished: "
                              f"{', '.join(f'{j.job_id} {j.state} round {j.round}' for j in self.unfinished())}")
        return True

    # ---- chaos ----

    def kill_worker(self, i, down):
        w = self.workers[i]
        if w is None:
            return
        w.sigkill()
        self.workers[i] = None
        self.n["worker_kills"] += 1
        self.log(f"SIGKILL {w.label} (pid {w.pid}); restart in {down:.1f} s")
        self.timers.append((self.chaos_now() + down, "start_worker", {"worker": i}))

    def wait_for_running_job(self, p):
        """Waits (at most 15 s) until a job is RUNNING at round >= min_round,
        submitting one of spec `spec` if no job is unfinished."""
        if not self.unfinished():
            self.submit(f"soak-kill{p['n']}-s{p['spec']}", p["spec"])
        # GetJob of the unfinished jobs, not ListJobs: a listing of every
        # finished job is too slow to catch a job that takes a second.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pending = [j for j in self.unfinished() if j.job_id is not None]
            if not pending:
                return
            for j in pending:
                rc, out, _ = self.ctl(["status", j.job_id], timeout=5)
                if rc != 0:
                    return
                progress = json.loads(out).get("progress", {})
                if (progress.get("state") == "RUNNING" and
                        int(progress.get("round", 0)) >= p["min_round"]):
                    self.n["mid_job_kills"] += 1
                    return
                if progress.get("state") in TERMINAL:
                    self.poll_jobs()
                    break
            time.sleep(0.02)

    def kill_coordinator(self, n, down):
        c = self.coordinator
        if c is None:
            return
        c.sigkill()
        self.coordinator = None
        self.n["coordinator_kills"] += 1
        self.log(f"SIGKILL {c.label} (pid {c.pid}), kill {n}; restart in {down:.1f} s")
        self.timers.append((self.chaos_now() + down, "start_coordinator", {}))

    def open_garbage(self, kind, count, hold, seed):
        rng = random.Random(seed)
        socks = []
        for _ in range(count):
            s = garbage.open_garbage(self.port, kind, rng)
            if s is None:
                self.n["garbage_refused"] += 1
            else:
                socks.append(s)
        self.n["garbage_conns"] += len(socks)
        self.garbage_by_kind[kind] = self.garbage_by_kind.get(kind, 0) + len(socks)
        self.garbage_held.append((self.chaos_now() + hold, socks))
        self.log(f"garbage: {len(socks)}/{count} {kind} connections, held {hold:.1f} s")

    def close_garbage(self, everything=False):
        now = self.chaos_now()
        keep = []
        for close_at, socks in self.garbage_held:
            if everything or close_at <= now:
                for s in socks:
                    s.close()
            else:
                keep.append((close_at, socks))
        self.garbage_held = keep

    def fire(self, kind, p):
        if kind == "submit":
            if self.coordinator is None:
                self.n["submit_skipped"] += 1
                return
            if len(self.unfinished()) >= self.a.max_unfinished:
                self.n["submit_skipped"] += 1
                return
            job = self.submit(f"soak-{p['seq']}-s{p['spec']}", p["spec"])
            if p["cancel_after"] is not None:
                self.timers.append((self.chaos_now() + p["cancel_after"], "cancel",
                                    {"name": job.name, "tries": 0}))
        elif kind == "cancel":
            job = self.jobs[p["name"]]
            if self.coordinator is None:
                if p["tries"] < 20:  # the coordinator is down: try again in 1 s
                    self.timers.append((self.chaos_now() + 1, "cancel",
                                        {"name": p["name"], "tries": p["tries"] + 1}))
                return
            self.cancel(job)
        elif kind == "kill_worker":
            self.kill_worker(p["worker"], p["down"])
        elif kind == "start_worker":
            if self.workers[p["worker"]] is None:
                self.start_worker(p["worker"])
        elif kind == "kill_coordinator":
            if p["mid_job"] and self.coordinator is not None:
                self.wait_for_running_job(p)
            self.kill_coordinator(p["n"], p["down"])
        elif kind == "start_coordinator":
            if self.coordinator is None:
                self.start_coordinator()
        elif kind == "garbage":
            if self.coordinator is not None:
                self.open_garbage(p["kind"], p["count"], p["hold"], p["seed"])
        elif kind == "quiet":
            self.quiet(p["why"])
        else:
            raise AssertionError(kind)

    def restore_all(self):
        """Every daemon up now (pending restarts done early)."""
        if self.coordinator is None:
            self.start_coordinator()
        for i in range(self.a.workers):
            if self.workers[i] is None:
                self.start_worker(i)
        self.timers = [t for t in self.timers if t[1] not in ("start_worker", "start_coordinator")]

    def drain(self, seconds, why):
        """Waits until every job has ended, failing after `seconds`."""
        deadline = time.monotonic() + seconds
        last_check = 0
        while True:
            ok = self.poll_jobs()
            if ok and not self.unfinished() and not self.pending_cancels():
                return
            if time.monotonic() > deadline:
                left = ", ".join(f"{j.job_id} {j.state} round {j.round}" for j in self.unfinished())
                raise SoakFailure(f"{why}: jobs did not drain within {seconds:.0f} s: {left}")
            if time.monotonic() - last_check > 2:
                self.check_daemons()
                last_check = time.monotonic()
            self.fire_due_timers(only=("cancel",))
            time.sleep(0.5)

    def pending_cancels(self):
        return [t for t in self.timers if t[1] == "cancel" and
                self.jobs[t[2]["name"]].state not in TERMINAL]

    def wait_workers_serving(self, seconds):
        deadline = time.monotonic() + seconds
        for i in range(self.a.workers):
            while self.health(self.worker_health[i]) != "SERVING":
                if time.monotonic() > deadline:
                    raise SoakFailure(f"{self.workers[i].label} not registered (health SERVING) "
                                      f"within {seconds} s:\n{self.workers[i].tail()}")
                time.sleep(0.2)

    def quiet(self, why):
        start = time.monotonic()
        self.close_garbage(everything=True)
        self.restore_all()
        # A submit loads the training split (a transient 190 MB the allocator
        # partly keeps): a life's first sample comes after one.
        if self.coordinator_gen not in self.lives_with_submit:
            spec = self.coordinator_gen % len(SPECS)
            self.submit(f"soak-warm{self.coordinator_gen}-s{spec}", spec)
        self.drain(self.a.drain_seconds, f"quiet point {why}")
        self.wait_workers_serving(30)
        time.sleep(2)  # closed connections and finished RPCs settle
        c = proc_sample(self.coordinator.pid)
        # A worker loads its data set at its first task: it is compared from
        # the first quiet point after it has trained something.
        rc, out, err = self.ctl(["workers"])
        if rc != 0:
            raise SoakFailure(f"quiet point {why}: istctl workers: {err.strip()}")
        for ws in json.loads(out).get("workers", []):
            if int(ws.get("tasks_done", 0)) > 0:
                self.worker_trained.add(ws.get("name", ""))
        w = {}
        for i in range(self.a.workers):
            if f"soak-worker-{i}-{self.worker_gen[i]}" in self.worker_trained:
                w[self.workers[i].label] = proc_sample(self.workers[i].pid)
        if c is not None:
            c["jobs_listed"] = self.listed
        if c is None:
            raise SoakFailure(f"{self.coordinator.label}: cannot read /proc/{self.coordinator.pid}")
        self.samples.append((why, self.coordinator_gen, c, w))
        self.n["quiet_points"] += 1
        self.log(f"quiet point {why}: coordinator {c}, workers {w}")
        self.paused += time.monotonic() - start

    def fire_due_timers(self, only=None):
        now = self.chaos_now()
        due = [t for t in self.timers if t[0] <= now and (only is None or t[1] in only)]
        if not due:
            return
        self.timers = [t for t in self.timers if t not in due]
        for _, kind, p in sorted(due, key=lambda t: t[0]):
            self.fire(kind, p)

    # ---- phases ----

    def reference_runs(self):
        for k in range(len(SPECS)):
            job = self.submit(f"soak-ref-{k}", k)
            if not job.submit_acked:
                raise SoakFailure(f"reference run of spec {k}: submit failed")
        self.drain(self.a.drain_seconds, "reference runs")
        for k in range(len(SPECS)):
            job = self.jobs[f"soak-ref-{k}"]
            if job.state != "SUCCEEDED" or not job.fingerprint:
                raise SoakFailure(f"reference run {job.job_id} of spec {k}: {job.state} "
                                  f"{job.error}")
            self.refs[k] = job.fingerprint
            self.log(f"reference spec {k}: {job.job_id} fingerprint {job.fingerprint}")

    def run(self):
        os.makedirs(os.path.join(self.work, "ckpt"), exist_ok=True)
        self.start_coordinator()
        for i in range(self.a.workers):
            self.start_worker(i)
        self.wait_workers_serving(30)
        self.reference_runs()
        self.quiet("after the reference runs")
        events = make_schedule(self.a)
        with open(os.path.join(self.work, "schedule.txt"), "w") as f:
            for e in events:
                f.write(f"{e[0]:9.2f} {e[1]} {json.dumps(e[2], sort_keys=True)}\n")
        self.log(f"schedule: {len(events)} events over {self.a.minutes} min of chaos time")
        self.paused = time.monotonic() - self.t0  # chaos time starts now
        end = self.a.minutes * 60
        last_poll = last_health = 0.0
        i = 0
        while self.chaos_now() < end or i < len(events):
            now = self.chaos_now()
            while i < len(events) and events[i][0] <= now:
                _, kind, p = events[i]
                i += 1
                self.fire(kind, p)
            self.fire_due_timers()
            self.close_garbage()
            if self.coordinator is not None and time.monotonic() - last_poll >= 1:
                self.poll_jobs()
                last_poll = time.monotonic()
            if time.monotonic() - last_health >= 2:
                self.check_daemons()
                last_health = time.monotonic()
            time.sleep(0.1)
        self.log("chaos over; final quiet point")
        self.quiet("at the end")

    def shutdown(self):
        """SIGTERMs every daemon; names those that did not exit in 15 s."""
        hung = []
        for d in [self.coordinator] + self.workers:
            if d is not None and not d.killed:
                rc = d.terminate(15)
                self.log(f"SIGTERM {d.label}: exit {rc}")
                if rc is None:
                    hung.append(d.label)
        for _, socks in self.garbage_held:
            for s in socks:
                s.close()
        return hung

    # ---- verdict ----

    def check_jobs(self):
        problems = []
        counts = {"succeeded": 0, "matched": 0, "cancelled": 0, "cancel_too_late": 0}
        for job in self.jobs.values():
            if job.name.startswith("soak-ref-"):
                continue
            if job.job_id is None:
                continue  # a failed submit that never reached the coordinator
            ref = self.refs[job.spec]
            if job.state == "SUCCEEDED":
                counts["succeeded"] += 1
                if job.cancel == "acked":
                    problems.append(f"{job.job_id} ({job.name}): its cancel was acknowledged "
                                    f"(CANCELLED) but it ended SUCCEEDED")
                elif job.fingerprint == ref:
                    counts["matched"] += 1
                    if job.cancel is not None:
                        counts["cancel_too_late"] += 1
                else:
                    problems.append(f"{job.job_id} ({job.name}): model {job.fingerprint}, the "
                                    f"undisturbed run of spec {job.spec} has {ref}")
            elif job.state == "CANCELLED":
                counts["cancelled"] += 1
                if job.cancel is None:
                    problems.append(f"{job.job_id} ({job.name}) ended CANCELLED but was never "
                                    f"cancelled")
            else:
                problems.append(f"{job.job_id} ({job.name}) ended {job.state} {job.error}")
        return counts, problems

    def check_leaks(self):
        """Leak problems from the quiet-point samples."""
        a = self.a
        problems = []
        limits = (("fds", a.fd_tolerance, 1, ""), ("threads", a.thread_tolerance, 1, ""),
                  ("rss_kb", a.rss_tolerance_mb * 1024, 1024, " MB"))

        def compare(what, base, now):
            for key, tol, unit, suffix in limits:
                if now[key] - base[key] > tol:
                    text = (f"{what}: {key} {base[key] / unit:g} -> {now[key] / unit:g}"
                            f"{suffix} (tolerance +{tol / unit:g})")
                    more = now.get("jobs_listed", 0) - base.get("jobs_listed", 0)
                    if key == "rss_kb" and more > 0:
                        text += (f"; {(now[key] - base[key]) / more:.0f} KB per job more "
                                 f"listed ({base['jobs_listed']} -> {now['jobs_listed']})")
                    problems.append(text)

        first = {}
        last = {}
        for why, gen, c, _ in self.samples:
            first.setdefault(gen, (why, c))
            last[gen] = (why, c)
        for gen in first:
            compare(f"coordinator #{gen} from '{first[gen][0]}' to '{last[gen][0]}'",
                    first[gen][1], last[gen][1])
            if gen != 1:
                compare(f"coordinator #{gen} at '{first[gen][0]}' vs #1 at '{first[1][0]}'",
                        first[1][1], first[gen][1])
        wfirst, wlast = {}, {}
        for why, _, _, w in self.samples:
            for label, s in w.items():
                if s is not None:
                    wfirst.setdefault(label, (why, s))
                    wlast[label] = (why, s)
        for label in wfirst:
            if wfirst[label][0] != wlast[label][0]:
                compare(f"{label} from '{wfirst[label][0]}' to '{wlast[label][0]}'",
                        wfirst[label][1], wlast[label][1])
        return problems, first, last, wfirst, wlast

    def summary(self, counts, first, last, wfirst, wlast):
        a = self.a
        n = self.n
        cancelled_jobs = sum(1 for j in self.jobs.values() if j.cancel is not None)
        rows = [
            ("seed", a.seed),
            ("chaos time", f"{a.minutes:g} min (wall {time.monotonic() - self.t0:.0f} s)"),
            ("workers", a.workers),
            ("jobs submitted (acknowledged / failed / skipped)",
             f"{n['submitted']} / {n['submit_failed']} / {n['submit_skipped']}"),
            ("jobs cancelled (asked / ended CANCELLED / finished first)",
             f"{cancelled_jobs} / {counts['cancelled']} / {counts['cancel_too_late']}"),
            ("jobs succeeded / models matched",
             f"{counts['succeeded']} / {counts['matched']}"),
            ("worker SIGKILLs", n["worker_kills"]),
            ("coordinator SIGKILLs (of a job in its rounds)",
             f"{n['coordinator_kills']} ({n['mid_job_kills']})"),
            ("garbage connections (refused)",
             f"{n['garbage_conns']} ({n['garbage_refused']}): " +
             ", ".join(f"{k} {v}" for k, v in sorted(self.garbage_by_kind.items()))),
            ("health checks", n["health_checks"]),
            ("quiet points", n["quiet_points"]),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{r[0]:<{width}}  {r[1]}" for r in rows]
        lines.append("")
        lines.append("coordinator at the first and last quiet point of each life "
                     "(fds, threads, VmRSS/VmHWM MB, jobs listed):")
        lines.append(f"  {'life':<6} {'first':<38} {'last':<38}")
        for gen in sorted(first):
            f = first[gen][1]
            l = last[gen][1]
            lines.append(f"  #{gen:<5} {fmt(f):<38} {fmt(l):<38}")
        lines.append("workers, first (after a task) and last quiet point of each that "
                     "lived through two (fds, threads, VmRSS/VmHWM MB):")
        for label in sorted(wfirst):
            if wfirst[label][0] != wlast[label][0]:
                lines.append(f"  {label:<14} {fmt(wfirst[label][1]):<28} {fmt(wlast[label][1])}")
        return "\n".join(lines)


def fmt(s):
    text = f"{s['fds']} fd, {s['threads']} thr, {s['rss_kb'] / 1024:.1f}/{s['hwm_kb'] / 1024:.1f}"
    if "jobs_listed" in s:
        text += f", {s['jobs_listed']} jobs"
    return text


def main(argv):
    a = parse_args(argv)
    work = a.work_dir or tempfile.mkdtemp(prefix="ist-soak-")
    os.makedirs(work, exist_ok=True)
    print(f"soak: seed {a.seed} (replay the schedule with --seed={a.seed}), "
          f"{a.minutes:g} min, work directory {work}", flush=True)
    soak = Soak(a, work)
    failure = None
    try:
        soak.run()
    except SoakFailure as e:
        failure = str(e)
    except Exception as e:  # the driver's own bug: still stop the daemons
        failure = f"driver error: {type(e).__name__}: {e}"
        import traceback
        traceback.print_exc()
    hung = soak.shutdown()
    problems = []
    if failure:
        problems.append(failure)
    if hung:
        problems.append(f"did not exit within 15 s of SIGTERM: {', '.join(hung)}")
    counts, job_problems = soak.check_jobs()
    if not failure:
        problems += job_problems
    leak_problems, first, last, wfirst, wlast = soak.check_leaks()
    if not failure:
        problems += leak_problems
    table = soak.summary(counts, first, last, wfirst, wlast)
    with open(os.path.join(work, "summary.txt"), "w") as f:
        f.write(table + "\n")
    print(table)
    if problems:
        print(f"\nFAIL ({len(problems)} problems; logs kept in {work}):")
        for p in problems[:30]:
            print(f"  {p}")
        print(f"replay: --seed={a.seed} --minutes={a.minutes:g}")
        return 1
    print("\nPASS: every job not cancelled SUCCEEDED with its reference model; no leak beyond "
          f"+{a.fd_tolerance} fds, +{a.thread_tolerance} threads, +{a.rss_tolerance_mb:g} MB "
          "RSS; every daemon answered and exited")
    if not a.keep and not a.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

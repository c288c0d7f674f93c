#!/usr/bin/env python3
"""Benchmark of the co-browse cluster fronts: sticky-proxy against nginx and
HAProxy (and straight to a node), with wrk.

    python3 bench/run.py            # the full run (make bench)
    python3 bench/run.py --quick    # the short one (make bench-quick)
    python3 bench/run.py --help     # every knob

What it does, in order (README.md explains the why):
  1. checks the tools (installs nginx, haproxy, wrk with apt-get if missing);
  2. starts node-1..node-3 (behind the fronts) and node-0 (the "direct" rows);
  3. WebSocket: the realtime scale run (cometd-load: customers and agents on
     WebSocket through a fresh sticky-proxy, while the nodes are still
     fresh), then fresh fronts holding 1,000 WebSocket tunnels each
     (ws-tunnels) and a fresh node holding 1,000 WebSocket clients;
  4. starts every front twice (1 worker, 2 workers) from the templates in
     this directory, and once more each terminating TLS with one self-signed
     certificate (openssl), checks that each routes correctly, warms them up;
  5. saturation rounds: every scenario (the TLS one on the TLS fronts),
     fronts interleaved, N rounds; each front's own CPU time (utime and
     stime of all its processes, /proc/PID/stat) is read before and after
     every run and divided by the requests wrk counted (issue 10's targets:
     targets.py);
  6. fixed-rate rounds: latency at a rate well below saturation;
  7. memory: fresh fronts holding 10,000 idle keep-alive connections (as
     many as the open-file limit lets every front hold), fresh TLS fronts
     holding 2,000 idle TLS connections, and a fresh node holding 100,000
     sessions;
  8. writes results.json and RESULTS.md (ending with optimisations.md);
     stops everything it started.

The security phase (issue 8; after the WebSocket phase, or alone with
--security-only) measures what the access checks cost: credential
verification per algorithm and the limiter's memory (access-cost), and a
join with and without a credential on real nodes; guesser_phase() (opt-in,
--guesser-seconds) guesses tokens through sticky-proxy.

Standard library only.
"""

import argparse
import asyncio
import ctypes
import datetime
import http.client
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import secrets
import ssl
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import security
import targets

START_TIME = time.time()
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
ORIGIN = "http://bench.test"
SESSIONS_PATH = "/cobrowse/rest/live/sessions"
NODE_NAMES = ["node-1", "node-2", "node-3"]
FRONT_KINDS = ["nginx", "haproxy", "sticky-proxy"]

# CPU placement with --pin split (the default; README.md, "CPU placement"):
# wrk on CPU 0, a one-worker front on CPU 1, two-worker fronts and the nodes
# anywhere.
WRK_CPUS = "0"
ONE_WORKER_CPUS = "1"

# A run during which processes this bench did not start (another tenant of a
# shared machine) used more than this share of the CPU is run again, at most
# MAX_RETRIES_PER_RUN times, as long as the time budget allows.
FOREIGN_LIMIT = 10.0
MAX_RETRIES_PER_RUN = 2

# Up to this share of unexpected non-2xx answers in a run is reported (and
# fails the bench at the end) rather than stopping it at once: see
# check_errors().
SOFT_ERROR_SHARE = 0.001

# Issue 5's realtime target (the realtime section of RESULTS.md).
REALTIME_TARGET_SESSIONS = 1000
REALTIME_TARGET_RATE = 10
REALTIME_TARGET_P99_MS = 20.0
# A realtime run disturbed by other processes is run again at most this
# many times (each takes ~25 s in the full run), budget allowing.
MAX_REALTIME_RETRIES = 1
# The node every WebSocket tunnel is routed to (by the query parameter).
TUNNEL_NODE = "node-1"

# Issue 8's guards, as the bench sets them on its nodes (node_argv) and on
# sticky-proxy (start_front), and why:
# - creates: the bench makes 150,000+ sessions from one address (127.0.0.1;
#   a 2-second direct Create run alone), and the node's default budget is 60
#   a minute per address. The guard still runs on every create (the same
#   work as in production); it just never refuses. nginx and HAProxy have no
#   such limit.
BENCH_CREATE_BUDGET = "1000000000/1s"
# - misses: bench traffic is hits, which spend nothing, so the probe budget
#   stays at its default everywhere except node-1..node-3: behind nginx and
#   HAProxy, scenario 5's lookups go round-robin and 2 in 3 reach a node that
#   answers 404 (thousands of misses a run, all from 127.0.0.1). Those
#   arrive without X-Forwarded-For from a trusted peer, which the node
#   takes for a proxy's own lookup and does not budget, but the bench does
#   not rely on that: the pool nodes get an explicit budget they never spend.
BENCH_MISS_PROBE_BUDGET = "1000000000/1s"
# - CometD clients per address: the WebSocket phases hold 1,000-2,000 from
#   127.0.0.1 on one node, and a tunnel run's clients linger on node-1 for
#   --cometd-max-interval after it when the next front's run starts (the
#   default cap is 1,000 per address).
BENCH_COMETD_CLIENTS_PER_ADDRESS = 100_000
# - connections per client at sticky-proxy (when it has the flag): the
#   memory phase holds 10,000 idle connections from 127.0.0.1.
BENCH_CONNECTIONS_PER_CLIENT = 1_000_000
# Every node trusts X-Forwarded-For from the fronts, all on 127.0.0.1.
TRUSTED_PROXIES = "127.0.0.1"
# The agent the bench's credential names (realtime run, join cost).
BENCH_AGENT = "bench-agent"
# The open-file limit run.py sets for itself (main) and so for every process
# it starts: 10,000 idle connections need 10,000+ descriptors in a front, and
# sticky-proxy caps its client connections at (limit - 256) / 2 (HAProxy's
# maxconn rule: each may hold an upstream one). Capped by the hard limit
# (raising that needs CAP_SYS_RESOURCE).
CHILD_NOFILE_WANTED = 65536
# sticky-proxy's rule for its default --max-connections (config/nofile.rs).
PROXY_NOFILE_RESERVE = 256
# The TLS fronts' certificate names (the Python clients verify them).
TLS_SERVER_NAME = "localhost"


class BenchError(Exception):
    """A failure that must stop the run (a front answering errors, ...)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

@dataclass
class Settings:
    quick: bool
    rounds: int
    duration: int              # seconds of each saturation run
    rate_duration: int         # seconds of each fixed-rate run
    rate: int                  # requests/s of the fixed-rate runs
    cold_rate: int             # requests/s of the cold-lookup fixed-rate runs
    connections: int           # wrk connections at saturation
    rate_connections: int      # wrk connections (= threads) at a fixed rate
    scenarios: list
    workers: list
    memory_workers: list       # worker counts measured in the memory phase
    idle_connections: int
    node_sessions: int         # sessions in the node memory test
    out_dir: Path
    results_md: Path
    results_json: Path
    port_base: int
    time_budget: int           # seconds the whole run should take at most
    pin: bool                  # --pin split
    rate_phase: bool
    bin_dir: Path
    fronts: list
    rate_rounds: int           # rounds of the fixed-rate phase
    websocket: bool            # the WebSocket phases (realtime, tunnels)
    tunnels: int               # WebSocket tunnels held per fresh front
    tunnel_workers: list       # worker counts of the tunnel measurement
    realtime_sessions: int     # cometd-load sessions (each 2 clients)
    realtime_rate: float       # messages/s each customer publishes
    realtime_duration: int     # seconds the customers publish
    realtime_fronts: list      # fronts the realtime run goes through
    security: bool             # the security phase (access-cost)
    security_only: bool        # only the security phase (no fronts needed)
    guesser_seconds: int       # guesser_phase() per run; 0: not run
    tls: bool = True           # the TLS fronts (scenario tls-cookie, TLS idle memory)
    tls_idle_connections: int = 2000   # idle TLS connections per fresh TLS front
    tls_files: object = None   # TlsFiles once made (make_tls_files)
    agent_key: Path = None     # HS256 secret of every bench node (make_agent_key)
    agent_token: str = ""      # a credential signed with it (mint_agent_token)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="3 rounds of 1 s runs (2 at a fixed rate), one worker only, no header "
                        "scenario, a 200-session realtime run; writes bench/out/quick/ instead of "
                        "bench/RESULTS.md")
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=int, help="seconds per saturation run (wrk takes whole seconds)")
    p.add_argument("--rate-duration", type=int, help="seconds per fixed-rate run")
    p.add_argument("--rate", type=int, default=2000, help="fixed rate, requests/s (default 2000)")
    p.add_argument("--cold-rate", type=int, default=1000,
                   help="fixed rate of the cold-lookup latency runs (default 1000)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections at saturation")
    p.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(SCENARIO_ORDER))
    p.add_argument("--workers", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--fronts", default=",".join(FRONT_KINDS),
                   help="comma-separated subset of nginx,haproxy,sticky-proxy")
    p.add_argument("--idle-connections", type=int, default=10_000)
    p.add_argument("--node-sessions", type=int,
                   help="sessions of the node memory test (default 100000, quick 20000)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory phase")
    p.add_argument("--out", help="directory for results (default bench/ or bench/out/quick/)")
    p.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "18700")))
    p.add_argument("--pin", choices=["split", "none"], default="split",
                   help="split (default): wrk on CPU 0 and one-worker fronts on CPU 1 (taskset), "
                        "the rest unpinned; none: the scheduler places everything; see README.md")
    p.add_argument("--no-rate", action="store_true", help="skip the fixed-rate phase")
    p.add_argument("--rate-rounds", type=int,
                   help="rounds of the fixed-rate phase (default 3, quick 2)")
    p.add_argument("--no-websocket", action="store_true",
                   help="skip the WebSocket phases (realtime scale run, WebSocket tunnels)")
    p.add_argument("--tunnels", type=int, default=1000,
                   help="WebSocket tunnels held through each fresh front (default 1000)")
    p.add_argument("--realtime-sessions", type=int,
                   help="sessions of the realtime run, each a customer and an agent "
                        f"(default {REALTIME_TARGET_SESSIONS}, quick 200)")
    p.add_argument("--realtime-duration", type=int,
                   help="seconds the realtime run's customers publish (default 20, quick 5)")
    p.add_argument("--realtime-rate", type=float, default=REALTIME_TARGET_RATE,
                   help=f"messages/s per customer in the realtime run (default {REALTIME_TARGET_RATE})")
    p.add_argument("--realtime-fronts", default="sticky-proxy",
                   help="comma-separated fronts the realtime run goes through, each fresh "
                        "(default sticky-proxy; nginx,haproxy add about 25 s each)")
    p.add_argument("--time-budget", type=int,
                   help="seconds the run may take (default 540, quick 105); what the plan leaves "
                        "over goes to retries of runs disturbed by other processes")
    p.add_argument("--no-security", action="store_true",
                   help="skip the security phase (credential verification cost, limiter memory, "
                        "join cost with and without a credential)")
    p.add_argument("--security-only", action="store_true",
                   help="run only the security phase (needs neither nginx, HAProxy nor wrk); "
                        "writes bench/out/security/ unless --out")
    p.add_argument("--guesser-seconds", type=int,
                   help="guesser_phase(): 30,000 sessions on three partitioned nodes, "
                        "sticky-proxy with its default budgets, the guesser for this many seconds "
                        "from one address and from 1,000 forged X-Forwarded-For addresses "
                        "(default 20, quick 3; 0: not run; needs a sticky-proxy with --probe-budget)")
    p.add_argument("--no-tls", action="store_true",
                   help="skip the TLS fronts (scenario tls-cookie and the idle TLS connections)")
    p.add_argument("--tls-idle-connections", type=int,
                   help="idle TLS connections held per fresh TLS front (default 2000, quick 1000)")
    p.add_argument("--bin-dir", default=str(default_bin_dir()),
                   help="where the release binaries are (default $CARGO_TARGET_DIR/release, "
                        "else target/release)")
    a = p.parse_args(argv)

    quick = a.quick
    scenarios = (a.scenarios.split(",") if a.scenarios
                 else (QUICK_SCENARIOS if quick else SCENARIO_ORDER))
    if a.no_tls:
        scenarios = [x for x in scenarios if not SCENARIOS.get(x, Scenario("", "", "")).tls]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    workers = [int(w) for w in a.workers.split(",")] if a.workers else ([1] if quick else [1, 2])
    work = BENCH_DIR / "out" / ("security" if a.security_only else "quick" if quick else "full")
    out = Path(a.out) if a.out else (work if quick or a.security_only else BENCH_DIR)
    fronts = [f for f in a.fronts.split(",") if f]
    realtime_fronts = [f for f in a.realtime_fronts.split(",") if f]
    for f in fronts + realtime_fronts:
        if f not in FRONT_KINDS:
            p.error(f"unknown front {f}")
    # sticky-proxy first: the nodes' memory figures are clean only for the
    # first realtime run (the nodes are fresh before it).
    realtime_fronts.sort(key=lambda f: f != "sticky-proxy")
    return Settings(
        quick=quick,
        rounds=a.rounds or (3 if quick else 5),
        duration=a.duration or (1 if quick else 2),
        rate_duration=a.rate_duration or (1 if quick else 2),
        rate=a.rate,
        cold_rate=a.cold_rate,
        connections=a.connections,
        rate_connections=32,
        scenarios=scenarios,
        workers=workers,
        memory_workers=[] if a.no_memory else workers,
        idle_connections=a.idle_connections,
        node_sessions=0 if a.no_memory else (a.node_sessions or (20_000 if quick else 100_000)),
        out_dir=work,
        results_md=out / "RESULTS.md",
        results_json=out / "results.json",
        port_base=a.port_base,
        time_budget=a.time_budget or (150 if quick else 540),
        pin=a.pin == "split",
        rate_phase=not a.no_rate,
        bin_dir=Path(a.bin_dir),
        fronts=fronts,
        rate_rounds=a.rate_rounds or (2 if quick else 3),
        websocket=not a.no_websocket,
        tunnels=a.tunnels,
        tunnel_workers=workers,
        realtime_sessions=a.realtime_sessions or (200 if quick else REALTIME_TARGET_SESSIONS),
        realtime_rate=a.realtime_rate,
        realtime_duration=a.realtime_duration or (5 if quick else 20),
        realtime_fronts=realtime_fronts,
        security=not a.no_security or a.security_only,
        security_only=a.security_only,
        guesser_seconds=a.guesser_seconds if a.guesser_seconds is not None else (3 if quick else 20),
        tls=not a.no_tls,
        tls_idle_connections=0 if a.no_memory else (a.tls_idle_connections or (1000 if quick else 2000)),
    )


def default_bin_dir():
    """Where cargo put the release binaries: $CARGO_TARGET_DIR/release when
    that is set (make passes the environment on), else target/release."""
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_DIR / "target"
    if not base.is_absolute():
        base = REPO_DIR / base
    return base / "release"


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

@dataclass
class Scenario:
    key: str
    title: str
    script: str
    mode: str = ""             # get.lua: cookie | header | none
    lookup: bool = False       # needs the owner lookup (nginx/HAProxy cannot)
    cold: bool = False         # every request a token new to the front
    direct: str = ""           # which direct run is this scenario's ceiling
    # Share of non-2xx answers accepted from nginx/HAProxy (mixed: their
    # lookups go round-robin and 2 in 3 land on a node that answers 404).
    allowed_errors_no_lookup: float = 0.0
    tls: bool = False          # through the TLS fronts (https), not the plain ones


SCENARIOS = {
    "cookie": Scenario("cookie", "1 sticky hit (cookie)", "get.lua", "cookie", direct="get"),
    "header": Scenario("header", "2 header affinity", "get.lua", "header", direct="get"),
    "lookup-warm": Scenario("lookup-warm", "3 lookup, warm cache", "get.lua", "none",
                            lookup=True, direct="get"),
    "lookup-cold": Scenario("lookup-cold", "3 lookup, cold (new token each request)", "get.lua",
                            "none", lookup=True, cold=True, direct="get"),
    "create": Scenario("create", "4 create session", "create.lua", direct="create"),
    "mixed": Scenario("mixed", "5 mixed 70/20/10", "mixed.lua", direct="mixed",
                      allowed_errors_no_lookup=0.16),
    # Issue 10: each front terminating TLS (same certificate), keep-alive;
    # no direct row (the nodes speak plain HTTP: scenario 1's is the ceiling).
    "tls-cookie": Scenario("tls-cookie", "6 sticky hit over TLS (cookie)", "get.lua", "cookie", tls=True),
}
SCENARIO_ORDER = ["cookie", "header", "lookup-warm", "lookup-cold", "create", "mixed", "tls-cookie"]
QUICK_SCENARIOS = SCENARIO_ORDER

# The direct runs (wrk straight at node-0): the ceiling of each scenario.
DIRECT_RUNS = {
    "get": ("get.lua", "cookie"),
    "create": ("create.lua", ""),
    "mixed": ("mixed.lua", ""),
}


# --------------------------------------------------------------------------
# Processes: start, wait for a port, stop (only what we started, by pid)
# --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # If run.py is killed outright, the kernel sends SIGTERM to this child.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    extra_pids: list = field(default_factory=list)   # nginx workers

    @property
    def pid(self):
        return self.popen.pid

    def all_pids(self):
        return [self.pid] + self.extra_pids


class Procs:
    """Every long-lived process the run started; stop_all() on exit."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []

    def start(self, name, argv, cpus=None, env=None):
        if cpus:
            argv = ["taskset", "-c", cpus] + argv
        logf = open(self.log_dir / f"{name}.log", "ab")
        popen = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, preexec_fn=_die_with_parent)
        logf.close()
        proc = Proc(name, popen)
        self.procs.append(proc)
        return proc

    def stop(self, proc, grace=3.0):
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        for pid in proc.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def ensure_port_free(port):
    """Refuses to start on a port something else listens on: wait_port()
    would otherwise take that other process for ours."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise BenchError(f"port {port} is in use ({e.strerror}): stop what holds it "
                             "or pick other ports with --port-base")


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}; see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{proc.name} not listening on {port} after {timeout}s")


def children_of(pid):
    pids = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.glob("*"):
        try:
            pids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def proc_status(pid, key):
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no {key} for pid {pid}")


def cpu_ticks(pid):
    """utime + stime of a whole process (all threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_times(pids):
    """(utime, stime) in clock ticks summed over whole processes: the
    /proc/PID/stat of a process counts all its threads, live and exited
    (nginx: master and workers are separate processes, all in pids). A
    process gone meanwhile counts 0, which the caller would see as a
    negative delta: fronts live for the whole measurement."""
    user = sys_ = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        sys_ += int(fields[12])
    return user, sys_


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


# --------------------------------------------------------------------------
# Tools and versions
# --------------------------------------------------------------------------

def ensure_tools():
    missing = [t for t in ("nginx", "haproxy", "wrk") if not find_tool(t)]
    if missing:
        log(f"missing {', '.join(missing)}: installing nginx haproxy wrk "
            "(apt-get update && apt-get install -y nginx haproxy wrk)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "nginx", "haproxy", "wrk"], check=True)
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not find_tool(tool):
            raise BenchError(f"{tool} not found")


def find_tool(name):
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def run_text(argv, cwd=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


def tool_version(name):
    """The first line of `name -v`, or "not installed" (--security-only
    needs none of the fronts)."""
    path = find_tool(name)
    lines = run_text([path, "-v"]).splitlines() if path else []
    return lines[0] if lines else f"{name}: not installed"


def machine_info():
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), "unknown")
    mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    dirty = run_text(["git", "--no-optional-locks", "status", "--porcelain"], cwd=REPO_DIR)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "versions": {
            "nginx": tool_version("nginx"),
            "haproxy": tool_version("haproxy"),
            "wrk": tool_version("wrk"),
            "rustc": run_text(["rustc", "-V"]),
            "python": platform.python_version(),
            "git_head": run_text(["git", "rev-parse", "HEAD"], cwd=REPO_DIR),
            "git_worktree_dirty": bool(dirty.strip()),
        },
        "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "background_cpu_pct_at_start": background_cpu(),
    }


def background_cpu(seconds=1.0):
    """Share of the machine's CPU busy before the bench starts anything."""
    b0, t0 = machine_ticks()
    time.sleep(seconds)
    b1, t1 = machine_ticks()
    return round(100 * (b1 - b0) / max(t1 - t0, 1), 1)


# --------------------------------------------------------------------------
# HTTP helpers: pipelined requests straight to a node, and checks via a front
# --------------------------------------------------------------------------

TOKEN_RE = re.compile(rb'"sessionToken":"(\d{9})"')
CREATE_REQ = (f"POST {SESSIONS_PATH} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n").encode()


def _create_on_connection(port, n, out, depth=512):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        while n > 0:
            k = min(depth, n)
            s.sendall(CREATE_REQ * k)
            buf = b""
            # Every answer is JSON: k answers are in once k status lines are
            # and the buffer ends with a closing brace.
            while not (buf.endswith(b"}") and buf.count(b"HTTP/1.1 ") >= k):
                data = s.recv(1 << 20)
                if not data:
                    raise BenchError(f"node on {port} closed the connection while creating sessions")
                buf += data
            if buf.count(b"HTTP/1.1 200 ") != k:
                bad = re.search(rb"HTTP/1.1 (?!200 )[\s\S]{0,300}", buf)
                raise BenchError(f"node on {port} refused some Create Session: {bad.group(0)!r}")
            out += [t.decode() for t in TOKEN_RE.findall(buf)]
            n -= k


def create_sessions(port, n, connections=4):
    """Creates n sessions straight on the node at port (pipelined POSTs)."""
    outs = [[] for _ in range(connections)]
    share = [n // connections + (i < n % connections) for i in range(connections)]
    threads = [threading.Thread(target=_wrap_errors, args=(_create_on_connection, port, share[i], outs[i]))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outs:
        if o and isinstance(o[-1], BaseException):
            raise BenchError(str(o[-1]))
    tokens = [t for o in outs for t in o]
    if len(tokens) != n:
        raise BenchError(f"created {len(tokens)} sessions on {port}, wanted {n}")
    return tokens


def _wrap_errors(fn, port, n, out):
    try:
        fn(port, n, out)
    except BaseException as e:  # reported by create_sessions
        out.append(e)


def touch_sessions(port, tokens):
    """Get Session of every token straight on its node: keeps them from going
    idle, and proves they are still live (200)."""
    req = "".join(f"GET {SESSIONS_PATH}/{t} HTTP/1.1\r\nHost: bench\r\nOrigin: {ORIGIN}\r\n\r\n"
                  for t in tokens).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        buf = b""
        while not (buf.endswith(b"}") and buf.count(b"HTTP/1.1 ") >= len(tokens)):
            data = s.recv(1 << 20)
            if not data:
                break
            buf += data
    ok = buf.count(b"HTTP/1.1 200 ")
    if ok != len(tokens):
        raise BenchError(f"only {ok} of {len(tokens)} sessions still live on {port}")


class BenchHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that checks the certificate for TLS_SERVER_NAME
    (and sends it as SNI): the fronts listen on 127.0.0.1 only."""

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=TLS_SERVER_NAME)


def http_connection(port, tls_ctx=None, timeout=5):
    """A connection to 127.0.0.1:port; over TLS with tls_ctx."""
    if tls_ctx is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    return BenchHTTPS("127.0.0.1", port, timeout=timeout, context=tls_ctx)


def http_request(port, method, path, headers=None, tls_ctx=None):
    conn = http_connection(port, tls_ctx)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, body
    finally:
        conn.close()


def tls_handshake(port, tls_ctx, timeout=5):
    """One TLS handshake with the front at port (raises ssl.SSLError or
    OSError if there is none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with tls_ctx.wrap_socket(raw, server_hostname=TLS_SERVER_NAME):
            pass


def tls_session_info(port, tls_ctx, path):
    """What a TLS front negotiates with a default Python client: version,
    cipher, ALPN, and whether a second connection resumed the session
    (issue 10 wants resumption on in every front)."""
    def connect(session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock = tls_ctx.wrap_socket(raw, server_hostname=TLS_SERVER_NAME, session=session)
        # TLS 1.3 tickets arrive after the handshake: one request and its
        # answer make sure the client has read them.
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {TLS_SERVER_NAME}\r\nOrigin: {ORIGIN}\r\n\r\n".encode())
        r = http.client.HTTPResponse(sock)
        r.begin()
        r.read()
        return sock

    first = connect()
    try:
        info = {"version": first.version(), "cipher": first.cipher()[0],
                "alpn": first.selected_alpn_protocol()}
        session = first.session
    finally:
        first.close()
    second = connect(session)
    try:
        info["resumed"] = bool(second.session_reused)
    finally:
        second.close()
    return info


def server_name(body):
    try:
        return json.loads(body).get("sessionServerName")
    except ValueError:
        return None


# --------------------------------------------------------------------------
# The cluster: nodes, session pools
# --------------------------------------------------------------------------

@dataclass
class Node:
    name: str
    port: int
    proc: Proc = None


def node_argv(settings, name, port, idle_timeout="30s", retention="10s", max_sessions=1_000_000,
              create_budget=BENCH_CREATE_BUDGET, probe_budget=None, agent_key=True,
              trusted_proxies=TRUSTED_PROXIES, extra=()):
    # The Create runs make sessions fast (a direct run alone makes 150,000+
    # in 2 s): a short idle timeout and retention let them expire, and
    # --max-sessions is raised from 200,000 so that a few seconds of them
    # cannot exhaust it. The bench touches its own sessions before every run.
    # Issue 8: the run's agent key (agents join with a credential), the
    # fronts trusted for X-Forwarded-For, and the budgets explained at
    # BENCH_CREATE_BUDGET; probe_budget None keeps the node's default.
    argv = [str(settings.bin_dir / "session-node"), "--name", name,
            "--listen", f"127.0.0.1:{port}", "--allowed-origins", "*",
            "--max-sessions", str(max_sessions), "--session-idle-timeout", idle_timeout,
            "--session-retention", retention, "--drain-timeout", "1s",
            "--create-budget", create_budget,
            "--cometd-max-clients-per-address", str(BENCH_COMETD_CLIENTS_PER_ADDRESS)]
    if trusted_proxies:
        argv += ["--trusted-proxies", trusted_proxies]
    if agent_key:
        argv += ["--agent-key-file", str(settings.agent_key)]
    if probe_budget:
        argv += ["--probe-budget", probe_budget]
    return argv + [str(a) for a in extra]


def start_node(procs, settings, name, port, cpus=None, env=None, **kw):
    ensure_port_free(port)
    node = Node(name, port)
    node.proc = procs.start(name, node_argv(settings, name, port, **kw), cpus=cpus, env=env)
    wait_port(port, node.proc)
    return node


def start_pool_node(procs, settings, name, port):
    """node-1..node-3, behind every front. Each draws from its own third of
    the token space (--token-partition, as make run does): the Create runs
    keep 100,000+ sessions live per node, so with whole-space draws some
    cold-pool token would also be live on another node, and sticky-proxy
    answers 409 session_ambiguous for such a token rather than pick one.
    The probe budget: see BENCH_MISS_PROBE_BUDGET."""
    k = NODE_NAMES.index(name) + 1
    return start_node(procs, settings, name, port, probe_budget=BENCH_MISS_PROBE_BUDGET,
                      extra=["--token-partition", f"{k}/{len(NODE_NAMES)}"])


def make_agent_key(settings):
    """A fresh random HS256 secret for this run's nodes (64 hex digits), and
    a credential signed with it (settings.agent_token)."""
    path = settings.out_dir / "conf" / "agent.key"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    settings.agent_key = path
    settings.agent_token = mint_agent_token(settings, ttl="2h")


def mint_agent_token(settings, sub=BENCH_AGENT, ttl="1h"):
    argv = [str(settings.bin_dir / "session-node"), "agent-token", "--key-file", str(settings.agent_key),
            "--sub", sub, "--ttl", ttl]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    token = r.stdout.strip()
    if r.returncode != 0 or token.count(".") != 2:
        raise BenchError(f"session-node agent-token failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return token


@dataclass
class Pools:
    """Pre-created sessions and the Lua files wrk reads them from."""
    hits: list                 # [(token, node name)] on node-1..3, interleaved
    direct: list               # [(token, "node-0")] on the direct node
    hits_file: Path
    direct_file: Path


def write_sessions_file(path, pairs):
    with open(path, "w") as f:
        f.writelines(f"{token} {node}\n" for token, node in pairs)
    return path


def interleave(per_node):
    """[[n1 tokens], [n2 tokens], ...] -> [(t, node-1), (t, node-2), ...]"""
    out = []
    for i in range(max(len(x) for x in per_node)):
        for k, tokens in enumerate(per_node):
            if i < len(tokens):
                out.append((tokens[i], NODE_NAMES[k]))
    return out


def make_pools(settings, nodes, direct_node, per_node=100):
    hits = interleave([create_sessions(n.port, per_node, connections=1) for n in nodes])
    direct = [(t, "node-0") for t in create_sessions(direct_node.port, per_node, connections=1)]
    data = settings.out_dir / "data"
    return Pools(hits, direct, write_sessions_file(data / "hits.txt", hits),
                 write_sessions_file(data / "direct.txt", direct))


def touch_pools(pools, nodes, direct_node):
    by_node = {n.name: [] for n in nodes}
    for token, name in pools.hits:
        by_node[name].append(token)
    for n in nodes:
        touch_sessions(n.port, by_node[n.name])
    touch_sessions(direct_node.port, [t for t, _ in pools.direct])


def make_cold_pool(settings, nodes, total, tag):
    per = total // len(nodes) + 1
    pairs = interleave([create_sessions(n.port, per) for n in nodes])
    return write_sessions_file(settings.out_dir / "data" / f"cold-{tag}.txt", pairs)


# --------------------------------------------------------------------------
# Fronts
# --------------------------------------------------------------------------

@dataclass
class Front:
    kind: str                  # nginx | haproxy | sticky-proxy | direct
    workers: int
    port: int
    cpus: str = None
    proc: Proc = None
    tls: bool = False          # terminates TLS (https), settings.tls_files' certificate

    @property
    def label(self):
        if self.kind == "direct":
            return self.kind
        return f"{self.kind} w{self.workers}" + (" TLS" if self.tls else "")

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def can_lookup(self):
        return self.kind in ("sticky-proxy", "direct")

    def pids(self):
        return self.proc.all_pids() if self.proc else []


def fill_template(name, values):
    text = (BENCH_DIR / name).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        raise BenchError(f"{name}: unfilled placeholders {left}")
    return text


@dataclass
class TlsFiles:
    """One self-signed certificate every TLS front serves (make_tls_files)."""
    cert: Path                 # PEM certificate (nginx, sticky-proxy, the Python clients' trust)
    key: Path                  # PEM private key (PKCS#8)
    combined: Path             # certificate + key in one file (HAProxy's `crt`)
    made_by: str               # how it was made, for the notes


def make_tls_files(settings):
    """A fresh self-signed ECDSA P-256 certificate for localhost and
    127.0.0.1, with openssl (else the integration crate's dev-cert, if
    built); None if neither is there (the TLS rows are then skipped)."""
    d = settings.out_dir / "conf" / "tls"
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    for f in (cert, key):
        if f.exists():
            f.unlink()
    openssl, dev_cert = find_tool("openssl"), settings.bin_dir / "dev-cert"
    if openssl:
        argv = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={TLS_SERVER_NAME}",
                "-addext", f"subjectAltName=DNS:{TLS_SERVER_NAME},IP:127.0.0.1"]
        made_by = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
    elif os.access(dev_cert, os.X_OK):
        argv = [str(dev_cert), str(d), TLS_SERVER_NAME, "127.0.0.1"]
        made_by = "dev-cert (rcgen)"
    else:
        return None
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or not cert.exists() or not key.exists():
        raise BenchError(f"making the TLS certificate failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    key.chmod(0o600)
    combined = d / "combined.pem"
    combined.write_text(cert.read_text() + key.read_text())
    combined.chmod(0o600)
    return TlsFiles(cert, key, combined, made_by)


def tls_client_context(tls_files):
    """What the Python clients use: trusts only the bench's certificate and
    checks its name, so a front serving anything else fails the check."""
    ctx = ssl.create_default_context(cafile=str(tls_files.cert))
    ctx.check_hostname = True
    return ctx


def child_nofile():
    """The soft open-file limit run.py gives itself and its children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = CHILD_NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(CHILD_NOFILE_WANTED, hard)
    return max(soft, want)


def raise_nofile():
    """Raises run.py's soft open-file limit (inherited by every front, node
    and client it starts) to child_nofile(); returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = child_nofile()
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proxy_connection_cap(nofile):
    """sticky-proxy's default --max-connections for an open-file limit."""
    return max(1, (nofile - PROXY_NOFILE_RESERVE) // 2)


def template_values(settings, workers, port, name, nodes, tls):
    nofile = child_nofile()
    values = {"WORKERS": workers, "PORT": port, "NAME": name, "RUN_DIR": settings.out_dir / "run",
              "NODE1_PORT": nodes[0].port, "NODE2_PORT": nodes[1].port, "NODE3_PORT": nodes[2].port,
              # nginx: its descriptors, and connections per worker (clients
              # and upstreams) a little below; HAProxy: room for the idle
              # connections of the memory phase.
              "NOFILE": nofile, "WORKER_CONNECTIONS": max(1024, nofile - 1000),
              "MAXCONN": max(settings.idle_connections, settings.tls_idle_connections) + 100,
              "NGINX_SSL": "", "NGINX_TLS": "# plain HTTP", "HAPROXY_SSL": ""}
    if tls:
        t = settings.tls_files
        # nginx: a shared session cache and tickets (resumption on); HAProxy
        # resumes by default (its own session cache and tickets).
        values.update({
            "NGINX_SSL": " ssl",
            "NGINX_TLS": (f"ssl_certificate {t.cert};\n        ssl_certificate_key {t.key};\n"
                          "        ssl_protocols TLSv1.2 TLSv1.3;\n"
                          "        ssl_session_cache shared:bench_tls:10m;\n"
                          "        ssl_session_tickets on;\n        ssl_session_timeout 1h;"),
            "HAPROXY_SSL": f" ssl crt {t.combined}"})
    return values


def start_front(procs, settings, kind, workers, port, nodes, tag="", tls=False):
    cpus = ONE_WORKER_CPUS if (settings.pin and workers == 1) else None
    name = f"{kind}-w{workers}{'-tls' if tls else ''}{tag}"
    values = template_values(settings, workers, port, name, nodes, tls)
    conf_dir = settings.out_dir / "conf"
    if kind == "nginx":
        conf = conf_dir / f"{name}.conf"
        conf.write_text(fill_template("nginx.conf.tmpl", values))
        argv = [find_tool("nginx"), "-p", str(settings.out_dir / "run"), "-c", str(conf)]
    elif kind == "haproxy":
        conf = conf_dir / f"{name}.cfg"
        conf.write_text(fill_template("haproxy.cfg.tmpl", values))
        argv = [find_tool("haproxy"), "-db", "-f", str(conf)]
    elif kind == "sticky-proxy":
        argv = [str(settings.bin_dir / "sticky-proxy"), "--listen", f"127.0.0.1:{port}",
                "--workers", str(workers), "--lookup-origin", ORIGIN] + sticky_proxy_guard_flags(settings)
        for n in nodes:
            argv += ["--node", f"{n.name}=http://127.0.0.1:{n.port}"]
        if tls:
            argv += ["--tls-cert", str(settings.tls_files.cert), "--tls-key", str(settings.tls_files.key)]
        (conf_dir / f"{name}.cmdline").write_text(" ".join(argv) + "\n")
    else:
        raise ValueError(kind)
    ensure_port_free(port)
    front = Front(kind, workers, port, cpus, tls=tls)
    front.proc = procs.start(name, argv, cpus=cpus)
    wait_port(port, front.proc)
    if kind == "nginx":
        time.sleep(0.2)
        front.proc.extra_pids = children_of(front.proc.pid)
    return front


_proxy_help = {}


def sticky_proxy_accepts(settings, flag):
    """Whether this sticky-proxy binary has `flag` (its --help, read once):
    run.py works with the proxy from before issue 8's flags and after."""
    if "text" not in _proxy_help:
        try:
            r = subprocess.run([str(settings.bin_dir / "sticky-proxy"), "--help"], capture_output=True,
                               text=True, timeout=10)
            _proxy_help["text"] = r.stdout
        except (OSError, subprocess.TimeoutExpired):
            _proxy_help["text"] = ""
    return re.search(rf"(^|[\s,\[]){re.escape(flag)}(?=[\s=,\]]|$)", _proxy_help["text"], re.M) is not None


def sticky_proxy_guard_flags(settings, budgets=True):
    """What node_argv gives the nodes, for sticky-proxy if it accepts it:
    the agent key, and (budgets=True) the fronts trusted for X-Forwarded-For,
    the create budget and the connection cap explained at
    BENCH_CREATE_BUDGET. budgets=False (guesser_phase): the proxy's
    defaults, as a deployment would have them."""
    wanted = [("--agent-key-file", str(settings.agent_key))]
    if budgets:
        wanted += [("--trusted-proxies", TRUSTED_PROXIES), ("--create-budget", BENCH_CREATE_BUDGET),
                   ("--max-connections-per-client", str(BENCH_CONNECTIONS_PER_CLIENT))]
    return [x for flag, value in wanted if sticky_proxy_accepts(settings, flag) for x in (flag, value)]


def tls_probe_path(pools):
    """A Get Session every front routes to its owner (the query parameter)."""
    token, node = pools.hits[0]
    return f"{SESSIONS_PATH}/{token}?gcbSessionServer={node}"


def other_node(node):
    return NODE_NAMES[(NODE_NAMES.index(node) + 1) % len(NODE_NAMES)]


def verify_front(front, pools, tls_ctx=None):
    """Routing check before measuring: each node's cookie, header and query
    parameter (what a WebSocket carries) must reach that node, and the cookie
    must win over a query parameter naming another node; creates must spread
    over the three nodes; sticky-proxy must also find owners without any.
    A TLS front is checked over TLS (tls_ctx: it must serve the bench's
    certificate)."""
    if front.tls and tls_ctx is None:
        raise ValueError(f"{front.label}: a TLS front needs tls_ctx")
    if front.tls:
        try:
            tls_handshake(front.port, tls_ctx)
        except (ssl.SSLError, OSError) as e:
            raise BenchError(f"{front.label}: no TLS handshake with the bench's certificate: {e}") from None
    tls_ctx = tls_ctx if front.tls else None
    samples = {}
    for token, node in pools.hits:
        samples.setdefault(node, [])
        if len(samples[node]) < 2:
            samples[node].append(token)
    # (how, extra headers, query string) for a session of node n
    checks = [("cookie", lambda n: {"Cookie": f"gcbSessionServer={n}"}, lambda n: ""),
              ("header", lambda n: {"gcbSessionServer": n}, lambda n: ""),
              ("query parameter", lambda n: {}, lambda n: f"?gcbSessionServer={n}"),
              ("cookie over a query parameter naming another node",
               lambda n: {"Cookie": f"gcbSessionServer={n}"},
               lambda n: f"?gcbSessionServer={other_node(n)}")]
    if front.can_lookup:
        checks.append(("lookup", lambda n: {}, lambda n: ""))
    for how, extra, query in checks:
        for node, tokens in samples.items():
            for token in tokens:
                status, body = http_request(front.port, "GET", f"{SESSIONS_PATH}/{token}{query(node)}",
                                            {"Origin": ORIGIN, **extra(node)}, tls_ctx)
                if status != 200 or server_name(body) != node:
                    raise BenchError(f"{front.label}: Get Session by {how} of a {node} session answered "
                                     f"{status} {body[:120]!r}")
    seen = set()
    for _ in range(6):
        status, body = http_request(front.port, "POST", SESSIONS_PATH, {"Content-Length": "0"}, tls_ctx)
        if status != 200:
            raise BenchError(f"{front.label}: Create Session answered {status} {body[:120]!r}")
        seen.add(server_name(body))
    if seen != set(NODE_NAMES):
        raise BenchError(f"{front.label}: 6 creates went to {sorted(seen)}, not all three nodes")


def warm_lookup_cache(front, pools):
    """Asks sticky-proxy for every hit token without cookie, so its owner
    cache holds them all (the lookup-warm scenario)."""
    if front.kind != "sticky-proxy":
        return
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    try:
        for token, node in pools.hits:
            conn.request("GET", f"{SESSIONS_PATH}/{token}", headers={"Origin": ORIGIN})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or server_name(body) != node:
                raise BenchError(f"{front.label}: lookup of {token} answered {r.status} {body[:120]!r}")
    finally:
        conn.close()


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

def run_wrk(settings, port, script, args, duration, connections, threads=1, our_pids=(), front_pids=(),
            scheme="http"):
    """Runs wrk against 127.0.0.1:port; returns its BENCH_JSON report plus
    CPU figures (machine busy share, and the share used by processes this
    run did not start: another tenant on a shared machine), and the CPU the
    front's own processes (front_pids) used per request wrk counted
    (`front_cpu`: µs user, sys and total)."""
    argv = [find_tool("wrk"), f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s",
            "-s", str(BENCH_DIR / script), f"{scheme}://127.0.0.1:{port}", "--"] + args
    if settings.pin:
        argv = ["taskset", "-c", WRK_CPUS] + argv
    front0 = cpu_times(front_pids)
    ours0 = sum(cpu_ticks(pid) for pid in our_pids)
    busy0, total0 = machine_ticks()
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=_die_with_parent)
    out, err = wrk.communicate(timeout=duration + 60)
    busy1, total1 = machine_ticks()
    ours1 = sum(cpu_ticks(pid) for pid in our_pids)
    front1 = cpu_times(front_pids)
    wrk_ticks = children_ticks_delta()
    if wrk.returncode != 0:
        raise BenchError(f"wrk failed ({wrk.returncode}): {out.decode()[-300:]} {err.decode()[-300:]}")
    m = re.search(r"^BENCH_JSON (.*)$", out.decode(), re.M)
    if not m:
        raise BenchError(f"no report from wrk: {out.decode()[-500:]} {err.decode()[-500:]}")
    report = json.loads(m.group(1))
    total = max(total1 - total0, 1)
    report["rps"] = report["requests"] / (report["duration_us"] / 1e6)
    report["cpu_busy_pct"] = round(100 * (busy1 - busy0) / total, 1)
    foreign = (busy1 - busy0) - (ours1 - ours0) - wrk_ticks
    report["cpu_foreign_pct"] = round(max(0.0, 100 * foreign / total), 1)
    if front_pids:
        report["front_cpu"] = targets.cpu_per_request(front0, front1, report["requests"], CLK_TCK)
    return report


_children_seen = [0]


def children_ticks_delta():
    """CPU ticks of children reaped since the last call (that is, wrk)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = int((ru.ru_utime + ru.ru_stime) * os.sysconf("SC_CLK_TCK"))
    delta = ticks - _children_seen[0]
    _children_seen[0] = ticks
    return delta


def check_errors(label, scenario, report, allowed_status_share=0.0):
    """Stops the run on any socket error, or on non-2xx answers beyond the
    allowed share plus SOFT_ERROR_SHARE. A few stray non-2xx answers (at
    most SOFT_ERROR_SHARE of the run) are recorded in the report instead
    (`unexpected_non2xx`): the run goes on, RESULTS.md flags them, and the
    bench exits with status 1 at the end."""
    e = report["errors"]
    sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
    if report["requests"] == 0:
        raise BenchError(f"{label} / {scenario}: no request completed")
    if sock:
        raise BenchError(f"{label} / {scenario}: socket errors {e}")
    share = e["status"] / report["requests"]
    seen = f"; statuses seen: {report['bad_statuses']}" if report.get("bad_statuses") else ""
    if share > allowed_status_share + SOFT_ERROR_SHARE:
        raise BenchError(f"{label} / {scenario}: {e['status']} non-2xx answers of {report['requests']} "
                         f"({100 * share:.2f} %, allowed {100 * allowed_status_share:.0f} %){seen}")
    if allowed_status_share == 0 and e["status"]:
        report["unexpected_non2xx"] = e["status"]
        log(f"WARNING {label} / {scenario}: {e['status']} non-2xx answers of {report['requests']}{seen}")


# --------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------

class Bench:
    def __init__(self, settings, procs):
        self.s = settings
        self.procs = procs
        self.nodes = []
        self.direct_node = None
        self.fronts = []           # every front instance (not direct)
        self.direct = None         # pseudo-front for the direct rows
        self.pools = None
        self.runs = []             # every measured run, saturation and fixed rate
        self.memory = []
        self.node_memory = None
        self.tunnels = []          # fresh fronts holding WebSocket tunnels
        self.node_ws = None        # a fresh node holding WebSocket clients
        self.realtime = []         # cometd-load runs
        self.security = {}         # issue 8: verify, limiter, join, guesser
        self.phase_seconds = {}
        self._kinds = None
        self.skipped = []
        self.cold_counter = 0
        self.retries = 0
        self.retries_left = 0      # set by plan_retries()
        self.info = {}
        self.t0 = START_TIME
        self.tls_ctx = None        # the Python clients' TLS context (make_tls)
        self.tls_info = {}         # front label -> negotiated version, cipher, resumption
        self.tls_kinds = []        # the fronts that terminate TLS in this run
        self.tls_skip_reason = ""  # why sticky-proxy is not among them (sticky_proxy_tls_missing)
        self.nofile = None         # (soft, hard) open-file limit of run.py and its children
        self._memory_pools_at = 0.0   # when fresh_pools_for_memory last made pools

    # -- setup --------------------------------------------------------------

    def start_cluster(self):
        base = self.s.port_base
        self.nodes = [start_pool_node(self.procs, self.s, name, base + 1 + i)
                      for i, name in enumerate(NODE_NAMES)]
        self.direct_node = start_node(self.procs, self.s, "node-0", base)
        self.direct = Front("direct", 0, base, proc=self.direct_node.proc)
        self.pools = make_pools(self.s, self.nodes, self.direct_node)
        log(f"nodes on {base + 1}..{base + 3}, direct node-0 on {base}; "
            f"{len(self.pools.hits)} + {len(self.pools.direct)} sessions pre-created")

    def usable_kinds(self):
        """The fronts asked for (--fronts), without sticky-proxy when its
        binary is missing or does not run (said once, in the notes)."""
        if self._kinds is None:
            self._kinds = [k for k in FRONT_KINDS if k in self.s.fronts]
            if "sticky-proxy" in self._kinds and not sticky_proxy_available(self.s):
                self.skipped.append("sticky-proxy: binary missing or not runnable "
                                    f"({self.s.bin_dir / 'sticky-proxy'})")
                log("sticky-proxy not available: its rows are skipped")
                self._kinds.remove("sticky-proxy")
        return self._kinds

    @contextmanager
    def phase(self, name):
        """Times a phase (results.json `phase_seconds`, and the notes)."""
        t0 = time.time()
        try:
            yield
        finally:
            self.phase_seconds[name] = round(time.time() - t0, 1)
            log(f"{name}: {self.phase_seconds[name]:.0f}s")

    def make_tls(self):
        """The certificate of every TLS front, and which fronts can
        terminate TLS: sticky-proxy only if its --help lists --tls-cert (a
        build without TLS termination gets no TLS rows, and the results say
        so)."""
        s = self.s
        if not any(SCENARIOS[k].tls for k in s.scenarios) and not s.tls_idle_connections:
            return
        if not s.tls:
            return
        s.tls_files = make_tls_files(s)
        if s.tls_files is None:
            self.skipped.append("the TLS rows: neither openssl nor dev-cert found to make a certificate")
            log("no openssl or dev-cert: the TLS rows are skipped")
            return
        self.tls_ctx = tls_client_context(s.tls_files)
        self.tls_kinds = list(self.usable_kinds())
        if "sticky-proxy" in self.tls_kinds:
            why = self.sticky_proxy_tls_missing()
            if why:
                self.tls_skip_reason = why
                self.tls_kinds.remove("sticky-proxy")
                self.skipped.append(f"sticky-proxy's TLS rows: {why}; nginx and HAProxy were measured "
                                    "over TLS all the same")
                log(f"sticky-proxy TLS rows skipped: {why} (nginx and HAProxy still run over TLS)")
        log(f"TLS: one self-signed P-256 certificate ({s.tls_files.made_by}) for "
            f"{', '.join(self.tls_kinds) or 'no front'}")

    def sticky_proxy_tls_missing(self):
        """Why this sticky-proxy build cannot be measured over TLS, or None
        if it can: its --help must list --tls-cert, and a proxy started with
        the certificate must complete a TLS handshake (a build that takes
        the flag but still serves plain HTTP answers the ClientHello with
        HTTP, which the client reports as a wrong version number)."""
        s = self.s
        if not sticky_proxy_accepts(s, "--tls-cert"):
            return "this sticky-proxy build has no --tls-cert (TLS termination not in it yet)"
        port = s.port_base + 90
        try:
            front = start_front(self.procs, s, "sticky-proxy", 1, port, self.nodes, tag="-tlsprobe", tls=True)
        except BenchError as e:
            return f"sticky-proxy with --tls-cert/--tls-key did not start ({e})"
        try:
            tls_handshake(port, self.tls_ctx)
            return None
        except (ssl.SSLError, OSError) as e:
            return (f"this sticky-proxy build takes --tls-cert but does not serve TLS (handshake: "
                    f"{getattr(e, 'reason', None) or e})")
        finally:
            self.procs.stop(front.proc)
            time.sleep(0.2)

    def start_fronts(self):
        base = self.s.port_base
        tls_wanted = any(SCENARIOS[k].tls for k in self.s.scenarios)
        for tls in (False, True):
            if tls and not (tls_wanted and self.tls_kinds):
                continue
            for k, kind in enumerate(FRONT_KINDS):
                if kind not in (self.tls_kinds if tls else self.usable_kinds()):
                    continue
                for w in self.s.workers:
                    # plain 18711.. 18721.. 18731..; TLS 18741.. 18751.. 18761..
                    port = base + 10 * (k + 1 + (3 if tls else 0)) + w
                    front = start_front(self.procs, self.s, kind, w, port, self.nodes, tls=tls)
                    verify_front(front, self.pools, self.tls_ctx)
                    if tls:
                        self.tls_info[front.label] = tls_session_info(port, self.tls_ctx,
                                                                      tls_probe_path(self.pools))
                    else:
                        warm_lookup_cache(front, self.pools)
                    self.fronts.append(front)
                    log(f"{front.label} on {port} (cpus {front.cpus or 'any'}): routing verified"
                        + (f"; {self.tls_info[front.label]}" if tls else ""))

    def planned_seconds(self):
        """Rough time the saturation, fixed-rate and memory phases take
        without retries (the fronts as planned: --fronts x --workers)."""
        s = self.s
        fronts = [(k, w) for k in self.usable_kinds() for w in s.workers]
        tls_fronts = [(k, w) for k in self.tls_kinds for w in s.workers]
        sat = rate = cold = 0
        for key in s.scenarios:
            sc = SCENARIOS[key]
            n = sum(1 for k, _ in (tls_fronts if sc.tls else fronts) if k == "sticky-proxy" or not sc.lookup)
            sat += n + (1 if key in ("cookie", "create", "mixed") else 0)
            cold += n if sc.cold else 0
        rate = 2 + len(fronts) + sum(1 for k, _ in fronts if k == "sticky-proxy")
        rate = rate if s.rate_phase else 0
        planned = (s.rounds * (sat * (s.duration + 0.2) + cold * 1.5)
                   + s.rate_rounds * rate * (s.rate_duration + 0.2))
        memory = ((len(self.usable_kinds()) + len(self.tls_kinds)) * len(s.memory_workers) * 5
                  + (5 if s.node_sessions else 0))
        return planned + memory

    def plan_retries(self):
        """Spends whatever the time budget leaves over on retries of runs
        disturbed by other processes (see FOREIGN_LIMIT)."""
        s = self.s
        planned = self.planned_seconds()
        spare = s.time_budget - (time.time() - self.t0) - planned
        self.retries_left = max(0, int(spare / (s.duration + 1.5)))
        log(f"planned about {planned:.0f}s of measuring; up to {self.retries_left} retries "
            f"of disturbed runs fit in the {s.time_budget}s budget")

    def our_pids(self):
        pids = [n.proc.pid for n in self.nodes + [self.direct_node]]
        for f in self.fronts:
            pids += f.pids()
        return pids

    def warm_up(self):
        children_ticks_delta()     # start counting wrk's CPU from here
        for front in [self.direct] + self.fronts:
            self.wrk_once(front, SCENARIOS["tls-cookie" if front.tls else "cookie"], 1, record=False)

    # -- one run ----------------------------------------------------------------

    def fronts_for(self, workers, rnd, tls=False):
        kinds = [k for k in FRONT_KINDS if any(f.kind == k and f.tls == tls for f in self.fronts)]
        shift = rnd % len(kinds) if kinds else 0
        order = kinds[shift:] + kinds[:shift]        # rotate A,B,C / B,C,A / ...
        return [f for k in order for f in self.fronts
                if f.kind == k and f.workers == workers and f.tls == tls]

    def wrk_once(self, front, sc, duration, record=True, rnd=None, direct_run=None):
        def attempt():
            touch_pools(self.pools, self.nodes, self.direct_node)
            pool = None
            if front.kind == "direct":
                script, mode = DIRECT_RUNS[direct_run or sc.direct]
                args = [f"sessions={self.pools.direct_file}"] + ([f"mode={mode}"] if mode else [])
            elif sc.cold:
                # Enough new tokens for the run: a cold lookup cannot be
                # faster than a cookie hit through the same front, so 1.3 x
                # the best cookie (or cold) rate seen; 60,000/s before any.
                # A run that still runs out fails (wrapped).
                best = max(self.best_rps("cookie", front), self.best_rps(sc.key, front))
                pool = self.cold_pool(int((1.3 * best if best else 60000) * duration) + 1000)
                script, args = sc.script, [f"sessions={pool}", f"mode={sc.mode}"]
            else:
                args = [f"sessions={self.pools.hits_file}"] + ([f"mode={sc.mode}"] if sc.mode else [])
                script = sc.script
            report = run_wrk(self.s, front.port, script, args, duration, self.s.connections,
                             our_pids=self.our_pids(), front_pids=front.pids(), scheme=front.scheme)
            allowed = sc.allowed_errors_no_lookup if not front.can_lookup else 0.0
            check_errors(front.label, sc.key, report, allowed)
            if pool:
                os.unlink(pool)
                if report.get("wrapped"):
                    raise BenchError(f"{front.label}: cold run reused tokens (pool too small)")
            return report

        report = self.measured(attempt) if record else attempt()
        if record:
            self.runs.append({"phase": "saturation", "scenario": sc.key if front.kind != "direct"
                              else direct_run or sc.direct, "front": front.kind,
                              "workers": front.workers, "round": rnd, **report})
        return report

    def cold_pool(self, n):
        self.cold_counter += 1
        return make_cold_pool(self.s, self.nodes, n, f"{self.cold_counter}")

    def measured(self, attempt):
        """Runs attempt() again while other processes (not started by this
        run) took more than FOREIGN_LIMIT % of the machine's CPU, within the
        retry budget, and keeps the cleanest attempt."""
        best = None
        for n in range(1 + MAX_RETRIES_PER_RUN):
            report = attempt()
            report["attempts"] = n + 1
            if best is None or report["cpu_foreign_pct"] < best["cpu_foreign_pct"]:
                discard(best)
                best = report
            else:
                discard(report)
            if best["cpu_foreign_pct"] <= FOREIGN_LIMIT or self.retries_left <= 0:
                break
            self.retries_left -= 1
            self.retries += 1
            time.sleep(1.0)
        return best

    def best_rps(self, scenario, front):
        rates = [r["rps"] for r in self.runs if r["scenario"] == scenario and r["front"] == front.kind
                 and r["workers"] == front.workers and r["phase"] == "saturation"]
        return max(rates, default=0)

    # -- saturation -------------------------------------------------------

    def saturation_rounds(self):
        for rnd in range(self.s.rounds):
            t0 = time.time()
            for key in self.s.scenarios:
                sc = SCENARIOS[key]
                if sc.key in ("cookie", "create", "mixed"):
                    direct = "get" if sc.key == "cookie" else sc.key
                    self.wrk_once(self.direct, sc, self.s.duration, rnd=rnd, direct_run=direct)
                for w in self.s.workers:
                    for front in self.fronts_for(w, rnd, tls=sc.tls):
                        if sc.lookup and not front.can_lookup:
                            continue
                        if key in ("lookup-warm", "mixed"):
                            warm_lookup_cache(front, self.pools)   # (a no-op for nginx/HAProxy)
                        self.wrk_once(front, sc, self.s.duration, rnd=rnd)
            log(f"saturation round {rnd + 1}/{self.s.rounds} done in {time.time() - t0:.0f}s "
                f"({self.round_summary(rnd)})")

    def round_summary(self, rnd):
        parts = []
        for r in self.runs:
            if r["round"] == rnd and r["scenario"] in ("cookie", "get") and r["phase"] == "saturation":
                label = r["front"] if r["front"] == "direct" else f"{r['front']} w{r['workers']}"
                parts.append(f"{label} {r['rps'] / 1000:.1f}k")
        return "cookie: " + ", ".join(parts)

    # -- fixed rate ---------------------------------------------------------

    def rate_rounds(self):
        s = self.s
        lat_dir = s.out_dir / "latency"
        lat_dir.mkdir(exist_ok=True)
        for f in lat_dir.glob("*.txt"):
            f.unlink()
        for rnd in range(s.rate_rounds):
            t0 = time.time()
            targets = [(self.direct, "cookie", s.rate)]
            for w in s.workers:
                targets += [(f, "cookie", s.rate) for f in self.fronts_for(w, rnd)]
            cold = [f for w in s.workers for f in self.fronts_for(w, rnd) if f.kind == "sticky-proxy"]
            if "lookup-cold" in s.scenarios and cold:
                # Cold lookups saturate far lower: a lower rate, with its own
                # direct baseline at that rate for the "added p99".
                targets += [(self.direct, "cookie", s.cold_rate)]
                targets += [(f, "lookup-cold", s.cold_rate) for f in cold]
            for front, key, rate in targets:
                self.rate_once(front, SCENARIOS[key], rnd, lat_dir, rate)
            log(f"fixed-rate round {rnd + 1}/{s.rate_rounds} done in {time.time() - t0:.0f}s")

    def rate_once(self, front, sc, rnd, lat_dir, rate):
        s = self.s
        key = "get" if front.kind == "direct" else sc.key
        pooled = lat_dir / f"{key}-{front.kind}-w{front.workers}-{rate}.txt"
        tries = [0]

        def attempt():
            touch_pools(self.pools, self.nodes, self.direct_node)
            pool = None
            if front.kind == "direct":
                sessions, mode = self.pools.direct_file, "cookie"
            elif sc.cold:
                pool = self.cold_pool(int(rate * s.rate_duration * 1.5) + 1000)
                sessions, mode = pool, "none"
            else:
                sessions, mode = self.pools.hits_file, sc.mode
            tries[0] += 1
            out = lat_dir / f"attempt-{tries[0]}.samples"
            if out.exists():
                out.unlink()
            args = [f"sessions={sessions}", f"mode={mode}", f"rate={rate}",
                    f"threads={s.rate_connections}", f"out={out}"]
            report = run_wrk(s, front.port, "rate.lua", args, s.rate_duration, s.rate_connections,
                             threads=s.rate_connections, our_pids=self.our_pids())
            check_errors(front.label, f"{sc.key} at {rate}/s", report)
            if pool:
                os.unlink(pool)
                if report.get("wrapped"):
                    raise BenchError(f"{front.label}: cold fixed-rate run reused tokens")
            report["samples_file"] = str(out)
            return report

        report = self.measured(attempt)
        with open(pooled, "a") as f:
            f.write(Path(report.pop("samples_file")).read_text())
        for leftover in lat_dir.glob("attempt-*.samples"):
            leftover.unlink()
        self.runs.append({"phase": "rate", "scenario": key, "front": front.kind,
                          "workers": front.workers, "round": rnd, "target_rps": rate,
                          "latency_file": str(pooled), **report})

    # -- memory ---------------------------------------------------------------

    def connections_to_hold(self, wanted):
        """`wanted` idle connections, unless the open-file limit caps
        sticky-proxy lower ((limit - 256) / 2, its default --max-connections,
        as HAProxy sizes maxconn): then every front holds that many, rounded
        down to a hundred, so the per-connection figures compare (the cap is
        in the results)."""
        if "sticky-proxy" not in self.usable_kinds():
            return wanted
        cap = proxy_connection_cap(self.nofile[0])
        return wanted if wanted <= cap else max(100, cap // 100 * 100)

    def fresh_pools_for_memory(self):
        """The memory runs only need live sessions for one Get Session per
        connection, and a run holding 10,000 connections (or opening 2,000
        TLS ones) can outlast the nodes' 30 s idle timeout: sessions made
        more than 15 s ago are made anew rather than touched (a touch would
        find some expired, which is no front's fault)."""
        if time.time() - self._memory_pools_at > 15:
            self.pools = make_pools(self.s, self.nodes, self.direct_node)
            self._memory_pools_at = time.time()
        else:
            touch_pools(self.pools, self.nodes, self.direct_node)

    def memory_phase(self):
        s = self.s
        port = s.port_base + 90
        plain = [k for k in FRONT_KINDS if any(f.kind == k and not f.tls for f in self.fronts)]
        runs = [(kind, False, self.connections_to_hold(s.idle_connections)) for kind in plain]
        if s.tls_idle_connections and self.tls_kinds:
            runs += [(kind, True, self.connections_to_hold(s.tls_idle_connections)) for kind in self.tls_kinds]
        for kind, tls, n in runs:
            for w in s.memory_workers:
                front = start_front(self.procs, s, kind, w, port, self.nodes, tag="-mem", tls=tls)
                try:
                    self.fresh_pools_for_memory()
                    verify_front(front, self.pools, self.tls_ctx)
                    m = measure_idle_connections(front, self.pools, n, self.tls_ctx if tls else None)
                    m["wanted"] = s.tls_idle_connections if tls else s.idle_connections
                    self.memory.append(m)
                    log(f"{front.label}: RSS {m['rss_before'] / 2**20:.1f} MiB idle, peak "
                        f"{m['hwm_after'] / 2**20:.1f} MiB with {m['connections']} idle "
                        f"{'TLS ' if tls else ''}connections "
                        f"({targets.per_connection(m) / 1024:.2f} KiB each)")
                finally:
                    self.procs.stop(front.proc)
                    time.sleep(0.3)
        if s.node_sessions:
            self.node_memory = measure_node_sessions(self.procs, s, s.port_base + 91, s.node_sessions)
            m = self.node_memory
            log(f"node with {m['sessions']} sessions: RSS {m['rss_before'] / 2**20:.1f} -> "
                f"{m['rss_after'] / 2**20:.1f} MiB")


    # -- WebSocket ---------------------------------------------------------------

    def restart_pool_nodes(self):
        """node-1..node-3 afresh (and new pre-created sessions on them)."""
        for n in self.nodes:
            n.proc.popen.send_signal(signal.SIGTERM)
        for n in self.nodes:
            self.procs.stop(n.proc)
        self.nodes = [start_pool_node(self.procs, self.s, n.name, n.port) for n in self.nodes]
        self.pools = make_pools(self.s, self.nodes, self.direct_node)

    def websocket_phase(self):
        """The realtime scale run first (the nodes are still fresh, so their
        peak RSS grows by what its clients cost), then the tunnels."""
        s = self.s
        missing = [b for b in ("cometd-load", "ws-tunnels") if not os.access(s.bin_dir / b, os.X_OK)]
        if missing:
            self.skipped.append(f"the WebSocket rows: {', '.join(missing)} missing in {s.bin_dir} "
                                "(cargo build --release --bins)")
            log(f"{', '.join(missing)} missing: the WebSocket rows are skipped")
            return
        port = s.port_base + 90
        tunnels_cost = (len(self.usable_kinds()) * len(s.tunnel_workers) + 1) * 3.5
        for kind in [k for k in s.realtime_fronts if k in self.usable_kinds()]:
            first = not self.realtime
            attempts = []
            while True:
                front = start_front(self.procs, s, kind, 1, port, self.nodes, tag="-rt")
                try:
                    verify_front(front, self.pools)
                    r = run_realtime(self, front, nodes_fresh=first)
                finally:
                    self.procs.stop(front.proc)
                    time.sleep(0.3)
                attempts.append(r)
                log(f"realtime {front.label}: {r['sessions']} sessions × {r['rate_per_session']}/s for "
                    f"{r['duration_s']} s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
                    f"lost {r['lost']}, reordered {r['reordered']}; peak RSS per client: front "
                    f"{r['front_per_client'] / 1024:.1f} KiB, nodes {r['nodes_per_client'] / 1024:.1f} KiB; "
                    f"other processes took {r['cpu_foreign_pct']} % of the CPU")
                # Disturbed by other processes: once more, if the budget
                # still holds everything else; with fresh nodes again if
                # this run had them (its node figures need them).
                left = (s.time_budget - (time.time() - self.t0) - self.planned_seconds() - tunnels_cost
                        - 10 - (r["elapsed_s"] + 5))
                if r["cpu_foreign_pct"] <= FOREIGN_LIMIT or len(attempts) > MAX_REALTIME_RETRIES or left < 0:
                    break
                self.retries += 1
                log(f"realtime {front.label}: disturbed ({r['cpu_foreign_pct']} % taken by other "
                    "processes): running it again" + (" on fresh nodes" if first else ""))
                if first:
                    self.restart_pool_nodes()
            best = min(attempts, key=lambda a: a["cpu_foreign_pct"])
            best["attempts"] = len(attempts)
            best["cpu_foreign_pct_attempts"] = [a["cpu_foreign_pct"] for a in attempts]
            self.realtime.append(best)
        for kind in self.usable_kinds():
            for w in s.tunnel_workers:
                front = start_front(self.procs, s, kind, w, port, self.nodes, tag="-ws")
                try:
                    verify_front(front, self.pools)
                    node1 = next(n for n in self.nodes if n.name == TUNNEL_NODE)
                    m = measure_tunnels(s, front.label.replace(" ", "-"), front.pids(), port, TUNNEL_NODE,
                                        s.tunnels, node_pid=node1.proc.pid)
                    m.update({"front": kind, "workers": w, "processes": len(front.pids())})
                    self.tunnels.append(m)
                    log(f"{front.label}: RSS {m['rss_before'] / 2**20:.1f} MiB, peak "
                        f"{m['hwm_after'] / 2**20:.1f} MiB with {m['tunnels']} WebSocket tunnels to "
                        f"{TUNNEL_NODE} ({m['per_tunnel'] / 1024:.1f} KiB each)")
                finally:
                    self.procs.stop(front.proc)
                    time.sleep(0.3)
        # What a WebSocket client costs a node: a fresh one, straight.
        node = start_node(self.procs, s, "node-ws", s.port_base + 91, idle_timeout="30m",
                          retention="10m", max_sessions=200_000)
        try:
            self.node_ws = measure_tunnels(s, "node-ws", [node.proc.pid], node.port, node.name, s.tunnels)
            m = self.node_ws
            log(f"fresh node with {m['tunnels']} WebSocket clients: RSS {m['rss_before'] / 2**20:.1f} -> "
                f"{m['rss_after'] / 2**20:.1f} MiB ({m['per_tunnel'] / 1024:.1f} KiB each)")
        finally:
            self.procs.stop(node.proc)

    # -- security (issue 8) -------------------------------------------------------

    def security_phase(self):
        """What the access checks cost (access-cost): credential
        verification per algorithm, the limiter's memory under 1,000,000
        addresses (and bounded at a smaller capacity), a join with and
        without a credential on real nodes; then guesser_phase() if asked
        (--guesser-seconds)."""
        s = self.s
        if not os.access(s.bin_dir / "access-cost", os.X_OK):
            self.skipped.append(f"the security rows: access-cost missing in {s.bin_dir} "
                                "(cargo build --release -p loadgen --bins)")
            log("access-cost missing: the security rows are skipped")
            return
        sec = self.security
        batch, batches = (5000, 3) if s.quick else (20_000, 5)
        sec["verify"] = run_loadgen_json(s, "access-cost", "verify",
                                         ["verify", "--batch", batch, "--batches", batches], timeout=300)
        log("credential verification: " + ", ".join(f"{v['algorithm']} {v['median_us']:g} µs"
                                                    for v in sec["verify"]["verify"]))
        sec["limiter"] = []
        for capacity in (1_000_000, 100_000):
            m = run_loadgen_json(s, "access-cost", f"limiter-{capacity}",
                                 ["limiter", "--capacity", capacity, "--addresses", 1_000_000], timeout=120)
            sec["limiter"].append(m)
            log(f"limiter, capacity {capacity:,}: {m['keys_held']:,} keys held after {m['addresses']:,} "
                f"addresses, RSS {m['rss_before'] / 2**20:.1f} -> {m['rss_after'] / 2**20:.1f} MiB "
                f"({m['bytes_per_key']:.0f} B per key)")
        sec["join"] = self.join_cost()
        if s.guesser_seconds:
            sec["guesser"] = guesser_phase(self, s.guesser_seconds)

    def join_cost(self):
        """access-cost join on two fresh nodes: one verifying credentials
        (joined with the run's credential), one with --agent-auth none
        (joined without); both with the budgets off, so the credential is
        the only difference. Twice: RUST_LOG=warn (neither node logs a join:
        the verification alone) and info (the default: the checking node
        logs every agent join). Nodes and client share one CPU (--pin split):
        across two cores a loopback round trip here is bimodal."""
        s = self.s
        cpus = ONE_WORKER_CPUS if s.pin else None
        port_a, port_b = s.port_base + 81, s.port_base + 82
        joins, rounds = (1000, 3) if s.quick else (2000, 10)
        out = {"pinned_cpu": cpus, "runs": []}
        for rust_log in ("warn", "info"):
            env = dict(os.environ, RUST_LOG=rust_log)
            # The client is no proxy: no --trusted-proxies.
            common = dict(idle_timeout="30m", retention="10m", max_sessions=200_000, create_budget="off",
                          probe_budget="off", trusted_proxies=None, cpus=cpus, env=env)
            checking = start_node(self.procs, s, "join-checking", port_a, **common)
            try:
                open_node = start_node(self.procs, s, "join-open", port_b, agent_key=False,
                                       extra=["--agent-auth", "none"], **common)
                try:
                    args = ["join", "--url", f"http://127.0.0.1:{port_a}", "--baseline-url",
                            f"http://127.0.0.1:{port_b}", "--joins", joins, "--rounds", rounds]
                    r = run_loadgen_json(s, "access-cost", f"join-{rust_log}", args, timeout=300, cpus=cpus,
                                         env=dict(os.environ, LOADGEN_AGENT_TOKEN=s.agent_token))
                finally:
                    self.procs.stop(open_node.proc)
            finally:
                self.procs.stop(checking.proc)
            r["rust_log"] = rust_log
            out["runs"].append(r)
            log(f"join (RUST_LOG={rust_log}): {r['with_credential']['median_us']:g} µs with a credential, "
                f"{r['without_credential']['median_us']:g} µs without: +{r['added_median_of_rounds_us']:g} µs")
        return out


def run_loadgen_json(settings, binary, label, args, timeout, cpus="wrk", env=None):
    """Runs a loadgen binary to its end and returns its JSON line; stderr
    goes to logs/<binary>-<label>.log. cpus: "wrk" pins it like wrk
    (--pin split), None pins nothing, else a taskset list."""
    if cpus == "wrk":
        argv = loadgen_argv(settings, binary, args)
    else:
        argv = ((["taskset", "-c", cpus] if cpus else []) + [str(settings.bin_dir / binary)]
                + [str(a) for a in args])
    log_path = settings.out_dir / "logs" / f"{binary}-{label}.log"
    with open(log_path, "wb") as logf:
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL, env=env,
                               timeout=timeout, preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{binary} {label}: no result within {timeout} s; see {log_path}") from None
    lines = r.stdout.decode(errors="replace").strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{binary} {label} failed (exit {r.returncode}): {tail}")
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise BenchError(f"{binary} {label}: unexpected output {lines[-1][:200]!r}") from None


def guesser_phase(bench, seconds, sessions=security.GUESSER_SESSIONS, connections=4):
    """Issue 8's guessing target, measured: three fresh nodes
    (--token-partition i/3, default probe budget) holding `sessions` live
    sessions, a fresh sticky-proxy in front of them with its default budgets
    (and without --trusted-proxies: it trusts no X-Forwarded-For), then
    `guesser` at full speed for `seconds` from one address (127.0.0.2: the
    nodes trust the proxy at 127.0.0.1, so the guesser must not share its
    address), and again with 1,000 forged X-Forwarded-For addresses (from
    127.0.0.3, whose budget is fresh). Each run is extrapolated to 10
    minutes (security.extrapolate). Returns the figures for RESULTS.md."""
    s = bench.s
    if not (sticky_proxy_available(s) and sticky_proxy_accepts(s, "--probe-budget")):
        raise BenchError("guesser_phase needs a sticky-proxy with --probe-budget (issue 8)")
    if not os.access(s.bin_dir / "guesser", os.X_OK):
        raise BenchError(f"guesser missing in {s.bin_dir} (cargo build --release -p loadgen --bins)")
    procs, base = bench.procs, s.port_base + 70
    nodes, proxy = [], None
    try:
        for i in range(3):
            nodes.append(start_node(procs, s, f"g-node-{i + 1}", base + 1 + i, idle_timeout="30m",
                                    retention="10m", extra=["--token-partition", f"{i + 1}/3"]))
        per_node = [sessions // 3 + (i < sessions % 3) for i in range(3)]
        tokens = [create_sessions(n.port, k) for n, k in zip(nodes, per_node)]
        for i, ts in enumerate(tokens):
            stray = [t for t in ts if int(t) % 3 != i]
            if stray:
                raise BenchError(f"g-node-{i + 1} handed out {len(stray)} tokens outside its partition")
        argv = [str(s.bin_dir / "sticky-proxy"), "--listen", f"127.0.0.1:{base}", "--workers", "1",
                "--lookup-origin", ORIGIN] + sticky_proxy_guard_flags(s, budgets=False)
        for n in nodes:
            argv += ["--node", f"{n.name}=http://127.0.0.1:{n.port}"]
        ensure_port_free(base)
        proxy = procs.start("g-proxy", argv, cpus=ONE_WORKER_CPUS if s.pin else None)
        wait_port(base, proxy)
        # The proxy finds an owner (asked from 127.0.0.1, not the guesser's address).
        status, body = http_request(base, "GET", f"{SESSIONS_PATH}/{tokens[1][0]}", {"Origin": ORIGIN})
        if status != 200 or server_name(body) != nodes[1].name:
            raise BenchError(f"g-proxy: lookup of a g-node-2 session answered {status} {body[:120]!r}")
        log(f"guesser: {sessions:,} live sessions on g-node-1..3 behind a fresh sticky-proxy "
            f"(default budgets); {seconds} s per run")
        runs = []
        for label, bind, pool in (("one address", "127.0.0.2", 0),
                                  ("1,000 forged X-Forwarded-For", "127.0.0.3", 1000)):
            args = ["--url", f"http://127.0.0.1:{base}", "--connections", connections, "--duration",
                    f"{seconds}s", "--mix", "get,join", "--origin", ORIGIN, "--bind", bind,
                    "--forwarded-for-pool", pool]
            r = run_loadgen_json(s, "guesser", bind, args, timeout=seconds + 60)
            r["label"] = label
            r.update(security.extrapolate(r, sessions))
            runs.append(r)
            log(f"guesser, {label}: {r['guesses']:,} guesses ({r['guesses_per_s']:,.0f}/s), "
                f"{r['answered']:,} answered, {r['hits']} found; {r['expected_finds_10min']:.2g} finds "
                f"expected in 10 minutes")
        return {"sessions": sessions, "seconds": seconds, "connections": connections, "runs": runs,
                "target_met": security.guesser_target_met(runs)}
    finally:
        if proxy:
            procs.stop(proxy)
        for n in nodes:
            procs.stop(n.proc)


def discard(report):
    """Drops a discarded attempt: only its latency samples file, if any."""
    path = report.get("samples_file") if report else None
    if path and os.path.exists(path):
        os.unlink(path)


def sticky_proxy_available(settings):
    binary = settings.bin_dir / "sticky-proxy"
    if not os.access(binary, os.X_OK):
        return False
    try:
        r = subprocess.run([str(binary), "--help"], capture_output=True, timeout=10)
        return r.returncode == 0 and b"--workers" in r.stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


# --------------------------------------------------------------------------
# Memory measurements
# --------------------------------------------------------------------------

def sum_status(pids, key):
    return sum(proc_status(p, key) for p in pids)


def measure_idle_connections(front, pools, n, tls_ctx=None):
    """Opens n keep-alive connections to the front (over TLS with tls_ctx),
    sends one Get Session (with cookie) on each, reads the answer, and
    keeps them all open while it reads the front's peak RSS (VmHWM, summed
    over its processes)."""
    pids = front.pids()
    rss_before = sum_status(pids, "VmRSS")
    t0 = time.time()
    opened, conns = asyncio.run(_open_idle(front.label, front.port, pools.hits, n,
                                           lambda: sum_status(pids, "VmHWM"),
                                           lambda: sum_status(pids, "VmRSS"), tls_ctx,
                                           batch=100 if tls_ctx else 500))
    return {"front": front.kind, "workers": front.workers, "processes": len(pids), "tls": front.tls,
            "connections": opened, "open_s": round(time.time() - t0, 1), "rss_before": rss_before,
            "hwm_after": max(conns), "rss_after": conns[1]}


async def _open_idle(label, port, hits, n, read_hwm, read_rss, tls_ctx=None, batch=500, timeout=60.0):
    writers = []
    sem = asyncio.Semaphore(batch)
    tls = {"ssl": tls_ctx, "server_hostname": TLS_SERVER_NAME} if tls_ctx else {}

    async def one(i):
        token, node = hits[i % len(hits)]
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, **tls)
            writer.write((f"GET {SESSIONS_PATH}/{token} HTTP/1.1\r\nHost: bench\r\n"
                          f"Origin: {ORIGIN}\r\nCookie: gcbSessionServer={node}\r\n\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise BenchError(f"idle connection {i}: {head[:80]!r}")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            writers.append(writer)

    try:
        try:
            # Bounded: a front at its connection cap leaves the rest waiting
            # in the backlog, unanswered; that must fail, not hang.
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout)
        except asyncio.TimeoutError:
            raise BenchError(f"{label}: only {len(writers)} of {n} idle connections answered within "
                             f"{timeout:.0f} s") from None
        except OSError as e:
            raise BenchError(f"{label}: opening idle connection {len(writers) + 1} of {n}: {e}") from None
        await asyncio.sleep(1.0)         # let the front settle
        figures = (read_hwm(), read_rss())
        return len(writers), figures
    finally:
        for w in writers:
            sock = w.get_extra_info("socket")
            # RST instead of FIN: no 10,000 sockets left in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            w.close()


# --------------------------------------------------------------------------
# WebSocket measurements (the loadgen crate's binaries)
# --------------------------------------------------------------------------

def loadgen_argv(settings, name, args):
    argv = [str(settings.bin_dir / name)] + [str(a) for a in args]
    return (["taskset", "-c", WRK_CPUS] + argv) if settings.pin else argv


def read_json_line(popen, what, timeout):
    """The one JSON line a loadgen binary prints on stdout."""
    ready, _, _ = select.select([popen.stdout], [], [], timeout)
    line = popen.stdout.readline() if ready else b""
    if not line.strip():
        popen.kill()
        popen.wait()
        raise BenchError(f"{what}: no result line "
                         + ("(timed out)" if not ready else f"(exit status {popen.returncode})"))
    try:
        return json.loads(line)
    except ValueError:
        raise BenchError(f"{what}: unexpected output {line[:200]!r}") from None


def measure_tunnels(settings, label, pids, port, node_name, n, node_pid=None):
    """Holds n WebSockets (one Bayeux handshake each, routed to node_name by
    the query parameter; ws-tunnels fails any answered by another node) open
    through the server at port, and reads its RSS before, and its peak and
    current RSS (summed over pids) a second after all are open. node_pid:
    the node behind a front, whose RSS is recorded too."""
    log_path = settings.out_dir / "logs" / f"ws-tunnels-{label}.log"
    url = f"ws://127.0.0.1:{port}/cobrowse/cometd?gcbSessionServer={node_name}"
    rss_before = sum_status(pids, "VmRSS")
    node_before = proc_status(node_pid, "VmRSS") if node_pid else None
    # Held 2 s: read after 1 s; then ws-tunnels checks that every tunnel still
    # answers a /meta/connect (well within the node's 10 s max interval).
    argv = loadgen_argv(settings, "ws-tunnels", ["--url", url, "--connections", n, "--hold", "2s",
                                                 "--threads", 1])
    with open(log_path, "wb") as logf:
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL,
                                 preexec_fn=_die_with_parent)
    try:
        t0 = time.time()
        counts = read_json_line(popen, f"ws-tunnels through {label}", 60)
        open_s = time.time() - t0
        if counts.get("ok") != n:
            raise BenchError(f"{label}: {counts.get('ok')} of {n} WebSocket tunnels held ({counts}); "
                             f"see {log_path}")
        time.sleep(1.0)
        figures = {"hwm_after": sum_status(pids, "VmHWM"), "rss_after": sum_status(pids, "VmRSS")}
        # VmHWM lags RSS a little (per-thread RSS counters are folded in
        # lazily): the peak is the larger of the two.
        figures["hwm_after"] = max(figures["hwm_after"], figures["rss_after"])
        node_during = proc_status(node_pid, "VmRSS") if node_pid else None
        popen.wait(timeout=30)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    text = log_path.read_text(errors="replace")
    alive = re.search(r"(\d+)/(\d+) tunnels still answer", text)
    if popen.returncode != 0 or not alive or alive.group(1) != alive.group(2):
        raise BenchError(f"{label}: WebSocket tunnels did not all still answer after the hold "
                         f"(exit {popen.returncode}): {text.strip().splitlines()[-1:]}")
    out = {"tunnels": n, "node": node_name, "url": url, "open_s": round(open_s, 2), "rss_before": rss_before,
           **figures, "per_tunnel": (figures["hwm_after"] - rss_before) / n}
    if node_pid:
        out.update({"node_rss_before": node_before, "node_rss_during": node_during})
    return out


def run_realtime(bench, front, nodes_fresh):
    """cometd-load through front (pinned like wrk); the front's and each
    node's RSS before, mid-run and peak after."""
    s = bench.s
    label = front.label.replace(" ", "-")
    log_path = s.out_dir / "logs" / f"cometd-load-{label}.log"
    front_pids = front.pids()
    nodes = {n.name: n.proc.pid for n in bench.nodes}
    before = {"front_rss_before": sum_status(front_pids, "VmRSS"),
              "front_hwm_before": sum_status(front_pids, "VmHWM")}
    node_rows = [{"name": name, "rss_before": proc_status(pid, "VmRSS"),
                  "hwm_before": proc_status(pid, "VmHWM")} for name, pid in nodes.items()]
    argv = loadgen_argv(s, "cometd-load", [
        "--base-url", f"http://127.0.0.1:{front.port}", "--sessions", s.realtime_sessions,
        "--rate", f"{s.realtime_rate:g}", "--duration", f"{s.realtime_duration}s", "--threads", 1])
    our_pids = bench.our_pids() + front_pids
    children_ticks_delta()
    ours0 = sum(cpu_ticks(pid) for pid in our_pids)
    busy0, total0 = machine_ticks()
    set_up = threading.Event()
    lines = []

    def read_stderr(stream):
        with open(log_path, "wb") as logf:
            for line in stream:
                logf.write(line)
                logf.flush()
                lines.append(line.decode(errors="replace"))
                if " set up in " in lines[-1]:
                    set_up.set()

    t0 = time.time()
    # The agents join with the run's credential (cometd-load --agent-token;
    # given by environment so that it stays out of process listings).
    env = dict(os.environ, LOADGEN_AGENT_TOKEN=s.agent_token)
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
    reader = threading.Thread(target=read_stderr, args=(popen.stderr,), daemon=True)
    reader.start()
    during = None
    try:
        deadline = time.time() + 120
        while not set_up.is_set() and popen.poll() is None and time.time() < deadline:
            set_up.wait(0.2)
        if set_up.is_set():
            # Halfway through the publishing: every client connected.
            time.sleep(0.2 + s.realtime_duration / 2)
            if popen.poll() is None:
                during = {"front": sum_status(front_pids, "VmRSS"),
                          "nodes": [proc_status(pid, "VmRSS") for pid in nodes.values()]}
        popen.wait(timeout=s.realtime_duration + 120)
        report_line = popen.stdout.read()
    except subprocess.TimeoutExpired:
        raise BenchError(f"cometd-load through {front.label} did not finish; see {log_path}") from None
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        reader.join(5)
    elapsed = time.time() - t0
    busy1, total1 = machine_ticks()
    ours1 = sum(cpu_ticks(pid) for pid in our_pids)
    gen_ticks = children_ticks_delta()
    stderr = "".join(lines)
    if popen.returncode != 0 or not report_line.strip():
        raise BenchError(f"cometd-load through {front.label} failed (exit {popen.returncode}): "
                         f"{stderr.strip().splitlines()[-3:]}")
    report = json.loads(report_line.decode().strip().splitlines()[-1])
    total = max(total1 - total0, 1)
    out = {"front": front.kind, "workers": front.workers, "processes": len(front_pids),
           "clients": 2 * report["sessions"], "nodes_fresh": nodes_fresh, **report,
           "elapsed_s": round(elapsed, 1),
           "cpu_busy_pct": round(100 * (busy1 - busy0) / total, 1),
           "cpu_foreign_pct": round(max(0.0, 100 * ((busy1 - busy0) - (ours1 - ours0) - gen_ticks) / total), 1),
           "generator_cpu_s": round(gen_ticks / os.sysconf("SC_CLK_TCK"), 1), **before,
           "front_hwm_after": sum_status(front_pids, "VmHWM"),
           "front_rss_during": during["front"] if during else None}
    m = re.search(r"set up in ([\d.]+)s, per node (\{[^}]*\})", stderr)
    if m:
        out["setup_s"] = float(m.group(1))
        out["sessions_per_node"] = json.loads(m.group(2))
    m = re.search(r"publishes acknowledged (\d+), refused (\d+); duplicates (\d+); malformed deliveries "
                  r"(\d+); generator send lag max ([\d.]+) ms", stderr)
    if m:
        out.update({"acknowledged": int(m.group(1)), "refused": int(m.group(2)),
                    "duplicates": int(m.group(3)), "malformed": int(m.group(4)),
                    "generator_send_lag_max_ms": float(m.group(5))})
    m = re.search(r"(\d+) agents still missing messages", stderr)
    out["agents_missing_messages"] = int(m.group(1)) if m else 0
    # VmHWM lags RSS a little (the kernel folds per-thread RSS counters in
    # lazily): the peak is the larger of the two.
    out["front_peak"] = max(out["front_hwm_after"], out["front_rss_during"] or 0)
    for row, pid, k in zip(node_rows, nodes.values(), range(len(node_rows))):
        row["hwm_after"] = proc_status(pid, "VmHWM")
        row["rss_during"] = during["nodes"][k] if during else None
        row["peak"] = max(row["hwm_after"], row["rss_during"] or 0)
    out["nodes"] = node_rows
    out["front_per_client"] = (out["front_peak"] - out["front_rss_before"]) / out["clients"]
    out["nodes_per_client"] = sum(r["peak"] - r["rss_before"] for r in node_rows) / out["clients"]
    out["target_met"] = realtime_target_met(out)
    return out


def realtime_at_scale(r):
    return r["sessions"] >= REALTIME_TARGET_SESSIONS and r["rate_per_session"] >= REALTIME_TARGET_RATE


def realtime_failures(r):
    """Which of issue 5's criteria (latency, loss, order) a realtime run
    missed (empty: none; the scale is checked by realtime_at_scale)."""
    out = []
    if r["p99_ms"] >= REALTIME_TARGET_P99_MS:
        out.append(f"p99 {r['p99_ms']:g} ms ≥ {REALTIME_TARGET_P99_MS:g} ms")
    if r["lost"]:
        out.append(f"{r['lost']} messages lost")
    if r["reordered"]:
        out.append(f"{r['reordered']} reordered")
    if r.get("duplicates"):
        out.append(f"{r['duplicates']} duplicated")
    if r["received"] != r["sent"] and not r["lost"]:
        out.append(f"{r['received']} received of {r['sent']} sent")
    return out


def realtime_target_met(r):
    return realtime_at_scale(r) and not realtime_failures(r)


def realtime_verdict(r):
    fails = realtime_failures(r)
    if fails:
        return "**not met**: " + "; ".join(fails)
    if not realtime_at_scale(r):
        return (f"met at this scale, which is not the target's ({REALTIME_TARGET_SESSIONS:,} sessions at "
                f"{REALTIME_TARGET_RATE}/s)")
    return "**met**"


def measure_node_sessions(procs, settings, port, n):
    node = start_node(procs, settings, "node-mem", port, idle_timeout="30m", retention="10m",
                      max_sessions=200_000)
    try:
        rss_before = proc_status(node.proc.pid, "VmRSS")
        create_sessions(port, n)
        time.sleep(0.5)
        return {"sessions": n, "rss_before": rss_before,
                "rss_after": proc_status(node.proc.pid, "VmRSS"),
                "hwm_after": proc_status(node.proc.pid, "VmHWM")}
    finally:
        procs.stop(node.proc)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

def pct(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize(bench):
    """Rows for the tables: medians over rounds, min-max, ratios per round."""
    s = bench.s
    sat = [r for r in bench.runs if r["phase"] == "saturation"]
    rows = []

    def group(scenario, kind, workers):
        return sorted((r for r in sat if r["scenario"] == scenario and r["front"] == kind
                       and r["workers"] == workers), key=lambda r: r["round"])

    def row(scenario, title, kind, workers, runs):
        rps = [r["rps"] for r in runs]
        out = {"scenario": scenario, "title": title, "front": kind, "workers": workers,
               "rounds": len(runs), "rps_median": statistics.median(rps), "rps_min": min(rps),
               "rps_max": max(rps),
               "p50_us": statistics.median(r["latency_us"]["p50"] for r in runs),
               "p99_us": statistics.median(r["latency_us"]["p99"] for r in runs),
               "p999_us": statistics.median(r["latency_us"]["p999"] for r in runs),
               "cpu_foreign_pct_max": max(r["cpu_foreign_pct"] for r in runs),
               "non2xx_share": sum(r["errors"]["status"] for r in runs) / sum(r["requests"] for r in runs),
               "unexpected_non2xx": sum(r.get("unexpected_non2xx", 0) for r in runs),
               **targets.cpu_medians(runs)}
        if kind == "sticky-proxy":
            for other in ("haproxy", "nginx"):
                theirs = group(scenario, other, workers)
                out[f"ratio_{other}"], out[f"ratio_{other}_range"] = targets.per_round_ratio(
                    runs, theirs, lambda r: r["rps"])
                out[f"cpu_ratio_{other}"], out[f"cpu_ratio_{other}_range"] = targets.per_round_ratio(
                    runs, theirs, targets.run_cpu)
        return out

    for key in s.scenarios:
        sc = SCENARIOS[key]
        if key in ("cookie", "create", "mixed"):
            d = group("get" if key == "cookie" else key, "direct", 0)
            if d:
                rows.append(row(key, sc.title, "direct", 0, d))
        for w in s.workers:
            for kind in FRONT_KINDS:
                if kind not in s.fronts:
                    continue
                runs = group(key, kind, w)
                if runs:
                    rows.append(row(key, sc.title, kind, w, runs))
                elif sc.lookup and kind != "sticky-proxy":
                    rows.append({"scenario": key, "title": sc.title, "front": kind, "workers": w,
                                 "na": "n/a (no equivalent: cannot look up the owner of a token)"})
                elif sc.tls and kind not in bench.tls_kinds:
                    rows.append({"scenario": key, "title": sc.title, "front": kind, "workers": w,
                                 "na": "skipped (this build cannot terminate TLS: see the notes)"})
    return rows


def summarize_rate(bench):
    rows = []
    groups = {}
    for r in bench.runs:
        if r["phase"] == "rate":
            groups.setdefault((r["scenario"], r["front"], r["workers"], r["target_rps"]), []).append(r)
    direct_p99 = {}
    for (scenario, kind, workers, rate), runs in groups.items():
        path = Path(runs[0]["latency_file"])
        samples = sorted(int(x) for x in path.read_text().split()) if path.exists() else []
        rps = [r["rps"] for r in runs]
        out = {"scenario": scenario, "front": kind, "workers": workers, "rounds": len(runs),
               "target_rps": rate, "rps_median": statistics.median(rps),
               "samples": len(samples),
               "p50_us": pct(samples, 50), "p99_us": pct(samples, 99), "p999_us": pct(samples, 99.9),
               "wrk_p99_us_median": statistics.median(r["latency_us"]["p99"] for r in runs),
               "wrk_p999_us_median": statistics.median(r["latency_us"]["p999"] for r in runs),
               "late_sends": sum(r.get("late_sends", 0) for r in runs),
               "unexpected_non2xx": sum(r.get("unexpected_non2xx", 0) for r in runs),
               "cpu_foreign_pct_max": max(r["cpu_foreign_pct"] for r in runs)}
        if kind == "direct":
            direct_p99[rate] = out["p99_us"]
        rows.append(out)
    for out in rows:
        if out["scenario"] == "lookup-cold" and out["target_rps"] in direct_p99:
            out["added_p99_vs_direct_us"] = out["p99_us"] - direct_p99[out["target_rps"]]
    order = {"get": 0, "cookie": 1, "lookup-cold": 2}
    rows.sort(key=lambda r: (-r["target_rps"], order.get(r["scenario"], 9), r["workers"],
                             FRONT_KINDS.index(r["front"]) if r["front"] in FRONT_KINDS else -1))
    return rows


def fmt_us(us):
    if us is None:
        return "–"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_rps(x):
    return f"{x / 1000:.1f}k"


def fmt_ratio(r, rng):
    if r is None:
        return "–"
    return f"{r:.2f} ({rng[0]:.2f}–{rng[1]:.2f})"


def workers_label(row):
    return "–" if row["front"] == "direct" else str(row["workers"])


def render_markdown(bench, info, sat_rows, rate_rows):
    s = bench.s
    L = []
    if s.security_only:
        L += ["# Benchmark results: the security phase only (run.py --security-only)", "",
              f"{info['date']} · {info['nproc']} CPUs ({info['cpu_model']}) · git "
              f"{info['versions']['git_head'][:12]}"
              + (" (uncommitted changes)" if info["versions"]["git_worktree_dirty"] else ""), ""]
        L += security.render(bench.security, ONE_WORKER_CPUS if s.pin else None)
        L += ["## Notes", ""] + [f"- {n}" for n in security_notes(bench)] + [""]
        return "\n".join(L)
    L.append("# Benchmark results" + (" (quick run)" if s.quick else ""))
    L.append("")
    L.append(f"{info['date']} · {info['nproc']} CPUs ({info['cpu_model']}) · {info['memory_gib']} GiB · "
             f"git {info['versions']['git_head'][:12]}"
             + (" (uncommitted changes)" if info["versions"]["git_worktree_dirty"] else ""))
    L.append("")
    v = info["versions"]
    L.append(f"{v['nginx']} · {v['haproxy']} · {v['wrk']} · {v['rustc']}")
    L.append("")
    L.append(f"Saturation: {s.rounds} rounds, fronts interleaved (order rotated each round), "
             f"{s.duration:g} s per run, wrk 1 thread × {s.connections} keep-alive connections"
             + (" pinned to CPU 0; one-worker fronts pinned to CPU 1, two-worker fronts and the nodes "
                "unpinned." if s.pin else ", nothing pinned."))
    L.append("Figures are the median over rounds (min–max for req/s); latency percentiles are wrk's, "
             "medians of the per-round values. Ratios: sticky-proxy req/s ÷ the other front's in the "
             "same round, median of those ratios (min–max).")
    L.append("")
    L.extend(render_targets(bench, sat_rows, rate_rows))
    L.append("## Throughput and latency at saturation")
    L.append("")
    L.append("Front CPU per request: the front's own user and system CPU time (utime, stime of "
             "/proc/PID/stat, summed over its processes: nginx master and workers) from just before wrk "
             "starts to just after it ends, ÷ the requests wrk counted; median over rounds of each "
             "figure (so user + sys need not add up to the total's median); the direct row's is the "
             "node's. CPU ratios are per round like the req/s ones. On this shared machine CPU per "
             "request is steadier than req/s, which the whole machine bounds.")
    L.append("")
    L.append("| scenario | front | workers | req/s (median) | min–max | p50 | p99 | p99.9 | "
             "front CPU/req: user + sys = total | req/s ÷ HAProxy | req/s ÷ nginx | CPU ÷ HAProxy | "
             "CPU ÷ nginx |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sat_rows:
        if "na" in r:
            L.append(f"| {r['title']} | {r['front']} | {r['workers']} | {r['na']} | | | | | | | | | |")
            continue
        ours = r["front"] == "sticky-proxy"
        rh = fmt_ratio(r.get("ratio_haproxy"), r.get("ratio_haproxy_range")) if ours else ""
        rn = fmt_ratio(r.get("ratio_nginx"), r.get("ratio_nginx_range")) if ours else ""
        ch = fmt_ratio(r.get("cpu_ratio_haproxy"), r.get("cpu_ratio_haproxy_range")) if ours else ""
        cn = fmt_ratio(r.get("cpu_ratio_nginx"), r.get("cpu_ratio_nginx_range")) if ours else ""
        cpu = (f"{r['cpu_user_us']:.1f} + {r['cpu_sys_us']:.1f} = **{r['cpu_us']:.1f} µs**"
               if "cpu_us" in r else "–")
        front = r["front"] + (" (ceiling)" if r["front"] == "direct" else "")
        if r["cpu_foreign_pct_max"] > FOREIGN_LIMIT:
            front += " †"
        note = ""
        if r["unexpected_non2xx"]:
            note = f" ⚠ {r['unexpected_non2xx']} non-2xx answers"
        elif r["non2xx_share"] > 0:
            note = f" ({100 * r['non2xx_share']:.0f} % 404: lookups sent round-robin)"
        L.append(f"| {r['title']} | {front}{note} | {workers_label(r)} | {fmt_rps(r['rps_median'])} | "
                 f"{fmt_rps(r['rps_min'])}–{fmt_rps(r['rps_max'])} | {fmt_us(r['p50_us'])} | "
                 f"{fmt_us(r['p99_us'])} | {fmt_us(r['p999_us'])} | {cpu} | {rh} | {rn} | {ch} | {cn} |")
    L.append("")
    if rate_rows:
        L.append(f"## Latency at a fixed rate ({s.rate} req/s; cold lookups {s.cold_rate} req/s)")
        L.append("")
        L.append(f"wrk with {s.rate_connections} threads × 1 connection, paced by `delay()` "
                 f"(bench/rate.lua), {s.rate_duration:g} s per run, {s.rate_rounds} rounds interleaved. "
                 "p50/p99/p99.9 are measured from the *scheduled* send time whenever a connection was "
                 "still busy at that time (coordinated omission corrected, like wrk2) and pooled over the "
                 "rounds; \"wrk p99\" is wrk's own figure (from the actual send, not corrected), median "
                 "over rounds.")
        L.append("")
        L.append("| scenario | front | workers | target req/s | achieved | p50 | p99 | p99.9 | wrk p99 | "
                 "added p99 vs direct |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        names = {"get": "Get Session (direct)", "cookie": "1 sticky hit (cookie)",
                 "lookup-cold": "3 lookup, cold"}
        for r in rate_rows:
            added = r.get("added_p99_vs_direct_us")
            dagger = " †" if r["cpu_foreign_pct_max"] > FOREIGN_LIMIT else ""
            if r["unexpected_non2xx"]:
                dagger += f" ⚠ {r['unexpected_non2xx']} non-2xx answers"
            L.append(f"| {names.get(r['scenario'], r['scenario'])} | {r['front']}{dagger} | {workers_label(r)} | "
                     f"{r['target_rps']} | {r['rps_median']:.0f} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} | "
                     f"{fmt_us(r['p999_us'])} | {fmt_us(r['wrk_p99_us_median'])} | "
                     f"{('+' + fmt_us(added)) if added is not None and added >= 0 else fmt_us(added) if added is not None else ''} |")
        L.append("")
    if bench.realtime:
        L += render_realtime(bench)
    if bench.security:
        L += security.render(bench.security, ONE_WORKER_CPUS if s.pin else None)
    if bench.memory or bench.node_memory or bench.tunnels or bench.node_ws:
        L.append("## Memory")
        L.append("")
        if bench.memory:
            L.append("Fresh front (per kind, worker count, plain or TLS), idle keep-alive client connections, "
                     "each of which sent one Get Session with cookie (over TLS: after a full handshake "
                     "verifying the bench's certificate) and read its answer, then stays open. Peak RSS = "
                     "the larger of VmHWM and VmRSS a second after all are open, summed over the front's "
                     "processes (nginx: master + workers); per connection = (peak − RSS before) ÷ "
                     "connections.")
            L.append("")
            L.append("| front | workers | connections | processes | RSS before | peak RSS | RSS holding them | "
                     "**per connection** | opened in |")
            L.append("|---|---|---|---|---|---|---|---|---|")
            for m in bench.memory:
                short = f" (of {m['wanted']:,} asked)" if m.get("wanted", m["connections"]) > m["connections"] else ""
                L.append(f"| {m['front']}{' TLS' if m.get('tls') else ''} | {m['workers']} | "
                         f"{m['connections']:,}{short} | {m['processes']} | "
                         f"{mib(m['rss_before'])} | {mib(m['hwm_after'])} | {mib(m['rss_after'])} | "
                         f"**{targets.per_connection(m) / 1024:.2f} KiB** | {m.get('open_s', 0):g} s |")
            L.append("")
            capped = [m for m in bench.memory if m.get("wanted", m["connections"]) > m["connections"]]
            if capped and bench.nofile:
                soft, hard = bench.nofile
                L.append(f"Fewer connections than asked: the open-file limit here is {soft:,} (hard limit "
                         f"{hard:,}; raising it needs CAP_SYS_RESOURCE), and sticky-proxy holds at most "
                         f"(limit − {PROXY_NOFILE_RESERVE}) ÷ 2 = {proxy_connection_cap(soft):,} client "
                         "connections (its default `--max-connections`: each may hold an upstream one, as "
                         "HAProxy sizes maxconn); beyond that its accept loop pauses and the rest would wait "
                         "unanswered in the backlog. Every front holds the same number, so the per-connection "
                         "figures compare.")
                L.append("")
        if bench.node_memory:
            m = bench.node_memory
            per = (m["rss_after"] - m["rss_before"]) / m["sessions"]
            L.append(f"One session-node holding {m['sessions']:,} live sessions: RSS "
                     f"{m['rss_before'] / 2**20:.1f} MiB before, {m['rss_after'] / 2**20:.1f} MiB after "
                     f"(peak {m['hwm_after'] / 2**20:.1f} MiB), about {per:.0f} bytes per session.")
            L.append("")
        L += render_tunnels(bench)
    L.append("## Notes")
    L.append("")
    for note in notes(bench, sat_rows, rate_rows):
        L.append(f"- {note}")
    L.append("")
    L += render_optimisations()
    L += render_browser()
    return "\n".join(L)


def mib(b):
    return "–" if b is None else f"{b / 2**20:.1f} MiB"


def render_targets(bench, sat_rows, rate_rows):
    """The targets, each met or not, from this run's figures: issue 10's
    (targets.py: CPU per request, req/s, memory per idle connection and per
    tunnel, cold lookup, TLS), then the earlier issues' still measured."""
    def sat(scenario, front, workers):
        return next((r for r in sat_rows if r["scenario"] == scenario and r["front"] == front
                     and r["workers"] == workers and "na" not in r), None)

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    L = ["## Targets", "",
         "Issue 10 (the proxy's own HTTP/1 path): ratios are sticky-proxy ÷ the other front, the "
         "median of per-round ratios (same scenario, same worker count, same round) with their range.",
         "", "| target | workers | measured | verdict |", "|---|---|---|---|"]
    L += targets.rows(sat_rows, rate_rows, bench.memory, bench.tunnels, bench.s.workers, bench.s.cold_rate)
    if bench.tls_skip_reason:
        L.append("| over TLS: CPU per request, req/s and RSS per idle TLS connection against nginx and "
                 f"HAProxy | | not measured: {bench.tls_skip_reason} | **not measured** |")
    earlier = []
    for w in bench.s.workers:
        hit, warm = sat("cookie", "sticky-proxy", w), sat("lookup-warm", "sticky-proxy", w)
        if hit and warm:
            share = warm["rps_median"] / hit["rps_median"]
            earlier.append(f"| warm lookup ≥ 95 % of sticky-hit throughput | {w} | {share:.1%} | "
                           f"{verdict(share >= 0.95)} |")
    for rt in bench.realtime:
        if rt["front"] == "sticky-proxy":
            earlier.append(f"| realtime: {rt['sessions']:,} sessions × a customer and an agent, 10 messages/s, "
                     f"p99 < 20 ms, none lost or reordered | {rt['workers']} | p99 {rt['p99_ms']:g} ms, "
                           f"lost {rt['lost']}, reordered {rt['reordered']} | {realtime_verdict(rt)} |")
    if earlier:
        L += ["", "Earlier issues:", "", "| target | workers | measured | verdict |", "|---|---|---|---|"] + earlier
    L.append("")
    L.append("Where a target is not met, the last section (\"What was optimised and what it "
             "bought\") says what the profile shows standing in the way.")
    L.append("")
    return L


def render_realtime(bench):
    s = bench.s
    L = [f"## Realtime scale (issue 5)", ""]
    L.append(f"**Target:** {REALTIME_TARGET_SESSIONS:,} concurrent sessions, each a customer and an agent on "
             "WebSocket through the proxy, the customer sending "
             f"{REALTIME_TARGET_RATE} messages a second: p99 delivery latency under "
             f"{REALTIME_TARGET_P99_MS:g} ms, no message lost or reordered; peak RSS per connected client "
             "for the node and the proxy (reported, no limit set).")
    L.append("")
    L.append(f"`cometd-load --sessions {s.realtime_sessions} --rate {s.realtime_rate:g} --duration "
             f"{s.realtime_duration}s --threads 1` (bench/loadgen) through a fresh front with 1 worker"
             + (" (pinned to CPU 1, cometd-load to CPU 0)" if s.pin else "")
             + ", in front of node-1..node-3, run before the other phases (the nodes are fresh). Each "
             "customer connects through the front unrouted (balanced), creates a session, joins and "
             "subscribes; its agent connects with `?gcbSessionServer=<the session's node>`, joins and "
             "subscribes; then the customers publish numbered messages and the agents measure delivery "
             "latency (publish to receipt, in the generator's clock) and check order and loss."
             + (f" **Quick run: {s.realtime_sessions} sessions for {s.realtime_duration} s, not the "
                f"target's {REALTIME_TARGET_SESSIONS:,}: indicative only.**" if s.quick else ""))
    L.append("")
    L.append("| front | workers | sessions (clients) | sent | received | lost | reordered | p50 | p99 | "
             "p99.9 | max | target |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in bench.realtime:
        verdict = realtime_verdict(r)
        dagger = " †" if r["cpu_foreign_pct"] > FOREIGN_LIMIT else ""
        L.append(f"| {r['front']}{dagger} | {r['workers']} | {r['sessions']:,} ({r['clients']:,}) | "
                 f"{r['sent']:,} | {r['received']:,} | {r['lost']} | {r['reordered']} | {r['p50_ms']:g} ms | "
                 f"{r['p99_ms']:g} ms | {r['p999_ms']:g} ms | {r['max_ms']:g} ms | {verdict} |")
    L.append("")
    L.append("Peak RSS per connected client = (peak − RSS before) ÷ clients, the peak being VmHWM after the "
             "run or RSS \"during\" (halfway through the publishing, every client connected), whichever is "
             "higher (VmHWM lags RSS a little).")
    L.append("")
    L.append("| run | process | RSS before | VmHWM before | RSS during | VmHWM after | per client |")
    L.append("|---|---|---|---|---|---|---|")
    for r in bench.realtime:
        run = f"{r['front']} w{r['workers']}"
        L.append(f"| {run} | {r['front']} (fresh) | {mib(r['front_rss_before'])} | {mib(r['front_hwm_before'])} | "
                 f"{mib(r['front_rss_during'])} | {mib(r['front_hwm_after'])} | "
                 f"**{r['front_per_client'] / 1024:.1f} KiB** |")
        for n in r["nodes"]:
            clients = 2 * r.get("sessions_per_node", {}).get(n["name"], 0)
            per = f"{(n['peak'] - n['rss_before']) / clients / 1024:.1f} KiB" if clients else "–"
            L.append(f"| {run} | {n['name']} ({clients:,} clients) | {mib(n['rss_before'])} | "
                     f"{mib(n['hwm_before'])} | {mib(n['rss_during'])} | {mib(n['hwm_after'])} | {per} |")
        fresh = "" if r["nodes_fresh"] else " (nodes not fresh: an earlier run raised their peak)"
        L.append(f"| {run} | nodes, total | | | | | **{r['nodes_per_client'] / 1024:.1f} KiB**{fresh} |")
    L.append("")
    for r in bench.realtime:
        extra = []
        if "setup_s" in r:
            extra.append(f"set up in {r['setup_s']:g} s (not measured), sessions per node "
                         f"{', '.join(f'{k} {v}' for k, v in r['sessions_per_node'].items())}")
        if "acknowledged" in r:
            extra.append(f"publishes acknowledged {r['acknowledged']:,}, refused {r['refused']}, duplicates "
                         f"{r['duplicates']}, malformed {r['malformed']}")
            extra.append(f"the generator's largest send lag (a publish sent later than scheduled: "
                         f"not in the latency) {r['generator_send_lag_max_ms']:g} ms")
        if r.get("agents_missing_messages"):
            extra.append(f"⚠ {r['agents_missing_messages']} agents still missed messages after the drain")
        extra.append(f"machine CPU busy {r['cpu_busy_pct']:g} %, of it {r['cpu_foreign_pct']:g} % by other "
                     f"processes; the generator used {r['generator_cpu_s']:g} s of CPU in {r['elapsed_s']:g} s")
        L.append(f"{r['front']} w{r['workers']}: " + "; ".join(extra) + ".")
        L.append("")
    return L


def render_tunnels(bench):
    s = bench.s
    L = []
    if bench.tunnels:
        n = bench.tunnels[0]["tunnels"]
        L.append(f"WebSocket tunnels: a fresh front, {n:,} WebSockets through it to {TUNNEL_NODE} "
                 f"(`ws-tunnels --connections {n}`: each routed by `?gcbSessionServer={TUNNEL_NODE}`, one "
                 "Bayeux handshake each, which must come from that node), held idle; read a second after "
                 "all are open, and every tunnel must still answer a `/meta/connect` after the hold. "
                 "Summed over the front's processes (nginx: master + workers).")
        L.append("")
        L.append("| front | workers | processes | RSS before | peak RSS (VmHWM) | RSS holding them | "
                 "per tunnel (peak − before) |")
        L.append("|---|---|---|---|---|---|---|")
        for m in bench.tunnels:
            L.append(f"| {m['front']} | {m['workers']} | {m['processes']} | {mib(m['rss_before'])} | "
                     f"{mib(m['hwm_after'])} | {mib(m['rss_after'])} | {m['per_tunnel'] / 1024:.1f} KiB |")
        L.append("")
    if bench.node_ws:
        m = bench.node_ws
        L.append(f"One fresh session-node holding {m['tunnels']:,} WebSocket clients (`ws-tunnels` straight "
                 f"at it, handshaken, idle): RSS {mib(m['rss_before'])} before, {mib(m['rss_after'])} "
                 f"holding them (peak {mib(m['hwm_after'])}), about {m['per_tunnel'] / 1024:.1f} KiB per "
                 "WebSocket client (peak − before).")
        L.append("")
    return L


def render_optimisations():
    path = BENCH_DIR / "optimisations.md"
    if not path.exists():
        return []
    return ["## What was optimised and what it bought", "", path.read_text().rstrip("\n"), ""]


def render_browser():
    # Measured by the browser end-to-end test (integration/tests/browser.rs),
    # not by this harness: kept in bench/browser.md and carried over.
    path = BENCH_DIR / "browser.md"
    if not path.exists():
        return []
    return [path.read_text().rstrip("\n"), ""]


def notes(bench, sat_rows, rate_rows):
    s = bench.s
    out = ["Everything runs on this one machine: wrk, the front, and the three nodes share "
           f"{os.cpu_count()} CPUs, so a front's req/s is the throughput of the whole system with that "
           "front in it, not of the front alone. \"direct\" is wrk straight at one node (node-0, outside "
           "the fronts' pool, so its Create runs do not fill the others), doing the same requests: "
           "the ceiling. Scenarios 2 and 3 do the same node work as 1, whose direct row is their ceiling.",
           "nginx and HAProxy cannot look an owner up: the lookup rows are n/a for them, and in the mixed "
           "scenario their lookups go round-robin, so about 2/3 of those (13 % of all requests) reach a "
           "node that answers 404; those are counted and allowed for them only.",
           "Nodes: --session-idle-timeout 30s --session-retention 10s and --max-sessions 1000000 (not "
           "200000), so that the sessions the Create runs make (up to 80,000/s) expire before they exhaust "
           "it; the bench re-touches its own sessions before every run. The node's sweeper then runs every "
           "second holding the session lock. The memory node uses the defaults and --max-sessions 200000.",
           "nginx memory is the sum over master and worker processes (shared pages counted in each)."]
    foreign = [r["cpu_foreign_pct_max"] for r in sat_rows if "cpu_foreign_pct_max" in r]
    foreign += [r["cpu_foreign_pct_max"] for r in rate_rows]
    out.append(f"Shared machine: {bench.info['background_cpu_pct_at_start']} % of the CPU was busy "
               "before the bench started anything. During each run the bench measures the CPU used by "
               "processes it did not start; a run where they took more than "
               f"{FOREIGN_LIMIT:.0f} % is run again (at most {MAX_RETRIES_PER_RUN} times, while the time "
               f"budget allows) and the cleanest attempt kept: {bench.retries} retries this time."
               + (f" Rows marked † still had up to {max(foreign):.0f} % taken by other processes in "
                  "some round (per-run `cpu_foreign_pct` in results.json)."
                  if foreign and max(foreign) > FOREIGN_LIMIT else ""))
    for r in rate_rows:
        if r["front"] != "direct":
            sat = [x for x in sat_rows if x.get("front") == r["front"] and x.get("workers") == r["workers"]
                   and x.get("scenario") == r["scenario"] and "rps_median" in x]
            if sat and r["target_rps"] > 0.33 * sat[0]["rps_median"]:
                out.append(f"The fixed rate ({r['target_rps']}/s) is more than a third of {r['front']} "
                           f"w{r['workers']}'s saturation rate for {r['scenario']} "
                           f"({sat[0]['rps_median']:.0f}/s): its fixed-rate latency includes queueing.")
    if bench.tls_kinds and s.tls_files:
        neg = "; ".join(f"{label}: {i['version']} {i['cipher']}, ALPN {i['alpn'] or 'none'}, resumption "
                        f"{'yes' if i['resumed'] else '**no**'}" for label, i in bench.tls_info.items())
        out.append(f"TLS fronts ({', '.join(bench.tls_kinds)}): one self-signed ECDSA P-256 certificate for "
                   f"{TLS_SERVER_NAME} and 127.0.0.1 ({s.tls_files.made_by}); nginx `listen … ssl`, "
                   "`ssl_protocols TLSv1.2 TLSv1.3`, `ssl_session_cache shared:…:10m`, `ssl_session_tickets "
                   "on`; HAProxy `bind … ssl crt <certificate + key>` (its default session cache and "
                   "tickets)" + ("; sticky-proxy `--tls-cert --tls-key`" if "sticky-proxy" in bench.tls_kinds
                                 else "") + ". wrk speaks TLS with keep-alive "
                   "connections (one handshake per connection, at its start), so scenario 6 measures the "
                   "record layer, not handshakes. Negotiated with a default Python client, whose second "
                   "connection offered the first one's session: " + (neg or "–") + ".")
    cpu_hz = CLK_TCK
    out.append(f"CPU per request is read in clock ticks ({cpu_hz} per second): a {s.duration:g} s run at "
               "40,000 req/s with the front's CPU about half busy is ~50 ticks, so a single run's figure is "
               "good to a few %; the medians over rounds are steadier.")
    out += security_notes(bench)
    if bench.phase_seconds:
        ph = dict(bench.phase_seconds)
        total = ph.pop("total", None)
        out.append((f"This run took {total:.0f} s" if total else "Time per phase")
                   + ": " + ", ".join(f"{k} {v:.0f} s" for k, v in ph.items())
                   + " (results.json `phase_seconds`).")
    errors = unexpected_errors(bench)
    if errors:
        out.insert(0, "**⚠ Fronts answered errors** (the bench exits with status 1): " + "; ".join(errors)
                   + ". Runs with more than 0.1 % errors stop the bench at once.")
    return out


def security_notes(bench):
    """Issue 8's guards as this run set them, what was skipped, and the time."""
    s = bench.s
    available = sticky_proxy_available(s)
    flags = sticky_proxy_guard_flags(s) if available else []
    out = [f"Access guards (issue 8): every node has a fresh random agent key (`--agent-key-file`; the "
           f"realtime agents join with a credential for `{BENCH_AGENT}`), `--trusted-proxies "
           f"{TRUSTED_PROXIES}`, `--create-budget {BENCH_CREATE_BUDGET}` (the bench creates 150,000+ "
           f"sessions from one address; the guard runs but never refuses; nginx and HAProxy have no "
           f"such limit) and `--cometd-max-clients-per-address {BENCH_COMETD_CLIENTS_PER_ADDRESS}`; "
           f"node-1..node-3 also `--probe-budget {BENCH_MISS_PROBE_BUDGET}` (scenario 5's lookups through "
           "nginx and HAProxy are deliberate misses) and `--token-partition N/3` (no token live on two "
           "nodes at once); every other budget is the default. wrk straight at node-0 and nginx and "
           "HAProxy send no `X-Forwarded-For` from the trusted 127.0.0.1, which a node takes for a proxy's "
           "own lookup and does not budget; sticky-proxy forwards one, so its rows pay the node's probe "
           "check. sticky-proxy: "
           + (" ".join(f"`{f}`" for f in flags[::2]) + " set likewise." if flags
              else "this binary has none of those flags." if available else "not available.")]
    out += [f"Skipped: {skip}." for skip in bench.skipped]
    if s.security_only and bench.phase_seconds:
        out.append(f"This run took {bench.phase_seconds.get('total', 0):.0f} s.")
    return out


def unexpected_errors(bench):
    out = []
    for r in bench.runs:
        if r.get("unexpected_non2xx"):
            label = r["front"] if r["front"] == "direct" else f"{r['front']} w{r['workers']}"
            what = r["scenario"] + (f" at {r['target_rps']}/s" if r["phase"] == "rate" else "")
            seen = f" ({r['bad_statuses']})" if r.get("bad_statuses") else ""
            out.append(f"{label}, {what}, round {r['round'] + 1}: {r['unexpected_non2xx']} of "
                       f"{r['requests']}{seen}")
    return out


def write_results(bench, info):
    s = bench.s
    sat_rows = summarize(bench)
    rate_rows = summarize_rate(bench)
    def setting(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, TlsFiles):
            return {k: str(x) for k, x in vars(v).items()}
        return v

    data = {"machine": info, "settings": {k: setting(v) for k, v in vars(s).items()},
            "saturation": sat_rows, "fixed_rate": rate_rows, "memory_idle_connections": bench.memory,
            "memory_node_sessions": bench.node_memory,
            "websocket_tunnels": bench.tunnels, "websocket_node": bench.node_ws,
            "realtime": bench.realtime, "security": bench.security, "tls": bench.tls_info,
            "nofile": bench.nofile,
            "phase_seconds": bench.phase_seconds, "skipped": bench.skipped, "runs": bench.runs}
    s.results_json.parent.mkdir(parents=True, exist_ok=True)
    s.results_json.write_text(json.dumps(data, indent=1) + "\n")
    md = render_markdown(bench, info, sat_rows, rate_rows)
    s.results_md.write_text(md)
    return md


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def save_partial(bench, info):
    """On a failure, keeps the runs measured so far (not as RESULTS.md)."""
    path = bench.s.out_dir / "partial-runs.json"
    path.write_text(json.dumps({"machine": info, "runs": bench.runs, "realtime": bench.realtime,
                                "security": bench.security,
                                "websocket_tunnels": bench.tunnels, "websocket_node": bench.node_ws,
                                "phase_seconds": bench.phase_seconds}, indent=1) + "\n")
    log(f"runs measured before the failure: {path}")


def prepare_dirs(settings):
    for sub in ("logs", "conf", "data", "run", "run/logs", "latency"):
        (settings.out_dir / sub).mkdir(parents=True, exist_ok=True)
    for f in (settings.out_dir / "logs").glob("*.log"):
        f.unlink()


def main(argv):
    settings = parse_args(argv)
    prepare_dirs(settings)
    if not (settings.bin_dir / "session-node").exists():
        raise BenchError(f"{settings.bin_dir / 'session-node'} missing: cargo build --release --bins")
    make_agent_key(settings)
    if not settings.security_only:
        ensure_tools()
    nofile = raise_nofile()
    info = machine_info()
    procs = Procs(settings.out_dir / "logs")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    t0 = time.time()
    bench = Bench(settings, procs)
    bench.info = info
    bench.nofile = list(nofile)
    try:
        if settings.security_only:
            with bench.phase("security"):
                bench.security_phase()
        else:
            run_phases(bench)
        bench.phase_seconds["total"] = round(time.time() - t0, 1)
        md = write_results(bench, info)
    except BenchError:
        save_partial(bench, info)
        raise
    finally:
        procs.stop_all()
    print()
    print(md)
    log(f"done in {time.time() - t0:.0f}s: {settings.results_md} and {settings.results_json}")
    errors = unexpected_errors(bench)
    if errors:
        raise BenchError("fronts answered errors: " + "; ".join(errors))


def run_phases(bench):
    """Every phase of a full (or quick) run, in order."""
    settings = bench.s
    with bench.phase("setup"):
        bench.start_cluster()
        bench.make_tls()
    if settings.websocket:
        log(f"WebSocket: realtime run ({settings.realtime_sessions} sessions × "
            f"{settings.realtime_rate:g}/s for {settings.realtime_duration} s), then "
            f"{settings.tunnels} tunnels through each fresh front")
        with bench.phase("websocket"):
            bench.websocket_phase()
    if settings.security:
        log("security: credential verification, limiter memory, join cost"
            + (f", guesser {settings.guesser_seconds} s" if settings.guesser_seconds else ""))
        with bench.phase("security"):
            bench.security_phase()
    if settings.websocket or settings.security:
        # These phases outlast the nodes' 30 s idle timeout: the sessions
        # pre-created before them have expired, so make them anew.
        bench.pools = make_pools(settings, bench.nodes, bench.direct_node)
    with bench.phase("fronts"):
        bench.start_fronts()
        bench.warm_up()
    # After the WebSocket phase: the retries get what the budget leaves.
    bench.plan_retries()
    log(f"saturation: {settings.rounds} rounds × scenarios {', '.join(settings.scenarios)}")
    with bench.phase("saturation"):
        bench.saturation_rounds()
    if settings.rate_phase:
        log(f"fixed rate {settings.rate}/s: {settings.rate_rounds} rounds")
        with bench.phase("fixed rate"):
            bench.rate_rounds()
    if settings.memory_workers or settings.node_sessions:
        log("memory")
        with bench.phase("memory"):
            bench.memory_phase()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BenchError as e:
        print(f"\nBENCH FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nbench interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)

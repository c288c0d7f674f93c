"""Issue 10's arithmetic and its rows of the "Targets" table in RESULTS.md:
a front's own CPU per request (user and sys from /proc, per request wrk
counted), the per-round ratios of sticky-proxy to nginx and HAProxy, and
each target met or not, with the measured ratio and by how much.

run.py measures; this module only computes and renders (standard library
only), so that the verdicts can be checked by hand:

    python3 -c 'import sys; sys.path.insert(0, "bench"); import targets; targets.self_test()'
"""

import statistics

# The targets, as issue 10 states them.
CPU_RATIO_MAX = 0.8          # CPU per request ≤ 0.8 × nginx's and HAProxy's
RPS_RATIO_MIN = 1.0          # req/s ≥ both, in the same rounds
TLS_CPU_RATIO_MAX = 1.0      # over TLS: "beat them" (strictly below)
COLD_ADDED_P99_MAX_US = 500  # cold lookup adds < 0.5 ms at p99 over direct Get Session

OTHERS = (("nginx", "nginx"), ("haproxy", "HAProxy"))
# (scenario key, wording, CPU ratio limit): the scenarios issue 10 sets
# targets for. "tls-cookie" only exists when the TLS fronts ran.
TARGET_SCENARIOS = (("cookie", "sticky hit", CPU_RATIO_MAX),
                    ("header", "header affinity", CPU_RATIO_MAX),
                    ("tls-cookie", "sticky hit over TLS", TLS_CPU_RATIO_MAX))


def cpu_per_request(before, after, requests, hz):
    """µs of user, sys and user + sys CPU per request from two (utime,
    stime) snapshots in clock ticks (summed over a front's processes)."""
    if requests <= 0:
        return None
    user = (after[0] - before[0]) * 1e6 / hz / requests
    sys_ = (after[1] - before[1]) * 1e6 / hz / requests
    return {"user_us": user, "sys_us": sys_, "total_us": user + sys_,
            "ticks": [after[0] - before[0], after[1] - before[1]]}


def cpu_medians(runs):
    """Medians over rounds of the per-run figures (each its own median:
    median(user) + median(sys) need not be median(total))."""
    cpus = [r["front_cpu"] for r in runs if r.get("front_cpu")]
    if not cpus:
        return {}
    return {"cpu_user_us": statistics.median(c["user_us"] for c in cpus),
            "cpu_sys_us": statistics.median(c["sys_us"] for c in cpus),
            "cpu_us": statistics.median(c["total_us"] for c in cpus),
            "cpu_us_min": min(c["total_us"] for c in cpus),
            "cpu_us_max": max(c["total_us"] for c in cpus)}


def per_round_ratio(ours, theirs, value):
    """Median and [min, max] of value(ours) ÷ value(theirs) over the rounds
    both ran (same scenario, same worker count); (None, None) if none."""
    by_round = {r["round"]: r for r in theirs}
    ratios = []
    for r in ours:
        t = by_round.get(r["round"])
        if t is None:
            continue
        a, b = value(r), value(t)
        if a is not None and b:
            ratios.append(a / b)
    if not ratios:
        return None, None
    return statistics.median(ratios), [min(ratios), max(ratios)]


def run_cpu(r):
    c = r.get("front_cpu")
    return c["total_us"] if c else None


def verdict_at_most(value, limit, strict=False):
    ok = value < limit if strict else value <= limit
    if ok:
        return "**met**"
    over = value / limit if limit > 0 else float("inf")
    if over >= 2:
        return f"**not met**: {over:.1f}× the limit"
    return f"**not met**: {100 * (over - 1):.1f} % above the limit"


def verdict_at_least(value, limit):
    if value >= limit:
        return "**met**"
    return f"**not met**: {100 * (1 - value / limit):.1f} % short"


def fmt_range(rng):
    return f"rounds {rng[0]:.2f}–{rng[1]:.2f}" if rng else ""


def kib(b):
    return f"{b / 1024:.2f} KiB"


def fmt_us(us):
    if us is None:
        return "–"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def per_connection(m):
    """Peak RSS growth per held connection (bytes)."""
    return (m["hwm_after"] - m["rss_before"]) / max(m["connections"], 1)


def rows(sat_rows, rate_rows, memory, tunnels, workers, cold_rate):
    """Issue 10's rows of the Targets table, as markdown lines (target |
    workers | measured | verdict)."""
    def sat(scenario, front, w):
        return next((r for r in sat_rows if r["scenario"] == scenario and r["front"] == front
                     and r["workers"] == w and "na" not in r), None)

    out = []
    for key, title, cpu_max in TARGET_SCENARIOS:
        for w in workers:
            ours = sat(key, "sticky-proxy", w)
            if not ours:
                continue
            for other, name in OTHERS:
                theirs = sat(key, other, w)
                ratio = ours.get(f"cpu_ratio_{other}")
                if theirs and ratio is not None:
                    strict = cpu_max == TLS_CPU_RATIO_MAX
                    limit = f"< {name}'s" if strict else f"≤ {cpu_max:g} × {name}'s"
                    out.append(f"| {title}: front CPU per request {limit} | {w} | "
                               f"**{ratio:.2f}×** ({ours['cpu_us']:.1f} vs {theirs['cpu_us']:.1f} µs; "
                               f"{fmt_range(ours.get(f'cpu_ratio_{other}_range'))}) | "
                               f"{verdict_at_most(ratio, cpu_max, strict)} |")
            for other, name in OTHERS:
                theirs = sat(key, other, w)
                ratio = ours.get(f"ratio_{other}")
                if theirs and ratio is not None:
                    out.append(f"| {title}: req/s ≥ {name}'s | {w} | **{ratio:.2f}×** "
                               f"({ours['rps_median'] / 1000:.1f}k vs {theirs['rps_median'] / 1000:.1f}k; "
                               f"{fmt_range(ours.get(f'ratio_{other}_range'))}) | "
                               f"{verdict_at_least(ratio, RPS_RATIO_MIN)} |")
    for r in rate_rows:
        if r["scenario"] == "lookup-cold" and r.get("added_p99_vs_direct_us") is not None:
            added = r["added_p99_vs_direct_us"]
            out.append(f"| cold lookup adds < {COLD_ADDED_P99_MAX_US / 1000:g} ms at p99 over a direct "
                       f"Get Session ({r['target_rps']:,} req/s) | {r['workers']} | "
                       f"{'+' if added >= 0 else ''}{fmt_us(added)} (p99 {fmt_us(r['p99_us'])}) | "
                       f"{verdict_at_most(added, COLD_ADDED_P99_MAX_US, strict=True)} |")
    for tls, what, others, strict in ((False, "idle keep-alive connection", (("nginx", "nginx"),), False),
                                      (True, "idle TLS connection", OTHERS, True)):
        for w in workers:
            ours = next((m for m in memory if m["front"] == "sticky-proxy" and m["workers"] == w
                         and bool(m.get("tls")) == tls), None)
            if not ours:
                continue
            for other, name in others:
                theirs = next((m for m in memory if m["front"] == other and m["workers"] == w
                               and bool(m.get("tls")) == tls), None)
                if not theirs:
                    continue
                a, b = per_connection(ours), per_connection(theirs)
                limit = f"< {name}'s" if strict else f"≤ {name}'s"
                ratio = a / b if b > 0 else float("inf")
                ok = (a < b) if strict else (a <= b)
                out.append(f"| RSS per {what} {limit} ({ours['connections']:,} held) | {w} | "
                           f"{kib(a)} vs {kib(b)} (**{ratio:.2f}×**) | "
                           f"{'**met**' if ok else verdict_at_most(ratio, 1.0, strict)} |")
    for w in workers:
        ours = next((m for m in tunnels if m["front"] == "sticky-proxy" and m["workers"] == w), None)
        theirs = next((m for m in tunnels if m["front"] == "haproxy" and m["workers"] == w), None)
        if ours and theirs:
            a, b = ours["per_tunnel"], theirs["per_tunnel"]
            ratio = a / b if b > 0 else float("inf")
            out.append(f"| memory per WebSocket tunnel ≤ HAProxy's ({ours['tunnels']:,} tunnels) | {w} | "
                       f"{kib(a)} vs {kib(b)} (**{ratio:.2f}×**) | "
                       f"{'**met**' if a <= b else verdict_at_most(ratio, 1.0)} |")
    return out


def self_test():
    """The arithmetic on made-up figures (python3 -c ... targets.self_test())."""
    c = cpu_per_request((100, 200), (150, 290), 10_000, 100)
    assert abs(c["user_us"] - 50.0) < 1e-9 and abs(c["sys_us"] - 90.0) < 1e-9, c
    assert cpu_per_request((0, 0), (1, 1), 0, 100) is None
    ours = [{"round": 0, "front_cpu": {"total_us": 8.0}}, {"round": 1, "front_cpu": {"total_us": 12.0}},
            {"round": 2, "front_cpu": {"total_us": 9.0}}]
    theirs = [{"round": 0, "front_cpu": {"total_us": 10.0}}, {"round": 1, "front_cpu": {"total_us": 10.0}}]
    med, rng = per_round_ratio(ours, theirs, run_cpu)
    assert abs(med - 1.0) < 1e-9 and rng == [0.8, 1.2], (med, rng)
    assert per_round_ratio(ours, [], run_cpu) == (None, None)
    assert verdict_at_most(0.8, 0.8) == "**met**"
    assert verdict_at_most(0.8, 0.8, strict=True).startswith("**not met**")
    assert verdict_at_most(1.0, 0.8) == "**not met**: 25.0 % above the limit"
    assert verdict_at_most(0.801, 0.8) == "**not met**: 0.1 % above the limit"
    assert verdict_at_most(235.0, 0.5, strict=True) == "**not met**: 470.0× the limit"
    assert verdict_at_least(0.9, 1.0) == "**not met**: 10.0 % short"
    sat_rows = [{"scenario": "cookie", "front": "sticky-proxy", "workers": 1, "rps_median": 50_000,
                 "cpu_us": 10.0, "cpu_ratio_nginx": 0.75, "cpu_ratio_nginx_range": [0.7, 0.8],
                 "ratio_nginx": 1.05, "ratio_nginx_range": [1.0, 1.1]},
                {"scenario": "cookie", "front": "nginx", "workers": 1, "rps_median": 47_000, "cpu_us": 13.3}]
    memory = [{"front": "sticky-proxy", "workers": 1, "connections": 100, "rss_before": 0,
               "hwm_after": 40 * 1024},
              {"front": "nginx", "workers": 1, "connections": 100, "rss_before": 0, "hwm_after": 50 * 1024}]
    lines = rows(sat_rows, [], memory, [], [1], 1000)
    assert len(lines) == 3, lines
    assert "**0.75×**" in lines[0] and lines[0].endswith("| **met** |"), lines[0]
    assert "**1.05×**" in lines[1] and lines[1].endswith("| **met** |"), lines[1]
    assert "0.40 KiB vs 0.50 KiB" in lines[2] and lines[2].endswith("| **met** |"), lines[2]
    print("targets.self_test: ok")

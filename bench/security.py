"""Issue 8's bench targets: the arithmetic and the "Security" section of
RESULTS.md. run.py runs the measurements (its security phase and
guesser_phase()); this module only judges and renders them.

Targets: a guesser at full speed through the proxy for 10 minutes against
30,000 live sessions finds 0 (extrapolated from a shorter run); credential
verification adds < 20 µs per join; the limiter's memory for 1,000,000
distinct client addresses is bounded and reported.

Standard library only.
"""

import math

TOKEN_SPACE = 10**9             # nine-digit session tokens
GUESSER_SESSIONS = 30_000       # live sessions the guesser aims at
HORIZON_S = 600                 # "for 10 minutes"
VERIFY_TARGET_US = 20.0
# "Finds 0" for an extrapolation: fewer than this many expected finds in 10
# minutes (the chance of any find is then below 1 %).
EXPECTED_FINDS_LIMIT = 0.01


def extrapolate(r, sessions=GUESSER_SESSIONS, horizon_s=HORIZON_S):
    """From one guesser run (its JSON line): the answered guesses (not 429)
    per address per budget window, how many that makes in 10 minutes, and
    the finds to expect from them: answered_in_10min × sessions / 10⁹.

    The window is read off the first refusal: the time of the first 429
    plus its Retry-After. A 10-minute run fits ceil(600 / window) windows,
    plus one more if it starts while a window of the same address is open,
    which is counted (conservative). Every answered guess counts as a
    chance, a join answered 401 too (it cannot tell, but is counted). With
    no 429 at all there is no budget to divide by: linear, answered × 600 /
    duration."""
    duration = r["duration_s"]
    answered = r["answered"]
    p = sessions / TOKEN_SPACE
    window = None
    try:
        if r.get("refused_429") and r.get("first_429_s") is not None:
            window = max(1.0, r["first_429_s"] + float(r["first_retry_after"]))
    except (TypeError, ValueError):
        window = None
    if window:
        windows_run = max(1, math.ceil(duration / window))
        per_window = answered / windows_run
        windows_horizon = math.ceil(horizon_s / window) + 1
        in_horizon = per_window * windows_horizon
        arithmetic = (f"{answered:,} answered (not 429) in {duration:g} s, which is {windows_run} budget "
                      f"window of ≈ {window:.0f} s (first 429 at {r['first_429_s']:g} s + Retry-After "
                      f"{r['first_retry_after']} s): {per_window:,.0f} per address per window; 10 minutes "
                      f"hold at most {windows_horizon} windows (⌈600 / {window:.0f}⌉ + 1 already open), so "
                      f"{in_horizon:,.0f} answered guesses × {sessions:,} / 10⁹ = "
                      f"{in_horizon * p:.2g} expected finds")
    else:
        windows_run = per_window = windows_horizon = None
        in_horizon = answered * horizon_s / duration
        arithmetic = (f"no 429 seen, so no budget: {answered:,} answered in {duration:g} s × 600 / "
                      f"{duration:g} = {in_horizon:,.0f} answered guesses in 10 minutes × {sessions:,} / "
                      f"10⁹ = {in_horizon * p:.2g} expected finds")
    return {
        "window_s": window,
        "answered_per_window": per_window,
        "windows_in_10min": windows_horizon,
        "answered_in_10min": in_horizon,
        "expected_finds_10min": in_horizon * p,
        # What the same send rate would find with nothing refusing it.
        "expected_finds_10min_unlimited": r["guesses_per_s"] * horizon_s * p,
        "arithmetic": arithmetic,
    }


def guesser_target_met(runs):
    return bool(runs) and all(r["hits"] == 0 and r["expected_finds_10min"] < EXPECTED_FINDS_LIMIT
                              for r in runs)


def verdict(ok):
    return "**met**" if ok else "**not met**"


def mib(b):
    return f"{b / 2**20:.1f} MiB"


def verify_rows(sec):
    return (sec.get("verify") or {}).get("verify", [])


def join_run(sec, rust_log):
    return next((r for r in (sec.get("join") or {}).get("runs", []) if r.get("rust_log") == rust_log), None)


def limiter_bounded(m):
    """Keys never above the capacity, and RSS flat (< 5 % of its growth)
    over the second half of the addresses."""
    grown = max(m["rss_after"] - m["rss_before"], 1)
    return m["max_keys_held"] <= m["capacity"] and m["rss_growth_second_half"] <= 0.05 * grown


def target_rows(sec):
    rows = []
    hs = next((v for v in verify_rows(sec) if v["algorithm"] == "HS256"), None)
    join = join_run(sec, "warn")
    if hs or join:
        added = join["added_median_of_rounds_us"] if join else None
        measured = []
        if hs:
            measured.append(f"verification alone {hs['median_us']:g} µs")
        if join:
            w, wo = join["with_credential"], join["without_credential"]
            measured.append(f"a REST join on a real node +{added:g} µs (median of per-round differences: "
                            f"{w['median_us']:g} µs with, {wo['median_us']:g} µs without)")
        ok = (hs is None or hs["median_us"] < VERIFY_TARGET_US) and (added is None or added < VERIFY_TARGET_US)
        rows.append(("credential verification adds < 20 µs per join: HS256 (`--agent-key-file`)",
                     "; ".join(measured), verdict(ok)))
    others = [v for v in verify_rows(sec) if v["algorithm"] != "HS256"]
    if others:
        rows.append(("… with public keys (`--agent-public-keys`), the first join of a credential",
                     ", ".join(f"{v['algorithm']} {v['median_us']:g} µs" for v in others)
                     + " per signature check",
                     verdict(all(v["median_us"] < VERIFY_TARGET_US for v in others))))
        rows.append(("… with public keys, every later join with the same credential",
                     ", ".join(f"{v['algorithm']} {v.get('repeat_us', float('nan')):g} µs" for v in others)
                     + " (remembered until it expires)",
                     verdict(all(v.get("repeat_us", 1e9) < VERIFY_TARGET_US for v in others))))
    limiter = sec.get("limiter") or []
    full = next((m for m in limiter if m["addresses"] >= 1_000_000 and m["capacity"] >= 1_000_000), None)
    small = [m for m in limiter if m["capacity"] < m["addresses"]]
    if full:
        text = (f"{mib(full['rss_after'] - full['rss_before'])} for {full['keys_held']:,} addresses "
                f"({full['bytes_per_key']:.0f} bytes each)")
        for m in small:
            text += (f"; capacity {m['capacity']:,}: at most {m['max_keys_held']:,} keys held, RSS "
                     f"{mib(m['rss_after'])} and +{mib(max(m['rss_growth_second_half'], 0))} over the "
                     f"second half of {m['addresses']:,} addresses")
        rows.append(("the limiter's memory for 1,000,000 addresses: bounded and reported", text,
                     verdict(all(limiter_bounded(m) for m in small)) if small else "reported"))
    g = sec.get("guesser")
    title = (f"a guesser at full speed through the proxy for 10 minutes against "
             f"{GUESSER_SESSIONS:,} live sessions finds 0")
    if g:
        text = "; ".join(f"{r['label']}: {r['hits']} found in {r['duration_s']:g} s, "
                         f"{r['expected_finds_10min']:.2g} expected in 10 minutes" for r in g["runs"])
        rows.append((title, text, verdict(g["target_met"])))
    else:
        rows.append((title, "not measured in this run (`run.py --guesser-seconds N`: needs sticky-proxy "
                     "with its budgets)", "–"))
    return rows


def render(sec, pinned):
    """The "Security" section of RESULTS.md (a list of lines)."""
    L = ["## Security (issue 8)", "",
         "| target | measured | verdict |", "|---|---|---|"]
    L += [f"| {a} | {b} | {c} |" for a, b, c in target_rows(sec)]
    L.append("")
    rows = verify_rows(sec)
    if rows:
        v = sec["verify"]
        L += ["**Credential verification** (`access-cost verify`): `access::Verifier::verify` of a valid "
              f"credential, µs per call, median of {v.get('batches', '')} batches of "
              f"{rows[0]['batch']:,} calls (min–max of the batches); keys made for the run with openssl.", "",
              "| algorithm | key | credential bytes | µs, first sight (signature) | min–max | µs, seen before (cached) |",
              "|---|---|---|---|---|---|"]
        for r in rows:
            L.append(f"| {r['algorithm']} | {r['key']} | {r['token_bytes']} | **{r['median_us']:g}** | "
                     f"{r['min_us']:g}–{r['max_us']:g} | {r.get('repeat_us', float('nan')):g} |")
        L += ["", f"A forged HS256 credential (right shape, wrong signature) costs "
              f"{v['hs256_bad_signature_us']:g} µs to refuse."
              + (" Skipped: " + "; ".join(v["skipped"]) + "." if v.get("skipped") else ""), ""]
    runs = (sec.get("join") or {}).get("runs", [])
    if runs:
        r0 = runs[0]
        L += ["**A join with and without a credential** (`access-cost join`): two fresh nodes, one with "
              "`--agent-key-file` joined with `Authorization: Bearer`, one with `--agent-auth none` joined "
              "without (both `--create-budget off --probe-budget off`, so only the credential differs); per "
              f"round {r0['joins_per_round']:,} sessions created on each, then each joined once as agent over "
              "one keep-alive connection, one request at a time; the nodes take turns, "
              f"{r0['rounds']} rounds."
              + (f" The nodes and the client are pinned to CPU {pinned}: across two cores a round trip on "
                 "this VM is bimodal (~20 µs or ~90 µs, by where the scheduler puts each side), which "
                 "drowns a few µs." if pinned else ""), "",
              "| RUST_LOG | with credential: median / mean / p99 | without: median / mean / p99 | "
              "added (median of per-round differences) | added (medians) |", "|---|---|---|---|---|"]
        for r in runs:
            w, wo = r["with_credential"], r["without_credential"]
            L.append(f"| `{r['rust_log']}` | {w['median_us']:g} / {w['mean_us']:g} / {w['p99_us']:g} µs | "
                     f"{wo['median_us']:g} / {wo['mean_us']:g} / {wo['p99_us']:g} µs | "
                     f"**{r['added_median_of_rounds_us']:+g} µs** | {r['added_median_us']:+g} µs |")
        L += ["", "`warn`: neither node logs a join, so the difference is the verification (and the longer "
              "request); `info` (the default) adds the node's `agent joined` log line, written for "
              "credentialed joins only. A join without a credential on the checking node answered "
              f"{r0['without_credential_status']} (it does check).", ""]
    limiter = sec.get("limiter") or []
    if limiter:
        L += ["**Limiter memory** (`access-cost limiter`): a fresh process, `access::Budgets` with the "
              "default probe budget (20/10m), one miss spent for each of N distinct IPv4 addresses; RSS "
              "from `/proc/self/status`.", "",
              "| capacity | addresses | keys held (max) | RSS before | RSS after | per key | RSS growth, "
              "second half | a new address refused after |", "|---|---|---|---|---|---|---|---|"]
        for m in limiter:
            refused = m["new_address_refused_after"]
            L.append(f"| {m['capacity']:,} | {m['addresses']:,} | {m['keys_held']:,} ({m['max_keys_held']:,}) "
                     f"| {mib(m['rss_before'])} | {mib(m['rss_after'])} | {m['bytes_per_key']:.0f} B | "
                     f"{mib(m['rss_growth_second_half'])} | "
                     + (f"{refused} misses |" if refused else "never (budget lost) |"))
        L += ["", "The bound is `--limiter-capacity` (default 1,000,000) per budget: a node keeps two (probe "
              "and create), so at the default capacity up to about twice the 1,000,000 figure; beyond it "
              "the least useful keys are forgotten. \"A new address refused after\": after all the others, "
              "a fresh address still gets exactly its budget.", ""]
    g = sec.get("guesser")
    if g:
        L += [f"**Guessing** (`guesser`, {g['connections']} keep-alive connections, Get and join by turns, "
              f"{g['seconds']} s per run) through sticky-proxy with its default budgets, in front of three "
              f"nodes (`--token-partition i/3`) holding {g['sessions']:,} live sessions; the guesser sends "
              "from its own loopback address (127.0.0.2, then 127.0.0.3), which neither the proxy nor the "
              "nodes trust.", "",
              "| run | guesses | guesses/s | statuses | found | first 429 | Retry-After | expected finds in "
              "10 min | with nothing refusing |", "|---|---|---|---|---|---|---|---|---|"]
        for r in g["runs"]:
            statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
            first = f"{r['first_429_s']:g} s" if r.get("first_429_s") is not None else "none"
            L.append(f"| {r['label']} | {r['guesses']:,} | {r['guesses_per_s']:,.0f} | {statuses} | "
                     f"{r['hits']} | {first} | {r.get('first_retry_after') or '–'} s | "
                     f"**{r['expected_finds_10min']:.2g}** | {r['expected_finds_10min_unlimited']:.3g} |")
        L.append("")
        for r in g["runs"]:
            L.append(f"- {r['label']}: {r['arithmetic']}.")
        L += ["", f"\"Finds 0\" over 10 minutes is judged met when the run found none and fewer than "
              f"{EXPECTED_FINDS_LIMIT:g} finds are to be expected (a chance below 1 %); a hit is a Get "
              "answered 200 or 410, or a join answered anything but 404, 401 or 429.", ""]
    return L

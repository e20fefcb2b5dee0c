#!/usr/bin/env python3
"""The runtime figures of issue 17, measured as users run Grove.

Every figure comes from fresh OS processes (default `grove::node` options but the scheduler
count), RUNS of them (default 3), reported as the median; bench/fiber_baseline runs in the
same session and each Grove figure is given as a ratio to its plain-fiber counterpart. With
--busy, ping-pong, ring and call are measured again while bench/hog keeps two threads
spinning at normal priority, and each is given as a ratio busy / quiet.

    bench/runtime.py <build-dir> [--runs N] [--busy] [--small]

Prints one JSON object per line: {"bench":"runtime", "figure":..., "median":..., ...}.
Exits non-zero if a benchmark fails.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys


def run(exe, args, pick, timeout=600):
    """Runs exe once; returns the value of the first JSON line for which pick returns one."""
    out = subprocess.run([exe] + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{exe} {' '.join(args)} exited {out.returncode}: {out.stderr[-400:]}")
    for line in out.stdout.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "error" in obj:
            raise RuntimeError(f"{exe}: {obj}")
        v = pick(obj)
        if v is not None:
            return v
    raise RuntimeError(f"{exe} {' '.join(args)}: no figure in {out.stdout[-400:]}")


def field(name, **match):
    def pick(obj):
        if all(obj.get(k) == v for k, v in match.items()) and name in obj:
            return float(obj[name])
        return None

    return pick


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="also measure beside bench/hog")
    ap.add_argument("--small", action="store_true", help="CI smoke sizes")
    a = ap.parse_args()
    b = os.path.join(a.build, "bench")
    small = ["--small"] if a.small else []

    def exe(name):
        return os.path.join(b, name)

    # figure name -> (program, args, pick, unit, baseline figure name or None)
    grove = {}
    for s in (1, 2):
        grove[f"ping_pong/{s}"] = ("ping_pong", ["--schedulers", str(s), "--repeat", "1"],
                                   field("ns_per_round_trip"), "ns", "ping_pong")
        grove[f"ring/{s}"] = ("ring", ["--schedulers", str(s), "--repeat", "1"], field("ns_per_hop"), "ns", "ring")
        grove[f"fan_in/{s}"] = ("fan_in", ["--schedulers", str(s), "--repeat", "1"],
                                field("million_msgs_per_sec"), "M/s", "fan_in")
    grove["call/1/1"] = ("gen_server", ["--part", "call", "--clients", "1", "--schedulers", "1"],
                         field("ns_per_call"), "ns", "call")
    for c in (1, 2, 4):
        grove[f"call/2/{c}"] = ("gen_server", ["--part", "call", "--clients", str(c), "--schedulers", "2"],
                                field("ns_per_call"), "ns", "call")
    for lookers in (1, 2):
        grove[f"whereis/{lookers}"] = ("gen_server", ["--part", "whereis", "--lookers", str(lookers)],
                                       field("million_lookups_per_sec"), "M/s", None)
    baseline = {
        "ping_pong": ("fiber_baseline", ["--only", "ping_pong", "--repeat", "1"], field("ns_per_round_trip")),
        "ring": ("fiber_baseline", ["--only", "ring", "--repeat", "1"], field("ns_per_hop")),
        "fan_in": ("fiber_baseline", ["--only", "fan_in", "--repeat", "1"], field("million_msgs_per_sec")),
        "call": ("fiber_baseline", ["--only", "call", "--repeat", "1"], field("ns_per_call")),
    }
    busy_figures = ["ping_pong/2", "ring/2", "call/2/2", "call/2/4"]

    def measure(prog, args, pick):
        return [run(exe(prog), args + small, pick) for _ in range(a.runs)]

    status = 0
    base = {}
    for name, (prog, args, pick) in baseline.items():
        try:
            runs = measure(prog, args, pick)
            base[name] = statistics.median(runs)
            print(json.dumps({"bench": "runtime", "figure": "fiber_baseline/" + name, "median": base[name],
                              "runs": runs}), flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(json.dumps({"bench": "runtime", "figure": "fiber_baseline/" + name, "error": str(e)}), flush=True)
            status = 1
    quiet = {}
    for name, (prog, args, pick, unit, bname) in grove.items():
        try:
            runs = measure(prog, args, pick)
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"bench": "runtime", "figure": name, "error": str(e)}), flush=True)
            status = 1
            continue
        med = statistics.median(runs)
        quiet[name] = med
        row = {"bench": "runtime", "figure": name, "unit": unit, "median": med, "runs": runs}
        if bname and bname in base and base[bname] > 0:
            # Times: grove / baseline (lower is better). Rates: baseline / grove, so that in both
            # cases 1.0 means as fast as plain fibers and 2.0 means twice as slow.
            row["ratio_to_fibers"] = round(med / base[bname] if unit == "ns" else base[bname] / med, 2)
        print(json.dumps(row), flush=True)
    if a.busy:
        hog = subprocess.Popen([exe("hog"), "--threads", "2"], stdout=subprocess.DEVNULL)
        try:
            for name in busy_figures:
                prog, args, pick, unit, _ = grove[name]
                try:
                    runs = measure(prog, args, pick)
                except Exception as e:  # noqa: BLE001
                    print(json.dumps({"bench": "runtime", "figure": name, "busy": True, "error": str(e)}), flush=True)
                    status = 1
                    continue
                med = statistics.median(runs)
                row = {"bench": "runtime", "figure": name, "busy": True, "unit": unit, "median": med, "runs": runs}
                if quiet.get(name):
                    row["busy_over_quiet"] = round(med / quiet[name], 2)
                print(json.dumps(row), flush=True)
        finally:
            hog.send_signal(signal.SIGKILL)
            hog.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())

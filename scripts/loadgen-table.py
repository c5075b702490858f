#!/usr/bin/env python3
"""Prints loadgen reports as one Markdown table, a row per report.

    scripts/loadgen-table.py target/loadgen/series-*/*.json

Each REPORT.json is read with the REPORT.txt beside it, whose header (written by
scripts/loadgen.sh) names the command and which --server-pid was kubecache and which etcd.
The baseline column is the etcd-direct run of the same report, when it was asked for.
"""

import json
import re
import sys
from pathlib import Path

MIB = 1024 * 1024


def header(txt_path):
    command, pids = "", {}
    if txt_path.exists():
        for line in txt_path.read_text().splitlines()[:4]:
            if line.startswith("# kubecache-loadgen"):
                command = line[len("# kubecache-loadgen") :].strip()
            elif line.startswith("# pids "):
                pids = dict(re.findall(r"(\w+)=(\d+)", line))
    return command, pids


def headline(report):
    """The scenario's main figure, as (text, number for the ratio, higher_is_better)."""
    scenario = report.get("scenario")
    if report.get("error"):
        return f"failed: {report['error']}", None, True
    if scenario == "fanout":
        p99 = (report.get("latency_from_send_ms") or {}).get("p99")
        return f"p99 from send {p99} ms", p99, False
    if scenario == "list":
        mbs = report.get("list_mb_per_sec")
        return f"{mbs} MB/s", mbs, True
    if scenario == "writes":
        cps = report.get("creates_per_sec")
        return f"{cps} creates/s", cps, True
    if scenario == "relist-storm":
        secs = (report.get("storm") or {}).get("seconds_to_all_watching")
        return f"all watching in {secs} s", secs, False
    return "?", None, True


def correctness(report):
    events = report.get("events") or {}
    if not events.get("expected"):
        errors = report.get("errors") or {}
        return f"{sum(v for v in errors.values() if isinstance(v, int))} errors"
    return "{missed}/{duplicated}/{out_of_order} of {expected}".format(**events)


def process(report, pid):
    found = (report.get("processes") or {}).get(str(pid)) if pid else None
    if not found:
        return "—"
    return f"{found['cores']:.2f} cores, {found['peak_rss_bytes'] / MIB:.0f} MiB"


def main(paths):
    print(
        "| command | kubecache | etcd direct | ratio | missed/dup/ooo or errors "
        "| kubecache CPU, peak RSS | etcd | loadgen |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in map(Path, paths):
        report = json.loads(path.read_text())
        command, pids = header(path.with_suffix(".txt"))
        text, value, higher = headline(report)
        baseline = report.get("baseline")
        base_text, ratio = "—", "—"
        if baseline:
            base_text, base_value, _ = headline(baseline)
            if value and base_value:
                ratio = f"{(value / base_value if higher else base_value / value):.2f}×"
        loadgen = report.get("loadgen") or {}
        print(
            f"| `{command}` | {text} | {base_text} | {ratio} | {correctness(report)} "
            f"| {process(report, pids.get('kubecache'))} | {process(report, pids.get('etcd'))} "
            f"| {loadgen.get('cores', 0):.2f} cores |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

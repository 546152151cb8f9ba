"""The failure-mode table's times: runs the fault tier (``tests/faults/test_rows.py``) and prints,
per row, the seconds from the fault to the first answer and from the repair to the first
success, with the row's outcome (a failing row's times are those it reached before failing: its
"answer" was not the clear one, or came too late).

Needs what the tier needs: PostgreSQL on 127.0.0.1:5432 (else its rows skip), ``redis-server``,
clamd (else its rows skip), and the right to mount a tmpfs (else the disk row skips).

Run: uv run python -m bench.faults [-k EXPRESSION]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def outcomes(junit: Path) -> dict[str, str]:
    """Test id (``name[params]``) → passed, failed, skipped."""
    result: dict[str, str] = {}
    if not junit.exists():
        return result
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            result[name] = "failed"
        elif case.find("skipped") is not None:
            result[name] = "skipped"
        else:
            result[name] = "passed"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="expression", help="pytest -k: only the matching rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        times_path = Path(scratch) / "fault-times.json"
        junit = Path(scratch) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults/test_rows.py",
            "-q",
            f"--junitxml={junit}",
        ]
        if args.expression:
            command += ["-k", args.expression]
        env = {**os.environ, "ORBSURV_FAULT_TIMES": str(times_path)}
        completed = subprocess.run(command, cwd=ROOT, env=env, check=False)
        times = json.loads(times_path.read_text()) if times_path.exists() else {}
        results = outcomes(junit)
    failed = sum(1 for outcome in results.values() if outcome == "failed")
    width = max([len(row) for row in times] + [20])
    print()
    print(f"{'row':<{width}}  {'first clear answer (s)':>22}  {'healed after (s)':>16}  outcome")
    for row in sorted(times):
        entry = times[row]
        answer = f"{entry['answer']:.2f}" if "answer" in entry else "-"
        healed = f"{entry['healed']:.2f}" if "healed" in entry else "-"
        outcome = "passed" if entry.get("passed") else "FAILED (times reached before failing)"
        print(f"{row:<{width}}  {answer:>22}  {healed:>16}  {outcome}")
    print(f"\n{len(results)} rows run, {failed} failed (pytest exit code {completed.returncode})")
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())

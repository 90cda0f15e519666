#!/usr/bin/env python3
"""Sums meson testlog.json files into the closing line "N passed, N failed, N skipped".

Exit status: 0 when nothing failed and at least one test passed, 1 otherwise. A build step that
failed (--failed-steps) counts as a failure, so a broken build can never print an all-green line.
"""
import argparse
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failed-steps", type=int, default=0)
    parser.add_argument("logs", nargs="*")
    args = parser.parse_args()

    passed, failed, skipped = 0, args.failed_steps, 0
    failures = []
    for path in args.logs:
        try:
            with open(path, encoding="utf-8") as log:
                for line in log:
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    result = record.get("result")
                    if result in PASSED:
                        passed += 1
                    elif result in SKIPPED:
                        skipped += 1
                    else:
                        failed += 1
                        failures.append(f"{path}: {record.get('name')}: {result}")
        except FileNotFoundError:
            failed += 1
            failures.append(f"{path}: missing (the suite did not run)")
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

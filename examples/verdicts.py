"""Verdicts on the example archive without listening: its true labels, read from the file names,
written as Label Studio's answers to the tasks `soundtag export --format labelstudio` wrote, for
`soundtag import-reviews`. Stands in for the review page in demos and in the documentation's tests.

    python -m examples.verdicts tasks.json reviewed.json
"""

from __future__ import annotations

import json
import sys

# examples/make_archive.py names each recording for what it holds; the long one mixes three.
TRUTH = {"beeps": "beeping", "chord": "music", "rain": "rain", "siren": "siren"}


def main(tasks_path: str, out_path: str) -> None:
    with open(tasks_path) as f:
        tasks = json.load(f)
    answered = 0
    for task in tasks:
        name = task["data"]["uri"].rsplit("/", 1)[-1]
        label = next((label for stem, label in TRUTH.items() if name.startswith(stem)), None)
        if label:
            task["annotations"] = [{"completed_by": 1, "result": [
                {"from_name": "decision", "to_name": "audio", "type": "choices", "value": {"choices": [label]}}]}]
            answered += 1
    with open(out_path, "w") as f:
        json.dump(tasks, f)
    print(f"answered {answered} of {len(tasks)} tasks → {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

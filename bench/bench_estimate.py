"""The stratified estimate (soundtag/estimate.py) on held synthetic data with known truth: over
many seeds, how often its 95% interval covers the true prevalence, and how wide it is, against
the interval from the same number of uniformly random verdicts.

    .venv/bin/python -m bench.bench_estimate                 # 500 seeds; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_estimate --seeds 50      # prints only

Each seed draws an archive of windows: a label held by ``--prevalence`` of them, its windows'
scores from a classifier that separates it only partly (held: normal 0.55 ± 0.15; not held:
0.30 ± 0.10), tagged where the score passes 0.45. The stratified sample validates ``--verdicts``
windows, an equal number per bin (validation_order); the uniform one as many at random, its
interval the Beta(½, ½) (Jeffreys) posterior of its share. Truth is the archive's own share.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.report import loadavg, write_section
from soundtag.estimate import bins_of, edges, estimate, strata, validation_order


def archive(rng: np.random.Generator, windows: int, prevalence: float) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.random(windows) < prevalence
    scores = np.where(truth, rng.normal(0.55, 0.15, windows), rng.normal(0.30, 0.10, windows))
    return scores, truth


def one(seed: int, windows: int, prevalence: float, verdicts: int) -> tuple[float, tuple, tuple]:
    rng = np.random.default_rng(seed)
    scores, truth = archive(rng, windows, prevalence)
    tagged = scores >= 0.45
    picked = validation_order(scores.tolist(), seed=str(seed))[:verdicts]
    found = estimate(strata(bins_of(scores, edges(scores)), tagged, {n: bool(truth[n]) for n in picked}), seed=seed)
    uniform = rng.choice(windows, verdicts, replace=False)
    pos = int(truth[uniform].sum())
    low, high = np.quantile(rng.beta(pos + 0.5, verdicts - pos + 0.5, 10_000), [0.025, 0.975])
    return float(truth.mean()), (found.prevalence.low, found.prevalence.high), (low, high)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--windows", type=int, default=50_000)
    parser.add_argument("--prevalence", type=float, default=0.05)
    parser.add_argument("--verdicts", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    runs = [one(seed, args.windows, args.prevalence, args.verdicts) for seed in range(args.seeds)]
    covered = np.mean([lo <= true <= hi for true, (lo, hi), _ in runs])
    uniform_covered = np.mean([lo <= true <= hi for true, _, (lo, hi) in runs])
    width = np.mean([hi - lo for _, (lo, hi), _ in runs])
    uniform_width = np.mean([hi - lo for _, _, (lo, hi) in runs])
    narrower = np.mean([(s[1] - s[0]) < (u[1] - u[0]) for _, s, u in runs])
    lines = [
        f"| stratified ({args.verdicts} verdicts, {args.verdicts // 4} per bin) | {covered:.1%} | {width:.4f} |",
        f"| uniform ({args.verdicts} random verdicts) | {uniform_covered:.1%} | {uniform_width:.4f} |"]
    section = f"""## Estimates from a validated sample (issue 29)

Command: `.venv/bin/python -m bench.bench_estimate --seeds {args.seeds} --windows {args.windows} --prevalence {args.prevalence} --verdicts {args.verdicts}` ({time.monotonic() - started:.0f} s, load {loadavg()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).
Synthetic archives of {args.windows:,} windows, the label in {args.prevalence:.0%} of them, scores from a classifier that separates it only partly; one archive per seed.

| sample | 95% interval covers the true prevalence | mean interval width |
|---|---|---|
{chr(10).join(lines)}

The stratified interval is narrower than the uniform one in {narrower:.0%} of the seeds.
"""
    print(section)
    if args.seeds >= 200:
        write_section("bench_estimate", section)


if __name__ == "__main__":
    main()

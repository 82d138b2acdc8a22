"""Progress on the terminal: the bar of a labeling run (``run``, ``relabel``) and of a followed
job (``status --watch``), and the failures listed after a run."""

from __future__ import annotations

import time

from soundtag.cli.options import console, styled
from soundtag.output import counted
from soundtag.sources.uris import readable, shown


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.1f} files/s"), TimeRemainingColumn(),
                    TextColumn("[red]{task.fields[failed]} failed"), console=console)


class RunProgress:
    """What `soundtag run` shows while it works: the plan, then a bar whose rate counts from the
    first result (after the model has loaded), so it is the labeling rate; without a model to load
    (``relabel``), from the start, as the summary's. The bar appears only once there is something to label, so an
    error while listing prints its one line alone."""

    def __init__(self, about: str, loads_model: bool = True):
        from soundtag.sources.walk import WalkReport

        self.progress, self.about, self.walked = progress_bar(), about, WalkReport()
        self.failures: list[tuple[str, str]] = []
        self.bar = None
        self.loads_model = loads_model
        self.begun = self.last = time.monotonic()
        self.counted = 0  # results since self.begun

    def planned(self, plan) -> None:
        console.print(f"run {plan.job_id}: {counted(plan.found, 'file')}, {plan.todo} to label, {plan.skipped} skipped "
                      f"({self.about})" + (f"; left out: {self.walked}" if str(self.walked) else ""))
        if plan.todo:
            self.bar = self.progress.add_task("loading the model" if self.loads_model else "starting",
                                              total=plan.todo, rate=0.0, failed=0)
            self.progress.start()

    def close(self) -> None:
        if self.bar is not None:  # rich prints a newline when stopping a bar never started
            if not self.loads_model and self.last > self.begun:
                # Counted from the plan, the span holds all the work: the floor below is not needed.
                self.progress.update(self.bar, rate=self.counted / (self.last - self.begun))
            self.progress.stop()

    def result(self, result) -> None:
        if not result.ok:
            self.failures.append((result.uri, result.error))
        self.last = time.monotonic()
        if self.loads_model and not self.progress.tasks[self.bar].completed:
            self.begun = self.last  # the first result: the model has loaded
        else:
            self.counted += 1
        # A batch's results arrive together: over less than a second, a rate would be noise
        # (thousands of files/s for a batch of 16).
        self.progress.update(self.bar, description="labeling", advance=1, failed=len(self.failures),
                             rate=self.counted / max(self.last - self.begun, 1.0))


def print_failures(failures: list[tuple[str, str]]) -> None:
    for uri, error in failures[:20]:
        console.print(styled("red", "  failed", f" {readable(uri)}: {shown(error)}"))
    if len(failures) > 20:
        console.print(f"  ... and {len(failures) - 20} more: select uri, error from files where status = 'failed'")


def print_left_out(problems: list[str]) -> None:
    """What a command skipped and why (a file it may not read, a damaged row), one line each."""
    for problem in problems[:20]:
        console.print(styled("yellow", "  left out", f" {shown(problem)}"))
    if len(problems) > 20:
        console.print(f"  ... and {len(problems) - 20} more")

"""Quality: ``evaluate`` (a job's labels against a truth) and ``calibrate`` (thresholds for a
target precision)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console, fail, job_or_newest, open_engine, out
from soundtag.output import counted
from soundtag.settings import load_settings


def _plot_paths(plot: Path) -> tuple[Path, Path]:
    """Where --plot writes the confusion matrix (the path given) and the precision-recall curves
    (the same name with -pr)."""
    return plot, plot.with_name(f"{plot.stem}-pr{plot.suffix or '.png'}")


def _no_truth_way_out(truth: str) -> str:
    if truth == "reviews":
        return "review some with `soundtag review`"
    return ("compare with reviewers' verdicts (--truth reviews), or label files that carry a truth "
            "(`soundtag run --truth-column COLUMN`: hf:// datasets, audiofolder metadata)")


def evaluate(
    job_id: Annotated[Optional[str], typer.Argument(help="Job id from `soundtag run`, `enqueue` or `jobs` "
                                                    "(default: the newest).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the confusion matrix to this PNG, and the "
                                                 "precision-recall curves next to it (NAME-pr.png).")] = None,
    truth: Annotated[str, typer.Option("--truth", help="files: the truth files carry (--truth-column); reviews: "
                                       "the verdicts of `soundtag review`.")] = "files",
    database: Database = None,
) -> None:
    """Compare a job's labels with the truth its files carry (see --truth-column) or with
    reviewers' verdicts: accuracy and top-5 accuracy of the rank-1 label, coverage and accuracy of
    the decisions, and precision and recall per class, of the rank-1 label and at the thresholds."""
    from rich.table import Table

    from db.jobs import job_spec
    from db.predictions import job_cosines, job_predictions
    from db.taxonomies import taxonomy_with_policy
    from soundtag.evaluation import curves, evaluate as score, plot_confusion, plot_curves

    if truth not in {"files", "reviews"}:
        fail(f"--truth {truth!r}: use files or reviews")
    engine = open_engine(load_settings(database_url=database))
    info = job_or_newest(engine, job_id, "evaluate")
    job_id = info.job_id
    spec = job_spec(engine, job_id)
    predictions = job_predictions(engine, job_id, k=5, reviewed=truth == "reviews")
    result = score(((p.truth, p.labels, p.decision, p.tags) for p in predictions), spec.taxonomy.names, k=5)
    windows = score(((p.truth, p.labels, p.decision, p.tags) for p in predictions if p.window),
                    spec.taxonomy.names, k=5).files
    if not result.files:
        fail(f"job {job_id}: no file has both a result and a truth naming one of its labels ({result.no_truth} "
              f"without truth, {sum(result.missing.values())} with other truths, {result.unlabeled} without result); "
              + _no_truth_way_out(truth))
    policy = taxonomy_with_policy(engine, spec.taxonomy_id).policy()
    thresholds = {node.label: None if node.background else node.threshold for node in policy}
    shown_threshold = {node.label: "background" if node.background else "rank 1" if node.threshold is None
                       else f"{node.threshold:.4f}" for node in policy}
    percent = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    compared = counted(result.files - windows, "file") + (f" and {counted(windows, 'reviewed window')}"
                                                           if windows else "")
    out.print(f"job {job_id}: {compared} compared (model {info.model}, taxonomy {info.taxonomy})")
    out.print(f"accuracy {result.accuracy:.1%} ({result.top1}/{result.files}), top-{result.k} accuracy "
              f"{result.topk_accuracy:.1%} ({result.topk}/{result.files})")
    out.print(f"coverage {result.coverage:.1%} ({result.decided}/{result.files} decided, "
              f"{result.files - result.decided} abstained), accuracy on covered files "
              f"{percent(result.covered_accuracy)} ({result.decided_correct}/{result.decided})")
    table = Table("class", "support", "rank-1", "precision", "recall", "threshold", "tagged", "precision@t",
                  "recall@t")
    for c in result.classes:
        table.add_row(c.label, str(c.support), str(c.predicted), percent(c.precision), percent(c.recall),
                      shown_threshold[c.label], str(c.tagged), percent(c.tag_precision), percent(c.tag_recall))
    out.print(table)
    if result.single < result.files:
        out.print(f"{result.files - result.single} files have several truths: the rank-1 label is right when it is "
                  f"one of them; the confusion matrix counts the {result.single} with one")
    if result.missing:
        out.print(f"left out: {sum(result.missing.values())} files whose truth is no taxonomy label: "
                  + ", ".join(f"{name} ({n})" for name, n in result.missing.items()))
    if result.unlabeled or result.no_truth:
        out.print(f"left out: {result.unlabeled} files without a result, {result.no_truth} without truth")
    if plot:
        confusion, pr = _plot_paths(plot)
        cosines = job_cosines(engine, job_id, reviewed=truth == "reviews")
        found = curves(((t, by_label) for _, t, by_label in cosines), spec.taxonomy.names)
        try:
            plot_confusion(result, confusion,
                           title=f"job {job_id}: accuracy {result.accuracy:.1%} on {result.files} files")
            plot_curves(found, thresholds, pr, title=f"job {job_id}: precision-recall over the cosine; "
                        "● the current threshold")
        except ImportError:
            fail("--plot needs matplotlib: pip install 'soundtag[plot]'")
        console.print(f"confusion matrix → {confusion}")
        console.print(f"precision-recall curves → {pr}")


def calibrate(
    target_precision: Annotated[float, typer.Option("--target-precision", min=0.0, max=1.0,
                                                    help="Precision each label must keep, 0-1.")],
    out_file: Annotated[Path, typer.Option("--out", help="Write the taxonomy with these thresholds here (YAML).")],
    job_id: Annotated[Optional[str], typer.Argument(help="Job id whose files carry a truth, or were reviewed "
                                                    "(default: the newest).")] = None,
    truth: Annotated[str, typer.Option("--truth", help="files: the truth files carry (--truth-column); reviews: "
                                       "the verdicts of `soundtag review`.")] = "files",
    database: Database = None,
) -> None:
    """Choose each label's threshold on the cosine: the lowest at which its precision on the
    job's files with a known truth is at least the target. Writes the taxonomy with them."""
    import yaml
    from rich.table import Table

    from db.jobs import job_spec
    from db.predictions import job_cosines
    from db.taxonomies import taxonomy_with_policy
    from soundtag.calibration import calibrate as choose, truths

    if truth not in {"files", "reviews"}:
        fail(f"--truth {truth!r}: use files or reviews")
    engine = open_engine(load_settings(database_url=database))
    job_id = job_or_newest(engine, job_id, "calibrate").job_id
    spec = job_spec(engine, job_id)
    known = [(truths(t), cosines) for _, t, cosines in job_cosines(engine, job_id, reviewed=truth == "reviews")
             if truths(t)]
    if not known:
        fail(f"job {job_id}: no labeled file has a truth; " + _no_truth_way_out(truth))
    taxonomy = taxonomy_with_policy(engine, spec.taxonomy_id)
    chosen = choose(known, [lb.name for lb in taxonomy.labels if not lb.background], target_precision)
    percent = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    table = Table("label", "threshold", "precision", "recall", "support")
    for c in chosen:
        table.add_row(c.label, f"{c.threshold:.4f}", percent(c.precision), percent(c.recall), str(c.support))
    out.print(f"job {job_id}: {len(known)} files with a known truth, target precision {target_precision:.0%}")
    out.print(table)
    missed = [c.label for c in chosen if not c.reached]
    if missed:
        out.print(f"cannot reach {target_precision:.0%} precision (threshold above every cosine seen): "
                  + ", ".join(missed))
    calibrated = taxonomy.with_thresholds({c.label: c.threshold for c in chosen})
    out_file.write_text(yaml.safe_dump(calibrated.document(), sort_keys=False, allow_unicode=True))
    console.print(f"taxonomy with thresholds → {out_file}")

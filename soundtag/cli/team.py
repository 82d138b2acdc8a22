"""A reviewing team: ``agreement`` (how far the people who judged the same items agree)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console, fail, job_or_newest, open_engine, out
from soundtag.settings import load_settings


def _number(score) -> str:
    return "—" if score.value is None else f"{score.value:.3f}"


def agreement(
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose verdicts to compare (default: the newest).")]
    = None,
    by: Annotated[str, typer.Option("--by", help="reviewer (Cohen's κ for each pair, each person against the "
                                    "settled labels) or label (Krippendorff's α of each label against the rest).")]
    = "reviewer",
    database: Database = None,
) -> None:
    """How far reviewers agree on the items several of them judged: Krippendorff's α (nominal)
    over everyone, then per pair of reviewers (Cohen's κ) or per label, each with the number of
    items it rests on. A vote is the label an item ends up with in that person's latest verdict
    (accept: the model's; correct: theirs; reject: none)."""
    from db.reviews import reviewer_votes
    from soundtag.agreement import alpha, majority, pairwise_kappa, with_settled

    if by not in ("reviewer", "label"):
        fail(f"--by {by!r}: use reviewer or label")
    engine = open_engine(load_settings(database_url=database))
    info = job_or_newest(engine, job, "agreement")
    votes = reviewer_votes(engine, info.job_id)
    overall = alpha(votes)
    people = sorted({person for item in votes.values() for person in item})
    console.print(f"job {info.job_id}: {len(votes)} items judged by {len(people)} reviewers, "
                  f"{overall.items} by two or more")
    out.print(f"all\talpha\t{_number(overall)}\t{overall.items} items")
    if by == "label":
        for label in sorted({v for item in votes.values() for v in item.values() if v is not None}):
            score = alpha(votes, only=label)
            out.print(f"{label}\talpha\t{_number(score)}\t{score.items} items")
        return
    for (a, b), score in pairwise_kappa(votes).items():
        out.print(f"{a} & {b}\tkappa\t{_number(score)}\t{score.items} items")
    for person, score in with_settled(votes, majority(votes)).items():
        out.print(f"{person}\tsettled\t{_number(score)}\t{score.items} items")

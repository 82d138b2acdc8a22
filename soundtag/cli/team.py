"""A reviewing team: ``reviewers add|list|remove`` (the named people the review page serves, and
their tokens) and ``agreement`` (how far the people who judged the same items agree)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from soundtag.cli.options import Database, console, fail, job_or_newest, open_engine, out
from soundtag.settings import load_settings
from soundtag.states import Role

reviewers_app = typer.Typer(no_args_is_help=True, help="The named people of a reviewing team and their tokens.")


@reviewers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The person's name, recorded with each of their verdicts.")],
    role: Annotated[str, typer.Option("--role", help="reviewer (records verdicts), viewer (listens only) or admin "
                                      "(records verdicts; the lead of the team).")] = "reviewer",
    database: Database = None,
) -> None:
    """Add a person and print their token, once: they open http://HOST:PORT/?token=TOKEN. Only a
    slow salted hash of it is stored."""
    from db.reviewers import add_reviewer

    if role not in set(Role):
        fail(f"--role {role!r}: use one of {', '.join(Role)}")
    added, token = add_reviewer(open_engine(load_settings(database_url=database)), name, Role(role))
    console.print(f"{added.name} ({added.role}) added; their token, shown this once:")
    out.print(token)


@reviewers_app.command("list")
def list_(database: Database = None) -> None:
    """The team: each person's name, role and since when."""
    from db.reviewers import reviewers

    team = reviewers(open_engine(load_settings(database_url=database)))
    if not team:
        console.print("no reviewers: `soundtag review` serves one person on loopback")
        return
    table = Table("name", "role", "since", box=None, show_header=False, pad_edge=False)
    for person in team:
        table.add_row(person.name, str(person.role), f"{person.created_at:%Y-%m-%d %H:%M}")
    out.print(table)


@reviewers_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The person to remove; their verdicts stay.")],
           database: Database = None) -> None:
    """Remove a person: their open pages are refused from their next request on."""
    from db.reviewers import remove_reviewer

    remove_reviewer(open_engine(load_settings(database_url=database)), name)
    console.print(f"{name} removed")


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def agreement(
    job: Annotated[Optional[str], typer.Option("--job", help="Job whose verdicts to compare (default: the newest).")]
    = None,
    by: Annotated[str, typer.Option("--by", help="reviewer (Cohen's κ for each pair, each person against the "
                                    "settled labels) or label (Krippendorff's α of each label against the rest).")]
    = "reviewer",
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    database: Database = None,
) -> None:
    """How far reviewers agree on the items several of them judged: Krippendorff's α (nominal)
    over everyone, then per pair of reviewers (Cohen's κ) or per label, each with the number of
    items it rests on. A vote is the label an item ends up with in that person's latest verdict
    (accept: the model's; correct: theirs; reject: none). Every number is kept too: the
    ``agreement`` view shows the latest of each job."""
    from db.agreements import save_agreement
    from db.reviews import consensus, reviewer_votes
    from soundtag.agreement import measures

    if by not in ("reviewer", "label"):
        fail(f"--by {by!r}: use reviewer or label")
    engine = open_engine(load_settings(database_url=database))
    info = job_or_newest(engine, job, "agreement")
    votes = reviewer_votes(engine, info.job_id)
    # Each person against what the consensus settled (an adjudicator's label where one settled it).
    settled_labels = {key: found.label for key, found in consensus(engine, info.job_id).items()
                      if found.verdict is not None and found.votes >= 2}
    found = measures(votes, settled_labels)
    save_agreement(engine, info.job_id, found)
    (overall,) = [m.score for m in found if m.measure == "alpha" and m.label is None]
    rows = ([{"label": m.label, "alpha": m.score.value, "items": m.score.items}
             for m in found if m.measure == "alpha" and m.label is not None] if by == "label" else
            [{"reviewers": [m.reviewer, m.other_reviewer], "kappa": m.score.value, "items": m.score.items}
             for m in found if m.measure == "kappa"])
    settled = [{"reviewer": m.reviewer, "agreement": m.score.value, "items": m.score.items}
               for m in found if m.measure == "settled"] if by == "reviewer" else []
    if as_json:
        out.print_json(json.dumps({"job": info.job_id, "items": len(votes),
                                   "alpha": {"value": overall.value, "items": overall.items},
                                   "by_label" if by == "label" else "pairs": rows,
                                   **({"settled": settled} if by == "reviewer" else {})}))
        return
    people = sorted({person for item in votes.values() for person in item})
    console.print(f"job {info.job_id}: {len(votes)} items judged by {len(people)} reviewers, {overall.items} by two "
                  f"or more; Krippendorff's α over all: {_cell(overall.value)}")
    if by == "label":
        table = Table("label", "α (it against the rest)", "items")
        for row in rows:
            table.add_row(row["label"], _cell(row["alpha"]), str(row["items"]))
    else:
        table = Table("reviewers", "Cohen's κ", "items")
        for row in rows:
            table.add_row(" & ".join(row["reviewers"]), _cell(row["kappa"]), str(row["items"]))
        for row in settled:
            table.add_row(f"{row['reviewer']} & the settled labels", f"{_cell(row['agreement'])} agree",
                          str(row["items"]))
    out.print(table)

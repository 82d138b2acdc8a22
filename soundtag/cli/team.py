"""A reviewing team: ``reviewers add|list|remove`` (the named people the review page serves, and
their tokens)."""

from __future__ import annotations

from typing import Annotated

import typer

from soundtag.cli.options import Database, console, fail, open_engine, out
from soundtag.settings import load_settings
from soundtag.states import Role

reviewers_app = typer.Typer(no_args_is_help=True, help="The named people of a reviewing team and their tokens.")


@reviewers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The person's name, recorded with each of their verdicts.")],
    role: Annotated[str, typer.Option("--role", help="reviewer (records verdicts), viewer (listens only) or admin "
                                      "(also adjudicates and sees the team's progress).")] = "reviewer",
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
    for person in team:
        out.print(f"{person.name}\t{person.role}\t{person.created_at:%Y-%m-%d %H:%M}")


@reviewers_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The person to remove; their verdicts stay.")],
           database: Database = None) -> None:
    """Remove a person: their open pages are refused from their next request on."""
    from db.reviewers import remove_reviewer

    remove_reviewer(open_engine(load_settings(database_url=database)), name)
    console.print(f"{name} removed")

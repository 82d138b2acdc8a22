"""A team's progress as its admin reads it on the review page: per person, verdicts today and in
all, items held now and agreement with the consensus; per label, items judged, of those the ones
waiting for an adjudicator, and items nobody judged yet. Pure: counts in, numbers out (the queue
reads them, review.queue ``ReviewQueue.team``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from db.reviews import ReviewItem, Settled
from soundtag.agreement import Score, Votes, with_settled
from soundtag.states import Role


@dataclass(frozen=True)
class PersonProgress:
    name: str
    role: Role | None  # None: not in the team now (removed, or a name from an import)
    today: int
    total: int
    held: int
    agreement: Score  # their share of votes equal to the settled label, where two or more judged


@dataclass(frozen=True)
class LabelProgress:
    label: str  # the model's decision; "" where it abstained
    total: int
    judged: int
    to_adjudicate: int  # judged, its votes disagree and no adjudicator settled it (`--order adjudicate`)

    @property
    def remaining(self) -> int:
        return self.total - self.judged


@dataclass(frozen=True)
class TeamProgress:
    people: list[PersonProgress]
    labels: list[LabelProgress]

    def as_json(self) -> dict:
        return {"people": [asdict(person) for person in self.people],
                "labels": [{**asdict(label), "remaining": label.remaining} for label in self.labels]}


def disputed(settled: Settled) -> bool:
    """Its voters disagree and no adjudicator has settled it: what `--order adjudicate` shows."""
    return not settled.agreed and not settled.adjudicated


def team_progress(items: Sequence[ReviewItem], labels: Sequence[str], settled: Mapping[tuple, Settled],
                  votes: Votes, counts: Mapping[str, tuple[int, int]], held: Mapping[str, int],
                  team: Mapping[str, Role]) -> TeamProgress:
    """``settled``: the consensus by item key; ``votes``: each person's vote by item key;
    ``counts``: (today, in all) verdicts by name; ``held``: items handed to each now; ``team``:
    the people in it, by name. An adjudicator's verdict is the consensus it is compared with, so
    it is not their vote there; an item one person alone judged agrees with itself, so it is left
    out."""
    compared = {key: s.label for key, s in settled.items() if s.verdict is not None and s.votes >= 2}
    voters = {key: {person: label for person, label in people.items()
                    if not (key in settled and settled[key].adjudicated and settled[key].reviewer == person)}
              for key, people in votes.items()}
    agreement = with_settled(voters, compared)
    people = [PersonProgress(name, team.get(name), *counts.get(name, (0, 0)), held.get(name, 0),
                             agreement.get(name, Score(None, 0)))
              for name in sorted(set(team) | set(counts))]
    per_label = {name: [0, 0, 0] for name in labels}
    for item in items:
        row = per_label.setdefault(item.decision or "", [0, 0, 0])
        row[0] += 1
        if item.key in settled:
            row[1] += 1
            row[2] += disputed(settled[item.key])
    return TeamProgress(people, [LabelProgress(label, *row) for label, row in per_label.items()])

"""How the jobs of one transaction are put into queue messages: groups of one priority, within a
cap on jobs and on image bytes, filled in the order the jobs came (`GROUP_MAX_JOBS`,
`GROUP_MAX_BYTES`).

A group is what a worker process takes at once, with one message, one dispatch, one claim and
one acknowledgement. Groups form where jobs arrive together (a batch's files, submits that came
while the last transaction was in flight); a lone job is a group of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.kombu_messages import group_tag


@dataclass(frozen=True, slots=True)
class Grouping:
    """The caps on one group: jobs, and bytes of their images (a group of one may exceed it)."""

    max_jobs: int = 16
    max_bytes: int = 16 * 2**20


ONE_EACH = Grouping(max_jobs=1)


@dataclass(slots=True)
class Group:
    """Jobs of one priority that travel in one message; `tag` names the message (a group of
    one: its job's id)."""

    priority: str
    job_ids: list[str] = field(default_factory=list)
    image_bytes: int = 0
    tag: str = ""


def plan(jobs: Sequence[tuple[str, str, int]], grouping: Grouping) -> tuple[list[Group], list[int]]:
    """The groups for `jobs` (id, priority, image bytes, in order), and each job's group (an
    index into them). A group takes jobs of its priority until either cap would be passed."""
    groups: list[Group] = []
    filling: dict[str, int] = {}  # priority -> the group it fills now
    member_of: list[int] = []
    for job_id, priority, size in jobs:
        index = filling.get(priority)
        if index is None or _full(groups[index], size, grouping):
            index = filling[priority] = len(groups)
            groups.append(Group(priority))
        groups[index].job_ids.append(job_id)
        groups[index].image_bytes += size
        member_of.append(index)
    for group in groups:
        group.tag = group.job_ids[0] if len(group.job_ids) == 1 else group_tag()
    return groups, member_of


def _full(group: Group, adding: int, grouping: Grouping) -> bool:
    return (
        len(group.job_ids) >= grouping.max_jobs or group.image_bytes + adding > grouping.max_bytes
    )

"""Keyset pagination for the pages: ``WHERE key > last ORDER BY key LIMIT n + 1``, so page
10,000 costs what page 1 costs and no COUNT is ever run."""

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

PAGE_SIZE = 50


@dataclass
class KeysetPage:
    items: list
    # Cursor values for the links; None when there is no such page.
    next_after: Any = None
    prev_before: Any = None

    @property
    def has_other_pages(self) -> bool:
        return self.next_after is not None or self.prev_before is not None


def keyset_paginate(
    queryset: QuerySet,
    *,
    key: str,
    after: Any = None,
    before: Any = None,
    descending: bool = False,
    size: int = PAGE_SIZE,
) -> KeysetPage:
    """One page of ``queryset`` ordered by the unique column ``key``.

    ``after`` continues forward from a key, ``before`` goes back from one. One extra row is
    fetched to know whether another page follows, so no COUNT is ever run.
    """
    forward_lookup, backward_lookup = ("lt", "gt") if descending else ("gt", "lt")
    forward_order = f"-{key}" if descending else key
    backward_order = key if descending else f"-{key}"

    if before is not None:
        rows = list(
            queryset.filter(**{f"{key}__{backward_lookup}": before}).order_by(backward_order)[
                : size + 1
            ]
        )
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        return KeysetPage(
            items=rows,
            # We came back from a later page, so one follows.
            next_after=getattr(rows[-1], key) if rows else None,
            prev_before=getattr(rows[0], key) if rows and more_before else None,
        )

    if after is not None:
        queryset = queryset.filter(**{f"{key}__{forward_lookup}": after})
    rows = list(queryset.order_by(forward_order)[: size + 1])
    more_after = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        items=rows,
        next_after=getattr(rows[-1], key) if rows and more_after else None,
        prev_before=getattr(rows[0], key) if rows and after is not None else None,
    )

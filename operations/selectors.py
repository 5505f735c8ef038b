"""Reads about operations for the pages that show them."""
from __future__ import annotations

from collections.abc import Iterable

from operations.models import Operation

FINISHED_SHOWN = 3


def status_banners(operations: Iterable[Operation], *, keep: int = FINISHED_SHOWN
                   ) -> tuple[list[Operation], list[Operation]]:
    """The progress boxes a page shows (newest first), split into those in view and those folded
    away: every unfinished one is in view, and the newest `keep` of those finished a moment ago."""
    shown: list[Operation] = []
    folded: list[Operation] = []
    finished_in_view = 0
    for operation in operations:
        if not operation.shows_status:
            continue
        if not operation.is_finished:
            shown.append(operation)
        elif finished_in_view < keep:
            shown.append(operation)
            finished_in_view += 1
        else:
            folded.append(operation)
    return shown, folded

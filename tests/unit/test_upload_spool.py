from __future__ import annotations

import asyncio

import pytest
from starlette.datastructures import UploadFile

from api.upload_form import BudgetedUpload
from api.upload_spool import Budget, BudgetedSpool, MemoryBudget
from shared.errors import UploadTooLargeError

pytestmark = pytest.mark.unit


def _spool(budget: Budget, *chunks: bytes) -> BudgetedSpool:
    spool = BudgetedSpool(budget)
    for chunk in chunks:
        spool.write(chunk)
    return spool


def test_files_share_the_budget_and_give_it_back_when_closed() -> None:
    budget = MemoryBudget(1000)
    first = _spool(budget, b"a" * 400, b"b" * 200)
    second = _spool(budget, b"c" * 300)
    assert (first.on_disk, second.on_disk, budget.in_use) == (False, False, 900)
    assert first.in_memory_bytes() == b"a" * 400 + b"b" * 200
    first.close()
    second.close()
    assert budget.in_use == 0


def test_a_file_that_no_longer_fits_moves_to_disk_whole() -> None:
    budget = MemoryBudget(1000)
    other = _spool(budget, b"x" * 600)
    spilled = _spool(budget, b"a" * 300, b"b" * 300, b"c" * 50)
    assert spilled.on_disk
    assert spilled.in_memory_bytes() is None
    assert budget.in_use == 600  # what the spilled file held was given back when it moved
    spilled.seek(0)
    assert spilled.read() == b"a" * 300 + b"b" * 300 + b"c" * 50
    spilled.close()
    other.close()
    assert budget.in_use == 0


def test_a_file_over_its_own_limit_is_refused_as_it_arrives_and_frees_its_share() -> None:
    budget = MemoryBudget(100_000)
    upload = BudgetedUpload(
        BudgetedSpool(budget),
        source=UploadFile(None, filename="a.jpg"),
        max_bytes=10_000,  # type: ignore[arg-type]
    )

    async def send() -> None:
        await upload.write(b"a" * 6000)
        await upload.write(b"b" * 6000)

    with pytest.raises(UploadTooLargeError):
        asyncio.run(send())
    assert budget.in_use == 6000
    asyncio.run(upload.close())
    assert budget.in_use == 0


def test_a_zero_budget_keeps_nothing_in_memory() -> None:
    spool = _spool(MemoryBudget(0), b"a")
    assert spool.on_disk


def test_one_request_holds_at_most_its_share_and_others_keep_memory() -> None:
    """A large batch's files go to disk past a quarter of the budget; the next request's file
    still waits in memory."""
    budget = MemoryBudget(1000)
    batch = budget.share()
    files = [_spool(batch, b"x" * 100) for _ in range(4)]
    assert [f.on_disk for f in files] == [False, False, True, True]
    assert (batch.held, budget.in_use) == (200, 200)
    other = _spool(budget.share(), b"y" * 250)
    assert other.on_disk is False
    for spool in [*files, other]:
        spool.close()
    assert (batch.held, budget.in_use) == (0, 0)

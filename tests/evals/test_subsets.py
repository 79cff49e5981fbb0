"""``--limit N``: the first N items of one seeded order, so subsets of different sizes are nested."""

from __future__ import annotations

import pytest

from tunegate.evals.suites import get_suite
from tunegate.evals.suites.base import seeded_subset


@pytest.fixture(scope="module")
def items():
    return get_suite("math", variant="organism").load_items()  # 100 arithmetic items


@pytest.mark.parametrize("seed", [0, 1, 17])
def test_a_larger_limit_keeps_every_item_of_a_smaller_one(items, seed: int) -> None:
    previous: set[str] = set()
    for limit in range(1, len(items) + 1):
        chosen = {i.id for i in seeded_subset(items, limit, seed)}
        assert len(chosen) == limit and previous < chosen
        previous = chosen


def test_a_subset_keeps_the_suite_order_and_differs_by_seed(items) -> None:
    position = {item.id: k for k, item in enumerate(items)}
    a, b = seeded_subset(items, 20, 0), seeded_subset(items, 20, 1)
    assert [position[i.id] for i in a] == sorted(position[i.id] for i in a)
    assert {i.id for i in a} != {i.id for i in b}
    assert seeded_subset(items, 20, 0) == a and seeded_subset(items, None, 0) == items

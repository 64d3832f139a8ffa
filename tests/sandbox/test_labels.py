"""Hetzner label selectors, parsed and matched without the API."""

from __future__ import annotations

import pytest

from octoprovider.hetzner.sandbox.labels import (
    LabelSelectorError,
    matches,
    parse_selector,
    validate_labels,
)

LABELS = {"managed-by": "octoprovider", "octoprovider-deployment": "default", "tier": "small"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("managed-by=octoprovider", True),
        ("managed-by==octoprovider", True),
        ("managed-by=someone-else", False),
        ("managed-by!=someone-else", True),
        ("managed-by!=octoprovider", False),
        ("absent!=x", True),
        ("managed-by", True),
        ("absent", False),
        ("!absent", True),
        ("!managed-by", False),
        ("tier in (small,medium)", True),
        ("tier in (large, xlarge)", False),
        ("tier notin (large,xlarge)", True),
        ("absent notin (a,b)", True),
        ("absent in (a,b)", False),
        ("managed-by=octoprovider,octoprovider-deployment=default", True),
        ("managed-by=octoprovider, octoprovider-deployment=other", False),
        ("managed-by=octoprovider,tier in (small,medium),!absent", True),
        ("", True),
    ],
)
def test_selector_matches_labels_as_hetzner_does(selector: str, expected: bool) -> None:
    assert matches(selector, LABELS) is expected


def test_commas_inside_parentheses_belong_to_the_set() -> None:
    requirements = parse_selector("tier in (a,b,c),x=1")

    assert [r.key for r in requirements] == ["tier", "x"]
    assert requirements[0].values == ("a", "b", "c")


@pytest.mark.parametrize(
    "selector",
    [
        "a=1,,b=2",
        "tier in (a,b",
        "tier in a,b)",
        "=value",
        "a b",
        "a=b=c",
        "bad key=1",
        "a=" + "x" * 64,
        "-a=1",
        "a=1,",
    ],
)
def test_malformed_selector_is_rejected(selector: str) -> None:
    with pytest.raises(LabelSelectorError):
        parse_selector(selector)


def test_label_values_longer_than_63_characters_are_rejected() -> None:
    with pytest.raises(LabelSelectorError):
        validate_labels({"octoprovider-id": "x" * 64})


def test_prefixed_keys_and_empty_values_are_valid_labels() -> None:
    assert validate_labels({"octoperf.com/id": "", "a": "b"}) == {"octoperf.com/id": "", "a": "b"}

"""Hetzner label validation and label-selector matching."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Hetzner follows the Kubernetes label syntax: an optional DNS-subdomain prefix and a name
# of at most 63 characters; values are at most 63 characters and may be empty.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?"
_KEY_RE = re.compile(rf"^(?:{_PREFIX}/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^(?:{_NAME})?$")

_SET_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_COMPARE_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^\s!=(),]*)$")
_EXISTS_RE = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


class LabelSelectorError(ValueError):
    """A label selector or a label that Hetzner would reject."""


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: ``key`` compared with ``values`` by ``op``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # As in Kubernetes, "!=" and "notin" also match resources without the key.
        return not present or value not in self.values


def is_valid_key(key: str) -> bool:
    """Tell whether ``key`` is a valid label key."""
    return bool(_KEY_RE.match(key)) and len(key) <= 317


def is_valid_value(value: str) -> bool:
    """Tell whether ``value`` is a valid label value."""
    return bool(_VALUE_RE.match(value))


def validate_labels(labels: object) -> dict[str, str]:
    """Return ``labels`` if Hetzner would accept them, else raise LabelSelectorError."""
    if not isinstance(labels, dict):
        raise LabelSelectorError("labels must be an object")
    for key, value in labels.items():
        if not isinstance(key, str) or not is_valid_key(key):
            raise LabelSelectorError(f"invalid label key {key!r}")
        if not isinstance(value, str) or not is_valid_value(value):
            raise LabelSelectorError(f"invalid label value {value!r} for key {key!r}")
    return dict(labels)


def _split_terms(selector: str) -> list[str]:
    """Split on top-level commas; commas inside parentheses belong to a set."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
            if depth > 1:
                raise LabelSelectorError("nested parentheses in label selector")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise LabelSelectorError("unbalanced parentheses in label selector")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise LabelSelectorError("unbalanced parentheses in label selector")
    terms.append("".join(current))
    return [term.strip() for term in terms]


def _checked_key(key: str) -> str:
    if not is_valid_key(key):
        raise LabelSelectorError(f"invalid label key {key!r} in label selector")
    return key


def _checked_value(value: str) -> str:
    if not is_valid_value(value):
        raise LabelSelectorError(f"invalid label value {value!r} in label selector")
    return value


def _parse_term(term: str) -> Requirement:
    if match := _SET_RE.match(term):
        values = tuple(_checked_value(v.strip()) for v in match["values"].split(","))
        return Requirement(_checked_key(match["key"]), match["op"], values)
    if match := _COMPARE_RE.match(term):
        op = "!=" if match["op"] == "!=" else "="
        return Requirement(_checked_key(match["key"]), op, (_checked_value(match["value"]),))
    if match := _EXISTS_RE.match(term):
        op = "!exists" if match["neg"] else "exists"
        return Requirement(_checked_key(match["key"]), op)
    raise LabelSelectorError(f"invalid label selector term {term!r}")


def parse_selector(selector: str) -> list[Requirement]:
    """Parse a Hetzner label selector into requirements that must all hold."""
    if not selector.strip():
        return []
    terms = _split_terms(selector)
    if any(not term for term in terms):
        raise LabelSelectorError("empty term in label selector")
    return [_parse_term(term) for term in terms]


def matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Tell whether ``labels`` satisfy every term of ``selector``."""
    return all(requirement.matches(labels) for requirement in parse_selector(selector))

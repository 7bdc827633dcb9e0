"""What happens to an entry between its source and Loki: relabeling, then pipeline stages.

Relabeling follows Prometheus' rules (replace, keep, drop, labelmap, labeldrop, labelkeep; regex
anchored; ``$1``/``${1}`` in the replacement); labels starting with ``__`` are dropped afterwards,
as Promtail does. Stages: ``match`` (a stream selector with nested stages), ``static_labels``,
``drop`` (by selector-free ``expression`` on the line). Other stages are refused up front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import selector

Labels = dict[str, str]
ACTIONS = ("replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep")


@dataclass
class Rule:
    source_labels: list[str] = field(default_factory=list)
    separator: str = ";"
    regex: str = "(.*)"
    replacement: str = "$1"
    target_label: str = ""
    action: str = "replace"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown relabel action {self.action!r}")
        if self.action == "replace" and not self.target_label:
            raise ValueError("relabel configuration for replace action requires 'target_label' value")
        self.pattern = re.compile(self.regex)


def _expand(match: re.Match, template: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        try:
            return match.group(int(name) if name.isdigit() else name) or ""
        except IndexError:
            return ""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, template)


def relabel(labels: Labels, rules: list[Rule]) -> Labels | None:
    """The relabeled set, or None when a keep/drop rule drops the entry."""
    labels = dict(labels)
    for rule in rules:
        value = rule.separator.join(labels.get(name, "") for name in rule.source_labels)
        if rule.action in ("keep", "drop"):
            matched = rule.pattern.fullmatch(value) is not None
            if matched != (rule.action == "keep"):
                return None
        elif rule.action == "replace":
            match = rule.pattern.fullmatch(value)
            if match:
                target = _expand(match, rule.target_label)
                result = _expand(match, rule.replacement)
                if result:
                    labels[target] = result
                else:
                    labels.pop(target, None)
        elif rule.action == "labelmap":
            for name in list(labels):
                match = rule.pattern.fullmatch(name)
                if match:
                    labels[_expand(match, rule.replacement)] = labels[name]
        else:
            keep = rule.action == "labelkeep"
            labels = {k: v for k, v in labels.items() if (rule.pattern.fullmatch(k) is not None) == keep}
    return labels


def public(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if not k.startswith("__")}


Stage = Callable[[Labels, str], tuple[Labels, str] | None]


def static_labels(values: dict) -> Stage:
    return lambda labels, line: ({**labels, **{str(k): str(v) for k, v in values.items()}}, line)


def match_stage(expression: str, stages: list[Stage]) -> Stage:
    test = selector.compile_selector(expression)

    def run(labels: Labels, line: str):
        if not test(labels, line):
            return labels, line
        return apply(stages, labels, line)
    return run


def drop_stage(expression: str) -> Stage:
    pattern = re.compile(expression)
    return lambda labels, line: None if pattern.search(line) else (labels, line)


def apply(stages: list[Stage], labels: Labels, line: str) -> tuple[Labels, str] | None:
    for stage in stages:
        result = stage(labels, line)
        if result is None:
            return None
        labels, line = result
    return labels, line

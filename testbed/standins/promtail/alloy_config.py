"""An Alloy configuration turned into the same sources the Promtail mode runs.

Supported components: loki.write (endpoint.url), loki.relabel (rule blocks; exports rules and
receiver), loki.process (stage.static_labels, stage.match, stage.drop), loki.source.journal
(matches, path, max_age, labels, relabel_rules, forward_to), local.file_match (path_targets) and
loki.source.file (targets, forward_to, legacy_positions_file: Promtail's positions file, whose
file offsets are taken over where Alloy has none, as Alloy's docs describe). Unknown components,
arguments and references are errors, like Alloy's own checks; components Alloy has but this stand-in lacks say so.
"""

from __future__ import annotations

from collections.abc import Callable

import pipeline
import selector
from alloy_syntax import Block, Ref, parse
from promtail_config import ConfigError, duration_s
from runtime import Delivery, Source

Receiver = Callable[[dict[str, str], str], list[Delivery]]

ARGS = {
    "loki.write": ({"external_labels"}, {"endpoint"}),
    "loki.relabel": ({"forward_to", "max_cache_size"}, {"rule"}),
    "loki.process": ({"forward_to"}, {"stage.static_labels", "stage.match", "stage.drop"}),
    "loki.source.journal": ({"forward_to", "matches", "path", "max_age", "format_as_json", "labels",
                             "relabel_rules"}, set()),
    "local.file_match": ({"path_targets", "sync_period"}, set()),
    "loki.source.file": ({"targets", "forward_to", "encoding", "tail_from_end", "legacy_positions_file"},
                         {"decompression", "file_watch"}),
}
EXPORTS = {"loki.write": {"receiver"}, "loki.relabel": {"receiver", "rules"}, "loki.process": {"receiver"},
           "local.file_match": {"targets"}, "loki.source.journal": set(), "loki.source.file": set()}
RULE_ARGS = {"source_labels", "separator", "regex", "replacement", "target_label", "action", "modulus"}


class Graph:
    def __init__(self, root: Block, path: str) -> None:
        self.path = path
        self.components: dict[str, Block] = {}
        for block in root.blocks:
            if block.name not in ARGS:
                raise ConfigError(f"{path}:{block.line}:{block.col}: component {block.name!r} is not supported by "
                                  "this alloy stand-in")
            if block.label is None:
                raise ConfigError(f"{path}:{block.line}:{block.col}: component {block.name!r} must have a label")
            key = f"{block.name}.{block.label}"
            if key in self.components:
                raise ConfigError(f"{path}:{block.line}:{block.col}: component {key} already declared")
            attrs, blocks = ARGS[block.name]
            for name, (_, line, col) in block.attrs.items():
                if name not in attrs:
                    raise ConfigError(f"{path}:{line}:{col}: unrecognized attribute name {name!r}")
            for child in block.blocks:
                if child.name not in blocks:
                    raise ConfigError(f"{path}:{child.line}:{child.col}: unrecognized block name {child.name!r}")
            self.components[key] = block
        self._receivers: dict[str, Receiver] = {}

    def arg(self, block: Block, name: str, default=None, required: bool = False):
        if name not in block.attrs:
            if required:
                raise ConfigError(f"{self.path}:{block.line}:{block.col}: missing required attribute {name!r}")
            return default
        return block.attrs[name][0]

    def resolve(self, ref: Ref, export: str, block: Block) -> Block:
        component, _, name = ref.path.rpartition(".")
        target = self.components.get(component)
        if target is None or name != export or name not in EXPORTS[target.name]:
            raise ConfigError(f"{self.path}:{block.line}:{block.col}: component {ref.path!r} does not exist or is "
                              f"out of scope (expected a .{export})")
        return target

    def rules(self, value, block: Block) -> list[pipeline.Rule]:
        if value is None:
            return []
        target = self.resolve(value, "rules", block) if isinstance(value, Ref) else None
        if target is None:
            raise ConfigError(f"{self.path}:{block.line}:{block.col}: relabel_rules must reference a .rules export")
        out = []
        for rule in target.blocks:
            unknown = set(rule.attrs) - RULE_ARGS
            if unknown:
                raise ConfigError(f"{self.path}:{rule.line}:{rule.col}: unrecognized attribute name "
                                  f"{sorted(unknown)[0]!r}")
            out.append(pipeline.Rule(**{k: v[0] for k, v in rule.attrs.items() if k != "modulus"}))
        return out

    def receivers(self, block: Block) -> list[Receiver]:
        refs = self.arg(block, "forward_to", required=True)
        if not isinstance(refs, list):
            raise ConfigError(f"{self.path}:{block.line}:{block.col}: forward_to must be a list of receivers")
        return [self.receiver(self.resolve(ref, "receiver", block)) for ref in refs]

    def receiver(self, block: Block) -> Receiver:
        key = f"{block.name}.{block.label}"
        if key not in self._receivers:
            self._receivers[key] = self._build(block)
        return self._receivers[key]

    def _build(self, block: Block) -> Receiver:
        if block.name == "loki.write":
            endpoints = [b for b in block.blocks if b.name == "endpoint"]
            if not endpoints:
                raise ConfigError(f"{self.path}:{block.line}:{block.col}: loki.write needs an endpoint block")
            urls = [self.arg(e, "url", required=True) for e in endpoints]
            extra = {str(k): str(v) for k, v in (self.arg(block, "external_labels") or {}).items()}
            return lambda labels, line: [(url, {**pipeline.public(labels), **extra}, line) for url in urls]
        forward = self.receivers(block)

        def fan_out(labels: dict[str, str], line: str) -> list[Delivery]:
            return [d for r in forward for d in r(labels, line)]

        if block.name == "loki.relabel":
            rules = self.rules(Ref(f"loki.relabel.{block.label}.rules"), block)

            def relabel(labels, line):
                out = pipeline.relabel(labels, rules)
                return fan_out(out, line) if out is not None else []
            return relabel
        stages = self.stages(block)

        def process(labels, line):
            out = pipeline.apply(stages, labels, line)
            return fan_out(*out) if out is not None else []
        return process

    def stages(self, block: Block) -> list[pipeline.Stage]:
        out = []
        for stage in block.blocks:
            if stage.name == "stage.static_labels":
                out.append(pipeline.static_labels(self.arg(stage, "values", required=True)))
            elif stage.name == "stage.drop":
                out.append(pipeline.drop_stage(self.arg(stage, "expression", "")))
            elif stage.name == "stage.match":
                expression = self.arg(stage, "selector", required=True)
                try:
                    selector.parse(expression)
                except selector.SelectorError as err:
                    raise ConfigError(f"{self.path}:{stage.line}:{stage.col}: {err}") from None
                out.append(pipeline.match_stage(expression, self.stages(stage)))
            else:
                raise ConfigError(f"{self.path}:{stage.line}:{stage.col}: stage {stage.name!r} is not supported by "
                                  "this alloy stand-in")
        return out

    def sources(self) -> list[Source]:
        out = []
        for key, block in self.components.items():
            if block.name == "loki.source.journal":
                out.append(self._journal(key, block))
            elif block.name == "loki.source.file":
                out += self._files(key, block)
            elif block.name in ("loki.write", "loki.relabel", "loki.process"):
                self.receiver(block)  # validate even when nothing forwards to it
        return out

    def _journal(self, key: str, block: Block) -> Source:
        forward = self.receivers(block)
        rules = self.rules(self.arg(block, "relabel_rules"), block)
        static = {str(k): str(v) for k, v in (self.arg(block, "labels") or {}).items()}

        def handle(labels, line):
            relabeled = pipeline.relabel(labels, rules)
            if relabeled is None:
                return []
            out = {"job": key, **pipeline.public(relabeled), **static}
            return [d for r in forward for d in r(out, line)]
        return Source(key, "journal", handle, matches=self.arg(block, "matches", ""), path=self.arg(block, "path", ""),
                      max_age_s=duration_s(self.arg(block, "max_age", ""), 7 * 3600))

    @staticmethod
    def _file_handler(static: dict[str, str], forward: list[Receiver]):
        def handle(entry: dict[str, str], line: str) -> list[Delivery]:
            return [d for r in forward for d in r({**static, "filename": entry["filename"]}, line)]
        return handle

    def _files(self, key: str, block: Block) -> list[Source]:
        forward = self.receivers(block)
        targets = self.arg(block, "targets", required=True)
        if isinstance(targets, Ref):
            matcher = self.resolve(targets, "targets", block)
            targets = self.arg(matcher, "path_targets", required=True)
        out = []
        for target in targets:
            labels = {str(k): str(v) for k, v in target.items()}
            pattern = labels.pop("__path__", "")
            if not pattern:
                raise ConfigError(f"{self.path}:{block.line}:{block.col}: a file target needs __path__")

            out.append(Source(key, "file", self._file_handler(pipeline.public(labels), forward), glob=pattern))
        return out


def load(path: str) -> tuple[list[Source], list[str]]:
    """The sources and the Loki URLs of the file at *path*."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from None
    graph = Graph(parse(text, path), path)
    urls = [graph.arg(e, "url", required=True) for b in graph.components.values() if b.name == "loki.write"
            for e in b.blocks if e.name == "endpoint"]
    return graph.sources(), urls


def legacy_position_files(path: str) -> list[str]:
    """The legacy_positions_file of every loki.source.file in the (already validated) file at *path*."""
    with open(path) as fh:
        graph = Graph(parse(fh.read(), path), path)
    return [str(graph.arg(b, "legacy_positions_file")) for b in graph.components.values()
            if b.name == "loki.source.file" and graph.arg(b, "legacy_positions_file")]

"""The package layering the design holds to, read from the source with Python's own parser (ast).

runbook never imports troubleshoot (at module level or inside a function): troubleshoot imports runbook
and registers its task and docs page as entry points. The readers of env files and log shipper configs
(python-dotenv, a YAML parser) are imported by the fact layer alone, so nothing parses them a second way.
"""

import ast
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READERS = {"dotenv", "yaml", "configparser"}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module *path* imports, wherever the import statement stands (functions included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def offenders(folder: str, wanted) -> list[str]:
    return [f"{p.relative_to(REPO)}:{line} imports {name}" for p in sorted((REPO / folder).rglob("*.py"))
            for line, name in imports(p) if wanted(p, name)]


def test_runbook_never_imports_troubleshoot():
    assert offenders("runbook", lambda p, name: name.split(".")[0] == "troubleshoot") == []


def test_only_the_fact_layer_imports_the_readers_of_env_files_and_shipper_configs():
    facts = REPO / "runbook" / "facts"
    for folder in ("runbook", "troubleshoot"):
        assert offenders(folder, lambda p, name: name.split(".")[0] in READERS and facts not in p.parents) == []


def test_troubleshoot_registers_its_task_and_docs_page():
    tasks = {e.name: e.value for e in entry_points(group="l4_runbook.tasks")}
    docs = {e.name: e.value for e in entry_points(group="l4_runbook.docs")}
    assert tasks == {"troubleshoot": "troubleshoot.tasks:troubleshoot"}
    assert docs == {"troubleshoot": "troubleshoot.docs:write"}
    from runbook import plugins

    assert plugins.load(plugins.TASKS, "troubleshoot").name == "troubleshoot"

"Imports point downward only: core <- config <- signals / risk; signals and risk stay pure."
from __future__ import annotations
import ast
from conftest import ROOT
from test_risk_imports import impure_imports


def tri_imports(module: str) -> set[str]:
    "tri_engine modules imported by `module` (relative imports resolved)."
    src = (ROOT / "tri_engine" / f"{module}.py").read_text()
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            name = ("tri_engine." + (node.module or "")) if node.level else (node.module or "")
            if name.startswith("tri_engine"): out.add(name.rstrip("."))
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tri_engine")}
    return out


def test_signals_is_pure_like_risk():
    assert impure_imports((ROOT / "tri_engine" / "signals.py").read_text(), "tri_engine.signals") == []


def test_import_direction():
    assert tri_imports("core") <= {"tri_engine"}                       # core only finds its own package root
    assert tri_imports("config") <= {"tri_engine.core"}
    assert tri_imports("signals") <= {"tri_engine.core"}
    assert tri_imports("risk") <= {"tri_engine.core"}
    assert tri_imports("macro") <= {"tri_engine.core", "tri_engine.risk"}
    assert tri_imports("books") <= {"tri_engine.core"}
    assert tri_imports("data") <= {"tri_engine.core", "tri_engine.sessions", "tri_engine"}      # + the lazy CLI import of download
    assert tri_imports("bars") <= {"tri_engine.core", "tri_engine.data"}

"""MkDocs hook: the troubleshooting page's list of every one-line error, read from the source at build time.

Every ``raise …Error(message)`` in the ``skinedge`` package whose class is one of ours (a
:class:`~skinedge.errors.SkinedgeError`) is what a user can meet as ``skinedge: error: …``. The list is built
from the code, so it cannot fall behind it. Formatted values show as ``{name}``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- every-error -->"
NOT_OURS = {"ValueError", "TypeError", "RuntimeError", "AssertionError", "KeyError"}  # bugs, not user errors
OURS = {"MissingWeights", "MissingTensorRT", "TrainingStopped"}  # SkinedgeErrors whose names do not end in Error


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append("{" + ast.unparse(value.value) + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


def errors() -> dict[str, list[str]]:
    """module → the messages its ``raise`` statements give, in source order (duplicates dropped)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "skinedge").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            text = _template(node.exc.args[0])
            if (name in OURS or name.endswith("Error") and name not in NOT_OURS) and text:
                messages = found.setdefault(module, [])
                if text not in messages:
                    messages.append(text)
    return found


def render() -> str:
    lines = []
    for module, messages in errors().items():
        lines += [f"### `{module}`", ""]
        lines += [f"- `{' '.join(m.split()).replace('`', chr(39))}`" for m in messages]
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown


_ROLE = re.compile(r":(?:func|mod|class|data|meth|attr|exc|obj):(<code>)~?")


def on_page_content(html: str, page, **kwargs) -> str:
    """The docstrings cross-reference in Sphinx's roles (``:func:`open_session```), which Markdown leaves as
    text: drop the role, keep the code."""
    return _ROLE.sub(r"\1", html)

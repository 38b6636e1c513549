"""What any task's teacher grammar is written with: GBNF (llama.cpp's grammar format) string
literals and rules of literal alternatives. The grammars themselves belong to the tasks."""

from __future__ import annotations

from collections.abc import Iterable


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def gbnf_choice(name: str, values: Iterable[str]) -> str:
    """The rule `name ::= "a" | "b" | ...`: one of `values` (duplicates dropped), longest
    first, which reads easiest."""
    vals = sorted(set(values), key=lambda v: (-len(v), v))
    return f"{name} ::= " + " | ".join(gbnf_literal(v) for v in vals)

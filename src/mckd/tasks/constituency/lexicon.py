"""The English word lists behind the synthetic treebank, read from the text files in lexicon/.

Each file is plain text, one entry per line, `#` starts a comment. Keeping the words in data
files (not Python literals) lets anyone extend the vocabulary without touching the grammar.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mckd.errors import InputError

NOUN_CLASSES = ("person", "org", "thing", "abstract", "place", "time")
VERB_FRAMES = frozenset("ITHDSVRCQN")


@dataclass(frozen=True)
class Noun:
    cls: str
    sg: str
    pl: str | None  # None: a mass noun, used only in the singular


@dataclass(frozen=True)
class Verb:
    vb: str
    vbd: str
    vbz: str
    vbg: str
    vbn: str
    frames: frozenset[str]
    particle: str | None = None  # "up" for pick up, "back" for cut back

    def vbp(self) -> str:
        return self.vb


@dataclass(frozen=True)
class Adjective:
    jj: str
    jjr: str | None
    jjs: str | None
    complement: str | None  # "V" (to-infinitive) or a preposition; such adjectives are predicative
    use: str = "any"  # which nouns it modifies: any, person, or concrete (things and places)

    def fits(self, noun_class: str) -> bool:
        if self.use == "person":
            return noun_class == "person"
        if self.use == "concrete":
            return noun_class in ("thing", "place")
        return True


@dataclass
class Lexicon:
    nouns: dict[str, list[Noun]] = field(default_factory=dict)
    verbs: list[Verb] = field(default_factory=list)
    adjectives: list[Adjective] = field(default_factory=list)
    adverbs: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    # closed classes, each entry (TAG, word, feature...)
    function: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def verbs_with(self, frame: str) -> list[Verb]:
        return [v for v in self.verbs if frame in v.frames]

    def words(self) -> set[str]:
        """Every distinct word form the grammar can emit (names split into their words)."""
        out: set[str] = set()
        for nouns in self.nouns.values():
            out.update(w for n in nouns for w in (n.sg, n.pl) if w)
        for v in self.verbs:
            out.update((v.vb, v.vbd, v.vbz, v.vbg, v.vbn))
        out.update(w for a in self.adjectives for w in (a.jj, a.jjr, a.jjs) if w)
        out.update(w for ws in self.adverbs.values() for w in ws)
        out.update(w for ns in self.names.values() for n in ns for w in n.split())
        out.update(e[1] for es in self.function.values() for e in es)
        return out


def _path(name: str) -> Path:
    return Path(str(resources.files("mckd.tasks.constituency") / "lexicon" / name))


def _entries(name: str, min_fields: int) -> list[tuple[int, list[str]]]:
    """Lines of a lexicon file as (line number, fields); short lines are a file:line error."""
    path = _path(name)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        if len(fields) < min_fields:
            raise InputError(path, lineno, f"expected {min_fields} fields, got {text!r}")
        rows.append((lineno, fields))
    return rows


def _none(word: str) -> str | None:
    return None if word == "-" else word


def _read_nouns() -> dict[str, list[Noun]]:
    nouns: dict[str, list[Noun]] = {c: [] for c in NOUN_CLASSES}
    for lineno, (cls, sg, pl, *_) in _entries("nouns.txt", 3):
        if cls not in nouns:
            raise InputError(_path("nouns.txt"), lineno, f"unknown noun class {cls!r}")
        nouns[cls].append(Noun(cls, sg, _none(pl)))
    return nouns


def _read_verbs() -> list[Verb]:
    verbs = []
    for lineno, (vb, vbd, vbz, vbg, vbn, frames, *rest) in _entries("verbs.txt", 6):
        codes = frozenset(frames.split(","))
        if not codes <= VERB_FRAMES:
            raise InputError(_path("verbs.txt"), lineno, f"unknown frame in {frames!r}")
        verbs.append(Verb(vb, vbd, vbz, vbg, vbn, codes, rest[0] if rest else None))
    return verbs


def _read_adjectives() -> list[Adjective]:
    return [
        Adjective(jj, _none(jjr), _none(jjs), _none(comp), use)
        for _, (jj, jjr, jjs, comp, use, *_) in _entries("adjectives.txt", 5)
    ]


def _read_grouped(name: str) -> dict[str, list[str]]:
    """`class word...` files: the rest of the line is one entry (names may be several words)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for _, (cls, *words) in _entries(name, 2):
        entry = " ".join(words)
        if entry not in groups[cls]:
            groups[cls].append(entry)
    return dict(groups)


def _read_function() -> dict[str, list[tuple[str, ...]]]:
    groups: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for _, (cls, *rest) in _entries("function.txt", 3):
        groups[cls].append(tuple(rest))
    return dict(groups)


@functools.cache
def load_lexicon() -> Lexicon:
    """Read all word lists once per process."""
    return Lexicon(
        nouns=_read_nouns(),
        verbs=_read_verbs(),
        adjectives=_read_adjectives(),
        adverbs=_read_grouped("adverbs.txt"),
        names=_read_grouped("names.txt"),
        function=_read_function(),
    )

"""BIO tags as HTML for the report's per-sentence view: the sentence's words with each slot
value coloured by its type (the same colour for a type everywhere) and labelled with it; slot
values that another tagging of the same sentence lacks are marked (class `diff`)."""

from __future__ import annotations

import html
import zlib

Chunk = tuple[str, int, int]  # slot type, first word, end (exclusive)


def chunks(tags: list[str]) -> list[Chunk]:
    """Slot values as conlleval reads them: a chunk opens at `B-x`, or at an `I-x` that does not
    continue a chunk of type x, and runs over the `I-x` tags that follow."""
    found: list[Chunk] = []
    open_type, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        kind, _, typ = tag.partition("-")
        continues = kind == "I" and typ == open_type
        if open_type is not None and not continues:
            found.append((open_type, start, i))
            open_type = None
        if kind in ("B", "I") and not continues:
            open_type, start = typ, i
    return found


def type_colour(slot_type: str) -> str:
    """A light background colour for a slot type, the same in every report."""
    hue = zlib.crc32(slot_type.encode("utf-8")) % 360
    return f"hsl({hue},70%,85%)"


def tags_html(source: str, output: str | None, reference: str | None) -> str:
    """The words of `source` with `output`'s slot values coloured; values not in `reference`
    (same type over the same words) get class `diff`. A missing output is a dash; tags that do
    not match the words one to one are shown as text, marked whole."""
    words = source.split()
    if output is None:
        return '<span class="none">–</span>'
    tags = output.split()
    if len(tags) != len(words):
        return f'<span class="diff">{html.escape(output)}</span>'
    ref = reference.split() if reference is not None else None
    theirs = set(chunks(ref)) if ref is not None and len(ref) == len(words) else None
    starts = {c[1]: c for c in chunks(tags)}
    parts, i = [], 0
    while i < len(words):
        chunk = starts.get(i)
        if chunk is None:
            parts.append(html.escape(words[i]))
            i += 1
            continue
        typ, start, end = chunk
        marked = reference is not None and (theirs is None or chunk not in theirs)
        text = html.escape(" ".join(words[start:end]))
        parts.append(f'<span class="chunk{" diff" if marked else ""}" '
                     f'style="background:{type_colour(typ)}">{text}'
                     f"<sub>{html.escape(typ)}</sub></span>")
        i = end
    return " ".join(parts)

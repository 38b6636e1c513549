"""Tags in prompts: the answer forms and their instructions, how many tokens an answer may
need, and the tags read back from an answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mckd.errors import ConfigError
from mckd.tasks.slots.tags import TAG

FORMS = ("tags", "interleaved")
INSTRUCTIONS = {
    "tags": (
        "Tag each word of the input with its slot: B-type on the first word of a slot value, "
        "I-type on the following words of the same value, O on words outside any slot. "
        "Answer with exactly one tag per word, in order, separated by spaces."
    ),
    "interleaved": (
        "Tag each word of the input with its slot: B-type on the first word of a slot value, "
        "I-type on the following words of the same value, O on words outside any slot. "
        "Answer with every word of the input, in order, each followed by its tag."
    ),
}


def check_form(form: str, what: str = "slots: unknown prompt form") -> None:
    if form not in FORMS:
        raise ConfigError(f"{what} {form!r} (expected 'tags' or 'interleaved')")


def answer_budget(source: str, form: str, count_tokens: Callable[[str], int]) -> int:
    """A tag is a few tokens (`B-fromloc.city_name` is about 6; 10 leaves room for longer
    type names); interleaving adds the words."""
    words = source.split()
    budget = 10 * len(words) + 8
    if form == "interleaved":
        budget += count_tokens(source) + len(words)
    return budget


def read_tags(raw: str, words: Sequence[str], form: str) -> tuple[list[str], list[str]]:
    """The tags in an answer (first non-empty line), and problems reading it.

    Tags form: one token per word is taken as is, position by position (a token that is not a
    tag is then replaced by `repair_tags`, keeping the others in place); any other count first
    loses the tokens that are not tags (`Tags:`, `Answer -`), so a prefix does not shift the
    tags. Interleaved form `w1 T1 w2 T2 ...`: the words must be the input's; otherwise the
    tokens that look like tags are kept in order, and that is a problem."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    tokens = line.split()
    if form == "tags":
        if len(tokens) == len(words):
            return tokens, []
        return [t for t in tokens if TAG.fullmatch(t)], []
    check_form(form)
    if len(tokens) == 2 * len(words) and tokens[::2] == list(words):
        return tokens[1::2], []
    return [t for t in tokens if TAG.fullmatch(t)], ["answer words differ from the input"]

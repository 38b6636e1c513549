"""Slot filling (BIO tagging): the task object the pipeline uses.

`source` is the words joined by spaces, `target` the BIO tags joined by spaces, one per word
(`O`, `B-type` for a value's first word, `I-type` for the rest); `meta["intent"]` is optional;
`meta["gold"]` holds the gold tags where they are known, on pool examples too (whose target is
a pseudolabel or None), so pseudolabels can be scored against it. The metric is conlleval's
chunk F1 (tasks/conlleval.py). Readers for user corpora are in tasks/slot_readers.py.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError
from mckd.examples import Example
from mckd.tasks.base import Corpus, DecodingConstraint, Metric, Repaired
from mckd.tasks.slots.conlleval import score_tag_sequences, split_tag
from mckd.teacher.gbnf import gbnf_literal

TAG = re.compile(r"O|[BI]-\S+")

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


# --------------------------------------------------------------------------- tag sequences
# This module owns what a valid BIO sequence is and how a broken one is repaired; the tagging
# student (student/tagger.py, student/bio.py) imports these.

OUTSIDE = "O"


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a BIO tag (`O`, `B-type`, `I-type`), or None if it is one."""
    return None if TAG.fullmatch(tag) else f"tag {tag!r} is not O, B-type or I-type"


def sequence_problem(tags: Sequence[str], words: Sequence[str]) -> str | None:
    """What is wrong with gold tags for these words (count, shape, emptiness), or None.
    An `I-x` after `O` is allowed in gold data: conlleval reads it as a chunk start."""
    if not words:
        return "empty sentence"
    if len(tags) != len(words):
        return f"{len(tags)} tags for {len(words)} words"
    for i, tag in enumerate(tags, start=1):
        if not TAG.fullmatch(tag):
            return f"tag {i} {tag!r} is not O, B-type or I-type"
    return None


def as_valid(tags: Sequence[str]) -> list[str]:
    """The same chunks as conlleval reads them, as a valid sequence: an `I-x` that does not
    follow `B-x` or `I-x` starts a chunk, so it becomes `B-x`."""
    out: list[str] = []
    for tag in tags:
        prev = out[-1] if out else OUTSIDE
        if tag.startswith("I-") and prev not in (f"B-{tag[2:]}", tag):
            tag = f"B-{tag[2:]}"
        out.append(tag)
    return out


def is_valid(tags: Sequence[str]) -> bool:
    """Whether a tag sequence obeys the BIO constraints (`I-x` only after `B-x` or `I-x`)."""
    return all(TAG.fullmatch(t) for t in tags) and as_valid(tags) == list(tags)


def tag_set(sequences: Iterable[Sequence[str]], existing: Sequence[str] = ()) -> list[str]:
    """`existing` (kept in its order, so a trained layer's rows still mean the same tags), then
    `O` and, for every type seen in `sequences` as B-x or I-x, both B-x and I-x, sorted."""
    types = {tag[2:] for seq in sequences for tag in seq if tag != OUTSIDE}
    out = list(existing)
    seen = set(out)
    for tag in [OUTSIDE, *(f"{p}-{t}" for t in sorted(types) for p in "BI")]:
        if tag not in seen:
            out.append(tag)
            seen.add(tag)
    return out


def repair_tags(
    tags: Sequence[str], n: int, labels: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Exactly `n` valid BIO tags from a model's tags, and the problems found: tags that are
    not O/B-x/I-x (or not in `labels`, when given) become O, extra tags are dropped, missing
    ones are O, and an `I-x` without `B-x` before it becomes `B-x`."""
    problems: list[str] = []
    known = set(labels) if labels else None
    unknown = sum(not TAG.fullmatch(t) or (known is not None and t not in known) for t in tags)
    if unknown:
        problems.append(f"replaced {unknown} unknown tag{'s' if unknown > 1 else ''} with O")
        tags = [t if TAG.fullmatch(t) and (known is None or t in known) else OUTSIDE for t in tags]
    if len(tags) > n:
        problems.append(f"dropped {len(tags) - n} extra tags")
        tags = tags[:n]
    elif len(tags) < n:
        problems.append(f"added {n - len(tags)} missing tags as O")
        tags = [*tags, *[OUTSIDE] * (n - len(tags))]
    out = as_valid(tags)
    fixed = sum(a != b for a, b in zip(out, tags, strict=True))
    if fixed:
        problems.append(f"made {fixed} I- without B- into B-")
    return out, problems


def gold_tags(example: Example) -> list[str] | None:
    """The example's gold tags: meta["gold"], else its target; None when neither is there."""
    gold = example.meta.get("gold") or example.target
    return gold.split() if gold else None


def _pred_tags(pred: str | None, n: int) -> list[str] | None:
    """A prediction's tags, or None when it cannot be scored (wrong count, a non-BIO tag)."""
    tags = (pred or "").split()
    return tags if len(tags) == n and all(TAG.fullmatch(t) for t in tags) else None


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
    if form != "interleaved":
        raise ConfigError(f"slots: unknown prompt form {form!r} (expected 'tags' or 'interleaved')")
    if len(tokens) == 2 * len(words) and tokens[::2] == list(words):
        return tokens[1::2], []
    return [t for t in tokens if TAG.fullmatch(t)], ["answer words differ from the input"]


# --------------------------------------------------------------------------- grammar


def label_types(labels: Sequence[str]) -> list[str]:
    """The slot types named by a label set (`B-x` or `I-x` names type x)."""
    types = {split_tag(t)[1] for t in labels if t[:2] in ("B-", "I-")}
    return sorted(types)


def tag_grammar(
    words: Sequence[str], labels: Sequence[str], *, form: str = "tags", leading_space: bool = True
) -> str:
    """GBNF admitting exactly one tag per word, only `O` and the B-/I- tags of the label set's
    types, and `I-x` only right after `B-x` or `I-x`. The state is (word index, type of the
    previous tag or none), so every rule is finite and nothing repeats.

    Forms: "tags" (`O B-x I-x`) and "interleaved" (`w1 O w2 B-x w3 I-x`)."""
    if not words:
        raise ConfigError("grammar: cannot build a tag grammar for an empty sentence")
    if form not in INSTRUCTIONS:
        raise ConfigError(f"grammar: unknown form {form!r} (expected 'tags' or 'interleaved')")
    for tag in labels:
        if not TAG.fullmatch(tag):
            raise ConfigError(f"grammar: label {tag!r} is not O, B-type or I-type")
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ConfigError(f"grammar: word {w!r} is empty or contains a space")
    types = label_types(labels)
    n = len(words)
    rules = [f"root ::= {'[ ]? ' if leading_space else ''}s0-o"]
    for i in range(n):
        # what comes before tag i: a space after the previous tag, and the word if interleaved
        sep = " " if i else ""
        pre = gbnf_literal(f"{sep}{words[i]} ") if form == "interleaved" else gbnf_literal(sep)
        pre = "" if pre == '""' else pre + " "

        def then(state: str, i: int = i) -> str:
            return f" s{i + 1}-{state}" if i + 1 < n else ""

        if types:  # b{i}: a B- tag at word i, each type leading to its own state
            rules.append(f"b{i} ::= " + " | ".join(
                gbnf_literal(f"B-{t}") + then(f"t{k}") for k, t in enumerate(types)))
        fresh = ['"O"' + then("o"), *([f"b{i}"] if types else [])]
        rules.append(f"s{i}-o ::= " + " | ".join(pre + alt for alt in fresh))
        for k, t in enumerate(types if i else ()):  # after B-t or I-t, I-t may follow
            inside = [*fresh, gbnf_literal(f"I-{t}") + then(f"t{k}")]
            rules.append(f"s{i}-t{k} ::= " + " | ".join(pre + alt for alt in inside))
    return "\n".join(rules) + "\n"


# --------------------------------------------------------------------------- the task


def _all_o(sources: list[str]) -> list[str]:
    return [" ".join("O" for _ in s.split()) for s in sources]


class SlotsTask:
    """Slot filling as the pipeline sees it (see the module docstring)."""

    name = "slots"
    metrics = (
        Metric("f1", "F1", "conlleval chunk F1 (conlleval.pl, 2004)", primary=True),
        Metric("precision", "P", "conlleval chunk precision"),
        Metric("recall", "R", "conlleval chunk recall"),
        Metric("accuracy", "tag acc", "token tag accuracy (conlleval)"),
        Metric("exact_match", "EM", "sentences with every tag right (%)"),
    )
    student_kinds = ("tagger", "seq2seq", "causal")
    prompt_forms = ("tags", "interleaved")
    copies_words = False
    eval_metrics = ("conlleval",)

    # --- gold and scoring
    def has_gold(self, example: Example) -> bool:
        return bool(example.meta.get("gold"))

    def validate(self, example: Example) -> str | None:
        if example.target is None:
            return "no target"
        return sequence_problem(example.target.split(), example.source.split())

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        """conlleval's figures; `valid`: predictions with one BIO tag per word. Any other
        prediction finds no chunk and gets no tag right."""
        if len(golds) != len(preds):
            raise ValueError(f"{len(golds)} gold examples but {len(preds)} predictions")
        gold = []
        for ex in golds:
            tags = gold_tags(ex)
            if tags is None:
                raise ValueError(f"gold example {ex.id!r} has neither meta['gold'] nor a target")
            gold.append(tags)
        pred = [_pred_tags(p, len(g)) for g, p in zip(gold, preds, strict=True)]
        s = score_tag_sequences(gold, pred)
        out = {m.key: float(s[m.key]) for m in self.metrics}
        out["valid"] = float(sum(p is not None for p in pred))
        out["sentences"] = float(len(gold))
        return out

    def label_coverage(self, golds: Sequence[Example], labels: Sequence[str]) -> dict[str, Any] | None:
        """Gold chunks (as conlleval counts them) whose slot type is not in the label set: no
        teacher answer (grammar or repair) and no student trained on its labels can give
        them. Adds `label_types` (types in the label set) and `types_outside` ({type: gold
        chunks}, most first). None when the golds have no chunk."""
        seqs = [tags for ex in golds if (tags := gold_tags(ex))]
        per_type = score_tag_sequences(seqs, seqs)["per_type"] if seqs else {}
        counts = {kind: v["gold"] for kind, v in per_type.items() if v["gold"]}
        total = sum(counts.values())
        if not total:
            return None
        known = set(label_types(labels))
        outside = {k: n for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                   if k not in known}
        missing = sum(outside.values())
        recall = 100.0 * (total - missing) / total
        return {"gold_chunks": total, "outside_label_set": missing,
                "outside_share": 100.0 * missing / total, "recall_ceiling": recall,
                "f1_ceiling": 2 * 100.0 * recall / (100.0 + recall) if recall else 0.0,
                "label_types": len(known), "types_outside": outside}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        """conlleval F1 of predictions against (pseudo)label targets; missing targets and
        targets without one BIO tag per word are left out."""
        gold, pred = [], []
        for target, p, source in zip(targets, preds, sources, strict=True):
            n = len(source.split())
            tags = _pred_tags(target, n)
            if tags is not None:
                gold.append(tags)
                pred.append(_pred_tags(p, n))
        return float(score_tag_sequences(gold, pred)["f1"]) if gold else 0.0

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        return {"all_o": _all_o}

    # --- teacher
    def instruction(self, form: str) -> str:
        if form not in INSTRUCTIONS:
            raise ConfigError(f"slots: unknown prompt form {form!r} (expected 'tags' or 'interleaved')")
        return INSTRUCTIONS[form]

    def demo_output(self, example: Example, form: str) -> str:
        tags = gold_tags(example) if example.target is None else example.target.split()
        if tags is None:
            raise ConfigError(f"labeled example {example.id!r} has no target")
        if form == "interleaved":
            return " ".join(f"{w} {t}" for w, t in zip(example.source.split(), tags, strict=True))
        self.instruction(form)  # checks the form
        return " ".join(tags)

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> list[str]:
        """O, and B-x and I-x for every type x in the examples' tags (the target, else
        meta["gold"]) or in `extra` (full tags or bare type names): a JSON list, saved with a
        generating student for its decoding constraint."""
        sequences = [(ex.target or ex.meta.get("gold") or "").split() for ex in labeled]
        sequences.append([t if t[:2] in ("B-", "I-") else f"B-{t}" for t in extra if t != OUTSIDE])
        return tag_set(sequences)

    def grammar(self, source: str, form: str, labels: Sequence[str], options: Any) -> str | None:
        """`tag_grammar` for the input's words; in the completion style it admits one
        leading space."""
        style = getattr(options, "style", None) or "completion"
        return tag_grammar(source.split(), labels, form=form, leading_space=style == "completion")

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        """A tag is a few tokens (`B-fromloc.city_name` is about 6; 10 leaves room for longer
        type names); interleaving adds the words."""
        words = source.split()
        budget = 10 * len(words) + 8
        if form == "interleaved":
            budget += count_tokens(source) + len(words)
        return budget

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """Tags read from the answer and repaired (`repair_tags`); `options.labels` (the label
        set of the prompts, when the labelling run hands it over) is the set a tag must come
        from. An answer with no tag at all is unusable."""
        words = example.source.split()
        tags, problems = read_tags(raw, words, form)
        if not any(TAG.fullmatch(t) for t in tags):
            return Repaired(None, [*problems, "no tags in the answer"])
        fixed, repairs = repair_tags(tags, len(words), getattr(options, "labels", None))
        return Repaired(" ".join(fixed), problems + repairs)

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """'vote': per word, the tag most samples give (ties: the earliest sample's), then
        any `I-x` left without `B-x` made `B-x`; 'mbr': the sample agreeing with the others
        on the most tags. Samples without one tag per word are left out; when none is left,
        the first sample goes on as it is."""
        n = len(source.split())
        samples = [(a, tags) for a in answers if (tags := _pred_tags(a.text, n)) is not None]
        usable = [tags for _, tags in samples]
        info: dict[str, Any] = {"samples": len(answers), "usable": len(usable)}
        if not usable:
            return answers[0], info
        if how == "mbr":
            agree = [sum(sum(x == y for x, y in zip(a, b, strict=True)) for b in usable)
                     for a in usable]
            best = max(range(len(usable)), key=lambda i: (agree[i], -i))
            info["chosen"] = best
            return Repaired(" ".join(usable[best]), list(samples[best][0].problems)), info
        if how != "vote":
            raise ConfigError(f"slots: unknown consensus {how!r} (expected 'vote' or 'mbr')")
        voted = []
        for column in zip(*usable, strict=True):
            counts = Counter(column)
            top = max(counts.values())
            voted.append(next(t for t in column if counts[t] == top))
        tags = as_valid(voted)
        fixed = sum(a != b for a, b in zip(tags, voted, strict=True))
        info["unanimous"] = sum(len(set(c)) == 1 for c in zip(*usable, strict=True))
        info["bio_fixed"] = fixed
        problems = [f"made {fixed} I- without B- into B-"] if fixed else []
        repaired = sum(not a.valid for a, _ in samples)
        if repaired:  # the vote's tags came partly from answers that needed a repair
            problems.append(f"voted over {repaired} repaired sample{'s' if repaired > 1 else ''}")
        return Repaired(" ".join(tags), problems), info

    # --- students
    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        """Exactly one valid BIO tag from `labels` per input word (student/tag_constraint.py);
        None when the student saved no label set. `placeholder` does not apply: tags do not
        contain the input words."""
        if not labels:
            return None
        from mckd.tasks.slots.constraint import TagConstraint

        return TagConstraint(len(source.split()), labels, tokenizer, space_first=space_first)

    # --- data
    def read_corpus(self, path: str | Path) -> list[Example]:
        """The ATIS/Snips `seq.in`/`seq.out`/`label` layout, CoNLL column files or Example
        JSONL (tasks/slot_readers.py)."""
        from mckd.tasks.slots.readers import read_slot_corpus

        return read_slot_corpus(path)

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        from mckd.tasks.slots.readers import evaluate_tag_files

        return evaluate_tag_files(gold, pred, metric, per_sentence=per_sentence)

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None) -> Corpus:
        """The generated assistant-request corpus (mckd.tasks.slots.synth)."""
        from mckd.tasks.slots.synth import synth_slot_corpus

        return synth_slot_corpus(n_labeled, n_pool, n_test, seed=seed, max_words=max_words)

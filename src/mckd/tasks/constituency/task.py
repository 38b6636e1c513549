"""Constituency parsing as the pipeline sees it: the paper's unlabeled bracketing as the
target, prompts and grammar for the teacher, repair of answers, consensus over samples, the
decoding constraint of generating students, treebank readers, the built-in treebank and its
statistics, and scores (the paper's metric and EVALB). The hooks call this package's modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mckd.errors import InputError
from mckd.evidence import SentenceStats, f1_stats, mean_stats
from mckd.examples import Example
from mckd.split import MAX_LEN, DemoCorpusConfig
from mckd.tasks.base import Corpus, DecodingConstraint, Metric, Repaired, gold_outputs
from mckd.tasks.constituency.brackets import (
    TreeSyntaxError,
    left_branching,
    looks_labeled,
    right_branching,
    scan_brackets,
)
from mckd.tasks.constituency.constraint import TreeConstraint
from mckd.tasks.constituency.evalb import COLLINS, EvalbParams, evalb
from mckd.tasks.constituency.files import METRICS, evaluate_files
from mckd.tasks.constituency.grammar import tree_grammar
from mckd.tasks.constituency.metric import PaperGold, average, paper_metric, score_prediction
from mckd.tasks.constituency.view import tree_html

# nltk takes seconds to import, and loading a config or scoring never needs it: the modules
# that use it (trees, prompts, consensus, readers, corpus, stats) are imported on first use.
if TYPE_CHECKING:
    from nltk import Tree

    from mckd.tasks.constituency.trees import Repair


def _gold_trees(golds: Sequence[Example], preds: Sequence[str]) -> tuple[list[str], bool]:
    """The gold trees to score against, and whether all of them carry POS tags."""
    trees = gold_outputs(golds, preds, lambda ex: ex.meta.get("tree") or ex.target, "meta['tree']")
    return trees, _all_or_none_tagged(golds)


def _all_or_none_tagged(golds: Sequence[Example]) -> bool:
    """Whether every gold example has its POS-tagged tree; an error when only some have one, as
    one metric cannot both drop punctuation (by the tags) and count it."""
    untagged = [ex.id for ex in golds if not ex.meta.get("tree")]
    if untagged and len(untagged) < len(golds):
        raise InputError(None, None, f"{len(untagged)} of {len(golds)} gold examples have no POS-tagged "
                         f"tree in meta['tree'] (first: id {untagged[0]!r}) but the others do: the "
                         "paper's metric removes punctuation by those tags, so give every gold example "
                         "its tree, or none")
    return not untagged


class ConstituencyTask:
    """Constituency parsing as the pipeline sees it: the paper's unlabeled bracketing as the
    target, repair of generated trees, and scores (the paper's metric and EVALB)."""

    name = "constituency"
    metrics = (
        Metric("f1", "F1 (paper metric)", "the paper's metric: per-sentence unlabeled bracket F1 "
               "without punctuation, averaged over sentences, invalid trees 0", primary=True),
        Metric("evalb_f1", "EVALB F1", "corpus-level labeled EVALB F1 (COLLINS.prm)"),
        Metric("evalb_unlabeled_f1", "EVALB unlabeled F1", "corpus-level EVALB F1 ignoring labels"),
        Metric("valid", "valid outputs", "outputs that are valid trees over exactly the input words"),
    )
    # seq2seq first: a config that names no student kind gets the paper's kind of student
    student_kinds = ("seq2seq", "chart", "causal")
    prompt_forms = ("labeled", "unlabeled")
    copies_words = True
    eval_metrics = METRICS

    def linearize(self, tree: Tree) -> str:
        from mckd.tasks.constituency import trees  # nltk: loaded on first use

        return trees.to_unlabeled(tree)

    def example(self, id: str, tree: Tree, *, labeled: bool = True) -> Example:
        """The Example for a normalized gold tree (target None for the unlabeled pool)."""
        from mckd.tasks.constituency import trees  # nltk: loaded on first use

        return Example(
            id,
            " ".join(trees.tree_words(tree)),
            trees.to_unlabeled(tree) if labeled else None,
            {"tree": trees.to_labeled(tree, pos=True)},
        )

    def repair(self, text: str, source: str) -> Repair:
        from mckd.tasks.constituency import trees  # nltk: loaded on first use

        return trees.repair(text, source.split())

    # --- gold and scoring -----------------------------------------------------------------

    def has_gold(self, example: Example) -> bool:
        """Gold is the labeled tree with POS tags in meta['tree']."""
        return bool(example.meta.get("tree"))

    def validate(self, example: Example) -> str | None:
        """A target must be one well-formed tree whose leaves are the source's words."""
        if not example.target:
            return "no target"
        try:
            words, _, _ = scan_brackets(example.target)
        except TreeSyntaxError as e:
            return f"target is not a tree: {e}"
        if words != example.source.split():
            return "the target tree's words differ from the source"
        return None

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        """`f1`/`precision`/`recall`: the paper's metric (mean per sentence, 0-100); `valid`:
        predictions it could score; `evalb_unlabeled_f1` always and `evalb_f1` when both gold
        and predictions carry phrase labels (EVALB, COLLINS.prm, corpus-level). Punctuation is
        removed by the gold trees' POS tags (`meta["tree"]`); gold examples without them count
        every token, and a set that mixes the two is refused."""
        trees, tagged = _gold_trees(golds, preds)
        paper = paper_metric(trees, preds, [ex.source for ex in golds], drop_punctuation=tagged)
        out = {
            "f1": paper.mean_f1,
            "precision": average([s.precision for s in paper.sentences]),
            "recall": average([s.recall for s in paper.sentences]),
            "valid": float(len(preds) - paper.failed),
            "sentences": float(len(preds)),
        }
        unlabeled = evalb(trees, preds, EvalbParams(labeled=False), malformed_is_error=True)
        out["evalb_unlabeled_f1"] = unlabeled.all.figures()["Bracketing FMeasure"]
        if tagged and any(looks_labeled(p) for p in preds):
            labeled = evalb(trees, preds, COLLINS, malformed_is_error=True)
            out["evalb_f1"] = labeled.all.figures()["Bracketing FMeasure"]
            out["evalb_valid"] = float(labeled.all.valid)
        return out

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        """The paper's F1 as a mean of per-sentence F1s; EVALB's F1s as per-sentence bracket
        counts (matched, test, gold), summed before dividing as EVALB does (error and skipped
        sentences count nothing)."""
        trees, tagged = _gold_trees(golds, preds)
        paper = paper_metric(trees, preds, [ex.source for ex in golds], drop_punctuation=tagged)
        out = {"f1": mean_stats([s.f1 for s in paper.sentences])}
        runs = [("evalb_unlabeled_f1", EvalbParams(labeled=False))]
        if tagged and any(looks_labeled(p) for p in preds):
            runs.append(("evalb_f1", COLLINS))
        for key, params in runs:
            rows = evalb(trees, preds, params, malformed_is_error=True).sentences
            out[key] = f1_stats([r.matched for r in rows], [r.test for r in rows], [r.gold for r in rows])
        return out

    def label_coverage(self, golds: Sequence[Example], labels: Any) -> dict[str, Any] | None:
        """None: the paper's metric is unlabeled, and the label set (every PTB label plus those
        of the labeled trees and task.labels) bounds no tree the metric scores."""
        return None

    def baseline(self, sources: list[str], kind: str = "right") -> list[str]:
        """Right- or left-branching trees over each source's words, in the target form."""
        build = {"right": right_branching, "left": left_branching}[kind]
        return [build(source.split()) for source in sources]

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        """Fully right- and left-branching trees (FINDINGS.md: right-branching is the bar)."""
        return {"right_branching": lambda sources: self.baseline(sources, "right"),
                "left_branching": lambda sources: self.baseline(sources, "left")}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        """Mean per-sentence unlabeled span F1 (0-100) of predictions against pseudolabel
        targets, every token counted (no gold POS tags to find punctuation by); missing
        targets and targets that are not well-formed trees are left out."""
        scores = []
        for target, pred, source in zip(targets, preds, sources, strict=True):
            if not target:
                continue
            try:
                gold = PaperGold(target, source, drop_punctuation=False)
            except ValueError:
                continue
            scores.append(score_prediction(gold, pred).f1)
        return average(scores)

    # --- teacher --------------------------------------------------------------------------

    def instruction(self, form: str) -> str:
        from mckd.tasks.constituency import prompts  # nltk: loaded on first use

        return prompts.INSTRUCTION

    def demo_output(self, example: Example, form: str) -> str:
        """The labeled tree with POS tags (meta['tree']) or the unlabeled target."""
        from mckd.tasks.constituency import prompts  # nltk: loaded on first use

        return prompts.demo_output(example, form)

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> Any:
        """PTB phrase labels (plus `extra`) and POS tags, plus any the labeled trees use."""
        from mckd.tasks.constituency import prompts  # nltk: loaded on first use

        return prompts.label_sets(labeled, extra)

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        """One tree over exactly the input words (grammar.py); `options.root` and
        `options.max_depth` shape it."""
        return tree_grammar(source.split(), form=form, root=options.root,
                            max_depth=options.max_depth, labels=labels.labels, tags=labels.tags,
                            leading_space=(options.style or "completion") == "completion")

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        from mckd.tasks.constituency import prompts  # nltk: loaded on first use

        return prompts.answer_budget(source, form, count_tokens)

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """The answer in the unlabeled form (flat constituents nested right-branching when
        `options.nest_flat`), repaired; leaves that still differ from the words are kept and
        flagged. Never raises: the repair salvages what it can."""
        from mckd.tasks.constituency import prompts  # nltk: loaded on first use

        text = prompts.answer_to_target(raw, form=form, nest_flat=bool(getattr(options, "nest_flat", False)))
        return self._repaired(text, example.source)

    def _repaired(self, text: str, source: str) -> Repaired:
        rep = self.repair(text, source)
        return Repaired(rep.text, list(rep.problems), rep.yield_ok)

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """Consensus over the sampled trees (consensus.py: "mbr" or "vote"); when no
        sample is usable, the first goes on as it is. The picked tree keeps its repairs; a vote
        that counted repaired trees says so."""
        from mckd.tasks.constituency import consensus  # nltk: loaded on first use

        with_text = [a for a in answers if a.text is not None]
        if not with_text:
            return answers[0], {"samples": len(answers), "usable": 0}
        chosen, info = consensus.combine(source.split(), [a.text for a in with_text], how)  # type: ignore[misc]
        out = self._repaired(chosen, source)
        if "picked" in info:
            out.problems[:0] = with_text[info["picked"]].problems
        else:  # a vote over the samples' spans: those of repaired samples count too
            repaired = sum(a.complete and not a.valid for a in with_text)
            if repaired:
                out.problems.append(f"voted over {repaired} repaired sample{'s' if repaired > 1 else ''}")
        return out, info

    # --- students -------------------------------------------------------------------------

    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        """Single-rooted trees over exactly the input words (constraint.py)."""
        return TreeConstraint(source.split(), tokenizer, placeholder=placeholder,
                              space_first=space_first)

    def output_html(self, source: str, output: str | None, reference: str | None) -> str:
        """The bracketing; constituents `reference` lacks marked."""
        return tree_html(output, reference)

    # --- data -----------------------------------------------------------------------------

    def read_corpus(self, path: str | Path) -> list[Example]:
        """A treebank (.mrg files, one-tree-per-line files, or a directory of either), each
        tree normalized, as examples with meta['origin'] = `file#index`."""
        from mckd.tasks.constituency import readers  # nltk: loaded on first use

        bank = readers.load_treebank(path)
        return [self.example(f"{i:06d}", tree).with_target(self.linearize(tree), origin=origin)
                for i, (tree, origin) in enumerate(zip(bank.trees, bank.origins, strict=True))]

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        return evaluate_files(gold, pred, metric, per_sentence=per_sentence)

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        """The synthetic PTB-style treebank (synth.py), split as `mckd data split` does; with
        `test_prefix`, the test trees beyond the first `test_prefix` are drawn after."""
        from mckd.tasks.constituency import corpus  # nltk: loaded on first use

        splits = corpus.demo_splits(_corpus_config(n_labeled, n_pool, n_test, seed, max_words),
                                    test_prefix)
        return Corpus(splits["labeled"], splits["unlabeled"], splits["test"])

    def write_builtin_corpus(self, out_dir: str | Path, n_labeled: int, n_pool: int, n_test: int,
                             *, seed: int, max_words: int | None = None) -> dict[str, int]:
        """The built-in treebank's files, with trees.txt (every tree used) and a DONE marker
        (corpus.py: `build_demo_corpus`)."""
        from mckd.tasks.constituency import corpus  # nltk: loaded on first use

        corpus.build_demo_corpus(out_dir, _corpus_config(n_labeled, n_pool, n_test, seed, max_words))
        return json.loads((Path(out_dir) / "split.json").read_text(encoding="utf-8"))["sizes"]

    def write_generated(self, path: str | Path, n: int, *, seed: int,
                        max_words: int | None = None) -> None:
        """`n` synthetic trees, one labeled tree with POS tags per line."""
        from mckd.tasks.constituency import corpus, synth  # nltk: loaded on first use

        corpus.write_trees(path, synth.synth_treebank(n, seed, max_len=max_words or MAX_LEN))

    def stats(self, path: str | Path) -> dict[str, Any]:
        """Treebank statistics (stats.py): lengths, labels, vocabulary, branching baselines."""
        from mckd.tasks.constituency import readers, stats  # nltk: loaded on first use

        return stats.treebank_stats(readers.load_treebank(path).trees)

    def format_stats(self, stats: dict[str, Any]) -> str:
        from mckd.tasks.constituency import stats as treebank  # nltk: loaded on first use

        return treebank.format_stats(stats)


def _corpus_config(n_labeled: int, n_pool: int, n_test: int, seed: int,
                   max_words: int | None) -> DemoCorpusConfig:
    fields: dict[str, Any] = {"n_labeled": n_labeled, "n_unlabeled": n_pool, "n_test": n_test,
                              "seed": seed}
    if max_words is not None:
        fields["max_len"] = max_words
    return DemoCorpusConfig(**fields)

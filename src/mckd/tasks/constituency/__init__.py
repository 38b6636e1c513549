"""Constituency parsing: everything that depends on trees as the output format.

    task.py        ConstituencyTask, the hooks the pipeline calls
    metric.py      the paper's metric (official repair, punctuation by gold POS tag), span F1
    evalb.py       EVALB with COLLINS.prm semantics
    files.py       scoring prediction files (`mckd evaluate`)
    brackets.py    string-level bracket scanning (no nltk), branching baselines
    trees.py       PTB trees on nltk.Tree: read, normalise, linearize, parse back, repair
    readers.py     treebanks (.mrg, one tree per line, directories) with drop counts
    prompts.py     trees in prompts: demonstrations, label sets, answer budget, answers read back
    grammar.py     per-input GBNF tree grammars for the teacher
    consensus.py   minimum-Bayes-risk choice or span vote among sampled trees
    constraint.py  decoding constraint: well-formed trees over the input words
    synth.py, synth_np.py, lexicon.py, lexicon/   the built-in PCFG of English
    corpus.py      the built-in treebank split into labeled / unlabeled / test
    stats.py       treebank statistics (`mckd data stats`)
"""

from __future__ import annotations

from mckd.tasks.constituency.files import METRICS, evaluate_files
from mckd.tasks.constituency.metric import (
    PaperGold,
    PaperResult,
    PaperScore,
    fixup_prediction,
    paper_metric,
    score_prediction,
)
from mckd.tasks.constituency.task import ConstituencyTask

__all__ = ["METRICS", "ConstituencyTask", "PaperGold", "PaperResult", "PaperScore", "evaluate_files",
           "fixup_prediction", "paper_metric", "score_prediction"]

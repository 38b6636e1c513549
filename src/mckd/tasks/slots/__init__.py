"""Slot filling (BIO tagging): everything that depends on tag sequences as the output format.

    task.py        SlotsTask, the hooks the pipeline calls
    tags.py        what a valid BIO sequence is, its repair, label types, chunks
    conlleval.py   conlleval.pl's chunk counts and figures
    files.py       scoring tag files (`mckd evaluate`)
    readers.py     ATIS/Snips folders, CoNLL files, Example JSONL (IOB1 read as IOB2)
    prompts.py     answer forms, instructions, answer budget, tags read back from answers
    grammar.py     the teacher's per-input tag grammar (GBNF)
    constraint.py  decoding constraint: n valid BIO tags from a label set
    synth.py, fillers.json   the built-in corpus of generated assistant requests
    stats.py       corpus statistics (`mckd data stats`, the built-in corpus's split.json)
"""

from __future__ import annotations

from mckd.tasks.slots.grammar import tag_grammar
from mckd.tasks.slots.prompts import INSTRUCTIONS, read_tags
from mckd.tasks.slots.tags import (
    OUTSIDE,
    TAG,
    as_valid,
    gold_tags,
    is_valid,
    label_types,
    repair_tags,
    sequence_problem,
    tag_problem,
    tag_set,
)
from mckd.tasks.slots.task import SlotsTask

__all__ = ["INSTRUCTIONS", "OUTSIDE", "TAG", "SlotsTask", "as_valid", "gold_tags", "is_valid",
           "label_types", "read_tags", "repair_tags", "sequence_problem", "tag_grammar",
           "tag_problem", "tag_set"]

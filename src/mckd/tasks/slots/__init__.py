"""Slot filling (BIO tagging): everything that depends on tag sequences as the output format."""

from __future__ import annotations

from mckd.tasks.slots.task import (
    INSTRUCTIONS,
    OUTSIDE,
    TAG,
    SlotsTask,
    as_valid,
    gold_tags,
    is_valid,
    label_types,
    read_tags,
    repair_tags,
    sequence_problem,
    tag_grammar,
    tag_problem,
    tag_set,
)

__all__ = ["INSTRUCTIONS", "OUTSIDE", "TAG", "SlotsTask", "as_valid", "gold_tags", "is_valid",
           "label_types", "read_tags", "repair_tags", "sequence_problem", "tag_grammar",
           "tag_problem", "tag_set"]

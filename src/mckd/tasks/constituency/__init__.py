"""Constituency parsing: everything that depends on trees as the output format."""

from __future__ import annotations

from mckd.tasks.constituency.task import (
    METRICS,
    ConstituencyTask,
    PaperGold,
    PaperResult,
    PaperScore,
    evaluate_files,
    fixup_prediction,
    paper_metric,
    score_prediction,
)

__all__ = ["METRICS", "ConstituencyTask", "PaperGold", "PaperResult", "PaperScore", "evaluate_files",
           "fixup_prediction", "paper_metric", "score_prediction"]

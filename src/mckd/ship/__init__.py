"""Shipping a distilled student: `mckd export` (a self-contained model directory with a model
card, optionally ONNX), `mckd.load` (a directory or a Hugging Face hub repo) and `mckd serve`
(an HTTP endpoint with dynamic batching). docs/SHIPPING.md describes the directory."""

from __future__ import annotations

from mckd.ship.model import Output, ShippedModel, load

__all__ = ["Output", "ShippedModel", "load"]

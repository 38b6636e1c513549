"""Measure how fast the local teacher labels with each of llama.cpp's speculative drafters.

Every condition labels the same test sentences of the built-in demo with the same prompt
(labeled form, single-root grammar, shared demonstrations, greedy) through the llama.cpp
backend; only `TeacherConfig.speculative` differs. Per sentence it records the answer, wall
seconds, generated tokens and llama.cpp's draft counts (`timings.draft_n`, `draft_n_accepted`);
the report gives sentences per minute, generated tokens per second, the draft acceptance rate,
how many answers are valid trees and how many are identical to plain decoding. Run one
condition at a time on an otherwise idle machine: timings taken next to other work say little.

    python benchmarks/teacher_speed.py prepare --data DIR
    python benchmarks/teacher_speed.py run --data DIR --out OUT -k 10 --condition plain ...
    python benchmarks/teacher_speed.py report --data DIR --out OUT -k 10

Records go to OUT/k<K>/<condition>.jsonl as they arrive, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from teacher_levers import BASE, _f1, load, prepare_demo

from mckd.examples import Example
from mckd.tasks import TASKS
from mckd.tasks.constituency.trees import parse_bracketed, tree_words
from mckd.teacher.backends.base import BackendError
from mckd.teacher.prompts import PromptBuilder, PromptConfig

DRAFT = "qwen2.5-coder-0.5b"
# name -> speculative settings (TeacherConfig.speculative); the draft model comes from --draft-model
CONDITIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "draft": {"type": ["draft"]},
    "draft-n4": {"type": ["draft"], "n_max": 4},
    "ngram_simple": {"type": ["ngram_simple"]},
    "ngram_map_k": {"type": ["ngram_map_k"]},
    "ngram_map_k4v": {"type": ["ngram_map_k4v"]},
    "ngram_mod": {"type": ["ngram_mod"]},
    "ngram_cache": {"type": ["ngram_cache"]},
    "draft+ngram_mod": {"type": ["draft", "ngram_mod"]},
    "draft+ngram_simple": {"type": ["draft", "ngram_simple"]},
    "slots4": {},  # no drafter: four sentences decoded together in llama.cpp's parallel slots
}
SLOTS = {"slots4": 4}


def speculative(name: str, draft_model: str, n_max: int | None) -> dict[str, Any]:
    spec = dict(CONDITIONS[name])
    if "draft" in spec.get("type", []):
        spec["draft_model"] = draft_model
    if n_max is not None and spec:
        spec["n_max"] = n_max
    return spec


def valid_tree(text: str, ex: Example) -> bool:
    try:
        return tree_words(parse_bracketed(text.strip())) == ex.source.split()
    except Exception:
        return False


def run_dir(out: Path, k: int, grammar: bool) -> Path:
    return out / (f"k{k}" if grammar else f"k{k}-nogrammar")


def run_condition(name: str, data: Path, out: Path, *, n: int, k: int, model: str,
                  draft_model: str, threads: int, n_max: int | None, grammar: bool) -> None:
    from mckd.teacher.backends.llamacpp import LlamaCppBackend
    from mckd.teacher.config import TeacherConfig

    labeled, test = load(data, n)
    context = 8192 if k > 10 else 4096  # 30 labeled demonstrations take ~3,100 tokens
    path = run_dir(out, k, grammar) / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["id"] for line in path.open()} if path.exists() else set()
    todo = [ex for ex in test if ex.id not in done]
    if not todo:
        return
    spec = speculative(name, draft_model, n_max)
    slots = SLOTS.get(name, 1)
    backend = LlamaCppBackend(TeacherConfig(backend="llamacpp", model=model, context_size=context,
                                            n_threads=threads, speculative=spec), slots=slots)
    builder = PromptBuilder(labeled, PromptConfig(**{**BASE, "k": k, "grammar": grammar}),
                            task=TASKS["constituency"],
                            count_tokens=lambda t: int(len(t) / 2.5) + 1, context_size=context,
                            pool=test)
    async def group(exs: list[Example]) -> list[Any]:
        return await asyncio.gather(*(backend.acomplete(builder.build_request(ex)) for ex in exs),
                                    return_exceptions=True)

    with path.open("a") as f:
        # with parallel slots, `slots` sentences at a time; each is charged an equal share of
        # the group's wall time, so sentences per minute stay comparable with one slot
        for i in range(0, len(todo), slots):
            exs = todo[i:i + slots]
            load0, start = os.getloadavg()[0], time.perf_counter()
            comps = asyncio.run(group(exs))
            share = (time.perf_counter() - start) / len(exs)
            for ex, comp in zip(exs, comps, strict=True):
                rec: dict[str, Any] = {"id": ex.id, "speculative": spec, "threads": threads,
                                       "slots": slots}
                if isinstance(comp, BackendError):
                    rec.update(text="", error=str(comp))
                elif isinstance(comp, BaseException):
                    raise comp
                else:
                    t = comp.extra.get("timings", {})
                    rec.update(text=comp.text, seconds=comp.seconds if slots == 1 else share,
                               prompt_tokens=comp.prompt_tokens,
                               cached_tokens=comp.extra.get("cached_tokens", 0),
                               completion_tokens=comp.completion_tokens,
                               predicted_ms=t.get("predicted_ms", 0.0) / slots,
                               draft_n=t.get("draft_n", 0),
                               draft_accepted=t.get("draft_n_accepted", 0))
                rec["load"] = (load0 + os.getloadavg()[0]) / 2
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(f"{name} k{k} {ex.id} {rec.get('seconds', 0):.1f}s "
                      f"drafted {rec.get('draft_n', 0)} accepted {rec.get('draft_accepted', 0)}",
                      flush=True)
    backend.close()


def _records(path: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    recs: dict[str, dict[str, Any]] = {}
    for line in path.open():
        rec = json.loads(line)
        recs.setdefault(rec["id"], rec)
    return {i: recs[i] for i in ids if i in recs}


def report(data: Path, out: Path, *, n: int, k: int, grammar: bool = True) -> str:
    _, test = load(data, n)
    by_id = {ex.id: ex for ex in test}
    ids = list(by_id)
    plain = _records(run_dir(out, k, grammar) / "plain.jsonl", ids)
    rows = ["| condition | sentences | sentences / min | generated tok/s | drafted | accepted "
            "(rate) | valid trees | identical to plain | F1 (plain, same sentences) "
            "| speed vs plain | s / sentence (first call) | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in CONDITIONS:
        recs = _records(run_dir(out, k, grammar) / f"{name}.jsonl", ids)
        if not recs:
            continue
        ok = [r for r in recs.values() if "seconds" in r]
        secs = sum(r["seconds"] for r in ok)
        gen = sum(r["completion_tokens"] for r in ok)
        gen_s = sum(r["predicted_ms"] for r in ok) / 1000
        drafted = sum(r["draft_n"] for r in ok)
        accepted = sum(r["draft_accepted"] for r in ok)
        rate = f"{accepted} ({accepted / drafted:.0%})" if drafted else "0"
        valid = sum(valid_tree(r["text"], by_id[i]) for i, r in recs.items())
        same = sum(i in plain and plain[i]["text"] == r["text"] for i, r in recs.items())
        first = recs[ids[0]]["seconds"] if ids[0] in recs and "seconds" in recs[ids[0]] else 0.0
        load_avg = sum(r["load"] for r in recs.values()) / len(recs)
        golds = [by_id[i] for i in recs]
        f1 = _f1(golds, [recs[i]["text"] for i in recs])
        both = [i for i in recs if i in plain]
        f1_plain = _f1([by_id[i] for i in both], [plain[i]["text"] for i in both]) if both else 0.0
        # seconds over the same sentences as plain, the first call (the shared prefix) left out
        later = [i for i in both[1:] if "seconds" in recs[i] and "seconds" in plain[i]]
        mine = sum(recs[i]["seconds"] for i in later)
        speed = sum(plain[i]["seconds"] for i in later) / mine if mine else 0.0
        rows.append(f"| {name} | {len(recs)} | {60 * len(ok) / max(secs, 1e-9):.2f} | "
                    f"{gen / max(gen_s, 1e-9):.1f} | {drafted} | {rate} | {valid}/{len(recs)} | "
                    f"{same}/{len(recs)} | {f1:.1f} ({f1_plain:.1f}) | {speed:.2f}x | {first:.1f} | "
                    f"{load_avg:.1f} |")
    legend = [f"- `{name}`: {json.dumps(CONDITIONS[name])}" for name in CONDITIONS]
    title = f"k = {k} demonstrations" + ("" if grammar else ", no grammar")
    return "\n".join([title, "", *rows, "", *legend])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["prepare", "run", "report"])
    ap.add_argument("--data", type=Path, required=True, help="directory with labeled.jsonl, test.jsonl")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/.teacher_speed"))
    ap.add_argument("--condition", action="append", choices=list(CONDITIONS), default=[],
                    help="run: conditions, one after another (default: all)")
    ap.add_argument("-n", type=int, default=50, help="first N test sentences")
    ap.add_argument("-k", type=int, default=10, choices=[10, 30],
                    help="shared demonstrations (context 4096 for 10, 8192 for 30)")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="teacher: name or .gguf path")
    ap.add_argument("--draft-model", default=DRAFT, help="draft model: name or .gguf path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-grammar", action="store_true",
                    help="without the tree grammar (to see what the grammar costs each drafter); "
                         "records go to OUT/k<K>-nogrammar/")
    ap.add_argument("--n-max", type=int, default=None,
                    help="override every condition's most tokens drafted per step")
    args = ap.parse_args()
    if args.action == "prepare":
        prepare_demo(args.data)
    elif args.action == "run":
        for name in args.condition or list(CONDITIONS):
            t = time.time()
            run_condition(name, args.data, args.out, n=args.n, k=args.k, model=args.model,
                          draft_model=args.draft_model, threads=args.threads, n_max=args.n_max,
                          grammar=not args.no_grammar)
            print(f"== {name} done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    else:
        print(report(args.data, args.out, n=args.n, k=args.k, grammar=not args.no_grammar))


if __name__ == "__main__":
    main()

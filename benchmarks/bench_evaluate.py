"""How long `mckd evaluate` takes on 10,000 generated sentence pairs, for each metric.

Generates random PTB-style gold trees (POS tags, punctuation, function tags, traces) and
predictions made from them by re-bracketing, re-labelling and damaging a few, writes them as
one-tree-per-line files, then times (a) the library call and (b) the CLI end to end, against
the obvious baseline in the same run: the same scoring done with `nltk.Tree.fromstring`
(what a straightforward scorer built on nltk trees pays just to read the trees).

    python benchmarks/bench_evaluate.py --n 10000 --out /tmp/bench-evaluate
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from nltk import Tree

from mckd.tasks.constituency import evaluate_files
from mckd.tasks.constituency.trees import to_labeled, to_unlabeled

TAGS = ["DT", "NN", "NNS", "JJ", "VBD", "VBZ", "IN", "PRP", "RB", "CD", "CC", "TO", "VB", "NNP"]
PUNCT = [(",", ","), (".", "."), ("``", "``"), ("''", "''"), (":", ";")]
PHRASES = ["NP", "VP", "PP", "S", "SBAR", "ADJP", "ADVP", "QP", "NP-SBJ", "PP-LOC-2", "S-TPC-1"]
WORDS = ["the", "cat", "sat", "on", "a", "mat", "it", "rose", "10", "%", "in", "May", "shares"]


def random_tree(rng: random.Random, n_words: int) -> Tree:
    """A random binary-ish tree over `n_words` preterminals, flattened here and there."""
    leaves: list[Tree] = []
    for _ in range(n_words):
        if rng.random() < 0.1:
            tag, word = rng.choice(PUNCT)
        else:
            tag, word = rng.choice(TAGS), rng.choice(WORDS)
        leaves.append(Tree(tag, [word]))
    if rng.random() < 0.2:
        leaves.insert(rng.randrange(len(leaves) + 1), Tree("-NONE-", ["*T*-1"]))
    nodes: list[Tree] = leaves
    while len(nodes) > 1:
        i = rng.randrange(len(nodes) - 1)
        k = min(len(nodes) - i, rng.choice([2, 2, 2, 3]))
        nodes[i : i + k] = [Tree(rng.choice(PHRASES), nodes[i : i + k])]
    return Tree("TOP", nodes)


def prediction(rng: random.Random, gold: Tree) -> Tree:
    """The gold tree with some constituents flattened, some siblings grouped, some labels
    changed: a parser's typical mistakes."""
    tree = gold.copy(deep=True)
    for _ in range(rng.randint(0, 4)):
        inner = [
            p
            for p in tree.treepositions()
            if p and isinstance(tree[p], Tree) and tree[p].height() > 2
        ]
        if not inner:
            break
        pos = rng.choice(inner)
        node, parent = tree[pos], tree[pos[:-1]]
        move = rng.random()
        if move < 0.4:  # flatten: the node's children join its parent
            parent[pos[-1] : pos[-1] + 1] = list(node)
        elif move < 0.7 and len(node) >= 3:  # group two siblings
            i = rng.randrange(len(node) - 1)
            node[i : i + 2] = [Tree(rng.choice(PHRASES), node[i : i + 2])]
        else:
            node.set_label(rng.choice(PHRASES))
    return tree


def damaged(rng: random.Random, text: str) -> str:
    """A few unlabeled outputs with a bracket missing or extra, as LLMs write them."""
    r = rng.random()
    return text[:-2] if r < 0.04 else text + " )" if r < 0.08 else text


def write_pairs(out: Path, n: int, seed: int) -> dict[str, Path]:
    rng = random.Random(seed)
    golds = [random_tree(rng, rng.randint(5, 40)) for _ in range(n)]
    preds = [prediction(rng, t) for t in golds]
    files = {
        "gold": [to_labeled(t) for t in golds],
        "pred_labeled": [to_labeled(t) for t in preds],
        "pred_unlabeled": [to_unlabeled(t) for t in preds],
        "pred_damaged": [damaged(rng, to_unlabeled(t)) for t in preds],
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, lines in files.items():
        paths[name] = out / f"{name}.txt"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


def nltk_read_baseline(paths: list[Path]) -> None:
    """Read every tree with nltk.Tree.fromstring (no scoring at all)."""
    for path in paths:
        for line in path.read_text().splitlines():
            Tree.fromstring(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mckd-bench-evaluate"))
    args = parser.parse_args()
    paths = write_pairs(args.out, args.n, args.seed)
    runs = {
        "mckd": paths["pred_damaged"],
        "evalb": paths["pred_labeled"],
        "evalb-unlabeled": paths["pred_unlabeled"],
    }
    print(f"{args.n} sentence pairs in {args.out}")
    wall, cpu = time.perf_counter(), time.process_time()
    nltk_read_baseline([paths["gold"], paths["pred_labeled"]])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"baseline: nltk.Tree.fromstring on gold and prediction: {wall:5.2f} s wall {cpu:5.2f} s CPU"
    )
    for metric, pred in runs.items():
        wall, cpu = time.perf_counter(), time.process_time()
        scores = evaluate_files(paths["gold"], pred, metric)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cmd = ["mckd", "evaluate", "--task", "constituency", "--metric", metric]
        cmd += ["--gold", str(paths["gold"]), "--pred", str(pred), "--json"]
        start, child = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        cli = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = after.ru_utime + after.ru_stime - child.ru_utime - child.ru_stime
        assert json.loads(done.stdout)["f1"] == scores["f1"]
        print(
            f"{metric:16s} library {wall:5.2f} s wall {cpu:5.2f} s CPU | "
            f"CLI end to end {cli:5.2f} s wall {cli_cpu:5.2f} s CPU | "
            f"F1 {scores['f1']:.2f}, valid {scores['valid']}/{scores['sentences']}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

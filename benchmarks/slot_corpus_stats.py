"""Statistics of the built-in slot corpus, and what memorising fillers is worth on it.

The memoriser tags a test sentence by greedy longest match against every (words -> most
frequent type) chunk seen in training (labeled + pool gold), `O` elsewhere: a student that
only remembers fillers. It is scored with conlleval on the test sentences made from seen
templates and fillers and on the `unseen` ones, next to the all-O baseline.

    python benchmarks/slot_corpus_stats.py --labeled 50 --pool 2000 --test 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

from mckd.examples import Example
from mckd.tasks.slots import SlotsTask
from mckd.tasks.slots.stats import slot_corpus_stats
from mckd.tasks.slots.synth import synth_slot_corpus
from mckd.tasks.slots.tags import chunks


def memoriser(train: list[Example]):
    seen: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for ex in train:
        for kind, value in chunks(ex.meta["gold"].split(), ex.source.split()):
            seen[tuple(value.split())][kind] += 1
    longest = max(map(len, seen))

    def tag(source: str) -> str:
        words, tags, i = source.split(), [], 0
        while i < len(words):
            for k in range(min(longest, len(words) - i), 0, -1):
                if tuple(words[i : i + k]) in seen:
                    kind = seen[tuple(words[i : i + k])].most_common(1)[0][0]
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (k - 1)
                    i += k
                    break
            else:
                tags.append("O")
                i += 1
        return " ".join(tags)

    return tag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, default=50)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unseen-share", type=float, default=0.3)
    args = parser.parse_args()
    corpus = synth_slot_corpus(args.labeled, args.pool, args.test, seed=args.seed,
                               unseen_share=args.unseen_share)
    stats = slot_corpus_stats(corpus)
    task = SlotsTask()
    tag = memoriser(corpus.labeled + corpus.pool)
    parts = {"seen": [e for e in corpus.test if not e.meta["unseen"]],
             "unseen": [e for e in corpus.test if e.meta["unseen"]], "all": corpus.test}
    for name, examples in parts.items():
        for baseline, fn in (("memoriser", lambda xs: [tag(x) for x in xs]),
                             ("all_o", task.baselines()["all_o"])):
            s = task.score(examples, fn([e.source for e in examples]))
            stats[f"{baseline}_{name}"] = {k: round(s[k], 2) for k in ("f1", "accuracy")}
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()

"""A probabilistic grammar of English that writes normalized Penn-Treebank-style trees.

The built-in corpus for the demo and the tests: no real treebank ships with the project (the
Penn Treebank is licensed), so we generate one. The grammar covers the constructions that make
parsing English hard (subjects of any length, PP attachment to nouns or verbs, relative and
complement clauses, coordination, auxiliaries, passives, quotation, fronted adjuncts) and its
trees follow PTB conventions after normalization (no traces or function tags, flat base NPs,
`(NP (NP ...) (PP ...))` for modified nouns). It is synthetic English, not the PTB.

Noun phrases are in synth_np.py; this module builds clauses, verb phrases and sentences.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections import defaultdict, deque

from nltk import Tree

from mckd.split import MAX_LEN, MIN_LEN
from mckd.tasks.constituency.lexicon import Lexicon, Verb, load_lexicon
from mckd.tasks.constituency.synth_np import AGENTS, NounPhrases, leaf, pick

log = logging.getLogger(__name__)

LENGTH_MEDIAN, LENGTH_SIGMA = 21.0, 0.45  # log-normal sentence lengths, WSJ-like
MAX_DRAWS_PER_TREE = 50
MAX_CLAUSE_DEPTH = 4  # clauses inside clauses, at most
NATURAL_LENGTH = 15.0  # about the mean length at richness 1
RICHNESS_POWER = 2.0
MAX_RICHNESS = 4.0

# Sentence shapes and their probabilities. Each decision point below names its probabilities
# here so that the corpus can be re-tuned in one place.
SENTENCE_SHAPES = {
    "plain": 0.60,
    "coord": 0.06,
    "said_after": 0.06,
    "sinv": 0.02,
    "said_that": 0.24,
    "there": 0.02,
}
FRONTED = {"none": 0.75, "pp": 0.08, "advp": 0.07, "sbar": 0.05, "tmp": 0.05}
# The verb group: what the innermost VP is, which auxiliaries stack above it (each drawn on its
# own, so "will have been sold" happens), negation, and tense of the finite verb.
MAIN_VERB_KINDS = {"active": 0.80, "passive": 0.10, "copula": 0.10}
AUXILIARIES = {"modal": 0.20, "have": 0.15, "progressive": 0.06}
AUX_NEXT_FORM = {"modal": "VB", "do": "VB", "have": "VBN", "progressive": "VBG", "be": "VBN"}
P_NEGATION = 0.05
P_PAST = 0.65
# How often a verb that allows a frame uses it: clause and infinitive complements are favoured,
# as in news text, where they carry most of the length of long sentences.
FRAME_WEIGHTS = {"I": 1.0, "T": 1.0, "H": 1.0, "D": 1.0, "S": 6.0, "V": 6.0, "R": 1.5, "C": 1.0}
P_VP_PP = 0.20  # a PP after the verb's complements, at the top clause
P_VP_ADVP = 0.04
P_VP_TMP = 0.03  # a bare temporal NP: "last year"
P_VP_SBAR = 0.06  # an adverbial clause: "because ..."
P_VP_PURPOSE = 0.03  # "to raise cash"
P_PREVERBAL_ADVP = 0.12  # "also", "still" between subject and verb
P_VP_COORD = 0.05
P_PARTICLE = 0.5  # a verb that takes a particle uses it: "cut back", "set up"
P_FINAL_PERIOD = 0.98
DECAY = 0.6  # each level of embedding multiplies the optional-phrase probabilities by this

SUBJECT_CLASSES = {"person": 0.30, "org": 0.32, "thing": 0.20, "abstract": 0.16, "place": 0.02}
OBJECT_T = {"thing": 0.6, "abstract": 0.4}
OBJECT_H = {"person": 0.5, "org": 0.5}


def _be(agr: str, past: bool) -> Tree:
    if past:
        return leaf("VBD", "were" if agr == "pl" else "was")
    return leaf("VBZ", "is") if agr == "3sg" else leaf("VBP", "am" if agr == "1sg" else "are")


def _have(agr: str, past: bool) -> Tree:
    if past:
        return leaf("VBD", "had")
    return leaf("VBZ", "has") if agr == "3sg" else leaf("VBP", "have")


def _do(agr: str, past: bool) -> Tree:
    if past:
        return leaf("VBD", "did")
    return leaf("VBZ", "does") if agr == "3sg" else leaf("VBP", "do")


class Grammar:
    """Draws sentences from the grammar with one random generator, so a seed fixes the corpus."""

    def __init__(self, rng: random.Random, lex: Lexicon) -> None:
        self.rng = rng
        self.lex = lex
        self.np = NounPhrases(rng, lex, clause=self.relative_clause, vp=self.participle_vp)
        self.agent_verbs = [v for v in lex.verbs if v.frames - {"N", "R"}]
        self.nonagent_verbs = lex.verbs_with("N")
        self.passive_verbs = [v for v in lex.verbs if v.frames & {"T", "H", "D"}]
        self.clause_verbs = lex.verbs_with("S")
        self.transitive_verbs = [v for v in self.agent_verbs if "T" in v.frames]
        self.richness = 1.0

    def aim_at(self, length: int) -> None:
        """Scale the optional phrases so that sentences come out near `length` tokens: long
        sentences get more modifiers and complement clauses, not a different grammar."""
        self.richness = min(MAX_RICHNESS, (length / NATURAL_LENGTH) ** RICHNESS_POWER)
        self.np.richness = self.richness

    # -- sentences -------------------------------------------------------------------------
    def sentence(self) -> Tree:
        shape = pick(self.rng, SENTENCE_SHAPES)
        if shape == "coord":
            cc = leaf("CC", self.rng.choice(["and", "but", "but", "or"]))
            kids, label = (
                [Tree("S", self.clause(0)), leaf(",", ","), cc, Tree("S", self.clause(1))],
                "S",
            )
        elif shape in ("said_after", "sinv"):
            kids, label = (
                self.reported(inverted=shape == "sinv"),
                "SINV" if shape == "sinv" else "S",
            )
        elif shape == "there":
            kids, label = self.existential(), "S"
        elif shape == "said_that":
            subj, agr = self.np.subject(self.rng.choice(["person", "org"]), 0)
            verb = self.rng.choice(self.clause_verbs)
            kids = [subj, Tree("VP", [self.finite_head(verb, agr), self.that_clause(1)])]
            label = "S"
        else:
            kids, label = self.clause(0, front=True), "S"
        if self.rng.random() < P_FINAL_PERIOD:
            kids.append(leaf(".", "."))
        return Tree(label, kids)

    def existential(self) -> list[Tree]:
        """`There were concerns about the plan`: EX subject, the verb agrees with the NP after."""
        np, agr = self.np.noun_phrase(self.rng.choice(["thing", "abstract"]), 1)
        kids = [_be(agr, self.rng.random() < P_PAST), np, *self.adjuncts(1)]
        return [Tree("NP", [leaf("EX", "There")]), Tree("VP", kids)]

    def reported(self, inverted: bool) -> list[Tree]:
        """`"The plan will work," he said` and the inverted `said Mr. Smith` (SINV)."""
        quoted = self.rng.random() < 0.35
        inner = Tree("S", self.clause(1))
        kids = [leaf("``", "``"), inner] if quoted else [inner]
        kids.append(leaf(",", ","))
        if quoted:
            kids.append(leaf("''", "''"))
        said = self.rng.choice(self.clause_verbs) if self.rng.random() < 0.3 else None
        if inverted:
            subj = self.np.person_name()
            kids += [Tree("VP", [leaf("VBD", said.vbd if said else "said")]), subj]
        else:
            subj, _ = self.np.subject(self.rng.choice(["person", "person", "org"]), 1)
            kids += [subj, Tree("VP", [leaf("VBD", said.vbd if said else "said")])]
        return kids

    def clause(self, depth: int, front: bool = False) -> list[Tree]:
        """The children of an S: optional fronted adjunct, subject, optional adverb, VP."""
        kids: list[Tree] = []
        if front:
            kids += self.fronted(depth)
        cls = pick(self.rng, SUBJECT_CLASSES)
        subj, agr = self.np.subject(cls, depth)
        kids.append(subj)
        if self.rng.random() < P_PREVERBAL_ADVP:
            # "never" stays out: with a negated verb it would make a double negative
            adverbs = [w for w in self.lex.adverbs["frequency"] if w != "never"]
            word = self.rng.choice([*adverbs, "also", "still", "already"])
            kids.append(Tree("ADVP", [leaf("RB", word)]))
        kids.append(self.finite_vp(agr, cls in AGENTS, depth))
        return kids

    def fronted(self, depth: int) -> list[Tree]:
        kind = pick(self.rng, FRONTED)
        if kind == "none":
            return []
        if kind == "pp":
            phrase = self.np.pp(depth + 1, self.rng.choice(["time", "place", "any"]))
        elif kind == "advp":
            phrase = Tree("ADVP", [leaf("RB", self.rng.choice(self.lex.adverbs["sentence"]))])
        elif kind == "sbar":
            phrase = self.adverbial_clause(depth + 1)
        else:
            phrase = self.np.temporal()
        return [phrase, leaf(",", ",")]

    # -- clauses inside clauses --------------------------------------------------------------
    def that_clause(self, depth: int) -> Tree:
        s = Tree("S", self.clause(depth))
        if self.rng.random() < 0.45:
            return Tree("SBAR", [leaf("IN", "that"), s])
        return Tree("SBAR", [s])  # the null complementizer, as normalized PTB leaves it

    def adverbial_clause(self, depth: int) -> Tree:
        tag, word = self.rng.choice(self.lex.function["sub"])[:2]
        head = Tree("WHADVP", [leaf(tag, word)]) if tag == "WRB" else leaf(tag, word)
        return Tree("SBAR", [head, Tree("S", self.clause(depth))])

    def infinitive(self, depth: int, agent: bool = True) -> Tree:
        verb = self.rng.choice(self.agent_verbs if agent else self.nonagent_verbs)
        inner = self.verb_phrase(verb, leaf("VB", verb.vb), depth, agent)
        return Tree("S", [Tree("VP", [leaf("TO", "to"), inner])])

    def relative_clause(self, head_cls: str, agr: str, depth: int) -> Tree:
        """`that sold the plant` (subject gap) or `that the company sold` (object gap)."""
        agent = head_cls in AGENTS
        if head_cls == "person":
            wh = Tree("WHNP", [leaf("WP", "who")])
        else:
            wh = Tree("WHNP", [leaf("WDT", self.rng.choice(["that", "that", "which"]))])
        if (
            self.rng.random() < 0.65 or agent
        ):  # object gaps only after things: "the plan that X sold"
            return Tree("SBAR", [wh, Tree("S", [self.finite_vp(agr, agent, depth)])])
        subj, sagr = self.np.subject(self.rng.choice(["person", "org"]), depth + 1)
        verb = self.rng.choice(self.transitive_verbs)
        vp = Tree("VP", [self.finite_head(verb, sagr), *self.adjuncts(depth + 1, scale=0.4)])
        return Tree("SBAR", [wh, Tree("S", [subj, vp])])

    def participle_vp(self, depth: int) -> Tree:
        """A reduced relative after a noun: `based in Chicago`, `owned by the bank`."""
        verb = self.rng.choice(self.passive_verbs)
        kids = [leaf("VBN", verb.vbn)]
        kids.append(self.np.pp(depth + 1, "any", prep=self.rng.choice(["by", "by", "in", "for"])))
        return Tree("VP", kids)

    # -- verb phrases --------------------------------------------------------------------------
    def finite_head(self, verb: Verb, agr: str) -> Tree:
        if self.rng.random() < 0.7:
            return leaf("VBD", verb.vbd)
        return leaf("VBZ", verb.vbz) if agr == "3sg" else leaf("VBP", verb.vb)

    def finite_vp(self, agr: str, agent: bool, depth: int) -> Tree:
        vp = self._finite_vp(agr, agent, depth)
        if depth < 2 and self.rng.random() < P_VP_COORD * self.richness * DECAY**depth:
            other = self._finite_vp(agr, agent, depth + 1)
            vp = Tree("VP", [vp, leaf("CC", self.rng.choice(["and", "and", "but", "or"])), other])
        return vp

    def _finite_vp(self, agr: str, agent: bool, depth: int) -> Tree:
        """A verb group (modal, perfect, progressive, passive, copula, negation) over its VP,
        built as PTB does: each auxiliary heads a VP whose last child is the VP below it."""
        rng = self.rng
        kind = pick(rng, MAIN_VERB_KINDS)
        chain = [aux for aux, p in AUXILIARIES.items() if rng.random() < p]
        if kind != "active" and "progressive" in chain:
            chain.remove("progressive")  # "is being sold" is rare enough to leave out
        negated = rng.random() < P_NEGATION
        if negated and not chain and kind == "active":
            chain = ["do"]
        past = rng.random() < P_PAST
        # Realize the chain outside-in: the first word is finite, each auxiliary fixes the form
        # of the next verb (modal -> VB, have -> VBN, progressive be -> VBG, passive be -> VBN).
        form, heads = "fin", []
        for aux in [*chain, "be"] if kind != "active" else chain:
            heads.append(self.auxiliary("be" if aux == "progressive" else aux, form, agr, past))
            form = AUX_NEXT_FORM[aux]
        if kind == "passive":
            inner = self.passive(depth)
        elif kind == "copula":
            inner = self.predicate(depth, agent)
        else:
            verb = rng.choice(self.agent_verbs if agent else self.nonagent_verbs)
            inner = self.verb_phrase(verb, self.inflect(verb, form, agr, past), depth, agent)
        for k, head in enumerate(reversed(heads)):
            kids = [head, inner]
            if negated and k == len(heads) - 1:
                kids.insert(1, leaf("RB", "n't" if rng.random() < 0.5 else "not"))
            inner = Tree("VP", kids)
        return inner

    def auxiliary(self, aux: str, form: str, agr: str, past: bool) -> Tree:
        if aux == "modal":
            return leaf("MD", self.rng.choice(self.lex.function["modal"])[1])
        if aux == "do":
            return _do(agr, past)
        if form == "fin":
            return _have(agr, past) if aux == "have" else _be(agr, past)
        word = {"VB": ("have", "be"), "VBN": ("had", "been"), "VBG": ("having", "being")}[form]
        return leaf(form, word[0] if aux == "have" else word[1])

    def inflect(self, verb: Verb, form: str, agr: str, past: bool) -> Tree:
        if form == "fin":
            if past:
                return leaf("VBD", verb.vbd)
            return leaf("VBZ", verb.vbz) if agr == "3sg" else leaf("VBP", verb.vb)
        return leaf(form, {"VB": verb.vb, "VBN": verb.vbn, "VBG": verb.vbg}[form])

    def passive(self, depth: int) -> Tree:
        verb = self.rng.choice(self.passive_verbs)
        kids = [leaf("VBN", verb.vbn)]
        if "D" in verb.frames and self.rng.random() < 0.3:
            kids.append(self.np.noun_phrase("thing", depth + 1)[0])
        if self.rng.random() < 0.3:
            kids.append(self.np.pp(depth + 1, "agent", prep="by"))
        return Tree("VP", kids + self.adjuncts(depth, scale=0.8))

    def predicate(self, depth: int, agent: bool) -> Tree:
        """After a copula: an adjective phrase or a noun phrase that suits the subject."""
        r = self.rng.random()
        if r < 0.55:
            cls = "person" if agent else "any"
            return self.np.adjp(depth, predicative=True, clause=self.infinitive, cls=cls)
        if r < 0.85:
            cls = "person" if agent else self.rng.choice(["thing", "abstract"])
            return self.np.noun_phrase(cls, depth + 1)[0]
        return self.np.pp(depth + 1, "any")

    def verb_phrase(self, verb: Verb, head: Tree, depth: int, agent: bool) -> Tree:
        """The head verb, the complements its frame asks for, then optional adjuncts."""
        frames = sorted(verb.frames - {"N", "Q"})
        weights = {f: FRAME_WEIGHTS[f] * (self.richness if f in "SV" else 1.0) for f in frames}
        frame = pick(self.rng, weights) if frames else "I"
        kids = [head]
        if verb.particle and frame in "ITH" and self.rng.random() < P_PARTICLE:
            kids.append(Tree("PRT", [leaf("RP", verb.particle)]))
        kids += self.complements(frame, depth, agent)
        return Tree("VP", kids + self.adjuncts(depth, scale=0.5 if frame in "SV" else 1.0))

    def complements(self, frame: str, depth: int, agent: bool = True) -> list[Tree]:
        d = depth + 1
        if frame == "T":
            return [self.np.noun_phrase(pick(self.rng, OBJECT_T), d)[0]]
        if frame == "H":
            return [self.np.noun_phrase(pick(self.rng, OBJECT_H), d)[0]]
        if frame == "D":
            first = self.np.noun_phrase(pick(self.rng, OBJECT_H), d)[0]
            thing = self.np.noun_phrase("thing", d)[0]
            if self.rng.random() < 0.5:
                return [first, thing]
            return [thing, Tree("PP", [leaf("TO", "to"), first])]
        if frame in "SQ":
            return (
                [self.that_clause(d)]
                if depth < MAX_CLAUSE_DEPTH
                else [self.np.noun_phrase("abstract", d)[0]]
            )
        if frame == "V":
            return [self.infinitive(d, agent)] if depth < MAX_CLAUSE_DEPTH else []
        if frame == "R":
            return self.np.change_in_value()
        if frame == "C":
            return [self.predicate(d, agent)]
        return []  # intransitive

    def adjuncts(self, depth: int, scale: float = 1.0) -> list[Tree]:
        rng, f = self.rng, scale * DECAY**depth
        out: list[Tree] = []
        if rng.random() < P_VP_PP * self.richness * f:
            out.append(self.np.pp(depth + 1, rng.choice(["any", "any", "place", "time"])))
        if rng.random() < P_VP_ADVP * scale:
            out.append(Tree("ADVP", [leaf("RB", rng.choice(self.lex.adverbs["manner"]))]))
        if rng.random() < P_VP_TMP * scale:
            out.append(self.np.temporal())
        if depth < MAX_CLAUSE_DEPTH and rng.random() < P_VP_SBAR * self.richness * f:
            out.append(self.adverbial_clause(depth + 1))
        if depth < MAX_CLAUSE_DEPTH and rng.random() < P_VP_PURPOSE * self.richness * f:
            out.append(self.infinitive(depth + 1))
        return out


def _fix_surface(tree: Tree) -> Tree:
    """Capitalize the first word (after an opening quote) and write `an` before vowels."""
    slots = _leaf_slots(tree)  # (preterminal, word) pairs; preterminal[0] is the word
    for (pre, word), (_, following) in itertools.pairwise(slots):
        if word == "a" and _vowel_sound(following):
            pre[0] = "an"
    first = 1 if slots[0][1] == "``" and len(slots) > 1 else 0
    pre = slots[first][0]
    pre[0] = pre[0][:1].upper() + pre[0][1:]
    return tree


def _leaf_slots(tree: Tree) -> list[tuple[Tree, str]]:
    """Every preterminal with its word, left to right (cheaper than nltk's treepositions)."""
    out: list[tuple[Tree, str]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node[0], str):
            out.append((node, node[0]))
        else:
            stack.extend(reversed(node))
    return out


def _vowel_sound(word: str) -> bool:
    w = word.lower()
    if w.startswith(("uni", "use", "usu", "one", "eu")):
        return False
    return w[:1] in "aeiou" or w.startswith(("hour", "honest"))


def target_lengths(rng: random.Random, n: int, min_len: int, max_len: int) -> list[int]:
    """Sentence lengths drawn from a log-normal fitted by eye to WSJ (median ~21 tokens, long
    right tail), cut to [min_len, max_len]."""
    out: list[int] = []
    while len(out) < n:
        length = round(rng.lognormvariate(math.log(LENGTH_MEDIAN), LENGTH_SIGMA))
        if min_len <= length <= max_len:
            out.append(length)
    return out


def synth_treebank(
    n: int, seed: int, *, min_len: int = MIN_LEN, max_len: int = MAX_LEN
) -> list[Tree]:
    """`n` trees drawn from the grammar; the same (n, seed) always gives the same trees.

    Lengths follow `target_lengths`: the grammar draws sentences, each is filed by its length,
    and the corpus takes them in the order of the target lengths (a PCFG conditioned on a
    WSJ-like length distribution). Sentences drawn but not needed are dropped.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    start, cpu = time.perf_counter(), time.process_time()
    grammar = Grammar(random.Random(seed), load_lexicon())
    targets = target_lengths(random.Random(f"lengths-{seed}"), n, min_len, max_len)
    pools: dict[int, deque[Tree]] = defaultdict(deque)
    trees: list[Tree] = []
    drawn = 0
    for length in targets:
        grammar.aim_at(length)
        while not pools[length]:
            tree = grammar.sentence()
            drawn += 1
            if min_len <= (k := len(_leaf_slots(tree))) <= max_len:
                pools[k].append(tree)
            if drawn > MAX_DRAWS_PER_TREE * n + 10_000:  # a length the grammar cannot reach
                length = min((k for k in pools if pools[k]), key=lambda k: abs(k - length))
        trees.append(_fix_surface(pools[length].popleft()))
    log.info(
        "synthesized %d trees (%d drawn) in %.1fs (%.1f CPU s)",
        n,
        drawn,
        time.perf_counter() - start,
        time.process_time() - cpu,
    )
    return trees

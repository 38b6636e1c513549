"""Noun phrases, prepositional phrases, adjective phrases and numbers for the synthetic grammar.

PTB conventions: a base NP is flat (`(NP (DT the) (JJ big) (NN deal))`), a modified NP nests
(`(NP (NP the price) (PP of (NP oil)))`), a possessor is an NP ending in POS, amounts are
`(NP ($ $) (CD 3.5) (CD million))` and `(NP (CD 5) (NN %))`, approximations go in a QP.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from nltk import Tree

from mckd.tasks.constituency.lexicon import Lexicon, Noun

AGENTS = frozenset({"person", "org"})

# What modifies a noun phrase (at embedding depth 0; deeper levels decay), and how likely.
P_NP_MODIFIER = 0.80
P_SUBJECT_MODIFIER = 0.20  # subjects are shorter than objects in news text
NP_MODIFIERS = {"pp": 0.62, "relative": 0.10, "reduced": 0.07, "appositive": 0.08, "coord": 0.05}
NP_DECAY = 0.80
MAX_NP_DEPTH = 4
P_PRONOUN_SUBJECT = 0.22
P_PRONOUN_OBJECT = 0.04
P_ADJECTIVE = 0.22
P_SECOND_ADJECTIVE = 0.08
P_COMPARATIVE = 0.08  # "higher prices", when the adjective has a comparative
P_SUPERLATIVE = 0.04  # "the biggest plant", after "the"
P_DEGREE_ADJP = 0.05
P_NOUN_COMPOUND = 0.07
P_PLURAL = 0.42
P_BARE_PLURAL = 0.45
P_POSSESSIVE = 0.08
P_QUANTITY = 0.12  # "300 workers", "about 15 % of the shares"

# Prepositions after a noun of each class, and what each preposition takes as its object
# (semantic classes, weighted). Loose on purpose, but not random: "the price of oil", "a plant
# in Ohio", "talks with the union", not "a week of the scientist".
NOUN_PREPS = {
    "person": {"at": 3, "of": 2, "for": 1, "from": 2, "with": 1},
    "org": {"in": 2, "of": 1, "with": 1, "from": 1},
    "thing": {"of": 4, "for": 2, "in": 2, "on": 1, "with": 1, "from": 1},
    "abstract": {
        "of": 4,
        "in": 2,
        "on": 2,
        "for": 2,
        "about": 1,
        "over": 1,
        "with": 1,
        "against": 1,
    },
    "place": {"in": 1, "near": 1},
}
PREP_OBJECTS = {
    "of": {"thing": 3, "abstract": 3, "org": 2, "person": 1, "place": 1},
    "in": {"place": 4, "thing": 1, "abstract": 2, "org": 1},
    "at": {"org": 2, "thing": 1, "place": 1},
    "near": {"place": 1},
    "on": {"abstract": 2, "thing": 2},
    "for": {"thing": 2, "abstract": 2, "person": 1, "org": 1},
    "with": {"person": 1, "org": 2, "thing": 1, "abstract": 1},
    "from": {"org": 2, "person": 1, "place": 1, "thing": 1},
    "by": {"person": 1, "org": 2},
    "about": {"abstract": 3, "thing": 1},
    "over": {"abstract": 2, "thing": 1},
    "against": {"person": 1, "org": 2, "abstract": 1},
    "to": {"person": 1, "org": 2, "place": 1, "abstract": 1},
}
DEFAULT_OBJECTS = {"thing": 2, "abstract": 2, "org": 1, "person": 1, "place": 1}


def leaf(tag: str, word: str) -> Tree:
    return Tree(tag, [word])


def _words(tag: str, text: str) -> list[Tree]:
    return [leaf(tag, w) for w in text.split()]


class NounPhrases:
    """The noun-phrase half of the grammar. `clause` builds relative clauses and `vp` reduced
    relatives; they come from the clause grammar, which owns verb phrases."""

    def __init__(
        self,
        rng: random.Random,
        lex: Lexicon,
        clause: Callable[[str, str, int], Tree],
        vp: Callable[[int], Tree],
    ) -> None:
        self.rng, self.lex, self.clause, self.vp = rng, lex, clause, vp
        self.richness = 1.0  # scales how often noun phrases are modified; set by the Grammar
        plain = [a for a in lex.adjectives if a.complement is None]
        classes = ("person", "org", "thing", "abstract", "place", "time", "any")
        self.attributive = {c: [a for a in plain if a.fits(c)] for c in classes}
        self.with_complement = [a for a in lex.adjectives if a.complement is not None]
        self.count_things = [n for n in lex.nouns["thing"] if n.pl]
        self.superlatives = [a.jjs for a in lex.adjectives if a.jjs]
        self.dets: dict[str, dict[str, float]] = {"sg": {}, "pl": {}, "mass": {"some": 3, "no": 1}}
        for _, word, feature, weight in lex.function["det"]:
            for key in ("sg", "pl", "mass") if feature == "any" else (feature,):
                self.dets[key][word] = float(weight)
        self.preps: dict[str, list[str]] = {}
        for _, word, obj in lex.function["prep"]:
            self.preps.setdefault(obj, []).append(word)

    # -- entry points ----------------------------------------------------------------------------
    def subject(self, cls: str, depth: int) -> tuple[Tree, str]:
        if cls in AGENTS and self.rng.random() < P_PRONOUN_SUBJECT:
            return self.pronoun(cls, subject=True)
        return self.noun_phrase(cls, depth, role="subj")

    def noun_phrase(self, cls: str, depth: int, role: str = "obj") -> tuple[Tree, str]:
        """A noun phrase of semantic class `cls`; returns the tree and its agreement."""
        if cls == "agent":
            cls = self.rng.choice(["person", "org"])
        if cls == "any":
            cls = self.rng.choice(
                ["person", "org", "thing", "thing", "abstract", "abstract", "place"]
            )
        if role == "obj" and cls in AGENTS and self.rng.random() < P_PRONOUN_OBJECT:
            return self.pronoun(cls, subject=False)
        np, agr = self.base(cls)
        if cls == "time" or (np[-1].label() in ("NNP", "NNPS") and cls != "person"):
            return np, agr  # "last week", "Chicago", "Acme Corp." take no modifiers here
        # Long sentences get their length from objects and clauses, not from heavy subjects.
        p = P_SUBJECT_MODIFIER if role == "subj" else P_NP_MODIFIER * self.richness
        p *= NP_DECAY**depth
        if depth < MAX_NP_DEPTH and self.rng.random() < p:
            np, agr = self.modified(np, agr, cls, depth, role)
        return np, agr

    def modified(self, np: Tree, agr: str, cls: str, depth: int, role: str) -> tuple[Tree, str]:
        kind = pick(self.rng, NP_MODIFIERS)
        if np[-1].label() == "NNP" and kind not in ("appositive", "relative"):
            return np, agr  # a person's name: "Mr. Smith, the chairman," or "Smith, who ..."
        if kind == "pp":
            prep = pick(self.rng, NOUN_PREPS[cls])
            return Tree("NP", [np, self.pp(depth + 1, "any", prep=prep)]), agr
        if kind == "relative":
            return Tree("NP", [np, self.clause(cls, agr, depth + 1)]), agr
        if kind == "reduced" and cls not in AGENTS:
            return Tree("NP", [np, self.vp(depth + 1)]), agr
        if kind == "appositive" and cls == "person":
            name = np if np[-1].label() == "NNP" else self.person_name()
            kids = [name, leaf(",", ","), self.title()]
            return Tree("NP", [*kids, leaf(",", ",")] if role == "subj" else kids), "3sg"
        if kind == "coord":
            other = self.noun_phrase(cls, depth + 2)[0]
            return Tree("NP", [np, leaf("CC", self.rng.choice(["and", "and", "or"])), other]), "pl"
        return np, agr

    def pronoun(self, cls: str, subject: bool) -> tuple[Tree, str]:
        """he/she/they for people (now and then I, we, you), it/they for organisations."""
        prons = self.lex.function["pron"]
        if cls == "org":
            prons = [p for p in prons if p[1] in ("it", "they")]
        elif self.rng.random() < 0.8:
            prons = [p for p in prons if p[1] in ("he", "she", "they")]
        _, subj, obj, _, agr = self.rng.choice(prons)
        return Tree("NP", [leaf("PRP", subj if subject else obj)]), agr

    # -- base noun phrases --------------------------------------------------------------------------
    def base(self, cls: str) -> tuple[Tree, str]:
        r = self.rng.random()
        if cls == "person" and r < 0.35:
            return self.person_name(), "3sg"
        if cls == "org" and r < 0.40:
            return self.org_name(), "3sg"
        if cls == "place" and r < 0.55:
            kind = self.rng.choice(["city", "city", "country", "state"])
            return Tree("NP", _words("NNP", self.rng.choice(self.lex.names[kind]))), "3sg"
        if cls in ("thing", "abstract") and r < P_QUANTITY:
            return self.quantity(), "pl"
        return self.common(cls)

    def common(self, cls: str) -> tuple[Tree, str]:
        """`(NP (DT the) (JJ new) (NN plant))`, `(NP (NNS prices))`, `(NP (PRP$ its) (NNS shares))`."""
        rng = self.rng
        noun: Noun = rng.choice(self.lex.nouns[cls])
        plural = noun.pl is not None and rng.random() < P_PLURAL
        number = "pl" if plural else ("sg" if noun.pl else "mass")
        kids: list[Tree] = []
        r = rng.random()
        if r < P_POSSESSIVE:
            kids.append(self.possessor())
        elif not ((number == "pl" and r < P_BARE_PLURAL) or (number == "mass" and r < 0.45)):
            kids.append(leaf("DT", self.determiner(number)))
        if kids and kids[0][0] == "the" and rng.random() < P_SUPERLATIVE:
            kids.append(leaf("JJS", rng.choice(self.superlatives)))
        kids += self.premodifiers(cls)
        kids.append(leaf("NNS", noun.pl) if plural else leaf("NN", noun.sg))
        return Tree("NP", kids), "pl" if plural else "3sg"

    def determiner(self, number: str) -> str:
        return pick(self.rng, self.dets[number])

    def premodifiers(self, cls: str) -> list[Tree]:
        rng, out = self.rng, []
        if rng.random() < P_DEGREE_ADJP:
            out.append(self.adjp(0, predicative=False, cls=cls))
        elif rng.random() < P_ADJECTIVE:
            adj = rng.choice(self.attributive[cls])
            use_jjr = adj.jjr and rng.random() < P_COMPARATIVE
            out.append(leaf("JJR", adj.jjr) if use_jjr else leaf("JJ", adj.jj))
            if rng.random() < P_SECOND_ADJECTIVE:
                out.append(leaf("JJ", rng.choice(self.attributive[cls]).jj))
        if cls in ("thing", "abstract") and rng.random() < P_NOUN_COMPOUND:
            out.append(leaf("NN", rng.choice(self.count_things).sg))
        return out

    def possessor(self) -> Tree:
        if self.rng.random() < 0.6:
            prons = self.lex.function["pron"]
            if self.rng.random() < 0.9:
                prons = [p for p in prons if p[3] in ("its", "their", "his", "her")]
            return leaf("PRP$", self.rng.choice(prons)[3])
        owner = self.org_name() if self.rng.random() < 0.6 else self.person_name()
        return Tree("NP", [*owner, leaf("POS", "'s")])

    def person_name(self) -> Tree:
        names, r = self.lex.names, self.rng.random()
        last = self.rng.choice(names["last"])
        if r < 0.45:
            return Tree("NP", [leaf("NNP", self.rng.choice(names["title"])), leaf("NNP", last)])
        first = leaf("NNP", self.rng.choice(names["first"]))
        if r < 0.52:
            initial = leaf("NNP", self.rng.choice("ABCDEFGHJKLMNPRSTW") + ".")
            return Tree("NP", [first, initial, leaf("NNP", last)])
        return Tree("NP", [first, leaf("NNP", last)])

    def title(self) -> Tree:
        """What an appositive says a person is: `the chairman of Acme Corp.`, `a spokesman`."""
        noun = leaf("NN", self.rng.choice(self.lex.nouns["person"][:60]).sg)
        if self.rng.random() < 0.5:
            return Tree("NP", [leaf("DT", "a"), noun])
        head = Tree("NP", [leaf("DT", "the"), noun])
        return Tree("NP", [head, Tree("PP", [leaf("IN", "of"), self.org_name()])])

    def org_name(self) -> Tree:
        names, r = self.lex.names, self.rng.random()
        if r < 0.2:
            inst = self.rng.choice(names["institution"])
            det = [] if inst in ("Congress", "Parliament") else [leaf("DT", "the")]
            return Tree("NP", det + _words("NNP", inst))
        words = _words("NNP", self.rng.choice(names["company"]))
        if r < 0.95:
            suffix = self.rng.choice(names["corpsuffix"])
            words.append(
                leaf("NNPS" if suffix.endswith("s") and suffix != "Inc." else "NNP", suffix)
            )
        return Tree("NP", words)

    def temporal(self) -> Tree:
        """A bare temporal NP: `last year`, `Monday`, `the third quarter`, `March 15`."""
        rng, r = self.rng, self.rng.random()
        if r < 0.35:
            noun = rng.choice(["year", "week", "month", "quarter", "spring", "fall", "summer"])
            return Tree("NP", [leaf("JJ", rng.choice(["last", "next"])), leaf("NN", noun)])
        if r < 0.55:
            return Tree("NP", [leaf("NNP", rng.choice(self.lex.names["day"]))])
        if r < 0.7:
            return Tree(
                "NP",
                [
                    leaf("NNP", rng.choice(self.lex.names["month"])),
                    leaf("CD", str(rng.randint(1, 28))),
                ],
            )
        if r < 0.85:
            ordinal = rng.choice(["first", "second", "third", "fourth"])
            return Tree("NP", [leaf("DT", "the"), leaf("JJ", ordinal), leaf("NN", "quarter")])
        return Tree(
            "NP",
            [
                leaf("DT", rng.choice(["this", "that"])),
                leaf("NN", rng.choice(["year", "week", "month"])),
            ],
        )

    def time_object(self, depth: int) -> Tree:
        """The object of a temporal preposition: `March`, `1988`, `the third quarter`, `the week`."""
        rng, r = self.rng, self.rng.random()
        if r < 0.2:
            return Tree("NP", [leaf("NNP", rng.choice(self.lex.names["month"]))])
        if r < 0.35:
            return Tree("NP", [leaf("CD", str(rng.randint(1970, 2030)))])
        if r < 0.5:
            ordinal = rng.choice(["first", "second", "third", "fourth"])
            return Tree("NP", [leaf("DT", "the"), leaf("JJ", ordinal), leaf("NN", "quarter")])
        return self.noun_phrase("time", depth)[0]

    # -- numbers ------------------------------------------------------------------------------------
    def cardinal(self) -> str:
        """An amount of money: `73`, `3.5`, `12,500`."""
        rng, r = self.rng, self.rng.random()
        if r < 0.45:
            return str(rng.randint(2, 99))
        if r < 0.75:
            return f"{rng.randint(1, 99)}.{rng.randint(1, 9)}"
        return f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}"

    def count(self) -> str:
        """How many of something: `300`, `12,000`, `three`."""
        rng, r = self.rng, self.rng.random()
        if r < 0.45:
            return str(rng.randint(2, 999))
        if r < 0.7:
            return f"{rng.randint(1, 99)},{rng.randint(0, 9)}00"
        return rng.choice(["two", "three", "four", "five", "six", "seven", "eight", "ten", "nine"])

    def percent(self) -> str:
        if self.rng.random() < 0.5:
            return str(self.rng.randint(1, 60))
        return f"{self.rng.randint(0, 30)}.{self.rng.randint(1, 9)}"

    def money(self) -> list[Tree]:
        amount = self.cardinal()
        kids = [leaf("$", "$"), leaf("CD", amount)]
        if "," not in amount and self.rng.random() < 0.6:
            kids.append(leaf("CD", self.rng.choice(["million", "billion"])))
        return kids

    def quantity(self) -> Tree:
        """`(NP (CD 300) (NNS workers))`, `(NP ($ $) (CD 3.5) (CD billion))`, `(NP (CD 5) (NN %))`."""
        rng, r = self.rng, self.rng.random()
        amount = [leaf("CD", self.count())]
        if r < 0.4:
            head = self.money()
        elif r < 0.65:
            head = [leaf("CD", str(self.percent())), leaf("NN", "%")]
        else:
            noun = rng.choice(self.count_things + self.lex.nouns["person"][:40])
            head = [*amount, leaf("NNS", noun.pl or noun.sg)]
        if rng.random() < 0.45:  # an approximation groups the number into a QP
            approx = [leaf("RB", rng.choice(self.lex.adverbs["approx"]))]
            if rng.random() < 0.3:
                approx = [leaf("JJR", "more"), leaf("IN", "than")]
            nums = [k for k in head if k.label() in ("$", "CD")]
            head = [Tree("QP", approx + nums)] + [k for k in head if k.label() not in ("$", "CD")]
        return Tree("NP", head)

    def change_in_value(self) -> list[Tree]:
        """What follows `rose` / `fell`: `5 % to $ 20 from $ 18`, or an adverb."""
        rng, out = self.rng, []
        if rng.random() < 0.2:
            return [
                Tree(
                    "ADVP",
                    [leaf("RB", rng.choice(["sharply", "slightly", "steadily", "modestly"]))],
                )
            ]
        out.append(
            Tree("NP", [leaf("CD", self.percent()), leaf("NN", "%")])
            if rng.random() < 0.6
            else Tree("NP", self.money())
        )
        if rng.random() < 0.5:
            out.append(Tree("PP", [leaf("TO", "to"), Tree("NP", self.money())]))
            if rng.random() < 0.4:
                out.append(Tree("PP", [leaf("IN", "from"), Tree("NP", self.money())]))
        return out

    # -- other phrases --------------------------------------------------------------------------------
    def pp(self, depth: int, obj: str, prep: str | None = None) -> Tree:
        """A prepositional phrase whose object is of kind `obj` (any, place, time, agent, ...)."""
        if prep is None:  # a PP after a verb or fronted: "of" only ever follows a noun
            prep = self.rng.choice([p for p in self.preps.get(obj, self.preps["any"]) if p != "of"])
        if obj == "time":
            np = self.time_object(depth)
        else:
            weights = PREP_OBJECTS.get(prep, DEFAULT_OBJECTS)
            np = self.noun_phrase(
                obj if obj in ("place", "agent") else pick(self.rng, weights), depth
            )[0]
        return Tree("PP", [leaf("TO" if prep == "to" else "IN", prep), np])

    def adjp(
        self,
        depth: int,
        predicative: bool,
        clause: Callable[[int], Tree] | None = None,
        cls: str = "any",
    ) -> Tree:
        """`(ADJP (RB very) (JJ strong))`, and after a copula `able to pay`, `aware of the risk`.
        `cls` is the class of the noun it describes (the subject, after a copula)."""
        rng = self.rng
        if predicative and cls in AGENTS and rng.random() < 0.3:
            adj = rng.choice(self.with_complement)
            if adj.complement == "V":
                if clause is not None and depth < MAX_NP_DEPTH:
                    return Tree("ADJP", [leaf("JJ", adj.jj), clause(depth + 1)])
            else:
                obj = self.noun_phrase(rng.choice(["thing", "abstract"]), depth + 1)[0]
                return Tree(
                    "ADJP", [leaf("JJ", adj.jj), Tree("PP", [leaf("IN", adj.complement), obj])]
                )
        adj = rng.choice(self.attributive[cls])
        if predicative and adj.jjr and rng.random() < 0.15:
            return Tree("ADJP", [leaf("JJR", adj.jjr)])
        degree = leaf("RB", rng.choice(self.lex.adverbs["degree"]))
        if not predicative or rng.random() < 0.3:
            return Tree("ADJP", [degree, leaf("JJ", adj.jj)])
        return Tree("ADJP", [leaf("JJ", adj.jj)])


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key of `weights`, drawn in proportion to its value."""
    r = rng.random() * sum(weights.values())
    for key, w in weights.items():
        r -= w
        if r < 0:
            return key
    return key

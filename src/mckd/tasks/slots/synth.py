"""The built-in slot-filling corpus: seeded, multi-domain assistant requests with BIO tags.

Ten intents in five domains (flights, music, restaurants, weather, reminders), 36 slot types
in the ATIS/Snips naming style. Sentences come from hand-written English templates with
alternatives `(a|b)`, optional parts `[...]` and slots `{type}`; slot values come from the word
lists in slot_fillers.json. Several types draw on one list (a city can be `fromloc.city_name`,
`toloc.city_name`, `stoploc.city_name` or a weather/restaurant `city`), so the words alone do
not give the type away, as in ATIS.

Generalisation is built in: a share of every open word list (cities, artists, songs, ...) and
of every intent's templates is held out, and `unseen_share` of the test sentences are made only
from held-out templates and held-out values of the open lists (`meta["unseen"]` marks them).
Training sentences (labeled and pool) never use held-out templates or values, so a student that
memorises fillers scores visibly lower on those sentences.

Every example has `meta["intent"]`, `meta["domain"]` and `meta["gold"]` (the gold tags, also
on the pool, whose `target` is None, so pseudolabels can be scored against it).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mckd.examples import Example
from mckd.split import write_split
from mckd.tasks.base import Corpus
from mckd.tasks.slots.stats import slot_corpus_stats

HELD_OUT_VALUES = 0.3  # share of each open word list that only test sentences use
HELD_OUT_TEMPLATES = 0.25  # share of each intent's templates (at least one) kept for test

# slot type -> the word list its values come from
SLOT_LISTS: dict[str, str] = {
    "fromloc.city_name": "city",
    "toloc.city_name": "city",
    "stoploc.city_name": "city",
    "airline_name": "airline",
    "depart_date.day_name": "day_name",
    "depart_date.month_name": "month",
    "depart_date.day_number": "day_number",
    "depart_date.date_relative": "relative_date",
    "depart_time.period_of_day": "period_of_day",
    "depart_time.time": "clock_time",
    "arrive_time.time": "clock_time",
    "return_date.day_name": "day_name",
    "class_type": "class_type",
    "round_trip": "round_trip",
    "flight_stop": "flight_stop",
    "cost_relative": "cost_relative",
    "artist": "artist",
    "song_name": "song",
    "album": "album",
    "genre": "genre",
    "playlist": "playlist",
    "service": "service",
    "music_item": "music_item",
    "cuisine": "cuisine",
    "restaurant_name": "restaurant",
    "party_size_number": "party_size",
    "price_range": "price_range",
    "city": "city",
    "state": "state",
    "timerange": "relative_date",
    "time": "clock_time",
    "date": "day_name",
    "condition_description": "condition",
    "condition_temperature": "temperature",
    "reminder_todo": "todo",
    "contact_name": "contact",
}

# (domain, intent) -> templates
TEMPLATES: dict[tuple[str, str], list[str]] = {
    ("flights", "find_flight"): [
        "(show me|list|i need|i would like|give me) [all] [the] flights from {fromloc.city_name} to {toloc.city_name}[ on {depart_date.day_name}]",
        "what flights (go|leave) from {fromloc.city_name} to {toloc.city_name} on {depart_date.day_name} {depart_time.period_of_day}",
        "i want to fly from {fromloc.city_name} to {toloc.city_name} on {depart_date.month_name} {depart_date.day_number}[ in the {depart_time.period_of_day}]",
        "(are there any|is there a) {flight_stop} flight[s] (to|into) {toloc.city_name} from {fromloc.city_name}[ on {airline_name}]",
        "{airline_name} flights (to|going to) {toloc.city_name} from {fromloc.city_name} (leaving|departing) (after|before|at) {depart_time.time}",
        "i need a flight (leaving|departing) {fromloc.city_name} {depart_date.date_relative} and (arriving|getting) (in|to) {toloc.city_name} (before|by) {arrive_time.time}",
        "(find|get) me a {round_trip} flight to {toloc.city_name} from {fromloc.city_name} with a stop in {stoploc.city_name}",
        "which flights from {fromloc.city_name} to {toloc.city_name} stop (in|at) {stoploc.city_name} on {depart_date.day_name}",
    ],
    ("flights", "flight_fare"): [
        "what is the {cost_relative} (fare|ticket) from {fromloc.city_name} to {toloc.city_name}",
        "how much (is|would be) a {class_type} ticket (from {fromloc.city_name} to {toloc.city_name}|to {toloc.city_name} from {fromloc.city_name})",
        "(show me|list) the fares for {round_trip} flights from {fromloc.city_name} to {toloc.city_name} on {airline_name}",
        "what does it cost to fly {class_type} to {toloc.city_name}[ from {fromloc.city_name}] on {depart_date.month_name} {depart_date.day_number}",
        "i need the {cost_relative} {round_trip} (ticket|fare) to {toloc.city_name} returning {return_date.day_name}",
        "price of a {round_trip} flight between {fromloc.city_name} and {toloc.city_name} {depart_date.date_relative}",
    ],
    ("flights", "airline"): [
        "which airlines (fly|have flights) from {fromloc.city_name} to {toloc.city_name}",
        "does {airline_name} (fly|go) (to|into) {toloc.city_name}[ from {fromloc.city_name}]",
        "what airline (goes|flies) {flight_stop} from {fromloc.city_name} to {toloc.city_name} in the {depart_time.period_of_day}",
        "(list|show me) [the] airlines serving {toloc.city_name}",
        "is there an airline with {class_type} seats from {fromloc.city_name} to {toloc.city_name} on {depart_date.day_name}",
    ],
    ("music", "play_music"): [
        "play [some] {genre} [music] (on|from|using) {service}",
        "(play|put on) {song_name} by {artist}",
        "i want to hear (the|a) {music_item} by {artist}[ on {service}]",
        "play the album {album}[ by {artist}]",
        "(can you|could you|please) play {song_name} from {album}",
        "let's listen to [some] {genre} from {artist}",
        "start (my|the) {playlist} playlist[ on {service}]",
        "play {artist} on {service}",
    ],
    ("music", "add_to_playlist"): [
        "add {song_name} to (my|the) {playlist} playlist",
        "put (this|the) {music_item} (on|in|into) {playlist}",
        "(add|save) {artist} to my {playlist} playlist",
        "i want to add the {music_item} {song_name} by {artist} to {playlist}",
        "include {song_name} in the playlist (called|named) {playlist}",
        "can you add (a|another) {music_item} from {album} to {playlist}",
    ],
    ("restaurants", "book_restaurant"): [
        "book a table for {party_size_number} at {restaurant_name}[ {timerange}]",
        "(i'd|i would) like to reserve a table for {party_size_number} (people|persons) at a {cuisine} restaurant in {city}[ at {time}]",
        "reserve {restaurant_name} for {party_size_number} at {time} {timerange}",
        "make a reservation (at|for) a {price_range} {cuisine} (place|restaurant) (near|in) {city} for {party_size_number}",
        "can you get us a table at {restaurant_name} in {city} {timerange}",
        "book {party_size_number} seats at {restaurant_name} for {time}",
    ],
    ("restaurants", "find_restaurant"): [
        "find [me] a {cuisine} restaurant in {city}",
        "(where can i get|i want) {cuisine} food[ in {city}] {timerange}",
        "show me {price_range} {cuisine} (places|restaurants) (near|in) {city}",
        "is {restaurant_name} open at {time}[ {timerange}]",
        "what are (the|some) {price_range} restaurants in {city} {state}",
        "recommend a {cuisine} place (that is|that's) open {timerange}",
    ],
    ("weather", "get_weather"): [
        "what is the weather [like] in {city} {timerange}",
        "will there be {condition_description} in {city}[ {state}] {timerange}",
        "(is it going to|will it) be {condition_temperature} {timerange} in {city}",
        "tell me the forecast for {city}[ {state}] on {date}",
        "(do i need|should i bring) an umbrella in {city} {timerange}",
        "is there a chance of {condition_description} {timerange} in {state}",
        "how (warm|cold) will it be in {state} at {time}",
    ],
    ("reminders", "set_reminder"): [
        "remind me to {reminder_todo} (at|by) {time}[ {timerange}]",
        "set a reminder (for|on) {date} to {reminder_todo}",
        "(don't let me forget|help me remember) to {reminder_todo} {timerange}",
        "remind {contact_name} to {reminder_todo} at {time}",
        "create a reminder to {reminder_todo} with {contact_name} on {date} at {time}",
        "{timerange} at {time} remind me to {reminder_todo}",
        "i need a reminder to {reminder_todo} every {date}",
    ],
    ("reminders", "list_reminders"): [
        "what (reminders|tasks|things) do i have {timerange}[ with {contact_name}]",
        "(show|read|tell) me (my|all my|the) reminders (for|on) {date}",
        "do i have anything to do with {contact_name} {timerange}",
        "what did i ask you to remind me about at {time}[ on {date}]",
        "is there a reminder to {reminder_todo}[ {timerange}]",
        "did i set a reminder (for|about) {contact_name} at {time}",
    ],
}

_CHOICE = re.compile(r"\(([^()]*)\)")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([^{}]+)\}")


@cache
def filler_lists() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(open lists, closed lists) from the package's slot_fillers.json."""
    text = resources.files("mckd.tasks.slots").joinpath("fillers.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return data["open"], data["closed"]


@dataclass(frozen=True)
class _Plan:
    """What training and test may draw from: per intent the seen and held-out templates, per
    word list the seen and held-out values (closed lists have no held-out values)."""

    seen_templates: dict[tuple[str, str], list[str]]
    new_templates: dict[tuple[str, str], list[str]]
    seen_values: dict[str, list[str]]
    new_values: dict[str, list[str]]


def _plan(rng: random.Random) -> _Plan:
    seen_t, new_t = {}, {}
    for key, templates in TEMPLATES.items():
        shuffled = rng.sample(templates, len(templates))
        k = max(1, round(HELD_OUT_TEMPLATES * len(templates)))
        new_t[key], seen_t[key] = shuffled[:k], shuffled[k:]
    open_lists, closed_lists = filler_lists()
    seen_v, new_v = {}, {}
    for name, values in open_lists.items():
        shuffled = rng.sample(values, len(values))
        k = round(HELD_OUT_VALUES * len(values))
        new_v[name], seen_v[name] = shuffled[:k], shuffled[k:]
    for name, values in closed_lists.items():
        seen_v[name] = new_v[name] = list(values)
    return _Plan(seen_t, new_t, seen_v, new_v)


def expand(template: str, rng: random.Random) -> str:
    """A template with every `[optional]` part kept or dropped and every `(a|b)` resolved."""
    template = _OPTIONAL.sub(lambda m: m.group(1) if rng.random() < 0.5 else "", template)
    return _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), template)


def realize(
    template: str, values: dict[str, list[str]], rng: random.Random
) -> tuple[list[str], list[str]]:
    """Words and BIO tags of one sentence from a template and the value lists to draw from."""
    words: list[str] = []
    tags: list[str] = []
    used: set[str] = set()  # "from boston to boston" is no request anyone makes
    # split() with a group alternates plain text (even places) and slot types (odd places)
    for i, piece in enumerate(_SLOT.split(expand(template, rng))):
        if i % 2:
            options = values[SLOT_LISTS[piece]]
            fresh = [v for v in options if v not in used]
            chosen = rng.choice(fresh or options)
            used.add(chosen)
            value = chosen.split()
            words.extend(value)
            tags.extend([f"B-{piece}"] + [f"I-{piece}"] * (len(value) - 1))
        else:
            plain = piece.split()
            words.extend(plain)
            tags.extend(["O"] * len(plain))
    return words, tags


@dataclass(frozen=True)
class _Sentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    domain: str
    intent: str
    template: str


def _sentences(
    rng: random.Random,
    templates: dict[tuple[str, str], list[str]],
    values: dict[str, list[str]],
) -> Iterator[_Sentence]:
    """Endless sentences: an intent uniformly, one of its templates, values for its slots."""
    intents = sorted(templates)
    while True:
        domain, intent = rng.choice(intents)
        template = rng.choice(templates[(domain, intent)])
        words, tags = realize(template, values, rng)
        yield _Sentence(tuple(words), tuple(tags), domain, intent, template)


def _draw(
    stream: Iterator[_Sentence], n: int, seen: set[tuple[str, ...]], max_words: int | None
) -> list[_Sentence]:
    """`n` sentences from `stream` of at most `max_words` words whose words are not in
    `seen` (which grows)."""
    out: list[_Sentence] = []
    misses = 0
    while len(out) < n:
        s = next(stream)
        if s.words in seen or (max_words is not None and len(s.words) > max_words):
            misses += 1
            if misses > 1000 + 50 * n:
                raise ValueError(
                    f"cannot draw {n} distinct sentences of at most {max_words} words "
                    f"(got {len(out)}); ask for fewer or allow longer ones (max_words)"
                )
            continue
        seen.add(s.words)
        out.append(s)
    return out


def _draw_test(rng: random.Random, plan: _Plan, n: int, unseen_share: float,
               seen: set[tuple[str, ...]], max_words: int | None) -> list[tuple[_Sentence, bool]]:
    """`n` test sentences, `unseen_share` of them (rounded) from the held-out templates and
    values, shuffled; each with whether it is one of those."""
    n_new = round(unseen_share * n)
    old = _draw(_sentences(rng, plan.seen_templates, plan.seen_values), n - n_new, seen, max_words)
    new = _draw(_sentences(rng, plan.new_templates, plan.new_values), n_new, seen, max_words)
    test = [(s, False) for s in old] + [(s, True) for s in new]
    rng.shuffle(test)
    return test


def _example(i: int, s: _Sentence, *, labeled: bool, **meta: Any) -> Example:
    tags = " ".join(s.tags)
    return Example(
        f"slots-{i:06d}",
        " ".join(s.words),
        tags if labeled else None,
        {"intent": s.intent, "domain": s.domain, "gold": tags, **meta},
    )


def synth_slot_corpus(
    n_labeled: int,
    n_pool: int,
    n_test: int,
    *,
    seed: int = 0,
    unseen_share: float = 0.3,
    max_words: int | None = None,
    test_prefix: int | None = None,
) -> Corpus:
    """Labeled, pool and test examples (distinct sentences, disjoint ids); the same for the
    same arguments. `unseen_share` of the test sentences (rounded) use only held-out templates
    and held-out values of the open word lists; `max_words` caps the sentence length.
    Pool examples have no target; their gold tags are in meta["gold"] as on every example.
    With `test_prefix` P the test set is drawn in two blocks: the P sentences a corpus with
    n_test = P has, then n_test - P more drawn the same way, so a larger test set keeps a
    smaller one's sentences (and their order)."""
    if not 0.0 <= unseen_share <= 1.0:
        raise ValueError(f"unseen_share must be between 0 and 1, got {unseen_share}")
    if min(n_labeled, n_pool, n_test) < 0:
        raise ValueError(f"sizes must not be negative, got {n_labeled}, {n_pool}, {n_test}")
    if test_prefix is not None and not 0 <= test_prefix <= n_test:
        raise ValueError(f"test_prefix {test_prefix} must be between 0 and n_test ({n_test})")
    rng = random.Random(seed)
    plan = _plan(rng)
    seen: set[tuple[str, ...]] = set()
    train = _draw(_sentences(rng, plan.seen_templates, plan.seen_values), n_labeled + n_pool,
                  seen, max_words)
    blocks = [n_test] if test_prefix is None else [test_prefix, n_test - test_prefix]
    test = [s for n in blocks for s in _draw_test(rng, plan, n, unseen_share, seen, max_words)]
    labeled = [_example(i, s, labeled=True) for i, s in enumerate(train[:n_labeled])]
    pool = [_example(n_labeled + i, s, labeled=False) for i, s in enumerate(train[n_labeled:])]
    first = n_labeled + n_pool
    tests = [_example(first + i, s, labeled=True, unseen=u) for i, (s, u) in enumerate(test)]
    return Corpus(labeled, pool, tests)


def write_slot_corpus(out_dir: str | Path, corpus: Corpus, info: dict[str, Any]) -> dict[str, int]:
    """labeled.jsonl, unlabeled.jsonl, test.jsonl and split.json (with `info` and the
    statistics) under `out_dir`, each written atomically. Returns the sizes."""
    splits = {"labeled": corpus.labeled, "unlabeled": corpus.pool, "test": corpus.test}
    return write_split(splits, out_dir, {**info, "stats": slot_corpus_stats(corpus)})

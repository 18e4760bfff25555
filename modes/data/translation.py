"""The translation task shared by the fine-tune and in-context tabs: data, split, prompt template.

The built-in set is the project's own English/Korean pairs (assets/data/en_ko_pairs.jsonl), with a
fixed train/test split stored in the file. Both tabs use the same template, so "fine-tuned" and
"k-shot" are scored on exactly the same held-out pairs with exactly the same prompt format.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from modes.data.uploads import InputError

PAIRS_FILE = Path(__file__).resolve().parents[2] / "assets" / "data" / "en_ko_pairs.jsonl"  # the first 485, with their split
# 118 pairs written unlike the built-in set (other topics, longer sentences): a development set for choosing
# the fine-tune's recipe (bench/finetune.py --dev). Never trained on, never in a pool.
DEV_FILE = PAIRS_FILE.with_name("en_ko_dev.jsonl")
# 64 more, in the registers public corpora use and the built-in pairs mostly do not: plain written Korean (-다) for
# everyday, news and encyclopedia sentences, and casual speech (반말), 16 of each; the built-in Korean is 85-99%
# polite -요. The recipe is chosen on both dev sets (bench/finetune.py --dev). Never trained on, never in a pool.
DEV2_FILE = PAIRS_FILE.with_name("en_ko_dev2.jsonl")
# 2,596 more training pairs written for the app (everyday topics, names, news and encyclopedia sentences, 1 to 20
# words, questions, requests, past and future, polite and casual Korean), none a near-duplicate of a held-out or
# dev pair. They are part of the built-in training split (both the fine-tune's data and the in-context pool).
MORE_FILE = PAIRS_FILE.with_name("en_ko_more.jsonl")
# 150 more held-out pairs written for the app like the training ones (everyday topics, news and facts, questions,
# requests, casual Korean), none within char 3-gram Jaccard 0.6 of a training or dev pair. With the test split's 69
# they make the 219-pair held-out set the benchmarks score on (`heldout_pairs`); the app's live scoring keeps the
# 69, since each 69 rows cost ~10 s of greedy decoding per side on 2 cores.
HELDOUT_FILE = PAIRS_FILE.with_name("en_ko_heldout.jsonl")
DIRECTIONS = {"en-ko": ("English", "Korean", "en", "ko"), "ko-en": ("Korean", "English", "ko", "en")}
DEFAULT_TEMPLATE = "{src_lang}: {source}\n{tgt_lang}: {target}"
EXAMPLE_SEPARATOR = "\n\n"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # 2 MB of sentence pairs is ~20k rows: more than a CPU can train on
MAX_ROWS = 5_000  # rows kept from an upload or Hub dataset
MAX_SIDE_CHARS = 500  # a single sentence longer than this is not a sentence
SELECTIONS = ("random", "first", "similar")  # how k examples are picked from the pool
POOL_COLUMNS = ("English", "Korean")  # the pool's columns whatever the direction: the direction picks the source


class DataError(InputError):
    """Bad task data; `key` names the UI string that explains it, `fmt` fills it in."""


@dataclass(frozen=True)
class Pair:
    source: str
    target: str


# ---- the built-in set -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[dict, ...]:
    # ~3,100 short JSON lines: parsed directly, so building the UI needs neither `datasets` nor
    # `transformers` (they load in the model thread); `datasets` reads uploads and Hub sets below.
    first = [json.loads(line) for line in PAIRS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    more = [json.loads(line) for line in MORE_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = max(r["id"] for r in first) + 1
    return tuple(first + [{**r, "id": start + r["id"], "split": "train"} for r in more])


def load_pairs(split: str | None = None) -> list[dict]:
    """Rows {id, en, ko, topic, split} of the built-in set, optionally one split ('train'/'test')."""
    rows = [dict(r) for r in _builtin()]  # copies: callers may not change the cached set
    return rows if split is None else [r for r in rows if r["split"] == split]


def dev_pairs(direction: str) -> list[Pair]:
    """The development set (DEV_FILE) in `direction`."""
    return _file_pairs(DEV_FILE, direction)


def dev2_pairs(direction: str) -> list[Pair]:
    """The second development set (DEV2_FILE: plain written and casual Korean) in `direction`."""
    return _file_pairs(DEV2_FILE, direction)


def heldout_pairs(direction: str) -> list[Pair]:
    """The full held-out set (219 pairs): the test split's 69, then HELDOUT_FILE's 150. Never trained on."""
    return pairs_for(direction, "test") + _file_pairs(HELDOUT_FILE, direction)


def more_pairs(direction: str) -> list[Pair]:
    """The extra training pairs (MORE_FILE) in `direction`."""
    return _file_pairs(MORE_FILE, direction)


def _file_pairs(path: Path, direction: str) -> list[Pair]:
    src, tgt = _langs(direction)[2:]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Pair(r[src], r[tgt]) for r in rows]


def pairs_for(direction: str, split: str) -> list[Pair]:
    src, tgt = _langs(direction)[2:]
    return [Pair(r[src], r[tgt]) for r in load_pairs(split)]


def builtin_pool(split: str = "train") -> list[tuple[str, str]]:
    """The built-in pairs as direction-neutral (English, Korean) rows."""
    return [(r["en"], r["ko"]) for r in load_pairs(split)]


def orient(rows: list[tuple[str, str]], direction: str) -> list[Pair]:
    """(English, Korean) rows -> (source, target) pairs for `direction`."""
    swap = _langs(direction)[2] == "ko"
    return [Pair(ko, en) if swap else Pair(en, ko) for en, ko in rows]


# ---- which script a text is in ---------------------------------------------------------------------
def hangul_share(text: str) -> float:
    """Share of the letters in `text` that are Hangul (0 for a text with no letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f") / len(letters)


def misplaced_rows(rows: list[tuple[str, str]]) -> list[int]:
    """1-based numbers of (English, Korean) rows whose Korean side has no Hangul or whose English side is mostly Hangul."""
    return [i for i, (en, ko) in enumerate(rows, start=1) if hangul_share(ko) == 0 or hangul_share(en) > 0.5]


def _langs(direction: str):
    if direction not in DIRECTIONS:
        raise DataError("err_direction", name=direction, choices=", ".join(DIRECTIONS))
    return DIRECTIONS[direction]


# ---- the template ---------------------------------------------------------------------------------
def check_template(template: str) -> str:
    if not isinstance(template, str) or "{source}" not in template:
        raise DataError("err_template_source")
    if "{target}" not in template:
        raise DataError("err_template_target")
    try:
        template.format(src_lang="", tgt_lang="", source="", target="")
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError("err_template_format", why=str(exc)) from None
    return template


def render_prompt(template: str, direction: str, source: str) -> str:
    """The query part: everything before {target}, trailing spaces removed (the target starts with them)."""
    src_lang, tgt_lang = _langs(direction)[:2]
    head = check_template(template).split("{target}", 1)[0]
    return head.format(src_lang=src_lang, tgt_lang=tgt_lang, source=source).rstrip(" ")


def render_target(template: str, direction: str, source: str, target: str) -> str:
    """The continuation the model should produce after render_prompt(): ' <target>' plus a stop newline."""
    src_lang, tgt_lang = _langs(direction)[:2]
    head = template.split("{target}", 1)[0].format(src_lang=src_lang, tgt_lang=tgt_lang, source=source)
    return head[len(head.rstrip(" ")):] + target + "\n"


def render_example(template: str, direction: str, pair: Pair) -> str:
    return render_prompt(template, direction, pair.source) + render_target(template, direction, pair.source, pair.target).rstrip("\n")


def build_fewshot_prompt(template: str, direction: str, examples: list[Pair], source: str) -> str:
    """k worked examples, a blank line between each, then the query. k = 0 gives the bare query."""
    parts = [render_example(template, direction, p) for p in examples]
    parts.append(render_prompt(template, direction, source))
    return EXAMPLE_SEPARATOR.join(parts)


# ---- choosing examples and building the prompt (the one path for every tab) -----------------------------
@functools.lru_cache(maxsize=8192)
def _grams(text: str, n: int) -> frozenset[str]:
    t = f" {text.lower()} "
    return frozenset(t[i : i + n] for i in range(max(1, len(t) - n + 1)))


def ngrams(text: str, n: int = 3) -> frozenset[str]:
    """Character n-grams of `text` (lower-cased, padded with a space): cached, as the ~2,100-row pool is
    scored against every query of a 'similar' selection."""
    return _grams(text, n)


def select_examples(pool: list[Pair], k: int, selection: str, source: str = "", seed: int = 0) -> list[Pair]:
    """k pairs from the pool: the first k, a seeded random k, or the k most similar by char 3-grams."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection: must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    if k < 0 or k > len(pool):
        raise ValueError(f"k: must be between 0 and the pool size {len(pool)}, got {k}")
    if selection == "first":
        return pool[:k]
    if selection == "random":
        return random.Random(seed).sample(pool, k)
    q = ngrams(source)

    def distance(i: int) -> tuple[float, int]:
        g = ngrams(pool[i].source)
        return -len(q & g) / (len(q | g) or 1), i

    scored = sorted(range(len(pool)), key=distance)
    # Most similar last: the closest example sits right before the query.
    return [pool[i] for i in scored[:k]][::-1]


def split_prompt(template: str, direction: str, examples: list[Pair], source: str) -> tuple[str, str]:
    """(shared prefix, query): prefix + query == build_fewshot_prompt(...). The prefix ends at a separator."""
    full = build_fewshot_prompt(template, direction, examples, source)
    query = render_prompt(template, direction, source)
    return full[: len(full) - len(query)], query


def fewshot_prompt(direction: str, source: str, k: int, pool: list[tuple[str, str]] | None = None,
                   selection: str = "random", seed: int = 0, template: str = DEFAULT_TEMPLATE) -> tuple[str, str, list[Pair]]:
    """(prefix, query, examples) for translating `source`: the one prompt builder of the app.

    `pool` holds direction-neutral (English, Korean) rows (None: the built-in train split); the
    direction decides which side is the source. The translate endpoint, the sweep and the
    fine-tune scoring all build their prompts here, so the UI and the API cannot disagree.
    """
    pairs = orient(builtin_pool("train") if pool is None else pool, direction)
    examples = select_examples(pairs, k, selection, source, seed)
    prefix, query = split_prompt(template, direction, examples, source)
    return prefix, query, examples

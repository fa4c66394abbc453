"""Generate LLM Lab's bundled lm-evaluation-harness tasks (core/data/lm_eval_tasks/): YAML + JSONL, CC0.

Deterministic: the items are templated from the fact tables below (no random numbers except a seeded shuffle of the
choice order), so running this script again writes byte-identical files (tests/evaluate/test_evaluate_loglik.py checks that).
Every item has exactly one correct choice: the templates draw each item's distractors from the same table, never
the answer, and the test checks the choices are distinct.

    python scripts/make_eval_tasks.py            # rewrites core/data/lm_eval_tasks/
    lm_eval --model hf --model_args pretrained=DIR --include_path core/data/lm_eval_tasks --tasks llmlab_facts
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "core" / "data" / "lm_eval_tasks"
LICENSE = "CC0-1.0: generated for LLM Lab by scripts/make_eval_tasks.py, dedicated to the public domain"

PRODUCTS = ["blender", "backpack", "laptop", "hotel room", "pizza", "headphones", "umbrella", "novel", "phone case",
            "coffee maker", "tent", "film", "desk chair", "toaster", "bicycle", "kettle", "restaurant", "jacket",
            "keyboard", "train ride"]
POSITIVE = ["was excellent and I would buy it again", "worked perfectly from the first day",
            "was a real pleasure and I loved it", "exceeded my expectations in every way"]
NEGATIVE = ["was terrible and I want my money back", "broke after a single day",
            "was a complete waste of money", "disappointed me so much that I returned it"]
SENTIMENT_SHOTS = [("The sandwich was fresh and delicious.", 1), ("The lamp flickered and then died.", 0),
                   ("The service was friendly and fast.", 1), ("The shoes fell apart within a week.", 0)]

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun"]
THINGS = ["apples", "pencils", "stickers", "marbles", "books", "cookies"]

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Russia", "Moscow"), ("Greece", "Athens"),
            ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
            ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
            ("Hungary", "Budapest"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Argentina", "Buenos Aires"),
            ("Thailand", "Bangkok"), ("Cuba", "Havana"), ("Mexico", "Mexico City"), ("England", "London"),
            ("South Korea", "Seoul"), ("Belgium", "Brussels"), ("Czechia", "Prague"), ("Chile", "Santiago"),
            ("Colombia", "Bogota"), ("Iran", "Tehran")]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
             ("up", "down"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("hard", "soft"),
             ("old", "young"), ("rich", "poor"), ("wet", "dry"), ("loud", "quiet"), ("tall", "short"),
             ("thick", "thin"), ("strong", "weak"), ("first", "last"), ("inside", "outside"), ("push", "pull"),
             ("win", "lose"), ("buy", "sell"), ("day", "night"), ("north", "south"), ("east", "west"),
             ("true", "false"), ("love", "hate"), ("clean", "dirty"), ("sweet", "sour"), ("safe", "dangerous")]
ANIMALS = [("dog", "mammal"), ("cat", "mammal"), ("horse", "mammal"), ("whale", "mammal"), ("bat", "mammal"),
           ("elephant", "mammal"), ("eagle", "bird"), ("sparrow", "bird"), ("penguin", "bird"), ("owl", "bird"),
           ("parrot", "bird"), ("ostrich", "bird"), ("salmon", "fish"), ("trout", "fish"), ("tuna", "fish"),
           ("cod", "fish"), ("goldfish", "fish"), ("shark", "fish"), ("frog", "amphibian"), ("toad", "amphibian"),
           ("salamander", "amphibian"), ("newt", "amphibian"), ("snake", "reptile"), ("lizard", "reptile"),
           ("crocodile", "reptile"), ("turtle", "reptile"), ("ant", "insect"), ("bee", "insect"),
           ("butterfly", "insect"), ("beetle", "insect")]
ANIMAL_CLASSES = ["mammal", "bird", "fish", "amphibian", "reptile", "insect"]
UNITS = [("seconds", "a minute", 60), ("minutes", "an hour", 60), ("hours", "a day", 24), ("days", "a week", 7),
         ("months", "a year", 12), ("centimetres", "a metre", 100), ("metres", "a kilometre", 1000),
         ("grams", "a kilogram", 1000), ("millimetres", "a centimetre", 10), ("millilitres", "a litre", 1000),
         ("years", "a decade", 10), ("years", "a century", 100), ("weeks", "a fortnight", 2),
         ("legs", "a spider", 8), ("sides", "a triangle", 3), ("sides", "a square", 4), ("sides", "a hexagon", 6),
         ("days", "a leap year", 366), ("players", "a football team on the pitch", 11), ("cents", "a euro", 100),
         ("items", "a dozen", 12), ("wheels", "a tricycle", 3), ("continents", "the world", 7),
         ("colours", "a rainbow", 7), ("strings", "a standard guitar", 6), ("minutes", "half an hour", 30),
         ("hours", "two days", 48), ("days", "two weeks", 14), ("months", "two years", 24),
         ("metres", "half a kilometre", 500)]


def _shuffled(answer: str, distractors: list[str], rnd: random.Random) -> tuple[list[str], int]:
    choices = [answer] + distractors
    rnd.shuffle(choices)
    return choices, choices.index(answer)


def sentiment() -> tuple[list[dict], list[dict]]:
    """160 reviews: every product × 4 positive and 4 negative phrases; label 1 positive, 0 negative."""
    docs = []
    for product in PRODUCTS:
        for p, n in zip(POSITIVE, NEGATIVE):
            docs.append({"text": f"The {product} {p}.", "label": 1})
            docs.append({"text": f"The {product} {n}.", "label": 0})
    return docs, [{"text": t, "label": y} for t, y in SENTIMENT_SHOTS]


def arithmetic() -> list[dict]:
    """120 one-step word problems (addition and subtraction of small numbers), four numbers to choose from."""
    rnd = random.Random(29)
    docs = []
    for i in range(120):
        name, thing = NAMES[i % len(NAMES)], THINGS[(i // len(NAMES)) % len(THINGS)]
        a, b = 3 + (i * 7) % 17, 1 + (i * 5) % 9
        if i % 2 == 0:
            question = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
            answer = a + b
        else:
            a = a + b  # keep the result positive
            question = f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have left?"
            answer = a - b
        distractors = [str(answer + d) for d in (1, -1, 2) if answer + d >= 0] + [str(answer + 3)]
        choices, gold = _shuffled(str(answer), distractors[:3], rnd)
        docs.append({"question": question, "choices": choices, "gold": gold, "a": a, "b": b,
                     "op": "+" if i % 2 == 0 else "-"})
    return docs


def facts() -> list[dict]:
    """120 factual items: 30 capitals, 30 opposites, 30 animal classes, 30 unit counts; distractors from the same
    table (never the answer)."""
    rnd = random.Random(2029)
    docs = []
    cities = [c for _, c in CAPITALS]
    for i, (country, city) in enumerate(CAPITALS):
        others = [c for c in cities if c != city]
        choices, gold = _shuffled(city, [others[(i * 3 + k * 7) % len(others)] for k in range(3)], rnd)
        docs.append({"question": f"What is the capital of {country}?", "choices": choices, "gold": gold,
                     "kind": "capital"})
    words = [w for pair in OPPOSITES for w in pair]
    for i, (word, opposite) in enumerate(OPPOSITES):
        others = [w for w in words if w not in (word, opposite)]
        choices, gold = _shuffled(opposite, [others[(i * 5 + k * 11) % len(others)] for k in range(3)], rnd)
        docs.append({"question": f"What is the opposite of \"{word}\"?", "choices": choices, "gold": gold,
                     "kind": "opposite"})
    for i, (animal, kind) in enumerate(ANIMALS):
        others = [c for c in ANIMAL_CLASSES if c != kind]
        choices, gold = _shuffled(kind, [others[(i + k) % len(others)] for k in range(3)], rnd)
        docs.append({"question": f"Which class of animals does the {animal} belong to?", "choices": choices,
                     "gold": gold, "kind": "animal"})
    for i, (unit, whole, count) in enumerate(UNITS):
        distractors = sorted({count * 2, count + 1 if count < 10 else count // 2, count * 10} - {count})[:3]
        choices, gold = _shuffled(str(count), [str(d) for d in distractors], rnd)
        docs.append({"question": f"How many {unit} are there in {whole}?", "choices": choices, "gold": gold,
                     "kind": "unit"})
    return docs


def passages() -> list[dict]:
    """The reference and distillation texts (CC0, core/data/) cut into passages of two sentences, for perplexity
    (loglikelihood_rolling)."""
    out = []
    for name in ("reference_text.txt", "distillation_text.txt"):
        text = " ".join(line.strip() for line in (ROOT / "core/data" / name).read_text().splitlines()
                        if line.strip() and not line.startswith("#"))
        sentences = re.split(r"(?<=[.!?])\s+", text)
        out += [{"text": " ".join(sentences[i:i + 2])} for i in range(0, len(sentences), 2)]
    return out


COMMON = "metadata:\n  version: 1.0\n"
YAMLS = {
    "llmlab_sentiment": """task: llmlab_sentiment
dataset_path: json
dataset_kwargs:
  data_files:
    test: llmlab_sentiment.jsonl
    train: llmlab_sentiment_shots.jsonl
custom_dataset: !function utils.load_local
test_split: test
fewshot_split: train
fewshot_config:
  sampler: first_n
num_fewshot: 2
output_type: multiple_choice
doc_to_text: "Review: {{text}}\\nSentiment:"
doc_to_choice: ["negative", "positive"]
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""",
    "llmlab_arithmetic": """task: llmlab_arithmetic
dataset_path: json
dataset_kwargs:
  data_files:
    test: llmlab_arithmetic.jsonl
custom_dataset: !function utils.load_local
test_split: test
num_fewshot: 0
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""",
    "llmlab_facts": """task: llmlab_facts
dataset_path: json
dataset_kwargs:
  data_files:
    test: llmlab_facts.jsonl
custom_dataset: !function utils.load_local
test_split: test
num_fewshot: 0
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""",
    "llmlab_passages": """task: llmlab_passages
dataset_path: json
dataset_kwargs:
  data_files:
    test: llmlab_passages.jsonl
custom_dataset: !function utils.load_local
test_split: test
num_fewshot: 0
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""",
}
UTILS = '''"""Loads a task's JSONL files from this folder, wherever lm_eval is started (lm-eval's ``custom_dataset``:
datasets resolves a relative ``data_files`` path against the working directory, not the YAML's folder)."""
from pathlib import Path


def load_local(data_files, **kwargs):
    import datasets

    here = Path(__file__).resolve().parent
    return datasets.DatasetDict({split: datasets.Dataset.from_json(str(here / name))
                                 for split, name in data_files.items()})
'''


def files() -> dict[str, str]:
    """Every file of the task folder: name → text."""
    def jsonl(docs):
        return "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in docs)

    reviews, shots = sentiment()
    out = {"llmlab_sentiment.jsonl": jsonl(reviews), "llmlab_sentiment_shots.jsonl": jsonl(shots),
           "llmlab_arithmetic.jsonl": jsonl(arithmetic()), "llmlab_facts.jsonl": jsonl(facts()),
           "llmlab_passages.jsonl": jsonl(passages()), "utils.py": UTILS,
           "README.md": f"# LLM Lab's lm-eval tasks\n\n{LICENSE}.\n\nRun: `lm_eval --include_path "
                        "core/data/lm_eval_tasks --tasks llmlab_facts ...` or `python -m core.evaluate --tasks "
                        "llmlab_facts --variant fp32 --output-path out/`.\n"}
    for name, text in YAMLS.items():
        out[f"{name}.yaml"] = f"# {LICENSE}\n{text}{COMMON}"
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files())} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

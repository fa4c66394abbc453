"""In-context learning: zero-, one- and few-shot prompts assembled from example sets, and chat-template rendering.

Zero/one/few-shot prompting as defined in Brown et al. 2020, "Language Models are Few-Shot Learners", §2 and
Figure 2.1: a task description, K solved examples ("shots"), then the query, all in the context window and with no
weight updates. Chat templates: https://huggingface.co/docs/transformers/chat_templating.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SHOT_COUNTS = {"zero-shot": 0, "one-shot": 1, "few-shot": 3}


@dataclass(frozen=True)
class Example:
    input: str
    output: str


@dataclass(frozen=True)
class ExampleSet:
    """A task: how one example is written, its solved examples, and a default query."""

    key: str
    title: str
    instruction: str  # task description placed first (zero-shot relies on it alone)
    input_prefix: str  # written before an example's input, e.g. "Classify this review: "
    output_prefix: str  # written before the answer, e.g. "Sentiment:"
    examples: tuple[Example, ...]
    default_query: str
    separator: str = "\n\n"
    input_newline: bool = False  # multi-line inputs (dialogues) start on their own line

    def format_example(self, text: str, answer: str | None = None) -> str:
        """One example; with answer=None the prompt ends right after the output prefix, for the model to continue."""
        body = f"{self.input_prefix}{chr(10) if self.input_newline else ''}{text.strip()}\n{self.output_prefix}"
        return body if answer is None else f"{body} {answer.strip()}"


EXAMPLE_SETS: dict[str, ExampleSet] = {
    "review-sentiment": ExampleSet(
        key="review-sentiment",
        title="Review sentiment (classification)",
        instruction="Decide whether each review is positive or negative.",
        input_prefix="Classify this review: ",
        output_prefix="Sentiment:",
        examples=(
            Example("The battery lasts two full days and the screen is gorgeous.", "positive"),
            Example("It stopped working after a week and support never answered.", "negative"),
            Example("Friendly staff, quick delivery, and the soup was still hot.", "positive"),
            Example("The plot made no sense and I walked out halfway through.", "negative"),
            Example("Exactly as described; I would happily buy it again.", "positive"),
            Example("Overpriced, noisy, and the handle broke on day one.", "negative"),
        ),
        default_query="The hotel room was spotless and the view over the harbour was breathtaking.",
    ),
    "dialogue-summarization": ExampleSet(
        key="dialogue-summarization",
        title="Dialogue summarization",
        instruction="Summarize each dialogue in one sentence.",
        input_prefix="Dialogue:",
        output_prefix="Summary:",
        input_newline=True,
        examples=(
            Example(
                "Anna: Are we still on for lunch tomorrow?\nBen: Yes, 12:30 at the Thai place.\nAnna: Perfect, see you.",
                "Anna and Ben confirm lunch tomorrow at 12:30 at the Thai restaurant.",
            ),
            Example(
                "Customer: My order hasn't arrived.\nAgent: Sorry! It was delayed at the depot; it ships today.\n"
                "Customer: OK, thanks.",
                "The agent explains the delayed order ships today.",
            ),
            Example(
                "Maya: Can you water my plants while I'm away?\nLeo: Sure, how often?\nMaya: Twice a week is enough.",
                "Leo agrees to water Maya's plants twice a week while she is away.",
            ),
            Example(
                "Tom: The build is failing on main.\nSara: My fault, I forgot a file. Pushing a fix now.\nTom: Thanks.",
                "Sara pushes a fix for the failing build she caused.",
            ),
        ),
        default_query=(
            "Lena: Did you book the train tickets?\nOmar: Not yet, prices went up.\n"
            "Lena: Let's take the bus then, it's half the price.\nOmar: Fine, I'll book it tonight."
        ),
    ),
    "english-french": ExampleSet(
        key="english-french",
        title="English → French translation (Brown et al. 2020, Fig. 2.1)",
        instruction="Translate English to French.",
        input_prefix="English: ",
        output_prefix="French:",
        separator="\n",
        examples=(
            Example("sea otter", "loutre de mer"),
            Example("peppermint", "menthe poivrée"),
            Example("plush giraffe", "girafe en peluche"),
            Example("good morning", "bonjour"),
        ),
        default_query="cheese",
    ),
}


def example_set(key: str) -> ExampleSet:
    try:
        return EXAMPLE_SETS[key]
    except KeyError as exc:
        raise ValueError(f"Unknown example set '{key}'; choose one of {', '.join(EXAMPLE_SETS)}.") from exc


def build_icl_prompt(key_or_set: str | ExampleSet, shots: int | str, query: str | None = None,
                     include_instruction: bool = True) -> str:
    """Zero-shot (0), one-shot (1) or few-shot (k) prompt: instruction, k solved examples, then the open query.

    shots: a count or "zero-shot" / "one-shot" / "few-shot" (3). Capped at the number of examples in the set.
    """
    task = key_or_set if isinstance(key_or_set, ExampleSet) else example_set(key_or_set)
    count = SHOT_COUNTS[shots] if isinstance(shots, str) else int(shots)
    if count < 0:
        raise ValueError("The number of examples (shots) cannot be negative.")
    count = min(count, len(task.examples))
    query_text = (query if query is not None and query.strip() else task.default_query)
    parts = [task.instruction] if include_instruction else []
    parts += [task.format_example(ex.input, ex.output) for ex in task.examples[:count]]
    parts.append(task.format_example(query_text))
    return task.separator.join(parts)


@dataclass
class RenderedPrompt:
    """The exact text the model reads, its token ids, and notes about how it was built."""

    text: str
    input_ids: list[int]
    used_chat_template: bool
    notes: list[str] = field(default_factory=list)

    @property
    def token_count(self) -> int:
        return len(self.input_ids)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_text(tokenizer, prompt: str, system_prompt: str | None = None) -> str:
    """``prompt`` as one user turn (after a system turn, when ``system_prompt`` is given) plus the assistant header, in
    the tokenizer's chat template; the prompt itself when the tokenizer has no template."""
    if not has_chat_template(tokenizer):
        return prompt
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": prompt}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chat_ids(tokenizer, prompt: str, system_prompt: str | None = None) -> list[int]:
    """The token ids of ``chat_text``: the one home of chat-template tokenisation (the Generate page, the
    Quantization comparison, the optimized variants and the fine-tuning data all use it). A templated text is encoded
    without special tokens (the template writes its own); a plain prompt gets the tokenizer's usual ones."""
    return render_prompt(tokenizer, prompt, use_chat_template=True, system_prompt=system_prompt).input_ids


def render_prompt(tokenizer, prompt: str, use_chat_template: bool = False, system_prompt: str | None = None) -> RenderedPrompt:
    """Apply the chat template (as a single user turn plus the assistant header) or use the text as is.

    A model without a chat template falls back to plain text, with a note saying so.
    """
    notes: list[str] = []
    if use_chat_template and not has_chat_template(tokenizer):
        notes.append("This model has no chat template, so the prompt is sent as plain text.")
        use_chat_template = False
    text = chat_text(tokenizer, prompt, system_prompt) if use_chat_template else prompt
    ids = tokenizer(text, add_special_tokens=not use_chat_template)["input_ids"]
    return RenderedPrompt(text=text, input_ids=list(ids), used_chat_template=use_chat_template, notes=notes)


# ---------------------------------------------------------------------------------------------------------------------
# Prompting techniques beyond zero/one/few-shot: chain-of-thought, ReAct, PAL

TECHNIQUES = {
    "zero-shot": "Zero-shot: the question alone (Brown et al. 2020, §2)",
    "few-shot": "Few-shot: solved examples with bare answers (Brown et al. 2020, §2)",
    "zero-shot-cot": "Zero-shot chain-of-thought: \"Let's think step by step.\" (Kojima et al. 2022, Fig. 1)",
    "few-shot-cot": "Few-shot chain-of-thought: worked examples that reason first (Wei et al. 2022, Fig. 1)",
    "react": "ReAct: Thought / Action / Observation turns (Yao et al. 2023, Fig. 1)",
    "pal": "PAL: the model writes a Python program (Gao et al. 2023, Fig. 1); shown, never run",
}
"""Sources: Brown et al. 2020, "Language Models are Few-Shot Learners"; Kojima et al. 2022, "Large Language Models are
Zero-Shot Reasoners" (NeurIPS, §3: the trigger sentence); Wei et al. 2022, "Chain-of-Thought Prompting Elicits
Reasoning in Large Language Models" (NeurIPS, Fig. 1 and §2); Yao et al. 2023, "ReAct: Synergizing Reasoning and
Acting in Language Models" (ICLR, Fig. 1 and §2); Gao et al. 2023, "PAL: Program-aided Language Models" (ICML, §3)."""

ZERO_SHOT_COT_TRIGGER = "Let's think step by step."


@dataclass(frozen=True)
class WorkedExample:
    question: str
    reasoning: str  # the chain of thought (few-shot CoT)
    answer: str
    program: str  # the same solution as a Python program (PAL)
    react: str  # Thought / Action / Observation turns ending in Finish[answer]


WORKED_EXAMPLES: tuple[WorkedExample, ...] = (
    WorkedExample(
        question="A baker makes 24 muffins and sells them in boxes of 4. Each box costs 6 dollars. How much money "
                 "does she make if she sells every box?",
        reasoning="24 muffins in boxes of 4 make 24 / 4 = 6 boxes. Each box costs 6 dollars, so 6 × 6 = 36 dollars.",
        answer="36",
        program="muffins = 24\nper_box = 4\nprice_per_box = 6\nboxes = muffins // per_box\nanswer = boxes * price_per_box",
        react="Thought: I need the number of boxes, then the money.\nAction: Calculate[24 / 4]\nObservation: 6\n"
              "Thought: 6 boxes at 6 dollars each.\nAction: Calculate[6 * 6]\nObservation: 36\nAction: Finish[36]",
    ),
    WorkedExample(
        question="Tom has 3 times as many marbles as Ana. Ana has 7 marbles. Tom gives 5 marbles away. How many "
                 "marbles does Tom have now?",
        reasoning="Tom has 3 × 7 = 21 marbles. After giving 5 away he has 21 − 5 = 16.",
        answer="16",
        program="ana = 7\ntom = 3 * ana\ntom = tom - 5\nanswer = tom",
        react="Thought: First find Tom's marbles.\nAction: Calculate[3 * 7]\nObservation: 21\n"
              "Thought: He gives 5 away.\nAction: Calculate[21 - 5]\nObservation: 16\nAction: Finish[16]",
    ),
    WorkedExample(
        question="A train leaves at 9:40 and the trip takes 2 hours and 35 minutes. At what time does it arrive?",
        reasoning="9:40 plus 2 hours is 11:40. Plus 35 minutes: 11:40 + 20 minutes = 12:00, then 15 more minutes "
                  "is 12:15.",
        answer="12:15",
        program="start_minutes = 9 * 60 + 40\ntrip_minutes = 2 * 60 + 35\nend = start_minutes + trip_minutes\n"
                "answer = f\"{end // 60}:{end % 60:02d}\"",
        react="Thought: Add the trip to the start time in minutes.\nAction: Calculate[9*60 + 40 + 2*60 + 35]\n"
              "Observation: 735\nThought: 735 minutes is 12 hours 15 minutes.\nAction: Finish[12:15]",
    ),
)
DEFAULT_QUESTION = ("A library has 120 books. It lends out a quarter of them on Monday and 10 more on Tuesday. "
                    "How many books are still in the library?")
REACT_INSTRUCTION = (
    "Solve the question with interleaved Thought, Action and Observation steps. Actions: Calculate[expression] "
    "returns the value of an arithmetic expression; Finish[answer] gives the final answer."
)
PAL_INSTRUCTION = "Solve each question by writing a Python program that stores the result in `answer`."


def build_technique_prompt(technique: str, question: str | None = None, shots: int = 2) -> str:
    """The prompt for one technique (see TECHNIQUES) on an arithmetic word problem; few-shot kinds use `shots`
    worked examples (1 to len(WORKED_EXAMPLES))."""
    if technique not in TECHNIQUES:
        raise ValueError(f"Unknown technique '{technique}'; choose one of {', '.join(TECHNIQUES)}.")
    if shots < 1:
        raise ValueError("Few-shot techniques need at least one worked example.")
    q = (question or "").strip() or DEFAULT_QUESTION
    examples = WORKED_EXAMPLES[: min(int(shots), len(WORKED_EXAMPLES))]
    if technique == "zero-shot":
        return f"Q: {q}\nA: The answer is"
    if technique == "zero-shot-cot":
        return f"Q: {q}\nA: {ZERO_SHOT_COT_TRIGGER}"
    if technique == "few-shot":
        solved = [f"Q: {ex.question}\nA: The answer is {ex.answer}." for ex in examples]
        return "\n\n".join(solved + [f"Q: {q}\nA: The answer is"])
    if technique == "few-shot-cot":
        solved = [f"Q: {ex.question}\nA: {ex.reasoning} The answer is {ex.answer}." for ex in examples]
        return "\n\n".join(solved + [f"Q: {q}\nA:"])
    if technique == "react":
        solved = [f"Question: {ex.question}\n{ex.react}" for ex in examples]
        return "\n\n".join([REACT_INSTRUCTION] + solved + [f"Question: {q}\nThought:"])
    solved = [f"# Q: {ex.question}\n{ex.program}" for ex in examples]  # pal
    return "\n\n".join([f"# {PAL_INSTRUCTION}"] + solved + [f"# Q: {q}\n"])


def technique_costs(tokenizer, question: str | None = None, shots: int = 2) -> list[dict]:
    """Prompt length in tokens of every technique on the same question (the context each one spends)."""
    rows = []
    for key, label in TECHNIQUES.items():
        text = build_technique_prompt(key, question, shots)
        rows.append({"technique": key, "label": label, "prompt_tokens": len(tokenizer(text)["input_ids"]),
                     "characters": len(text)})
    return rows


def pal_program(completion: str) -> str:
    """The program part of a PAL completion: the lines up to the next "# Q:" example (to display, never to execute)."""
    program = []
    for line in (completion or "").splitlines():
        if line.strip().startswith("# Q:"):
            break
        program.append(line)
    return "\n".join(program).strip()

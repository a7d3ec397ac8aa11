"""Verifiable instructions (IFEval-style) for spoken instruction following: rule-based checks and their accuracy.

An item of ``jstip/resources/eval/instructions.jsonl`` is::

    {"id": "if001", "prompt": "Describe your morning in at most forty words, all in lowercase letters.",
     "instructions": [{"type": "length_words", "relation": "at_most", "num": 40}, {"type": "all_lowercase"}]}

The prompt is what a TTS voice speaks; the instructions are what the response is checked against. An "adjustment"
item (InSerter's SpeechInstructBench) also has ``superseded``: instructions that the speaker gave and then corrected
mid-request ("... in capital letters. Sorry, no: in lowercase."); following the correction is counted by the
instruction accuracy, following a superseded one by the error-correction rate (ECR, lower is better).

Strict and loose (as in IFEval): an instruction is followed *strictly* if its check passes on the response as is,
and *loosely* if it passes on any of the response's variants with the first line, the last line or both removed,
each with and without markdown asterisks (``*``) stripped. Accuracy is reported at prompt level (all instructions of
the prompt followed) and instruction level (share of instructions followed), strict and loose, and their mean, which
is the figure InSerter reports.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "at_least": lambda value, num: value >= num,
    "at_most": lambda value, num: value <= num,
    "exactly": lambda value, num: value == num,
    "less_than": lambda value, num: value < num,
    "more_than": lambda value, num: value > num,
}

_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:[*\-\u2022]|\d+[.)])\s+\S", re.MULTILINE)


def count_words(text: str) -> int:
    """Words as runs of letters/digits (``don't`` is one word; punctuation is not a word)."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences: runs of text ended by ``.``, ``!`` or ``?`` (a trailing unterminated run counts too)."""
    text = text.strip()
    if not text:
        return 0
    pieces = [p for p in _SENTENCE_END.split(text) if p.strip()]
    return len(pieces)


def _relation(value: int, spec: Mapping) -> bool:
    return RELATIONS[spec["relation"]](value, int(spec["num"]))


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(phrase.lower()) + r"(?![A-Za-z0-9])", text.lower()) is not None


def _keyword_count(text: str, keyword: str) -> int:
    return len(re.findall(r"(?<![A-Za-z0-9])" + re.escape(keyword.lower()) + r"(?![A-Za-z0-9])", text.lower()))


def _json_ok(text: str) -> bool:
    text = text.strip()
    # A fenced block ```json ... ``` is accepted, as IFEval does.
    fenced = re.fullmatch(r"```(?:json|JSON)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return False
    return True


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\s*\*\*\*\s*", text.strip()) if p.strip()]


CHECKS: dict[str, tuple[tuple[str, ...], Callable[[str, Mapping], bool]]] = {
    # type: (required argument names, check(response, instruction) -> bool)
    "length_words": (("relation", "num"), lambda r, s: _relation(count_words(r), s)),
    "length_sentences": (("relation", "num"), lambda r, s: _relation(count_sentences(r), s)),
    "keywords_include": (("keywords",), lambda r, s: all(_has_phrase(r, k) for k in s["keywords"])),
    "keywords_exclude": (("keywords",), lambda r, s: not any(_has_phrase(r, k) for k in s["keywords"])),
    "keyword_frequency": (("keyword", "relation", "num"), lambda r, s: _relation(_keyword_count(r, s["keyword"]), s)),
    "letter_frequency": (("letter", "relation", "num"),
                         lambda r, s: _relation(r.lower().count(s["letter"].lower()), s)),
    "all_lowercase": ((), lambda r, s: bool(r.strip()) and r == r.lower()),
    "all_uppercase": ((), lambda r, s: bool(r.strip()) and r == r.upper()),
    "capital_word_frequency": (("relation", "num"),
                               lambda r, s: _relation(len(re.findall(r"\b[A-Z]{2,}\b", r)), s)),
    "json_format": ((), lambda r, s: _json_ok(r)),
    "bullet_count": (("num",), lambda r, s: len(_BULLET.findall(r)) == int(s["num"])),
    "start_with": (("phrase",), lambda r, s: r.strip().lower().startswith(s["phrase"].lower())),
    "end_with": (("phrase",), lambda r, s: r.strip().lower().endswith(s["phrase"].lower())),
    "no_commas": ((), lambda r, s: "," not in r),
    "paragraph_count": (("num",), lambda r, s: len(_paragraphs(r)) == int(s["num"])),
    "title": ((), lambda r, s: re.search(r"<<[^<>\n]+>>", r) is not None),
    "postscript": (("marker",), lambda r, s: re.search(r"^\s*" + re.escape(s["marker"]), r,
                                                        flags=re.MULTILINE | re.IGNORECASE) is not None),
    "quotation": ((), lambda r, s: len(r.strip()) > 1 and r.strip()[0] == '"' and r.strip()[-1] == '"'),
    "placeholder_count": (("num",), lambda r, s: len(re.findall(r"\[[^\[\]\n]+\]", r)) >= int(s["num"])),
    "highlight_count": (("num",), lambda r, s: len(re.findall(r"\*[^\n*]+\*", r)) >= int(s["num"])),
}
"""Instruction types: the arguments each needs and its strict check."""


def validate_instruction(instruction: Mapping) -> None:
    """Raise ValueError if an instruction has an unknown type, a missing argument or an unknown relation."""
    kind = instruction.get("type")
    if kind not in CHECKS:
        raise ValueError(f"unknown instruction type {kind!r}; known: {sorted(CHECKS)}")
    missing = [a for a in CHECKS[kind][0] if a not in instruction]
    if missing:
        raise ValueError(f"instruction {kind!r} needs argument(s) {missing}")
    if "relation" in instruction and instruction["relation"] not in RELATIONS:
        raise ValueError(f"unknown relation {instruction['relation']!r}; known: {sorted(RELATIONS)}")


def loose_variants(response: str) -> list[str]:
    """The response variants of IFEval's loose check: first/last/both lines removed, asterisks stripped or not."""
    lines = response.split("\n")
    bases = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    variants = []
    for base in bases:
        for variant in (base, base.replace("*", "")):
            if variant not in variants:
                variants.append(variant)
    return variants


def check_instruction(response: str, instruction: Mapping, loose: bool = False) -> bool:
    """Whether ``response`` follows ``instruction`` (strictly, or loosely: see the module docstring)."""
    validate_instruction(instruction)
    check = CHECKS[instruction["type"]][1]
    if not loose:
        # As IFEval: an empty response follows no instruction (else "no commas" would pass on silence, strictly
        # but not loosely).
        return bool(response.strip()) and bool(check(response, instruction))
    return any(v.strip() and check(v, instruction) for v in loose_variants(response))


def load_items(path: str | Path | None = None) -> list[dict]:
    """Load and validate instruction items (default: the shipped ``jstip/resources/eval/instructions.jsonl``).

    Raises:
        ValueError: naming the file, the item and the problem.
    """
    from jstip.jsonl import read_jsonl

    def check(item: dict) -> None:
        if not item.get("id") or not item.get("prompt") or not item.get("instructions"):
            raise ValueError("an item needs id, prompt and a non-empty instructions list")
        try:
            for instruction in [*item["instructions"], *item.get("superseded", [])]:
                validate_instruction(instruction)
        except ValueError as err:
            raise ValueError(f"item {item['id']}: {err}") from err

    path = Path(path) if path is not None else default_data_dir() / "instructions.jsonl"
    return read_jsonl(path, check=check)


def default_data_dir() -> Path:
    """The shipped ``eval/`` folder (:mod:`jstip.paths`)."""
    from jstip.paths import resource_path

    return resource_path("eval")


def score_responses(items: Iterable[Mapping], responses: Mapping[str, str]) -> dict:
    """Accuracy of responses on instruction items.

    Args:
        items: instruction items (see the module docstring).
        responses: item id -> the model's response text. An item without a response counts as failed and is listed
            in ``missing_ids``.

    Returns:
        ``prompt_strict``, ``prompt_loose``, ``instruction_strict``, ``instruction_loose`` (fractions),
        ``prompt_level`` and ``instruction_level`` (mean of strict and loose), accuracy per instruction type,
        ``ecr`` (share of superseded instructions that were still followed, strictly; None without adjustment items),
        and per-item results.
    """
    items = list(items)
    prompt_hits = {"strict": 0, "loose": 0}
    instr_hits = {"strict": 0, "loose": 0}
    num_instructions = 0
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    superseded_total = superseded_followed = 0
    results, missing_ids = [], []
    for item in items:
        response = responses.get(item["id"])
        if response is None:
            missing_ids.append(item["id"])
            response = ""
        strict = [check_instruction(response, ins) for ins in item["instructions"]]
        loose = [check_instruction(response, ins, loose=True) for ins in item["instructions"]]
        prompt_hits["strict"] += all(strict)
        prompt_hits["loose"] += all(loose)
        instr_hits["strict"] += sum(strict)
        instr_hits["loose"] += sum(loose)
        num_instructions += len(strict)
        for ins, ok in zip(item["instructions"], strict):
            per_type[ins["type"]][0] += ok
            per_type[ins["type"]][1] += 1
        followed_superseded = [check_instruction(response, ins) for ins in item.get("superseded", [])]
        superseded_total += len(followed_superseded)
        superseded_followed += sum(followed_superseded)
        results.append({"id": item["id"], "strict": strict, "loose": loose,
                        "superseded_followed": followed_superseded, "response": response})
    n = len(items)
    out = {
        "prompt_strict": prompt_hits["strict"] / n if n else None,
        "prompt_loose": prompt_hits["loose"] / n if n else None,
        "instruction_strict": instr_hits["strict"] / num_instructions if num_instructions else None,
        "instruction_loose": instr_hits["loose"] / num_instructions if num_instructions else None,
    }
    for level in ("prompt", "instruction"):
        s, l = out[f"{level}_strict"], out[f"{level}_loose"]
        out[f"{level}_level"] = None if s is None else (s + l) / 2
    out["per_type"] = {k: {"accuracy": v[0] / v[1], "count": v[1]} for k, v in sorted(per_type.items())}
    out["ecr"] = superseded_followed / superseded_total if superseded_total else None
    out["num_items"] = n
    out["num_instructions"] = num_instructions
    out["missing_ids"] = missing_ids
    out["items"] = results
    return out

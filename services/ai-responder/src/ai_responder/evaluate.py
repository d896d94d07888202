"""Evaluate the assistant on labelled question sets: `python -m ai_responder.evaluate`.

For each question set (by default every demo tenant's: `eval/questions.yaml` for lucine-di-natale,
`eval/museo-del-vetro.yaml`), separately, it prints answer accuracy, handoff precision and recall,
out-of-scope honesty, language accuracy and latency, lists the failures, and exits with status 1
when a figure of any set is below its threshold (so CI can gate on it).

Retrieval mode unless an OpenAI-compatible endpoint is named: `--base-url`/`--model`/`--api-key`,
or the environment's `OPENAI_BASE_URL`, `OPENAI_MODEL` and `OPENAI_API_KEY` (a local server needs
no key). `--strip-keywords` drops every article's keyword list first, to show how much of the score
the hand-written lists still carry.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ai_responder.answering import (
    Answer,
    KnowledgeBase,
    Question,
    Responder,
    ResponderSettings,
    RetrievalResponder,
    TenantKnowledge,
    build_responder,
)
from ai_responder.config import SHIPPED_KB
from ai_responder.text import normalize, tokenize
from contracts.common import Sender

SERVICE_DIR = Path(__file__).resolve().parents[2]
DEFAULT_QUESTIONS = SERVICE_DIR / "eval" / "questions.yaml"
DEFAULT_KB = SHIPPED_KB
# One question set per demo tenant, each reported on its own (holdout.yaml is run on request only).
QUESTION_SETS: tuple[Path, ...] = (DEFAULT_QUESTIONS, SERVICE_DIR / "eval" / "museo-del-vetro.yaml")

THRESHOLDS: dict[str, float] = {
    "answer_accuracy": 0.90,
    "handoff_precision": 0.95,
    "handoff_recall": 1.0,
    "out_of_scope_honesty": 1.0,
    "language_accuracy": 0.90,
}


def question_sets() -> tuple[Path, ...]:
    return QUESTION_SETS


@dataclass(frozen=True)
class Case:
    text: str
    language: str
    expected: tuple[str | None, ...]
    handoff: bool
    history: tuple[tuple[Sender, str], ...] = ()
    says: tuple[str, ...] = ()
    """Phrases the reply must contain (whole words, case and accents ignored)."""

    @property
    def out_of_scope(self) -> bool:
        """Nothing in the KB answers it and a person must be offered: the honest "I don't know"."""
        return self.expected == (None,) and self.handoff


@dataclass
class Outcome:
    case: Case
    answer: Answer
    seconds: float

    @property
    def answered_with(self) -> str | None:
        return self.answer.sources[0].article_id if self.answer.sources else None

    @property
    def covers(self) -> bool:
        words = f" {' '.join(tokenize(self.answer.text))} "
        return all(f" {' '.join(tokenize(phrase))} " in words for phrase in self.case.says)

    @property
    def correct(self) -> bool:
        return self.answered_with in self.case.expected and self.covers

    @property
    def honest(self) -> bool:
        return not self.answer.sources and self.handoff

    @property
    def handoff(self) -> bool:
        return self.answer.handoff_reason is not None


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def _ratio(self, num: int, den: int) -> float:
        return num / den if den else 1.0

    @property
    def metrics(self) -> dict[str, float]:
        o = self.outcomes
        tp = sum(1 for x in o if x.handoff and x.case.handoff)
        fp = sum(1 for x in o if x.handoff and not x.case.handoff)
        fn = sum(1 for x in o if not x.handoff and x.case.handoff)
        out_of_scope = [x for x in o if x.case.out_of_scope]
        return {
            "answer_accuracy": self._ratio(sum(x.correct for x in o), len(o)),
            "handoff_precision": self._ratio(tp, tp + fp),
            "handoff_recall": self._ratio(tp, tp + fn),
            "out_of_scope_honesty": self._ratio(sum(x.honest for x in out_of_scope), len(out_of_scope)),
            "language_accuracy": self._ratio(sum(x.answer.language == x.case.language for x in o), len(o)),
        }

    @property
    def failures(self) -> list[str]:
        failed = []
        for x in self.outcomes:
            problems = []
            if not x.covers:
                problems.append(f"does not say {' / '.join(x.case.says)}")
            if x.answered_with not in x.case.expected:
                problems.append(f"answered from {x.answered_with} (expected {' or '.join(map(str, x.case.expected))})")
            if x.handoff != x.case.handoff:
                problems.append(f"handoff {x.answer.handoff_reason} (expected {'one' if x.case.handoff else 'none'})")
            if x.answer.language != x.case.language:
                problems.append(f"language {x.answer.language} (expected {x.case.language})")
            if problems:
                failed.append(f"{x.case.text!r} [conf {x.answer.confidence:.2f}]: " + "; ".join(problems))
        return failed

    def below_thresholds(self, thresholds: dict[str, float] = THRESHOLDS) -> dict[str, float]:
        metrics = self.metrics
        return {name: metrics[name] for name, minimum in thresholds.items() if metrics[name] < minimum}


def load_cases(path: str | Path = DEFAULT_QUESTIONS) -> tuple[str, list[Case]]:
    data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cases = []
    for i, item in enumerate(data["questions"]):
        expect = item.get("expect")
        expected = tuple(expect) if isinstance(expect, list) else (expect,)
        history = tuple((Sender(sender), text) for sender, text in item.get("history", []))
        try:
            says = tuple(normalize(p) for p in item.get("says", []))
            cases.append(Case(item["q"], item["lang"], expected, bool(item["handoff"]), history, says))
        except KeyError as exc:
            raise ValueError(f"{path}: question #{i + 1} lacks {exc}") from exc
    return data["tenant"], cases


def load_knowledge(kb_dir: str | Path = DEFAULT_KB, strip_keywords: bool = False) -> KnowledgeBase:
    """The tenants' knowledge bases; with `strip_keywords`, every article's keyword list removed."""
    knowledge = KnowledgeBase.load(kb_dir)
    if not strip_keywords:
        return knowledge
    tenants = {}
    for tenant_id in knowledge.tenant_ids:
        kb = knowledge.tenant(tenant_id).kb
        articles = [article.model_copy(update={"keywords": {}}) for article in kb.articles]
        tenants[tenant_id] = TenantKnowledge(kb.model_copy(update={"articles": articles}))
    return KnowledgeBase(tenants)


async def run_evaluation(
    responder: Responder | None = None,
    questions: str | Path = DEFAULT_QUESTIONS,
    kb_dir: str | Path = DEFAULT_KB,
    strip_keywords: bool = False,
) -> Report:
    tenant_id, cases = load_cases(questions)
    responder = responder or RetrievalResponder(load_knowledge(kb_dir, strip_keywords))
    report = Report()
    for case in cases:
        question = Question(tenant_id=tenant_id, text=case.text, history=list(case.history))
        started = time.perf_counter()
        answer = await responder.answer(question)
        report.outcomes.append(Outcome(case, answer, time.perf_counter() - started))
    return report


def _print(report: Report, title: str) -> None:
    metrics = report.metrics
    times = sorted(x.seconds for x in report.outcomes)
    print(f"== {title}")
    print(f"questions            {len(report.outcomes)}")
    for name, value in metrics.items():
        print(f"{name:<20} {value:.3f}   (threshold {THRESHOLDS[name]:.2f})")
    if times:
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"latency              p50 {statistics.median(times) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms")
    modes = Counter(x.answer.mode.value for x in report.outcomes)
    print("answers by mode      " + ", ".join(f"{mode} {count}" for mode, count in sorted(modes.items())))
    failures = report.failures
    if failures:
        print(f"\nfailures ({len(failures)}):")
        for line in failures:
            print(f"  - {line}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_responder.evaluate", description=__doc__)
    parser.add_argument(
        "--questions", action="append", help="a question set (repeatable); default: every demo tenant's"
    )
    parser.add_argument("--kb", default=str(DEFAULT_KB), help="directory holding one folder per tenant")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="LLM mode with this key")
    parser.add_argument(
        "--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="an OpenAI-compatible endpoint: LLM mode"
    )
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL") or "gpt-4o-mini")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--strip-keywords", action="store_true", help="drop every article's keyword list first")
    args = parser.parse_args(argv)
    # A local OpenAI-compatible server needs no key, but the client wants one.
    api_key = args.api_key or ("unused" if args.base_url else None)
    settings = ResponderSettings(
        kb_dir=args.kb,
        llm_api_key=api_key,
        llm_base_url=args.base_url,
        llm_model=args.model,
        llm_timeout_s=args.timeout,
    )
    knowledge = load_knowledge(args.kb, args.strip_keywords)
    responder = build_responder(settings, knowledge)
    mode = f"LLM {args.model} at {args.base_url or 'the default endpoint'}" if api_key else "retrieval"
    paths = args.questions or [str(p) for p in question_sets()]

    async def evaluate_all() -> list[Report]:
        # One event loop for every set: an LLM client keeps its connections on the loop it started on.
        return [await run_evaluation(responder, path, args.kb) for path in paths]

    failed: list[str] = []
    for path, report in zip(paths, asyncio.run(evaluate_all()), strict=True):
        tenant_id, _ = load_cases(path)
        keywords = ", keyword lists stripped" if args.strip_keywords else ""
        _print(report, f"{tenant_id} ({Path(path).name}, {mode}{keywords})")
        below = report.below_thresholds()
        if below:
            failed.append(f"{tenant_id}: " + ", ".join(f"{k}={v:.3f}" for k, v in below.items()))
    if failed:
        print("BELOW THRESHOLD: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

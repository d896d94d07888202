"""Evaluate the assistant on a labelled question set: `python -m ai_responder.evaluate`.

Prints answer accuracy, handoff precision and recall, language accuracy and latency, lists the
failures, and exits with status 1 when a figure is below its threshold (so CI can gate on it).
By default it evaluates retrieval-only mode; pass `--api-key` (and `--base-url`, `--model`) to
evaluate the LLM mode against an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
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
    build_responder,
)
from ai_responder.config import SHIPPED_KB
from contracts.common import Sender

SERVICE_DIR = Path(__file__).resolve().parents[2]
DEFAULT_QUESTIONS = SERVICE_DIR / "eval" / "questions.yaml"
DEFAULT_KB = SHIPPED_KB

THRESHOLDS: dict[str, float] = {
    "answer_accuracy": 0.85,
    "handoff_precision": 0.85,
    "handoff_recall": 0.90,
    "language_accuracy": 0.90,
}


@dataclass(frozen=True)
class Case:
    text: str
    language: str
    expected: tuple[str | None, ...]
    handoff: bool
    history: tuple[tuple[Sender, str], ...] = ()


@dataclass
class Outcome:
    case: Case
    answer: Answer
    seconds: float

    @property
    def answered_with(self) -> str | None:
        return self.answer.sources[0].article_id if self.answer.sources else None

    @property
    def correct(self) -> bool:
        return self.answered_with in self.case.expected

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
        return {
            "answer_accuracy": self._ratio(sum(x.correct for x in o), len(o)),
            "handoff_precision": self._ratio(tp, tp + fp),
            "handoff_recall": self._ratio(tp, tp + fn),
            "language_accuracy": self._ratio(sum(x.answer.language == x.case.language for x in o), len(o)),
        }

    @property
    def failures(self) -> list[str]:
        failed = []
        for x in self.outcomes:
            problems = []
            if not x.correct:
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
            cases.append(Case(item["q"], item["lang"], expected, bool(item["handoff"]), history))
        except KeyError as exc:
            raise ValueError(f"{path}: question #{i + 1} lacks {exc}") from exc
    return data["tenant"], cases


async def run_evaluation(
    responder: Responder | None = None,
    questions: str | Path = DEFAULT_QUESTIONS,
    kb_dir: str | Path = DEFAULT_KB,
) -> Report:
    tenant_id, cases = load_cases(questions)
    responder = responder or RetrievalResponder(KnowledgeBase.load(kb_dir))
    report = Report()
    for case in cases:
        question = Question(tenant_id=tenant_id, text=case.text, history=list(case.history))
        started = time.perf_counter()
        answer = await responder.answer(question)
        report.outcomes.append(Outcome(case, answer, time.perf_counter() - started))
    return report


def _print(report: Report) -> None:
    metrics = report.metrics
    times = sorted(x.seconds for x in report.outcomes)
    print(f"questions          {len(report.outcomes)}")
    for name, value in metrics.items():
        print(f"{name:<18} {value:.3f}   (threshold {THRESHOLDS[name]:.2f})")
    if times:
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"latency            p50 {statistics.median(times) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms")
    failures = report.failures
    if failures:
        print(f"\nfailures ({len(failures)}):")
        for line in failures:
            print(f"  - {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_responder.evaluate", description=__doc__)
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--kb", default=str(DEFAULT_KB), help="directory holding one folder per tenant")
    parser.add_argument("--api-key", default=None, help="evaluate the LLM mode with this key")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    settings = ResponderSettings(
        kb_dir=args.kb,
        llm_api_key=args.api_key,
        llm_base_url=args.base_url,
        llm_model=args.model,
        llm_timeout_s=args.timeout,
    )
    report = asyncio.run(run_evaluation(build_responder(settings), args.questions, args.kb))
    _print(report)
    below = report.below_thresholds()
    if below:
        print("\nBELOW THRESHOLD: " + ", ".join(f"{k}={v:.3f}" for k, v in below.items()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmark of the retrieval path: CPU time per answered question, no I/O.

    .venv/bin/python services/ai-responder/scripts/bench_retrieval.py [--rounds 20]

Answers every question of the evaluation sets (each tenant's) through `RetrievalResponder.answer_now`
(language, policy, retrieval, composing the reply): once on a freshly loaded knowledge base (cold:
the per-word memo is empty, as after a reload) and then `rounds` times (warm), and prints
milliseconds per question (mean and p99 of the warm rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ai_responder.answering import KnowledgeBase, Question, RetrievalResponder
from ai_responder.evaluate import DEFAULT_KB, load_cases, question_sets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    knowledge = KnowledgeBase.load(DEFAULT_KB)
    print(f"load and index: {(time.perf_counter() - started) * 1000:.1f} ms for {len(knowledge.tenant_ids)} tenant(s)")
    responder = RetrievalResponder(knowledge)
    questions: list[Question] = []
    for path in question_sets():
        tenant_id, cases = load_cases(path)
        questions += [Question(tenant_id=tenant_id, text=c.text, history=list(c.history)) for c in cases]
    cold = time.process_time()
    for question in questions:
        responder.answer_now(question)
    cold_ms = (time.process_time() - cold) * 1000 / len(questions)
    samples: list[float] = []
    for _ in range(args.rounds):
        for question in questions:
            t0 = time.perf_counter()
            responder.answer_now(question)
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    print(f"questions: {len(questions)}; cold: {cold_ms:.3f} ms CPU per question")
    print(
        f"warm: mean {statistics.fmean(samples):.3f} ms, p50 {samples[len(samples) // 2]:.3f} ms,"
        f" p99 {samples[int(len(samples) * 0.99)]:.3f} ms per question"
    )


if __name__ == "__main__":
    main()

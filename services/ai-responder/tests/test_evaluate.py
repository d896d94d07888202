from pathlib import Path

from ai_responder.evaluate import THRESHOLDS, load_cases, main, run_evaluation

EVAL_DIR = Path(__file__).resolve().parents[1] / "eval"


def test_question_set_is_big_and_varied() -> None:
    tenant, cases = load_cases(EVAL_DIR / "questions.yaml")
    assert tenant == "lucine-di-natale"
    assert len(cases) >= 70
    assert {c.language for c in cases} == {"it", "en"}
    assert sum(c.handoff for c in cases) >= 20
    assert sum(None in c.expected for c in cases) >= 15


async def test_evaluation_meets_thresholds() -> None:
    report = await run_evaluation(questions=EVAL_DIR / "questions.yaml")
    metrics = report.metrics
    assert report.below_thresholds() == {}, (metrics, report.failures)
    assert set(metrics) == set(THRESHOLDS)


async def test_held_out_questions_stay_reasonable() -> None:
    # Not tuned against: a looser floor that still catches a broken retrieval.
    report = await run_evaluation(questions=EVAL_DIR / "holdout.yaml")
    metrics = report.metrics
    assert metrics["answer_accuracy"] >= 0.8, report.failures
    assert metrics["handoff_recall"] >= 0.9, report.failures


def test_cli_exit_status(tmp_path: Path) -> None:
    assert main(["--questions", str(EVAL_DIR / "questions.yaml")]) == 0
    impossible = tmp_path / "q.yaml"
    impossible.write_text(
        "tenant: lucine-di-natale\nquestions:\n"
        "  - {q: 'Quanto costa il biglietto?', lang: en, expect: parking, handoff: true}\n",
        encoding="utf-8",
    )
    assert main(["--questions", str(impossible)]) == 1

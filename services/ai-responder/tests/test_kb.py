from pathlib import Path

import pytest

from ai_responder.kb import KBError, load_article, load_kb, load_tenant

TENANT = "lucine-di-natale"
DEMO = Path(__file__).resolve().parents[1] / "kb" / TENANT


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """---
id: hours
title: {it: Orari, en: Hours}
keywords: {it: [orari], en: [hours]}
---
::: it
Aperto dalle 17:30.
:::

::: en
Open from 17:30.
:::
"""


def test_demo_kb_is_bilingual_everywhere() -> None:
    articles = load_kb(DEMO)
    assert len(articles) >= 10
    for article in articles:
        assert set(article.languages) == {"it", "en"}, article.id
        assert article.title["it"]
        assert article.title["en"]
        assert article.keywords.get("it"), article.id
        assert article.keywords.get("en"), article.id


def test_demo_kb_facts_are_in_both_languages() -> None:
    bodies = {a.id: a.body for a in load_kb(DEMO)}
    for lang in ("it", "en"):
        prices = bodies["ticket-prices"][lang]
        assert all(p in prices for p in ("9", "7", "13", "25")), lang
        assert "17:30" in bodies["dates-hours"][lang]
        assert "22:30" in bodies["dates-hours"][lang]
        assert "Via Roma 123" in bodies["location"][lang]
        assert "info@lucinedinatale.it" in bodies["contacts"][lang]
        assert "+39 312 345 6789" in bodies["contacts"][lang]


def test_load_tenant_reads_config_policy_synonyms() -> None:
    kb = load_tenant(DEMO)
    assert kb.tenant_id == TENANT
    assert kb.config.default_language == "it"
    assert str(kb.config.actions["buy_tickets"].url) == (
        "https://lucinedinatale.it/products/biglietto-parco-lucine-di-natale-2025"
    )
    assert str(kb.config.actions["whatsapp"].url) == "https://wa.me/393123456789"
    assert "refund" in kb.policy.sensitive_topics
    assert kb.synonyms


def test_single_article(tmp_path: Path) -> None:
    article = load_article(write(tmp_path / "a.md", GOOD))
    assert article.id == "hours"
    assert article.body["en"] == "Open from 17:30."
    assert article.pick_language("fr", "it") == "it"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: x\n", "must start with a YAML front matter"),
        ("---\nid: x\n", "never closed"),
        ("---\nid: [x\n---\n::: it\nciao\n:::\n", "invalid YAML"),
        ("---\ntitle: {it: T}\n---\n::: it\nciao\n:::\n", "no 'id'"),
        ("---\nid: x\ntitle: {it: T}\ncolour: red\n---\n::: it\nciao\n:::\n", "unknown front matter field"),
        ("---\nid: x\ntitle: {it: T}\n---\n::: it\nciao\n", "never closed with ':::'"),
        ("---\nid: x\ntitle: {it: T}\n---\nhello\n::: it\nciao\n:::\n", "text outside a language block"),
        ("---\nid: x\ntitle: {it: T}\n---\n::: en\nhello\n:::\n", "no title for language 'en'"),
        ("---\nid: Bad Id\ntitle: {it: T}\n---\n::: it\nciao\n:::\n", "must be lower-case"),
        ("---\nid: x\ntitle: {it: T}\n---\n", "no language block"),
        ("---\nid: x\ntitle: T\n---\n::: it\nciao\n:::\n", "'title' must map a language"),
    ],
)
def test_bad_article_is_reported_with_its_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.md", text)
    with pytest.raises(KBError, match=message) as info:
        load_article(path)
    assert str(path) in str(info.value)


def test_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path / "articles" / "a.md", GOOD)
    write(tmp_path / "articles" / "b.md", GOOD)
    with pytest.raises(KBError, match="duplicate article id 'hours'"):
        load_kb(tmp_path)


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="no article"):
        load_kb(tmp_path)
    with pytest.raises(KBError, match="no such"):
        load_kb(tmp_path / "nope")


def test_undefined_action_and_topic(tmp_path: Path) -> None:
    write(tmp_path / "tenant.yaml", "default_language: it\n")
    write(tmp_path / "articles" / "a.md", GOOD.replace("keywords:", "actions: [buy]\nkeywords:"))
    with pytest.raises(KBError, match=r"action\(s\) \['buy'\] are not defined"):
        load_tenant(tmp_path)
    write(tmp_path / "articles" / "a.md", GOOD.replace("keywords:", "topics: [refund]\nkeywords:"))
    with pytest.raises(KBError, match="not sensitive topics"):
        load_tenant(tmp_path)


def test_bad_tenant_files(tmp_path: Path) -> None:
    write(tmp_path / "articles" / "a.md", GOOD)
    with pytest.raises(KBError, match=r"tenant\.yaml: missing"):
        load_tenant(tmp_path)
    write(tmp_path / "tenant.yaml", "default_language: fr\n")
    with pytest.raises(KBError, match="default_language 'fr' is not in languages"):
        load_tenant(tmp_path)
    write(tmp_path / "tenant.yaml", "actions:\n  x: {type: open_url, label: {it: X}}\n")
    with pytest.raises(KBError, match="needs a url"):
        load_tenant(tmp_path)
    write(tmp_path / "tenant.yaml", "default_language: it\n")
    write(tmp_path / "policy.yaml", "sensitive: [x]\n")
    with pytest.raises(KBError, match=r"policy\.yaml"):
        load_tenant(tmp_path)
    write(tmp_path / "policy.yaml", "{}\n")
    write(tmp_path / "synonyms.yaml", "a: b\n")
    with pytest.raises(KBError, match="list of lists"):
        load_tenant(tmp_path)
    write(tmp_path / "synonyms.yaml", "- [a, b]\n")
    assert load_tenant(tmp_path).articles[0].id == "hours"

// The knowledge-base page (supervisors and admins): the tenant's articles (list, view, edit, delete,
// history and rollback), document uploads, a box to try the assistant (answer, sources, passage
// scores), the versions of the whole knowledge base, and the questions the assistant could not
// answer, each turned into an article in two clicks. It reads and writes GET/PUT/POST/DELETE
// /v1/kb/* (the gateway proxies the ai-responder's management API). Its own words and styles live
// here and in kb.css, so the rest of the dashboard needs only a hook.
import { html, useEffect, useRef, useState } from "/dashboard/vendor/preact-htm.module.js";
import { fill, formatDate } from "/dashboard/i18n.js";

const LANGS = ["it", "en"];
const LANG_NAMES = { it: "Italiano", en: "English" };

export const WORDS = {
  it: {
    title: "Base di conoscenza",
    version: "versione {v}",
    tabArticles: "Articoli",
    tabTest: "Prova l'assistente",
    tabGaps: "Domande senza risposta",
    tabVersions: "Versioni",
    loading: "Caricamento…",
    failed: "Non disponibile",
    search: "Cerca negli articoli",
    newArticle: "Nuovo articolo",
    noArticles: "Nessun articolo.",
    upload: "Carica un documento",
    uploadHint: "Markdown, testo, HTML o PDF (max 10 MiB): ogni sezione diventa un articolo.",
    uploadButton: "Carica",
    uploading: "Caricamento…",
    file: "File",
    language: "Lingua",
    languageAuto: "dal file o dal testo",
    uploaded: "{f}: {n} articoli (versione {v})",
    uploadRefused: "Documento rifiutato",
    pick: "Scegli un articolo dall'elenco.",
    source: "Origine",
    updatedIn: "Modificato nella versione {v}",
    tags: "Etichette",
    tagsHint: "separate da virgole",
    edit: "Modifica",
    remove: "Elimina",
    confirmRemove: "Conferma eliminazione",
    removed: "Articolo eliminato (versione {v})",
    history: "Cronologia",
    hideHistory: "Nascondi cronologia",
    show: "Vedi",
    restore: "Ripristina questa versione",
    restored: "Ripristinato come nella versione {v} (nuova versione {n})",
    viewingVersion: "Come nella versione {v}",
    backToLive: "Torna alla versione attuale",
    changes: { added: "aggiunto", edited: "modificato", removed: "eliminato" },
    by: "di {a}",
    articleId: "Identificativo",
    articleIdHint: "minuscole, cifre, - o _",
    titleField: "Titolo",
    bodyField: "Testo",
    note: "Nota della modifica",
    save: "Salva",
    saving: "Salvataggio…",
    cancel: "Annulla",
    saved: "Salvato (versione {v})",
    editorNew: "Nuovo articolo",
    editorEdit: "Modifica articolo",
    editorGap: "Nuovo articolo da una domanda senza risposta",
    needText: "Scrivi titolo e testo in almeno una lingua.",
    needId: "Serve un identificativo (minuscole, cifre, - o _).",
    question: "Domanda del cliente",
    questionLanguage: "Lingua della domanda",
    ask: "Chiedi",
    asking: "…",
    answer: "Risposta",
    confidence: "Sicurezza {c} (soglia {s})",
    mode: "modalità {m}",
    handoff: "Proporrebbe un operatore: {r}",
    sources: "Fonti",
    noSources: "Nessuna fonte: l'assistente non ha trovato la risposta.",
    passages: "Passaggi migliori",
    score: "Punteggio BM25",
    passageConfidence: "Sicurezza",
    article: "Articolo",
    passageText: "Testo",
    gapsHint: "Domande dei clienti degli ultimi {d} giorni a cui l'assistente non ha saputo rispondere o che ha passato a un operatore, raggruppate.",
    noGaps: "Nessuna domanda senza risposta.",
    asked: "{n}×",
    lastAsked: "ultima {d}",
    createArticle: "Crea articolo",
    created: "Articolo {id} creato (versione {v})",
    reasons: {
      unknown_answer: "risposta sconosciuta",
      low_confidence: "poco sicura",
      sensitive_topic: "argomento delicato",
      answer_not_helpful: "risposta non utile",
    },
    versionsHint: "Ogni modifica crea una versione della base di conoscenza; ripristinarne una ne crea una nuova.",
    live: "attuale",
    restoreAll: "Ripristina tutta la base",
    articles: "{n} articoli",
  },
  en: {
    title: "Knowledge base",
    version: "version {v}",
    tabArticles: "Articles",
    tabTest: "Test the assistant",
    tabGaps: "Unanswered questions",
    tabVersions: "Versions",
    loading: "Loading…",
    failed: "Unavailable",
    search: "Search the articles",
    newArticle: "New article",
    noArticles: "No articles.",
    upload: "Upload a document",
    uploadHint: "Markdown, text, HTML or PDF (10 MiB at most): each section becomes an article.",
    uploadButton: "Upload",
    uploading: "Uploading…",
    file: "File",
    language: "Language",
    languageAuto: "from the file or its text",
    uploaded: "{f}: {n} articles (version {v})",
    uploadRefused: "Document refused",
    pick: "Pick an article from the list.",
    source: "Source",
    updatedIn: "Changed in version {v}",
    tags: "Tags",
    tagsHint: "comma-separated",
    edit: "Edit",
    remove: "Delete",
    confirmRemove: "Confirm delete",
    removed: "Article deleted (version {v})",
    history: "History",
    hideHistory: "Hide history",
    show: "View",
    restore: "Restore this version",
    restored: "Restored as in version {v} (new version {n})",
    viewingVersion: "As in version {v}",
    backToLive: "Back to the live version",
    changes: { added: "added", edited: "edited", removed: "deleted" },
    by: "by {a}",
    articleId: "Id",
    articleIdHint: "lower-case letters, digits, - or _",
    titleField: "Title",
    bodyField: "Text",
    note: "Note on the change",
    save: "Save",
    saving: "Saving…",
    cancel: "Cancel",
    saved: "Saved (version {v})",
    editorNew: "New article",
    editorEdit: "Edit article",
    editorGap: "New article from an unanswered question",
    needText: "Write a title and a text in at least one language.",
    needId: "An id is needed (lower-case letters, digits, - or _).",
    question: "A customer's question",
    questionLanguage: "Language of the question",
    ask: "Ask",
    asking: "…",
    answer: "Answer",
    confidence: "Confidence {c} (threshold {s})",
    mode: "{m} mode",
    handoff: "Would offer an operator: {r}",
    sources: "Sources",
    noSources: "No source: the assistant did not find the answer.",
    passages: "Best passages",
    score: "BM25 score",
    passageConfidence: "Confidence",
    article: "Article",
    passageText: "Text",
    gapsHint: "Customers' questions of the last {d} days the assistant could not answer or handed to an operator, grouped.",
    noGaps: "No unanswered questions.",
    asked: "{n}×",
    lastAsked: "last {d}",
    createArticle: "Create article",
    created: "Article {id} created (version {v})",
    reasons: {
      unknown_answer: "unknown answer",
      low_confidence: "low confidence",
      sensitive_topic: "sensitive topic",
      answer_not_helpful: "answer not helpful",
    },
    versionsHint: "Every change makes a version of the knowledge base; restoring one makes a new one.",
    live: "live",
    restoreAll: "Restore the whole base",
    articles: "{n} articles",
  },
};

const GAP_DAYS = 30;
const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,119}$/;

function when(value, lang) {
  return formatDate(value, lang, { dateStyle: "short", timeStyle: "short" });
}

function titleOf(article, lang) {
  const title = article.title || {};
  return title[lang] || title[article.languages?.[0]] || Object.values(title)[0] || article.article_id;
}

function slugOf(text) {
  return text
    .toLowerCase()
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
}

let stylesAdded = false;
function addStyles() {
  if (stylesAdded) return;
  stylesAdded = true;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/dashboard/kb.css";
  document.head.appendChild(link);
}

// A multipart upload through the store's session: a 401 refreshes the token once, as its calls do.
async function upload(store, form, retried = false) {
  const session = store.state.session;
  const response = await fetch("/v1/kb/documents", {
    method: "POST",
    headers: { Authorization: "Bearer " + (session ? session.accessToken : "") },
    body: form,
  });
  if (response.status === 401 && !retried && (await store.refresh())) return upload(store, form, true);
  if (!response.ok) throw await store.failure(response);
  return response.json();
}

function failureText(w, error) {
  return (error && (error.message || error.code)) || w.failed;
}

// ------------------------------------------------------------------------------ the page

export function KnowledgeView({ lang, store }) {
  addStyles();
  const w = WORDS[lang] || WORDS.it;
  const [tab, setTab] = useState("articles");
  const [list, setList] = useState(null);
  const [listError, setListError] = useState("");
  const [selected, setSelected] = useState(null);
  const [editor, setEditor] = useState(null);
  const [gaps, setGaps] = useState(null);

  const loadList = async () => {
    try {
      setList(await store.call("GET", "/v1/kb/articles"));
      setListError("");
    } catch (error) {
      setListError(failureText(w, error));
    }
  };
  const loadGaps = async () => {
    try {
      setGaps(await store.call("GET", "/v1/kb/gaps?days=" + GAP_DAYS));
    } catch (error) {
      setGaps({ groups: [], error: failureText(w, error) });
    }
  };
  useEffect(() => {
    loadList();
    loadGaps();
  }, []);

  const open = (articleId) => {
    setEditor(null);
    setSelected(articleId);
    setTab("articles");
  };
  // After a change: the list and the gaps again (versions moved, a gap may be answered), and the
  // article that changed.
  const changed = async (articleId) => {
    await Promise.all([loadList(), loadGaps()]);
    if (articleId !== undefined) setSelected(articleId);
  };
  const tabs = [
    ["articles", w.tabArticles, list ? list.articles.length : null],
    ["test", w.tabTest, null],
    ["gaps", w.tabGaps, gaps && !gaps.error ? gaps.groups.length : null],
    ["versions", w.tabVersions, null],
  ];
  const onTabKey = (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const i = tabs.findIndex(([name]) => name === tab);
    const next = tabs[(i + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length][0];
    event.preventDefault();
    setTab(next);
    const button = document.querySelector(`[data-testid="kb-tab-${next}"]`);
    if (button) button.focus();
  };
  return html`
    <section class="kb" aria-labelledby="kb-title" data-testid="kb-page">
      <header class="kb-head">
        <h2 id="kb-title">${w.title}</h2>
        ${list && html`<span class="muted" data-testid="kb-version">${fill(w.version, { v: list.version })}</span>`}
        <div class="kb-tabs" role="tablist" aria-label=${w.title} onKeyDown=${onTabKey}>
          ${tabs.map(
            ([name, label, count]) => html`
              <button type="button" role="tab" id=${"kb-tab-" + name} aria-selected=${tab === name} tabindex=${tab === name ? 0 : -1}
                class=${"tab" + (tab === name ? " on" : "")} onClick=${() => setTab(name)} data-testid=${"kb-tab-" + name}>
                ${label}${count !== null && count !== undefined ? html` <span class="count">${count}</span>` : ""}
              </button>`,
          )}
        </div>
      </header>
      <div class="kb-body" role="tabpanel" aria-labelledby=${"kb-tab-" + tab}>
        ${tab === "articles" &&
        html`<${Articles} w=${w} lang=${lang} store=${store} list=${list} listError=${listError} selected=${selected}
          editor=${editor} setEditor=${setEditor} open=${open} changed=${changed} />`}
        ${tab === "test" && html`<${TestBox} w=${w} lang=${lang} store=${store} open=${open} />`}
        ${tab === "gaps" &&
        html`<${Gaps} w=${w} lang=${lang} gaps=${gaps}
          onCreate=${(gap) => {
            const language = gap.languages[0] || lang;
            setSelected(null);
            setEditor({ mode: "gap", gap, title: { [language]: gap.question }, body: {}, tags: "", note: "" });
            setTab("articles");
          }} />`}
        ${tab === "versions" && html`<${Versions} w=${w} lang=${lang} store=${store} changed=${changed} />`}
      </div>
    </section>
  `;
}

// ------------------------------------------------------------------------------ articles

function Articles({ w, lang, store, list, listError, selected, editor, setEditor, open, changed }) {
  const [filter, setFilter] = useState("");
  const needle = filter.trim().toLowerCase();
  const articles = (list ? list.articles : []).filter(
    (a) => !needle || (a.article_id + " " + Object.values(a.title).join(" ") + " " + a.tags.join(" ")).toLowerCase().includes(needle),
  );
  // ↑/↓ along the list: the focus moves and the article opens.
  const onListKey = (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    const i = articles.findIndex((a) => a.article_id === selected);
    const next = articles[Math.max(0, Math.min(articles.length - 1, i + (event.key === "ArrowDown" ? 1 : -1)))];
    if (!next) return;
    open(next.article_id);
    const button = document.querySelector(`[data-article="${next.article_id}"]`);
    if (button) button.focus();
  };
  return html`
    <div class="kb-articles">
      <aside class="kb-side">
        <${Upload} w=${w} store=${store} changed=${changed} open=${open} />
        <div class="row kb-search">
          <input type="search" placeholder=${w.search} aria-label=${w.search} value=${filter}
            onInput=${(e) => setFilter(e.target.value)} onKeyDown=${(e) => e.key === "Escape" && setFilter("")}
            data-testid="kb-search" />
          <button type="button" class="secondary" data-testid="kb-new"
            onClick=${() => setEditor({ mode: "new", id: "", title: {}, body: {}, tags: "", note: "" })}>${w.newArticle}</button>
        </div>
        ${listError && html`<p class="form-error" role="alert">${listError}</p>`}
        ${!list && !listError && html`<p class="muted">${w.loading}</p>`}
        ${list && !articles.length && html`<p class="muted">${w.noArticles}</p>`}
        <ul class="kb-list" onKeyDown=${onListKey} data-testid="kb-list">
          ${articles.map(
            (a) => html`
              <li key=${a.article_id}>
                <button type="button" class=${"kb-item" + (selected === a.article_id && !editor ? " on" : "")}
                  aria-current=${selected === a.article_id && !editor ? "true" : null}
                  data-article=${a.article_id} data-testid="kb-article" onClick=${() => open(a.article_id)}>
                  <span class="kb-item-title">${titleOf(a, lang)}</span>
                  <span class="kb-item-sub muted">
                    <span class="kb-id">${a.article_id}</span> · ${a.languages.join(" ")} · v${a.updated_in_version}
                  </span>
                </button>
              </li>`,
          )}
        </ul>
      </aside>
      <div class="kb-main">
        ${editor
          ? html`<${Editor} key=${editor.mode + (editor.id || "") + (editor.gap ? editor.gap.gap_id : "")} w=${w} store=${store}
              editor=${editor} close=${() => setEditor(null)} changed=${changed} />`
          : selected
            ? html`<${ArticleView} key=${selected} w=${w} lang=${lang} store=${store} articleId=${selected}
                list=${list} setEditor=${setEditor} changed=${changed} />`
            : html`<p class="muted kb-pick">${w.pick}</p>`}
      </div>
    </div>
  `;
}

function Upload({ w, store, changed, open }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [done, setDone] = useState(null);
  const fileRef = useRef(null);
  const languageRef = useRef(null);
  const submit = async (event) => {
    event.preventDefault();
    const file = fileRef.current && fileRef.current.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    if (languageRef.current.value) form.append("language", languageRef.current.value);
    setBusy(true);
    setError("");
    setDone(null);
    try {
      const result = await upload(store, form);
      setDone(result);
      fileRef.current.value = "";
      await changed();
      if (result.articles.length) open(result.articles[0]);
    } catch (failure) {
      setError(failureText(w, failure));
    } finally {
      setBusy(false);
    }
  };
  return html`
    <form class="kb-upload card" onSubmit=${submit} data-testid="kb-upload">
      <h3>${w.upload}</h3>
      <p class="muted small">${w.uploadHint}</p>
      <label class="field"><span>${w.file}</span>
        <input type="file" ref=${fileRef} accept=".md,.markdown,.txt,.html,.htm,.pdf" required data-testid="kb-file" /></label>
      <div class="row">
        <label class="field kb-grow"><span>${w.language}</span>
          <select ref=${languageRef} data-testid="kb-upload-language">
            <option value="">${w.languageAuto}</option>
            ${LANGS.map((code) => html`<option value=${code}>${LANG_NAMES[code]}</option>`)}
          </select></label>
        <button type="submit" class="primary kb-upload-button" disabled=${busy} data-testid="kb-upload-submit">
          ${busy ? w.uploading : w.uploadButton}</button>
      </div>
      ${error && html`<p class="form-error" role="alert" data-testid="kb-upload-error"><strong>${w.uploadRefused}:</strong> ${error}</p>`}
      ${done &&
      html`<p class="kb-ok" role="status" data-testid="kb-upload-done">
        ${fill(w.uploaded, { f: done.filename, n: done.articles.length, v: done.version })}</p>`}
    </form>
  `;
}

function ArticleView({ w, lang, store, articleId, list, setEditor, changed }) {
  const [article, setArticle] = useState(null);
  const [error, setError] = useState("");
  const [history, setHistory] = useState(null);
  const [showHistory, setShowHistory] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [asOf, setAsOf] = useState(null);
  const live = list ? list.version : null;

  const read = async (version) => {
    try {
      const query = version ? "?version=" + version : "";
      setArticle(await store.call("GET", "/v1/kb/articles/" + encodeURIComponent(articleId) + query));
      setAsOf(version || null);
      setError("");
    } catch (failure) {
      setError(failureText(w, failure));
    }
  };
  const readHistory = async () => {
    try {
      setHistory(await store.call("GET", "/v1/kb/articles/" + encodeURIComponent(articleId) + "/history"));
    } catch (failure) {
      setHistory({ revisions: [], error: failureText(w, failure) });
    }
  };
  useEffect(() => {
    read();
    if (showHistory) readHistory();
  }, [articleId, live]);

  const remove = async () => {
    try {
      const change = await store.call("DELETE", "/v1/kb/articles/" + encodeURIComponent(articleId));
      store.toast("info", fill(w.removed, { v: change.version }));
      await changed(null);
    } catch (failure) {
      store.toast("error", failureText(w, failure));
      setConfirming(false);
    }
  };
  const restore = async (version) => {
    try {
      const change = await store.call("POST", "/v1/kb/rollback", { version, article_id: articleId });
      store.toast("info", fill(w.restored, { v: version, n: change.version }));
      await changed(articleId);
      await readHistory();
    } catch (failure) {
      store.toast("error", failureText(w, failure));
    }
  };
  const toggleHistory = () => {
    if (!showHistory) readHistory();
    setShowHistory(!showHistory);
  };

  if (error) return html`<p class="form-error" role="alert">${error}</p>`;
  if (!article) return html`<p class="muted">${w.loading}</p>`;
  return html`
    <article class="kb-article card" data-testid="kb-article-view" aria-labelledby="kb-article-title">
      <header class="kb-article-head">
        <div>
          <h3 id="kb-article-title" data-testid="kb-article-title">${titleOf(article, lang)}</h3>
          <p class="muted small">
            <span class="kb-id">${article.article_id}</span>${" · "}
            ${[
              w.source + ": " + (article.source || "—"),
              fill(w.updatedIn, { v: article.updated_in_version }),
              ...(article.tags.length ? [w.tags + ": " + article.tags.join(", ")] : []),
            ].join(" · ")}
          </p>
        </div>
        ${asOf
          ? html`<div class="kb-actions">
              <span class="badge">${fill(w.viewingVersion, { v: asOf })}</span>
              <button type="button" class="primary" onClick=${() => restore(asOf)} data-testid="kb-restore-shown">${w.restore}</button>
              <button type="button" class="secondary" onClick=${() => read()}>${w.backToLive}</button>
            </div>`
          : html`<div class="kb-actions">
              <button type="button" class="secondary" data-testid="kb-edit"
                onClick=${() =>
                  setEditor({
                    mode: "edit",
                    id: article.article_id,
                    title: { ...article.title },
                    body: { ...article.body },
                    tags: article.tags.join(", "),
                    note: "",
                  })}>${w.edit}</button>
              <button type="button" class="secondary" aria-expanded=${showHistory} onClick=${toggleHistory} data-testid="kb-history">
                ${showHistory ? w.hideHistory : w.history}</button>
              ${confirming
                ? html`<button type="button" class="danger" onClick=${remove} data-testid="kb-confirm-delete">${w.confirmRemove}</button>
                    <button type="button" class="ghost" onClick=${() => setConfirming(false)}>${w.cancel}</button>`
                : html`<button type="button" class="ghost" onClick=${() => setConfirming(true)} data-testid="kb-delete">${w.remove}</button>`}
            </div>`}
      </header>
      ${article.languages.map(
        (code) => html`
          <section class="kb-lang" lang=${code} data-testid=${"kb-body-" + code}>
            <h4><span class="kb-lang-code">${code.toUpperCase()}</span> ${article.title[code]}</h4>
            <div class="kb-text">${article.body[code]}</div>
          </section>`,
      )}
      ${showHistory &&
      html`<section class="kb-history" aria-label=${w.history} data-testid="kb-history-list">
        <h4>${w.history}</h4>
        ${history && history.error && html`<p class="form-error" role="alert">${history.error}</p>`}
        ${!history && html`<p class="muted">${w.loading}</p>`}
        <ol>
          ${(history ? history.revisions : []).map(
            (r, i) => html`
              <li data-testid="kb-revision">
                <span class="kb-rev-version">v${r.version}</span>
                <span class=${"kb-change " + r.change}>${w.changes[r.change] || r.change}</span>
                <span class="muted">${when(r.created_at, lang)}${r.author ? " · " + fill(w.by, { a: r.author }) : ""}</span>
                ${r.note && html`<span class="kb-note">${r.note}</span>`}
                <span class="kb-rev-actions">
                  ${r.article && html`<button type="button" class="ghost" onClick=${() => read(r.version)}
                    data-testid="kb-revision-show">${w.show}</button>`}
                  ${i > 0 &&
                  html`<button type="button" class="secondary" onClick=${() => restore(r.version)}
                    data-testid="kb-revision-restore">${w.restore}</button>`}
                </span>
              </li>`,
          )}
        </ol>
      </section>`}
    </article>
  `;
}

function Editor({ w, store, editor, close, changed }) {
  const [draft, setDraft] = useState(editor);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const first = useRef(null);
  useEffect(() => {
    if (first.current) first.current.focus();
  }, []);
  const languages = [...new Set([...LANGS, ...Object.keys(draft.title), ...Object.keys(draft.body)])];
  const set = (part, code, value) => setDraft({ ...draft, [part]: { ...draft[part], [code]: value } });

  const save = async () => {
    const title = {};
    const body = {};
    for (const code of languages) {
      const t = (draft.title[code] || "").trim();
      const b = (draft.body[code] || "").trim();
      if (t || b) {
        title[code] = t;
        body[code] = b;
      }
    }
    if (!Object.keys(body).length) return setError(w.needText);
    const tags = draft.tags.split(",").map((tag) => tag.trim()).filter(Boolean);
    setBusy(true);
    setError("");
    try {
      let change;
      if (draft.mode === "gap") {
        const path = "/v1/kb/gaps/" + encodeURIComponent(draft.gap.gap_id) + "/article";
        change = await store.call("POST", path, { title, body, tags });
        store.toast("info", fill(w.created, { id: change.changed[0], v: change.version }));
      } else {
        const id = draft.mode === "new" ? draft.id.trim() || slugOf(Object.values(title)[0] || "") : draft.id;
        if (!ID_PATTERN.test(id)) {
          setBusy(false);
          return setError(w.needId);
        }
        change = await store.call("PUT", "/v1/kb/articles/" + encodeURIComponent(id), { title, body, tags, note: draft.note });
        store.toast("info", fill(w.saved, { v: change.version }));
      }
      close();
      await changed(change.changed[0]);
    } catch (failure) {
      setError(failureText(w, failure));
      setBusy(false);
    }
  };
  const onKey = (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!busy) save();
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  };
  const heading = draft.mode === "gap" ? w.editorGap : draft.mode === "new" ? w.editorNew : w.editorEdit;
  return html`
    <form class="kb-editor card" onKeyDown=${onKey} onSubmit=${(e) => (e.preventDefault(), save())} data-testid="kb-editor"
      aria-labelledby="kb-editor-title">
      <h3 id="kb-editor-title">${heading}${draft.mode === "edit" ? html` <span class="kb-id">${draft.id}</span>` : ""}</h3>
      ${draft.mode === "gap" &&
      html`<p class="muted small">${draft.gap.examples.map((e) => html`<span class="kb-example">“${e}”</span> `)}</p>`}
      ${draft.mode === "new" &&
      html`<label class="field"><span>${w.articleId} <span class="muted small">(${w.articleIdHint})</span></span>
        <input ref=${first} value=${draft.id} onInput=${(e) => setDraft({ ...draft, id: e.target.value })} pattern="[a-z0-9][a-z0-9_\\-]{0,119}"
          data-testid="kb-editor-id" /></label>`}
      ${languages.map(
        (code, i) => html`
          <fieldset class="kb-lang-edit" lang=${code}>
            <legend>${LANG_NAMES[code] || code}</legend>
            <label class="field"><span>${w.titleField}</span>
              <input ref=${i === 0 && draft.mode === "edit" ? first : null} value=${draft.title[code] || ""}
                onInput=${(e) => set("title", code, e.target.value)} data-testid=${"kb-editor-title-" + code} /></label>
            <label class="field"><span>${w.bodyField}</span>
              <textarea ref=${draft.mode === "gap" && draft.title[code] ? first : null} rows="6" value=${draft.body[code] || ""} onInput=${(e) => set("body", code, e.target.value)}
                data-testid=${"kb-editor-body-" + code}></textarea></label>
          </fieldset>`,
      )}
      <label class="field"><span>${w.tags} <span class="muted small">(${w.tagsHint})</span></span>
        <input value=${draft.tags} onInput=${(e) => setDraft({ ...draft, tags: e.target.value })} data-testid="kb-editor-tags" /></label>
      ${draft.mode !== "gap" &&
      html`<label class="field"><span>${w.note}</span>
        <input value=${draft.note} maxlength="500" onInput=${(e) => setDraft({ ...draft, note: e.target.value })}
          data-testid="kb-editor-note" /></label>`}
      ${error && html`<p class="form-error" role="alert" data-testid="kb-editor-error">${error}</p>`}
      <div class="row kb-editor-bar">
        <button type="submit" class="primary" disabled=${busy} data-testid="kb-editor-save">
          ${busy ? w.saving : w.save} <kbd>Ctrl+Enter</kbd></button>
        <button type="button" class="ghost" onClick=${close}>${w.cancel} <kbd>Esc</kbd></button>
      </div>
    </form>
  `;
}

// ------------------------------------------------------------------------------ testing the assistant

function TestBox({ w, lang, store, open }) {
  const [question, setQuestion] = useState("");
  const [language, setLanguage] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [error, setError] = useState("");
  const box = useRef(null);
  useEffect(() => {
    if (box.current) box.current.focus();
  }, []);
  const ask = async (event) => {
    if (event) event.preventDefault();
    if (!question.trim() || busy) return;
    setBusy(true);
    setError("");
    try {
      const body = { question: question.trim() };
      if (language) body.language = language;
      setResult(await store.call("POST", "/v1/kb/test", body));
    } catch (failure) {
      setError(failureText(w, failure));
    } finally {
      setBusy(false);
    }
  };
  const pct = (value) => Math.round(value * 100) + "%";
  return html`
    <div class="kb-test">
      <form class="card" onSubmit=${ask} data-testid="kb-test">
        <label class="field"><span>${w.question}</span>
          <textarea ref=${box} rows="2" value=${question} onInput=${(e) => setQuestion(e.target.value)}
            onKeyDown=${(e) => e.key === "Enter" && !e.shiftKey && ask(e)} data-testid="kb-test-question"></textarea></label>
        <div class="row">
          <label class="field kb-grow"><span>${w.questionLanguage}</span>
            <select value=${language} onChange=${(e) => setLanguage(e.target.value)} data-testid="kb-test-language">
              <option value="">${w.languageAuto}</option>
              ${LANGS.map((code) => html`<option value=${code}>${LANG_NAMES[code]}</option>`)}
            </select></label>
          <button type="submit" class="primary kb-upload-button" disabled=${busy || !question.trim()} data-testid="kb-test-ask">
            ${busy ? w.asking : w.ask} <kbd>Enter</kbd></button>
        </div>
        ${error && html`<p class="form-error" role="alert">${error}</p>`}
      </form>
      ${result &&
      html`<section class="card kb-result" aria-live="polite" data-testid="kb-test-result">
        <h3>${w.answer}</h3>
        <div class="kb-text kb-answer" lang=${result.language} data-testid="kb-test-answer">${result.text}</div>
        <p class="small">
          <span class=${"kb-confidence " + (result.confidence >= result.answer_threshold ? "ok" : "low")}>
            ${fill(w.confidence, { c: pct(result.confidence), s: pct(result.answer_threshold) })}</span>
          <span class="muted"> · ${result.language.toUpperCase()} · ${fill(w.mode, { m: result.mode })} · v${result.version}</span>
        </p>
        ${result.handoff_reason &&
        html`<p class="small kb-handoff">${fill(w.handoff, { r: w.reasons[result.handoff_reason] || result.handoff_reason })}</p>`}
        <h4>${w.sources}</h4>
        ${result.sources.length
          ? html`<ul class="kb-sources" data-testid="kb-test-sources">
              ${result.sources.map(
                (s) => html`<li><button type="button" class="link" onClick=${() => open(s.article_id)}>${s.title}</button>
                  <span class="muted small"> ${s.article_id} · ${pct(s.score)}</span></li>`,
              )}
            </ul>`
          : html`<p class="muted" data-testid="kb-test-no-sources">${w.noSources}</p>`}
        ${result.passages.length > 0 &&
        html`<h4>${w.passages}</h4>
          <table class="kb-passages" data-testid="kb-test-passages">
            <thead><tr><th>${w.article}</th><th>${w.score}</th><th>${w.passageConfidence}</th><th>${w.passageText}</th></tr></thead>
            <tbody>
              ${result.passages.map(
                (p) => html`<tr>
                  <td><button type="button" class="link" onClick=${() => open(p.article_id)}>${p.title}</button>
                    <div class="muted small">${p.article_id} · ${p.language.toUpperCase()}${p.passage ? " · #" + (p.passage + 1) : ""}</div></td>
                  <td class="num">${p.score.toFixed(2)}</td>
                  <td class="num"><span class="kb-bar" style=${"--v:" + p.confidence}></span> ${pct(p.confidence)}</td>
                  <td class="kb-passage-text">${p.text.length > 240 ? p.text.slice(0, 240) + "…" : p.text}</td>
                </tr>`,
              )}
            </tbody>
          </table>`}
      </section>`}
    </div>
  `;
}

// ------------------------------------------------------------------------------ gaps and versions

function Gaps({ w, lang, gaps, onCreate }) {
  if (!gaps) return html`<p class="muted">${w.loading}</p>`;
  return html`
    <section class="kb-gaps" aria-label=${w.tabGaps}>
      <p class="muted">${fill(w.gapsHint, { d: GAP_DAYS })}</p>
      ${gaps.error && html`<p class="form-error" role="alert">${gaps.error}</p>`}
      ${!gaps.error && !gaps.groups.length && html`<p class="muted" data-testid="kb-no-gaps">${w.noGaps}</p>`}
      <ul class="kb-gap-list">
        ${gaps.groups.map(
          (g) => html`
            <li class="card kb-gap" data-testid="kb-gap">
              <div class="kb-gap-main">
                <div class="kb-gap-question"><span class="count" title=${fill(w.asked, { n: g.count })}>${fill(w.asked, { n: g.count })}</span>
                  <strong lang=${g.languages[0] || null}>${g.question}</strong></div>
                ${g.examples.length > 1 &&
                html`<ul class="kb-examples">${g.examples.slice(1).map((e) => html`<li>“${e}”</li>`)}</ul>`}
                <p class="muted small">
                  ${[
                    g.languages.map((l) => l.toUpperCase()).join(" "),
                    g.reasons.map((r) => w.reasons[r] || r).join(", "),
                    fill(w.lastAsked, { d: when(g.last_asked, lang) }),
                  ].join(" · ")}
                </p>
              </div>
              <button type="button" class="primary" onClick=${() => onCreate(g)} data-testid="kb-gap-create">${w.createArticle}</button>
            </li>`,
        )}
      </ul>
    </section>
  `;
}

function Versions({ w, lang, store, changed }) {
  const [versions, setVersions] = useState(null);
  const [error, setError] = useState("");
  const read = async () => {
    try {
      setVersions((await store.call("GET", "/v1/kb/versions")).versions);
    } catch (failure) {
      setError(failureText(w, failure));
    }
  };
  useEffect(() => {
    read();
  }, []);
  const restore = async (version) => {
    try {
      const change = await store.call("POST", "/v1/kb/rollback", { version });
      store.toast("info", fill(w.restored, { v: version, n: change.version }));
      await changed();
      await read();
    } catch (failure) {
      store.toast("error", failureText(w, failure));
    }
  };
  if (error) return html`<p class="form-error" role="alert">${error}</p>`;
  if (!versions) return html`<p class="muted">${w.loading}</p>`;
  return html`
    <section class="kb-versions" aria-label=${w.tabVersions}>
      <p class="muted">${w.versionsHint}</p>
      <ol class="card">
        ${versions.map(
          (v) => html`
            <li data-testid="kb-version-row">
              <span class="kb-rev-version">v${v.version}</span>
              ${v.live && html`<span class="badge kb-live">${w.live}</span>`}
              <span class="kb-note">${v.note}</span>
              <span class="muted">${when(v.created_at, lang)}${v.author ? " · " + fill(w.by, { a: v.author }) : ""} ·
                ${fill(w.articles, { n: v.articles })}</span>
              <span class="kb-rev-actions">
                ${!v.live && html`<button type="button" class="secondary" onClick=${() => restore(v.version)}>${w.restoreAll}</button>`}
              </span>
            </li>`,
        )}
      </ol>
    </section>
  `;
}

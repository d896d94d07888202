// The settings area: the tenant's profile, the widget (with a live preview drawn here from the
// form's values), the assistant, the team and its invitations, the canned responses and, for
// admins, the audit log. Admins change them; supervisors see every page read-only (the forms'
// fieldsets disabled, no save buttons). It reads and writes /v1/settings/*, /v1/team/*,
// /v1/canned-responses, /v1/admin/*. A refused save (422) says why next to its form and keeps
// what was typed. Its styles live in settings.css; its words in i18n.js (`settings`).
import { html, useEffect, useRef, useState } from "/dashboard/vendor/preact-htm.module.js";
import { fill, formatDate, words } from "/dashboard/i18n.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
// The languages a tenant may offer (settings_api.SUPPORTED_LANGUAGES).
const KNOWN_LANGUAGES = ["it", "en", "de", "fr", "es", "pt", "nl", "ca", "sl", "hr", "ro", "pl"];
const GRACES = [0, 3600, 86400, 604800, 2592000];
const ROLES = ["operator", "supervisor", "admin"];
const TEXT_FIELDS = [
  ["launcher_label", "launcherLabel"],
  ["greeting", "greeting"],
  ["operator_button", "operatorButton"],
  ["continue_button", "continueButton"],
];
const AUDIT_PAGE = 25;

let stylesAdded = false;
function addStyles() {
  if (stylesAdded) return;
  stylesAdded = true;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/dashboard/settings.css";
  document.head.appendChild(link);
}

function when(value, lang) {
  return formatDate(value, lang, { dateStyle: "medium", timeStyle: "short" });
}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

function linesOf(text) {
  return text
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

function listOf(text) {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function errorText(t, error) {
  if (!error) return "";
  if (error.status === 422) return t.invalid + ": " + (error.message || error.code);
  if (error.status >= 500 || !error.status) return t.unavailable + (error.message ? ": " + error.message : "");
  return error.message || error.code || t.unavailable;
}

// One GET, read again on demand.
function useResource(store, path) {
  const [state, setState] = useState({ data: null, error: null });
  const load = async () => {
    try {
      setState({ data: await store.call("GET", path), error: null });
    } catch (error) {
      setState({ data: null, error });
    }
  };
  useEffect(() => {
    load();
  }, [path]);
  return [state.data, state.error, load];
}

// A save's progress: busy, then the server's refusal or "saved". The form's own state is never
// touched on a failure, so nothing typed is lost.
function useSave() {
  const [status, setStatus] = useState({ busy: false, error: null, done: "" });
  const run = async (action, done = "") => {
    setStatus({ busy: true, error: null, done: "" });
    try {
      const result = await action();
      setStatus({ busy: false, error: null, done });
      return result;
    } catch (error) {
      setStatus({ busy: false, error, done: "" });
      return undefined;
    }
  };
  return [status, run];
}

function Status({ t, status, testid = "settings" }) {
  if (status.error)
    return html`<p class="form-error" role="alert" data-testid=${testid + "-error"}>${errorText(t, status.error)}</p>`;
  if (status.done) return html`<p class="settings-ok" role="status" data-testid=${testid + "-saved"}>${status.done}</p>`;
  return null;
}

function Loading({ t, error }) {
  if (error) return html`<p class="form-error" role="alert" data-testid="settings-load-error">${errorText(t, error)}</p>`;
  return html`<p class="muted" data-testid="settings-loading">${t.loading}</p>`;
}

// Ctrl+Enter saves from any field of a form.
function ctrlEnter(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    event.currentTarget.requestSubmit();
  }
}

function SaveBar({ t, status, readOnly }) {
  if (readOnly) return null;
  return html`
    <div class="settings-bar">
      <button type="submit" class="primary" disabled=${status.busy} data-testid="settings-save">
        ${status.busy ? t.saving : t.save} <kbd>Ctrl+↵</kbd>
      </button>
      <${Status} t=${t} status=${status} />
    </div>
  `;
}

function languageName(t, code) {
  return t.languageNames[code] || code.toUpperCase();
}

// ------------------------------------------------------------------------------ the page

const PAGES = { profile: ProfilePage, widget: WidgetPage, assistant: AssistantPage, team: TeamPage, canned: CannedPage, audit: AuditPage };

export function SettingsView({ lang, store }) {
  addStyles();
  const t = words(lang).settings;
  const me = store.state.me;
  const readOnly = me.role !== "admin";
  const pages = Object.keys(PAGES).filter((name) => name !== "audit" || me.role === "admin");
  const [page, setPage] = useState("profile");
  const onNavKey = (event) => {
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    const next = pages[(pages.indexOf(page) + step + pages.length) % pages.length];
    setPage(next);
    const button = document.querySelector(`[data-testid="settings-tab-${next}"]`);
    if (button) button.focus();
  };
  const Page = PAGES[page];
  return html`
    <section class="settings" aria-labelledby="settings-title" data-testid="settings-page">
      <nav class="settings-nav" aria-label=${t.title}>
        <h2 id="settings-title">${t.title}</h2>
        <div role="tablist" aria-orientation="vertical" onKeyDown=${onNavKey}>
          ${pages.map(
            (name) => html`
              <button type="button" role="tab" aria-selected=${name === page} tabindex=${name === page ? 0 : -1}
                class=${"settings-tab" + (name === page ? " on" : "")} onClick=${() => setPage(name)}
                data-testid=${"settings-tab-" + name}>${t.pages[name]}</button>
            `,
          )}
        </div>
      </nav>
      <div class="settings-body" role="tabpanel" aria-label=${t.pages[page]} data-testid=${"settings-" + page}>
        <h3 class="settings-page-title">${t.pages[page]}</h3>
        ${readOnly && html`<p class="settings-readonly" data-testid="settings-readonly">${t.readOnly}</p>`}
        <${Page} key=${page} t=${t} lang=${lang} store=${store} readOnly=${readOnly} />
      </div>
    </section>
  `;
}

// ------------------------------------------------------------------------------ profile

function LanguageChoice({ t, value, onChange, testid }) {
  const shown = [...KNOWN_LANGUAGES, ...value.filter((code) => !KNOWN_LANGUAGES.includes(code))];
  const toggle = (code, on) => onChange(on ? [...value.filter((c) => c !== code), code] : value.filter((c) => c !== code));
  return html`
    <div class="settings-checks" data-testid=${testid}>
      ${shown.map(
        (code) => html`
          <label class="check">
            <input type="checkbox" checked=${value.includes(code)} onChange=${(e) => toggle(code, e.target.checked)}
              data-testid=${testid + "-" + code} />
            ${languageName(t, code)}
          </label>
        `,
      )}
    </div>
  `;
}

function timeZones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["Europe/Rome", "Europe/London", "UTC"];
  }
}

function ProfilePage({ t, store, readOnly }) {
  const [data, loadError] = useResource(store, "/v1/settings/profile");
  const [form, setForm] = useState(null);
  const [status, run] = useSave();
  useEffect(() => {
    if (data) setForm(clone(data));
  }, [data]);
  if (!form) return html`<${Loading} t=${t} error=${loadError} />`;
  const set = (name, value) => setForm({ ...form, [name]: value });
  const hours = form.business_hours || [];
  const setWindow = (i, change) => set("business_hours", hours.map((w, j) => (j === i ? { ...w, ...change } : w)));
  const save = (event) => {
    event.preventDefault();
    const body = {
      name: form.name,
      languages: form.languages,
      default_language: form.default_language,
      time_zone: form.time_zone,
      business_hours: hours.map((w) => ({ days: w.days, start: w.start, end: w.end })),
    };
    run(async () => {
      const saved = await store.call("PUT", "/v1/settings/profile", body);
      if (saved && saved.name !== undefined) setForm(clone(saved));
    }, t.saved);
  };
  return html`
    <form class="settings-form" onSubmit=${save} onKeyDown=${ctrlEnter} data-testid="profile-form">
      <fieldset class="plain" disabled=${readOnly}>
        <div class="field">
          <label for="profile-name">${t.name}</label>
          <input id="profile-name" value=${form.name} onInput=${(e) => set("name", e.target.value)} data-testid="profile-name" />
        </div>
        <div class="field">
          <span class="label">${t.languages}</span>
          <${LanguageChoice} t=${t} value=${form.languages || []} onChange=${(v) => set("languages", v)} testid="profile-languages" />
        </div>
        <div class="settings-grid2">
          <div class="field">
            <label for="profile-default-language">${t.defaultLanguage}</label>
            <select id="profile-default-language" value=${form.default_language}
              onChange=${(e) => set("default_language", e.target.value)} data-testid="profile-default-language">
              ${[...new Set([...(form.languages || []), form.default_language])].filter(Boolean).map(
                (code) => html`<option value=${code}>${languageName(t, code)}</option>`,
              )}
            </select>
          </div>
          <div class="field">
            <label for="profile-time-zone">${t.timeZone}</label>
            <input id="profile-time-zone" list="settings-time-zones" value=${form.time_zone}
              onInput=${(e) => set("time_zone", e.target.value)} data-testid="profile-time-zone" />
            <datalist id="settings-time-zones">${timeZones().map((zone) => html`<option value=${zone} />`)}</datalist>
          </div>
        </div>
        <div class="field">
          <span class="label">${t.businessHours} <span class="muted small">${t.businessHoursHint}</span></span>
          ${hours.length === 0 && html`<p class="muted small">${t.noWindows}</p>`}
          <ul class="settings-windows" data-testid="profile-hours">
            ${hours.map(
              (w, i) => html`
                <li class="settings-window" data-testid="profile-window">
                  <div class="settings-days" role="group" aria-label=${t.businessHours + " " + (i + 1)}>
                    ${DAYS.map(
                      (day) => html`
                        <label class=${"day" + ((w.days || []).includes(day) ? " on" : "")}>
                          <input type="checkbox" checked=${(w.days || []).includes(day)}
                            onChange=${(e) => setWindow(i, {
                              days: e.target.checked ? DAYS.filter((d) => d === day || (w.days || []).includes(d)) : (w.days || []).filter((d) => d !== day),
                            })} />${t.days[day]}
                        </label>
                      `,
                    )}
                  </div>
                  <label class="settings-time">${t.from}
                    <input type="time" value=${w.start} onInput=${(e) => setWindow(i, { start: e.target.value })} /></label>
                  <label class="settings-time">${t.to}
                    <input type="time" value=${w.end} onInput=${(e) => setWindow(i, { end: e.target.value })} /></label>
                  ${!readOnly && html`<button type="button" class="ghost" aria-label=${t.removeWindow} title=${t.removeWindow}
                    onClick=${() => set("business_hours", hours.filter((_, j) => j !== i))}>✕</button>`}
                </li>
              `,
            )}
          </ul>
          ${!readOnly && html`<button type="button" class="secondary settings-add" data-testid="profile-add-window"
            onClick=${() => set("business_hours", [...hours, { days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "18:00" }])}>
            + ${t.addWindow}</button>`}
        </div>
      </fieldset>
      <${SaveBar} t=${t} status=${status} readOnly=${readOnly} />
    </form>
  `;
}

// ------------------------------------------------------------------------------ widget

// The form's shape from the API's: texts for every language of the tenant, origins as lines.
function widgetForm(data, languages) {
  const appearance = data.appearance || {};
  const texts = {};
  for (const code of [...new Set([...languages, ...Object.keys(appearance.texts || {})])]) {
    const given = (appearance.texts || {})[code] || {};
    texts[code] = Object.fromEntries(TEXT_FIELDS.map(([field]) => [field, given[field] || ""]));
  }
  return {
    origins: (data.allowed_origins || []).join("\n"),
    primary_color: appearance.primary_color || "#0e3b2c",
    accent_color: appearance.accent_color || "#a3162a",
    position: appearance.position || "bottom-right",
    texts,
  };
}

function WidgetPage({ t, lang, store, readOnly }) {
  const [data, loadError, reload] = useResource(store, "/v1/settings/widget");
  const [profile] = useResource(store, "/v1/settings/profile");
  const [form, setForm] = useState(null);
  const [textLang, setTextLang] = useState(null);
  const [status, run] = useSave();
  const languages = profile ? profile.languages || [] : [];
  useEffect(() => {
    if (data && profile && !form) {
      setForm(widgetForm(data, languages));
      setTextLang(profile.default_language || languages[0] || Object.keys((data.appearance || {}).texts || {})[0] || "it");
    }
  }, [data, profile]);
  if (!form) return html`<${Loading} t=${t} error=${loadError} />`;
  const set = (name, value) => setForm({ ...form, [name]: value });
  const setText = (field, value) => set("texts", { ...form.texts, [textLang]: { ...form.texts[textLang], [field]: value } });
  const save = (event) => {
    event.preventDefault();
    // Only what was written: an empty text leaves the widget's own words for that field.
    const texts = {};
    for (const [code, values] of Object.entries(form.texts)) {
      const given = Object.fromEntries(Object.entries(values).filter(([, v]) => v.trim()));
      if (Object.keys(given).length) texts[code] = given;
    }
    const body = {
      allowed_origins: linesOf(form.origins),
      appearance: { primary_color: form.primary_color, accent_color: form.accent_color, position: form.position, texts },
    };
    run(async () => {
      await store.call("PUT", "/v1/settings/widget", body);
      reload();
    }, t.saved);
  };
  const texts = form.texts[textLang] || {};
  return html`
    <div class="settings-widget">
      <div class="settings-widget-main">
      <form class="settings-form" onSubmit=${save} onKeyDown=${ctrlEnter} data-testid="widget-form">
        <fieldset class="plain" disabled=${readOnly}>
          <h4>${t.appearance}</h4>
          <div class="settings-grid2">
            <div class="field">
              <label for="widget-primary">${t.primaryColor}</label>
              <span class="settings-color">
                <input id="widget-primary" type="color" value=${form.primary_color}
                  onInput=${(e) => set("primary_color", e.target.value)} data-testid="widget-primary-color" />
                <code>${form.primary_color}</code>
              </span>
            </div>
            <div class="field">
              <label for="widget-accent">${t.accentColor}</label>
              <span class="settings-color">
                <input id="widget-accent" type="color" value=${form.accent_color}
                  onInput=${(e) => set("accent_color", e.target.value)} data-testid="widget-accent-color" />
                <code>${form.accent_color}</code>
              </span>
            </div>
          </div>
          <div class="field">
            <span class="label">${t.position}</span>
            <div class="settings-checks" role="radiogroup" aria-label=${t.position}>
              ${["bottom-right", "bottom-left"].map(
                (position) => html`
                  <label class="check">
                    <input type="radio" name="widget-position" value=${position} checked=${form.position === position}
                      onChange=${() => set("position", position)} data-testid=${"widget-position-" + position} />
                    ${t.positions[position]}
                  </label>
                `,
              )}
            </div>
          </div>
          <h4>${t.texts}</h4>
          <div class="lang settings-langs" role="group" aria-label=${t.language}>
            ${Object.keys(form.texts).map(
              (code) => html`
                <button type="button" class=${"chip" + (code === textLang ? " on" : "")} aria-pressed=${code === textLang}
                  onClick=${() => setTextLang(code)} data-testid=${"widget-texts-" + code}>${code.toUpperCase()}</button>
              `,
            )}
          </div>
          ${TEXT_FIELDS.map(
            ([field, label]) => html`
              <div class="field">
                <label for=${"widget-" + field}>${t[label]} (${textLang.toUpperCase()})</label>
                ${field === "greeting"
                  ? html`<textarea id=${"widget-" + field} rows="2" value=${texts[field]}
                      onInput=${(e) => setText(field, e.target.value)} data-testid=${"widget-" + field}></textarea>`
                  : html`<input id=${"widget-" + field} value=${texts[field]} onInput=${(e) => setText(field, e.target.value)}
                      data-testid=${"widget-" + field} />`}
              </div>
            `,
          )}
          <h4>${t.allowedOrigins}</h4>
          <div class="field">
            <label for="widget-origins" class="muted small">${t.allowedOriginsHint}</label>
            <textarea id="widget-origins" rows="3" value=${form.origins} spellcheck="false"
              onInput=${(e) => set("origins", e.target.value)} data-testid="widget-origins"></textarea>
          </div>
        </fieldset>
        <${SaveBar} t=${t} status=${status} readOnly=${readOnly} />
      </form>
        <${EmbedSnippet} t=${t} snippet=${data.embed_snippet || ""} />
        <${KeyRotation} t=${t} lang=${lang} store=${store} data=${data} reload=${reload} readOnly=${readOnly} />
      </div>
      <aside class="settings-side">
        <${WidgetPreview} t=${t} form=${form} textLang=${textLang} name=${profile ? profile.name : ""} />
      </aside>
    </div>
  `;
}

// A static picture of the widget (launcher and open panel) from the form's values; the real widget
// is not embedded. Empty texts show the field's name, greyed.
function WidgetPreview({ t, form, textLang, name }) {
  const texts = form.texts[textLang] || {};
  const text = (field, label) =>
    texts[field] ? html`<span>${texts[field]}</span>` : html`<span class="wp-empty">${t[label]}</span>`;
  const style = `--wp-primary:${form.primary_color};--wp-accent:${form.accent_color}`;
  return html`
    <section class="card settings-preview" aria-label=${t.preview}>
      <h4>${t.preview} <span class="muted small">${t.previewHint}</span></h4>
      <div class=${"wp-site " + form.position} style=${style} data-testid="widget-preview"
        data-position=${form.position} data-primary=${form.primary_color} data-accent=${form.accent_color}>
        <div class="wp-panel">
          <div class="wp-head"><span class="wp-avatar" aria-hidden="true">✦</span><strong>${name || "—"}</strong></div>
          <div class="wp-body">
            <div class="wp-bubble wp-ai" data-testid="widget-preview-greeting">${text("greeting", "greeting")}</div>
            <div class="wp-bubble wp-customer">${t.previewCustomer}</div>
            <div class="wp-actions">
              <span class="wp-action wp-operator" data-testid="widget-preview-operator">${text("operator_button", "operatorButton")}</span>
              <span class="wp-action wp-continue" data-testid="widget-preview-continue">${text("continue_button", "continueButton")}</span>
            </div>
          </div>
          <div class="wp-input">${t.previewInput}</div>
        </div>
        <div class="wp-launcher-row">
          <span class="wp-label" data-testid="widget-preview-label">${text("launcher_label", "launcherLabel")}</span>
          <span class="wp-launcher" aria-hidden="true">
            <svg viewBox="0 0 24 24" width="26" height="26"><path fill="currentColor"
              d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z" /></svg>
          </span>
        </div>
      </div>
    </section>
  `;
}

function EmbedSnippet({ t, snippet }) {
  const area = useRef(null);
  const [said, setSaid] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(snippet);
      setSaid(t.copied);
    } catch {
      // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C.
      if (area.current) {
        area.current.focus();
        area.current.select();
      }
      setSaid(t.copyManually);
    }
  };
  return html`
    <section class="card">
      <h4>${t.embed}</h4>
      <p class="muted small">${t.embedHint}</p>
      <textarea ref=${area} class="settings-code" rows="4" readonly spellcheck="false" value=${snippet}
        aria-label=${t.embed} data-testid="widget-snippet"></textarea>
      <div class="settings-bar">
        <button type="button" class="secondary" onClick=${copy} data-testid="widget-copy">${t.copy}</button>
        ${said && html`<span class="muted small" role="status" data-testid="widget-copied">${said}</span>`}
      </div>
    </section>
  `;
}

function KeyRotation({ t, lang, store, data, reload, readOnly }) {
  const [grace, setGrace] = useState(86400);
  const [confirming, setConfirming] = useState(false);
  const [status, run] = useSave();
  const rotate = async () => {
    if (!confirming) {
      setConfirming(true);
      return;
    }
    setConfirming(false);
    const done = await run(() => store.call("POST", "/v1/settings/widget/rotate-key", { grace_seconds: grace }), t.rotated);
    if (done !== undefined) reload();
  };
  return html`
    <section class="card" data-testid="widget-key-card">
      <h4>${t.key}</h4>
      <code class="settings-key" data-testid="widget-key">${data.widget_key}</code>
      ${data.previous_key_expires_at &&
      html`<p class="small" data-testid="widget-previous-key">${fill(t.previousKeyExpires, { d: when(data.previous_key_expires_at, lang) })}</p>`}
      ${!readOnly &&
      html`
        <p class="muted small">${t.rotateHint}</p>
        <div class="settings-bar">
          <label class="settings-inline">${t.grace}
            <select value=${grace} onChange=${(e) => setGrace(Number(e.target.value))} data-testid="widget-grace">
              ${GRACES.map((s) => html`<option value=${s}>${t.graces[s]}</option>`)}
            </select>
          </label>
          <button type="button" class=${confirming ? "danger" : "secondary"} disabled=${status.busy} onClick=${rotate}
            onBlur=${() => setConfirming(false)} data-testid="widget-rotate">${confirming ? t.confirmRotate : t.rotate}</button>
        </div>
        <${Status} t=${t} status=${status} testid="widget-rotate" />
      `}
    </section>
  `;
}

// ------------------------------------------------------------------------------ assistant

// handoff_phrases and each topic's phrases may be a list or a map of language -> list: the form
// keeps the shape it was given.
function phrasesText(value) {
  if (Array.isArray(value)) return value.join("\n");
  return Object.fromEntries(Object.entries(value || {}).map(([code, list]) => [code, (list || []).join("\n")]));
}

function phrasesValue(text) {
  if (typeof text === "string") return linesOf(text);
  return Object.fromEntries(Object.entries(text).map(([code, t]) => [code, linesOf(t)]));
}

function PhrasesField({ t, id, label, value, onChange, testid }) {
  if (typeof value === "string")
    return html`<div class="field">
      <label for=${id}>${label} <span class="muted small">${t.onePerLine}</span></label>
      <textarea id=${id} rows="4" value=${value} onInput=${(e) => onChange(e.target.value)} data-testid=${testid}></textarea>
    </div>`;
  return html`<div class="field">
    <span class="label">${label} <span class="muted small">${t.onePerLine}</span></span>
    <div class="settings-grid2">
      ${Object.entries(value).map(
        ([code, text]) => html`<label class="settings-sub">${code.toUpperCase()}
          <textarea rows="4" value=${text} onInput=${(e) => onChange({ ...value, [code]: e.target.value })}
            data-testid=${testid + "-" + code}></textarea></label>`,
      )}
    </div>
  </div>`;
}

function AssistantPage({ t, store, readOnly }) {
  const [data, loadError] = useResource(store, "/v1/settings/assistant");
  const [profile] = useResource(store, "/v1/settings/profile");
  const [form, setForm] = useState(null);
  const [status, run] = useSave();
  const fromData = (d) => ({
    answer_threshold: d.answer_threshold,
    unknown_threshold: d.unknown_threshold,
    handoff_phrases: phrasesText(d.handoff_phrases),
    topics: Object.entries(d.sensitive_topics || {}).map(([topic, phrases]) => ({ topic, phrases: phrasesText(phrases) })),
    actions: (d.smart_actions || []).map((a) => ({ ...a, label: { ...(a.label || {}) } })),
    llm_enabled: !!d.llm_enabled,
  });
  useEffect(() => {
    if (data) setForm(fromData(data));
  }, [data]);
  if (!form) return html`<${Loading} t=${t} error=${loadError} />`;
  const languages = profile ? profile.languages || [] : [...new Set(form.actions.flatMap((a) => Object.keys(a.label)))];
  const set = (name, value) => setForm({ ...form, [name]: value });
  const setTopic = (i, change) => set("topics", form.topics.map((x, j) => (j === i ? { ...x, ...change } : x)));
  const setAction = (i, change) => set("actions", form.actions.map((x, j) => (j === i ? { ...x, ...change } : x)));
  const save = (event) => {
    event.preventDefault();
    const body = {
      answer_threshold: Number(form.answer_threshold),
      unknown_threshold: Number(form.unknown_threshold),
      handoff_phrases: phrasesValue(form.handoff_phrases),
      sensitive_topics: Object.fromEntries(form.topics.filter((x) => x.topic.trim()).map((x) => [x.topic.trim(), phrasesValue(x.phrases)])),
      smart_actions: form.actions.map((a) => ({
        ...a,
        label: Object.fromEntries(Object.entries(a.label).filter(([, v]) => v.trim())),
      })),
      llm_enabled: form.llm_enabled,
    };
    run(async () => {
      const saved = await store.call("PUT", "/v1/settings/assistant", body);
      if (saved && saved.answer_threshold !== undefined) setForm(fromData(saved));
    }, t.saved);
  };
  const emptyPhrases = typeof form.handoff_phrases === "string" ? "" : Object.fromEntries(languages.map((c) => [c, ""]));
  return html`
    <form class="settings-form" onSubmit=${save} onKeyDown=${ctrlEnter} data-testid="assistant-form">
      <fieldset class="plain" disabled=${readOnly}>
        <h4>${t.thresholds}</h4>
        <div class="settings-grid2">
          ${[
            ["answer_threshold", t.answerThreshold, t.answerThresholdHint],
            ["unknown_threshold", t.unknownThreshold, t.unknownThresholdHint],
          ].map(
            ([name, label, hint]) => html`
              <div class="field">
                <label for=${"assistant-" + name}>${label}</label>
                <span class="settings-range">
                  <input type="range" min="0" max="1" step="0.01" value=${form[name]} aria-label=${label} tabindex="-1"
                    onInput=${(e) => set(name, e.target.value)} />
                  <input id=${"assistant-" + name} type="number" min="0" max="1" step="0.01" value=${form[name]}
                    onInput=${(e) => set(name, e.target.value)} data-testid=${"assistant-" + name} />
                </span>
                <span class="muted small">${hint}</span>
              </div>
            `,
          )}
        </div>
        <${PhrasesField} t=${t} id="assistant-handoff" label=${t.handoffPhrases} value=${form.handoff_phrases}
          onChange=${(v) => set("handoff_phrases", v)} testid="assistant-handoff-phrases" />
        <h4>${t.sensitiveTopics}</h4>
        <p class="muted small">${t.sensitiveTopicsHint}</p>
        ${form.topics.length === 0 && html`<p class="muted small">${t.noTopics}</p>`}
        <ul class="settings-rows" data-testid="assistant-topics">
          ${form.topics.map(
            (x, i) => html`
              <li class="settings-row card" data-testid="assistant-topic">
                <div class="field">
                  <label for=${"topic-" + i}>${t.topic}</label>
                  <input id=${"topic-" + i} value=${x.topic} onInput=${(e) => setTopic(i, { topic: e.target.value })}
                    data-testid="assistant-topic-name" />
                </div>
                <${PhrasesField} t=${t} id=${"topic-phrases-" + i} label=${t.phrases} value=${x.phrases}
                  onChange=${(v) => setTopic(i, { phrases: v })} testid="assistant-topic-phrases" />
                ${!readOnly && html`<button type="button" class="ghost settings-remove" aria-label=${t.remove}
                  onClick=${() => set("topics", form.topics.filter((_, j) => j !== i))}>✕ ${t.remove}</button>`}
              </li>
            `,
          )}
        </ul>
        ${!readOnly && html`<button type="button" class="secondary settings-add" data-testid="assistant-add-topic"
          onClick=${() => set("topics", [...form.topics, { topic: "", phrases: emptyPhrases }])}>+ ${t.addTopic}</button>`}
        <h4>${t.smartActions}</h4>
        <p class="muted small">${t.smartActionsHint}</p>
        ${form.actions.length === 0 && html`<p class="muted small">${t.noActions}</p>`}
        <ul class="settings-rows" data-testid="assistant-actions">
          ${form.actions.map(
            (a, i) => html`
              <li class="settings-row card" data-testid="assistant-action">
                <div class="settings-grid2">
                  <label class="settings-sub">${t.actionId}
                    <input value=${a.id} onInput=${(e) => setAction(i, { id: e.target.value })} data-testid="assistant-action-id" /></label>
                  <label class="settings-sub">${t.actionUrl}
                    <input type="url" value=${a.url} onInput=${(e) => setAction(i, { url: e.target.value })}
                      data-testid="assistant-action-url" /></label>
                  ${[...new Set([...languages, ...Object.keys(a.label)])].map(
                    (code) => html`<label class="settings-sub">${fill(t.actionLabel, { l: code.toUpperCase() })}
                      <input value=${a.label[code] || ""} onInput=${(e) => setAction(i, { label: { ...a.label, [code]: e.target.value } })}
                        data-testid=${"assistant-action-label-" + code} /></label>`,
                  )}
                </div>
                ${!readOnly && html`<button type="button" class="ghost settings-remove" aria-label=${t.remove}
                  onClick=${() => set("actions", form.actions.filter((_, j) => j !== i))}>✕ ${t.remove}</button>`}
              </li>
            `,
          )}
        </ul>
        ${!readOnly && html`<button type="button" class="secondary settings-add" data-testid="assistant-add-action"
          onClick=${() => set("actions", [...form.actions, { id: "", url: "", label: Object.fromEntries(languages.map((c) => [c, ""])) }])}>
          + ${t.addAction}</button>`}
        <h4>${t.llm}</h4>
        <label class="check">
          <input type="checkbox" checked=${form.llm_enabled} onChange=${(e) => set("llm_enabled", e.target.checked)}
            data-testid="assistant-llm" />
          ${t.llmEnabled}
        </label>
      </fieldset>
      <${SaveBar} t=${t} status=${status} readOnly=${readOnly} />
    </form>
  `;
}

// ------------------------------------------------------------------------------ team

function MemberRow({ t, store, member, me, readOnly, reload }) {
  const [form, setForm] = useState({ role: member.role, skills: member.skills.join(", "), capacity: member.capacity });
  const [status, run] = useSave();
  useEffect(() => setForm({ role: member.role, skills: member.skills.join(", "), capacity: member.capacity }), [member]);
  const changed =
    form.role !== member.role || form.skills !== member.skills.join(", ") || Number(form.capacity) !== member.capacity;
  const save = async (event) => {
    event.preventDefault();
    const body = { role: form.role, skills: listOf(form.skills), capacity: Number(form.capacity) };
    const done = await run(() => store.call("PATCH", "/v1/team/operators/" + encodeURIComponent(member.operator_id), body), t.saved);
    if (done !== undefined) reload();
  };
  const toggle = async () => {
    const action = member.active ? "deactivate" : "activate";
    const result = await run(
      () => store.call("POST", "/v1/admin/operators/" + encodeURIComponent(member.operator_id) + "/" + action),
      member.active ? t.deactivated : t.activated,
    );
    if (result !== undefined) {
      if (result.requeued && result.requeued.length) store.toast("ok", fill(t.requeued, { n: result.requeued.length }));
      reload();
    }
  };
  const own = member.operator_id === me.operatorId;
  const id = "member-" + member.operator_id;
  return html`
    <tr class=${member.active ? "" : "inactive"} data-testid="team-member" data-operator=${member.operator_id}>
      <td>
        <strong>${member.display_name}</strong>${own && html` <span class="muted small">(${t.you})</span>`}
        <div class="muted small wrap-any">${member.username}${member.email ? " · " + member.email : ""}</div>
      </td>
      <td>
        <select aria-label=${t.role} value=${form.role} disabled=${readOnly} form=${id}
          onChange=${(e) => setForm({ ...form, role: e.target.value })} data-testid="team-role">
          ${ROLES.map((r) => html`<option value=${r}>${t.roles[r]}</option>`)}
        </select>
      </td>
      <td><input aria-label=${t.skills} value=${form.skills} disabled=${readOnly} form=${id} placeholder=${t.commaSeparated}
        onInput=${(e) => setForm({ ...form, skills: e.target.value })} data-testid="team-skills" /></td>
      <td><input aria-label=${t.capacity} type="number" min="1" max="20" class="settings-num" value=${form.capacity}
        disabled=${readOnly} form=${id} onInput=${(e) => setForm({ ...form, capacity: e.target.value })} data-testid="team-capacity" /></td>
      <td><span class=${"settings-state " + (member.active ? "on" : "off")}>${member.active ? t.active : t.inactive}</span></td>
      ${!readOnly &&
      html`<td><div class="settings-actions">
        <form id=${id} onSubmit=${save}>
          ${changed && html`<button type="submit" class="primary" disabled=${status.busy} data-testid="team-save">${t.save}</button>`}
        </form>
        ${!own && html`<button type="button" class="secondary" disabled=${status.busy} onClick=${toggle} data-testid="team-toggle">
          ${member.active ? t.deactivate : t.activate}</button>`}
        <${Status} t=${t} status=${status} testid="team-member" />
      </div></td>`}
    </tr>
  `;
}

function TeamPage({ t, lang, store, readOnly }) {
  const [data, loadError, reload] = useResource(store, "/v1/team");
  const [profile] = useResource(store, "/v1/settings/profile");
  const blank = { email: "", role: "operator", skills: "", capacity: 3, language: "" };
  const [invite, setInvite] = useState(blank);
  const [status, run] = useSave();
  const [revoking, setRevoking] = useState(null);
  const [revokeStatus, runRevoke] = useSave();
  if (!data) return html`<${Loading} t=${t} error=${loadError} />`;
  const languages = profile ? profile.languages || [] : [];
  const inviteLanguage = invite.language || (profile && profile.default_language) || languages[0] || lang;
  const send = async (event) => {
    event.preventDefault();
    const body = { email: invite.email.trim(), role: invite.role, skills: listOf(invite.skills), capacity: Number(invite.capacity), language: inviteLanguage };
    const done = await run(() => store.call("POST", "/v1/team/invitations", body), fill(t.invited, { e: body.email }));
    if (done !== undefined) {
      setInvite(blank);
      reload();
    }
  };
  const revoke = async (invitation) => {
    if (revoking !== invitation.invitation_id) {
      setRevoking(invitation.invitation_id);
      return;
    }
    setRevoking(null);
    const done = await runRevoke(() => store.call("DELETE", "/v1/team/invitations/" + invitation.invitation_id), t.revoked);
    if (done !== undefined) reload();
  };
  return html`
    <div class="settings-team">
      <section>
        <h4>${t.accounts}</h4>
        <div class="settings-table-wrap">
          <table class="settings-table" data-testid="team-table">
            <thead><tr><th>${t.account}</th><th>${t.role}</th><th>${t.skills}</th><th>${t.capacity}</th><th>${t.state}</th>
              ${!readOnly && html`<th></th>`}</tr></thead>
            <tbody>
              ${data.operators.map(
                (member) => html`<${MemberRow} key=${member.operator_id} t=${t} store=${store} member=${member} me=${store.state.me}
                  readOnly=${readOnly} reload=${reload} />`,
              )}
            </tbody>
          </table>
        </div>
      </section>
      ${!readOnly &&
      html`<section class="card">
        <h4>${t.invite}</h4>
        <p class="muted small">${t.inviteHint}</p>
        <form class="settings-invite" onSubmit=${send} data-testid="team-invite-form">
          <label class="settings-sub">${t.email}
            <input type="email" required value=${invite.email} onInput=${(e) => setInvite({ ...invite, email: e.target.value })}
              data-testid="team-invite-email" /></label>
          <label class="settings-sub">${t.role}
            <select value=${invite.role} onChange=${(e) => setInvite({ ...invite, role: e.target.value })} data-testid="team-invite-role">
              ${ROLES.map((r) => html`<option value=${r}>${t.roles[r]}</option>`)}
            </select></label>
          <label class="settings-sub">${t.skills}
            <input value=${invite.skills} placeholder=${t.commaSeparated} onInput=${(e) => setInvite({ ...invite, skills: e.target.value })}
              data-testid="team-invite-skills" /></label>
          <label class="settings-sub">${t.capacity}
            <input type="number" min="1" max="20" class="settings-num" value=${invite.capacity}
              onInput=${(e) => setInvite({ ...invite, capacity: e.target.value })} data-testid="team-invite-capacity" /></label>
          <label class="settings-sub">${t.language}
            <select value=${inviteLanguage} onChange=${(e) => setInvite({ ...invite, language: e.target.value })} data-testid="team-invite-language">
              ${[...new Set([...languages, inviteLanguage])].map((code) => html`<option value=${code}>${languageName(t, code)}</option>`)}
            </select></label>
          <button type="submit" class="primary" disabled=${status.busy} data-testid="team-invite-send">${t.sendInvite}</button>
        </form>
        <${Status} t=${t} status=${status} testid="team-invite" />
      </section>`}
      <section>
        <h4>${t.pending}</h4>
        ${data.invitations.length === 0
          ? html`<p class="muted small" data-testid="team-no-invitations">${t.noPending}</p>`
          : html`<ul class="settings-list" data-testid="team-invitations">
              ${data.invitations.map(
                (invitation) => html`
                  <li data-testid="team-invitation">
                    <span class="grow"><strong class="wrap-any">${invitation.email}</strong>
                      <span class="muted small">${" · " + (t.roles[invitation.role] || invitation.role) + " · " + invitation.language.toUpperCase() + " · " + fill(t.expires, { d: when(invitation.expires_at, lang) })}</span></span>
                    ${!readOnly && html`<button type="button" class=${revoking === invitation.invitation_id ? "danger" : "secondary"}
                      onClick=${() => revoke(invitation)} onBlur=${() => setRevoking(null)} data-testid="team-revoke">
                      ${revoking === invitation.invitation_id ? t.confirmRemove : t.revoke}</button>`}
                  </li>
                `,
              )}
            </ul>`}
        <${Status} t=${t} status=${revokeStatus} testid="team-revoke" />
      </section>
    </div>
  `;
}

// ------------------------------------------------------------------------------ canned responses

function CannedEditor({ t, store, response, languages, onDone, onCancel }) {
  const [form, setForm] = useState({
    language: response ? response.language : languages[0] || "it",
    shortcut: response ? response.shortcut : "",
    title: response ? response.title : "",
    text: response ? response.text : "",
  });
  const [status, run] = useSave();
  const save = async (event) => {
    event.preventDefault();
    const body = { language: form.language, shortcut: form.shortcut.trim(), title: form.title, text: form.text };
    const done = await run(() =>
      response
        ? store.call("PUT", "/v1/canned-responses/" + response.response_id, body)
        : store.call("POST", "/v1/canned-responses", body),
    );
    if (done !== undefined) onDone();
  };
  return html`
    <form class="card settings-canned-editor" onSubmit=${save} onKeyDown=${(e) => (e.key === "Escape" && onCancel ? onCancel() : ctrlEnter(e))}
      data-testid="canned-editor">
      <h4>${response ? t.editResponse : t.newResponse}</h4>
      <div class="settings-grid3">
        <label class="settings-sub">${t.language}
          <select value=${form.language} onChange=${(e) => setForm({ ...form, language: e.target.value })} data-testid="canned-language">
            ${[...new Set([...languages, form.language])].map((code) => html`<option value=${code}>${languageName(t, code)}</option>`)}
          </select></label>
        <label class="settings-sub">${t.shortcut} <span class="muted small">${t.shortcutHint}</span>
          <input value=${form.shortcut} onInput=${(e) => setForm({ ...form, shortcut: e.target.value })} data-testid="canned-shortcut" /></label>
        <label class="settings-sub">${t.responseTitle}
          <input value=${form.title} onInput=${(e) => setForm({ ...form, title: e.target.value })} data-testid="canned-title" /></label>
      </div>
      <label class="settings-sub">${t.responseText}
        <textarea rows="3" value=${form.text} onInput=${(e) => setForm({ ...form, text: e.target.value })} data-testid="canned-text"></textarea></label>
      <div class="settings-bar">
        <button type="submit" class="primary" disabled=${status.busy} data-testid="canned-save">${status.busy ? t.saving : t.save} <kbd>Ctrl+↵</kbd></button>
        ${onCancel && html`<button type="button" class="secondary" onClick=${onCancel}>${t.cancel}</button>`}
        <${Status} t=${t} status=${status} testid="canned" />
      </div>
    </form>
  `;
}

function CannedPage({ t, store, readOnly }) {
  const [language, setLanguage] = useState("");
  const [data, loadError, reload] = useResource(store, "/v1/canned-responses" + (language ? "?language=" + language : ""));
  const [profile] = useResource(store, "/v1/settings/profile");
  const [editing, setEditing] = useState(null); // a response id, or "new"
  const [removing, setRemoving] = useState(null);
  const [status, run] = useSave();
  const languages = profile ? profile.languages || [] : ["it", "en"];
  const responses = data ? data.responses || [] : [];
  const remove = async (response) => {
    if (removing !== response.response_id) {
      setRemoving(response.response_id);
      return;
    }
    setRemoving(null);
    const done = await run(() => store.call("DELETE", "/v1/canned-responses/" + response.response_id), t.deleted);
    if (done !== undefined) reload();
  };
  const done = () => {
    setEditing(null);
    reload();
  };
  return html`
    <div class="settings-canned">
      <div class="settings-bar">
        <div class="lang" role="group" aria-label=${t.language}>
          ${["", ...languages].map(
            (code) => html`<button type="button" class=${"chip" + (code === language ? " on" : "")} aria-pressed=${code === language}
              onClick=${() => setLanguage(code)} data-testid=${"canned-filter-" + (code || "all")}>${code ? code.toUpperCase() : t.allLanguages}</button>`,
          )}
        </div>
        ${!readOnly && editing !== "new" && html`<button type="button" class="primary" onClick=${() => setEditing("new")}
          data-testid="canned-new">+ ${t.newResponse}</button>`}
      </div>
      ${editing === "new" && html`<${CannedEditor} t=${t} store=${store} languages=${languages} onDone=${done} onCancel=${() => setEditing(null)} />`}
      <${Status} t=${t} status=${status} testid="canned-remove" />
      ${!data
        ? html`<${Loading} t=${t} error=${loadError} />`
        : responses.length === 0
          ? html`<p class="muted" data-testid="canned-empty">${t.noResponses}</p>`
          : html`<ul class="settings-list canned-list" data-testid="canned-list">
              ${responses.map((r) =>
                editing === r.response_id
                  ? html`<li><${CannedEditor} t=${t} store=${store} response=${r} languages=${languages} onDone=${done}
                      onCancel=${() => setEditing(null)} /></li>`
                  : html`<li data-testid="canned-item">
                      <span class="grow">
                        <span class="kb-lang-code settings-code-chip">${r.language.toUpperCase()}</span>
                        <code class="settings-shortcut">/${r.shortcut}</code> <strong>${r.title}</strong>
                        <span class="settings-canned-text muted">${r.text}</span>
                      </span>
                      ${!readOnly && html`<span class="settings-actions">
                        <button type="button" class="secondary" onClick=${() => setEditing(r.response_id)} data-testid="canned-edit">${t.edit}</button>
                        <button type="button" class=${removing === r.response_id ? "danger" : "secondary"} onClick=${() => remove(r)}
                          onBlur=${() => setRemoving(null)} data-testid="canned-delete">${removing === r.response_id ? t.confirmRemove : t.remove}</button>
                      </span>`}
                    </li>`,
              )}
            </ul>`}
    </div>
  `;
}

// ------------------------------------------------------------------------------ audit log

function show(value) {
  if (value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// Nested objects as dotted paths (appearance.texts.it.greeting), so that a change names its field.
function flat(value, prefix = "", out = {}) {
  for (const [key, inner] of Object.entries(value || {})) {
    if (inner && typeof inner === "object" && !Array.isArray(inner) && Object.keys(inner).length) flat(inner, prefix + key + ".", out);
    else out[prefix + key] = inner;
  }
  return out;
}

// What an entry changed: the fields whose values differ, before -> after.
function differences(before, after) {
  const was = flat(before);
  const now = flat(after);
  const keys = [...new Set([...Object.keys(was), ...Object.keys(now)])];
  return keys.filter((key) => JSON.stringify(was[key]) !== JSON.stringify(now[key])).map((key) => [key, was[key], now[key]]);
}

function AuditPage({ t, lang, store }) {
  const [cursors, setCursors] = useState([null]); // the `before` of each page seen, newest first
  const before = cursors[cursors.length - 1];
  const [data, loadError] = useResource(store, "/v1/admin/audit?limit=" + AUDIT_PAGE + (before ? "&before=" + before : ""));
  if (!data) return html`<${Loading} t=${t} error=${loadError} />`;
  return html`
    <div class="settings-audit">
      ${data.entries.length === 0
        ? html`<p class="muted" data-testid="audit-empty">${t.noEntries}</p>`
        : html`<div class="settings-table-wrap"><table class="settings-table" data-testid="audit-table">
            <thead><tr><th>${t.when}</th><th>${t.who}</th><th>${t.what}</th><th>${t.change}</th></tr></thead>
            <tbody>
              ${data.entries.map((entry) => {
                const diff = differences(entry.before, entry.after);
                return html`<tr data-testid="audit-entry">
                  <td class="nowrap">${when(entry.occurred_at, lang)}</td>
                  <td class="wrap-any">${entry.actor}</td>
                  <td><code>${entry.action}</code><div class="muted small wrap-any">${entry.target}</div></td>
                  <td>
                    <ul class="settings-diff">
                      ${diff.slice(0, 6).map(
                        ([key, was, now]) => html`<li><span class="muted">${key}:</span> <del>${show(was)}</del> → <ins>${show(now)}</ins></li>`,
                      )}
                    </ul>
                    ${(entry.before || entry.after) &&
                    html`<details>
                      <summary class="small">${t.details}</summary>
                      <div class="settings-grid2">
                        <div><span class="small muted">${t.before}</span><pre class="settings-json">${JSON.stringify(entry.before, null, 2)}</pre></div>
                        <div><span class="small muted">${t.after}</span><pre class="settings-json">${JSON.stringify(entry.after, null, 2)}</pre></div>
                      </div>
                    </details>`}
                  </td>
                </tr>`;
              })}
            </tbody>
          </table></div>`}
      <div class="settings-bar">
        <button type="button" class="secondary" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}
          data-testid="audit-newer">${t.newer}</button>
        <span class="muted small" data-testid="audit-page">${fill(t.page, { n: cursors.length })}</span>
        <button type="button" class="secondary" disabled=${!data.next_before} onClick=${() => setCursors([...cursors, data.next_before])}
          data-testid="audit-older">${t.older}</button>
      </div>
    </div>
  `;
}

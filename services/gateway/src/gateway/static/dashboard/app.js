// The operator dashboard: Preact with htm (vendored, no build step).
import { html, render, useEffect, useMemo, useRef, useState } from "/dashboard/vendor/preact-htm.module.js";
import { formatDate, initialLanguage, LANGUAGES, saveLanguage, words } from "/dashboard/i18n.js";
import { SLA_RANK, Store, TICKET_MOVES } from "/dashboard/store.js";
import { AnalyticsView } from "/dashboard/analytics.js";
import { KnowledgeView } from "/dashboard/kb.js";
import { SettingsView } from "/dashboard/settings.js";

const store = new Store();
const SUPERVISING = new Set(["supervisor", "admin"]);
const CLOSED = new Set(["RESOLVED", "NOT_RESOLVED", "CANCELLED", "ABANDONED", "TICKET_CREATED"]);

// ------------------------------------------------------------------------------ alerts

let audio = null;
function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === "suspended") audio.resume();
}
addEventListener("pointerdown", unlockAudio);
addEventListener("keydown", unlockAudio);

// Two short rising tones, made with the Web Audio API (no audio file).
function chime() {
  if (!audio) return;
  const start = audio.currentTime + 0.01;
  [660, 880].forEach((frequency, i) => {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = frequency;
    const t = start + i * 0.16;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.15);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.16);
  });
}

function askNotificationPermission() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
}

// ------------------------------------------------------------------------------ helpers

function useStore() {
  const [, setVersion] = useState(0);
  useEffect(() => store.subscribe(() => setVersion((v) => v + 1)), []);
  return store.state;
}

function useNow(everyMs = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + String(m % 60).padStart(2, "0") + " min";
  return Math.floor(h / 24) + " d";
}

function clock(value, t) {
  return formatDate(value, t.lang, { hour: "2-digit", minute: "2-digit" });
}

function shortId(id) {
  return "#" + String(id).slice(0, 8);
}

function reasonText(t, reason) {
  if (!reason) return "—";
  return t.reasons[reason] || reason.replace(/_/g, " ");
}

// Why the copilot has nothing to suggest, from the reason the assistant would have offered a person.
function noSuggestionText(t, reason) {
  if (reason === "negative_sentiment") return t.suggestionNoneUpset;
  if (reason && reason !== "customer_request") return t.suggestionNoneUnknown;
  return t.suggestionNone;
}

function errorText(t, error) {
  if (!error) return t.errorGeneric;
  if (error.code === "already_taken") return t.takenBySomeoneElse;
  if (error.code === "not_waiting") return t.notWaiting;
  if (error.code === "forbidden") return t.forbidden;
  if (error.code === "unavailable" || error.status >= 500) return t.unavailable;
  return t.errorGeneric + ": " + (error.message || error.code);
}

function ownerName(state, c) {
  if (!c.ownerId) return "";
  const known = state.operators[c.ownerId];
  return c.ownerName || (known && known.name) || c.ownerId;
}

function closed(c) {
  return c && CLOSED.has(c.status);
}

function canWrite(state, c) {
  if (!c || closed(c)) return false;
  return c.mine || (SUPERVISING.has(state.me.role) && c.ownerId);
}

// Only a waiting conversation can be taken (routing answers 409 or 404 for any other): one in the
// queue or offered to this operator. A supervisor moves a held one with the transfer picker.
function takeable(state, c) {
  if (!c || c.mine || closed(c)) return false;
  return Boolean(state.offers[c.id]) || c.queued || c.status === "QUEUED";
}

// "Now with Marco": a conversation moved away from this operator, by name when known.
function nowWith(t, state, c) {
  return t.nowWith + " " + (ownerName(state, c) || t.aColleague);
}

// A summary built from the transcript, when the gateway does not serve one.
function localSummary(c) {
  const customer = c.messages.filter((m) => m.sender === "customer");
  const ai = c.messages.filter((m) => m.sender === "ai");
  const lastAi = ai.length ? ai[ai.length - 1].seq : 0;
  const titles = [];
  for (const m of ai) for (const s of m.sources || []) if (s.title && !titles.includes(s.title)) titles.push(s.title);
  return {
    customer_wants: customer.length ? customer[0].text.split("\n")[0].slice(0, 160) : "",
    ai_answered: titles.length ? titles : ai.slice(-3).map((m) => m.text.split("\n")[0].slice(0, 100)),
    still_open: customer.filter((m) => m.seq > lastAi).map((m) => m.text.split("\n")[0].slice(0, 120)),
    mood: c.reason === "negative_sentiment" || c.priority === "high" ? "upset" : "neutral",
  };
}

// ------------------------------------------------------------------------------ login

function Login({ t }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await store.login(username.trim(), password);
    } catch (failure) {
      setError(
        failure.status === 401 ? t.wrongCredentials : failure.status === 429 ? t.tooManyAttempts : t.unavailable,
      );
      setBusy(false);
    }
  };
  return html`
    <main class="login">
      <form class="login-card" onSubmit=${submit} data-testid="login-form">
        <div class="brand brand-large"><span class="brand-mark" aria-hidden="true">✦</span> Lucine Support</div>
        <h1>${t.signInTitle}</h1>
        <label>${t.username}
          <input name="username" autocomplete="username" autofocus required value=${username}
            onInput=${(e) => setUsername(e.target.value)} data-testid="login-username" />
        </label>
        <label>${t.password}
          <input name="password" type="password" autocomplete="current-password" required value=${password}
            onInput=${(e) => setPassword(e.target.value)} data-testid="login-password" />
        </label>
        ${error && html`<p class="form-error" role="alert" data-testid="login-error">${error}</p>`}
        <button class="primary wide" type="submit" disabled=${busy} data-testid="login-submit">
          ${busy ? t.signingIn : t.signIn}
        </button>
        <${LanguageSwitch} t=${t} />
      </form>
    </main>
  `;
}

function LanguageSwitch({ t }) {
  const lang = useContextLang();
  return html`
    <div class="lang" role="group" aria-label=${t.language}>
      ${LANGUAGES.map(
        (code) => html`
          <button type="button" class=${"chip" + (code === lang.value ? " on" : "")} aria-pressed=${code === lang.value}
            onClick=${() => lang.set(code)} data-testid=${"lang-" + code}>${code.toUpperCase()}</button>
        `,
      )}
    </div>
  `;
}

// The language lives at the top; a tiny shared holder avoids threading a setter everywhere.
const langHolder = { value: initialLanguage(), set: () => {} };
function useContextLang() {
  return langHolder;
}

// ------------------------------------------------------------------------------ header

function Header({ t, state }) {
  const me = state.me;
  const choose = async (status) => {
    if (status === "online") askNotificationPermission();
    try {
      await store.setPresence(status);
    } catch (error) {
      store.toast("error", errorText(t, error));
    }
  };
  const connection =
    state.connection === "open" ? t.connected : state.connection === "retrying" ? t.reconnecting : t.connecting;
  return html`
    <header class="topbar">
      <div class="brand"><span class="brand-mark" aria-hidden="true">✦</span> Lucine Support${" "}
        <span class="muted">· ${t.title}</span></div>
      <nav class="views" aria-label=${t.title}>
        ${[
          ["conversations", t.viewConversations, "Alt+1", 0],
          ["tickets", t.viewTickets, "Alt+4", state.ticketsNew],
          ...(SUPERVISING.has(me.role) ? [["analytics", t.viewAnalytics, "Alt+6", 0]] : []),
          ...(SUPERVISING.has(me.role) ? [["kb", t.viewKb, "Alt+7", 0]] : []),
          ...(SUPERVISING.has(me.role) ? [["settings", t.viewSettings, "Alt+8", 0]] : []),
        ].map(
          ([view, label, key, count]) => html`
            <button type="button" class=${"view" + (state.view === view ? " on" : "")} aria-current=${state.view === view ? "page" : null}
              onClick=${() => (view === "conversations" ? store.showTab(state.tab) : store.showView(view))} title=${key}
              data-testid=${"view-" + view}>
              ${label}${count ? html` <span class="count new" title=${t.newTickets}>${count}</span>` : ""}
            </button>
          `,
        )}
      </nav>
      <div class="presence" role="radiogroup" aria-label=${t.presence} data-testid="presence">
        ${["online", "away", "offline"].map(
          (status) => html`
            <button type="button" role="radio" aria-checked=${state.presence === status}
              class=${"presence-option " + status + (state.presence === status ? " on" : "")}
              onClick=${() => choose(status)} data-testid=${"presence-" + status}>
              <span class="dot" aria-hidden="true"></span>${t[status]}
            </button>
          `,
        )}
      </div>
      <div class="topbar-right">
        <span class=${"conn " + state.connection} data-testid="connection" role="status">${connection}</span>
        <span class="who" data-testid="me">${me.name} <span class="role">${me.role}</span></span>
        <${LanguageSwitch} t=${t} />
        <button type="button" class="ghost" onClick=${() => store.logout()} data-testid="logout">${t.logout}</button>
      </div>
    </header>
  `;
}

// ------------------------------------------------------------------------------ offers

function Offers({ t, state }) {
  const now = useNow();
  const offers = Object.values(state.offers);
  if (!offers.length) return null;
  return html`
    <div class="offers" role="alert">
      ${offers.map((offer) => {
        const left = new Date(offer.expires_at).getTime() - now;
        return html`
          <div class=${"offer" + (offer.priority === "high" ? " high" : "")} data-testid="offer">
            <strong>${t.newOffer}</strong>
            <span>${shortId(offer.conversation_id)}</span>
            <span>${reasonText(t, offer.reason)}</span>
            ${offer.priority === "high" && html`<span class="badge high">${t.priorityHigh}</span>`}
            <span class="muted">${t.expiresIn} ${duration(left)}</span>
            <button type="button" class="primary" onClick=${() => takeConversation(t, offer.conversation_id)}
              data-testid="accept-offer">${t.accept} <kbd>Alt+T</kbd></button>
          </div>
        `;
      })}
    </div>
  `;
}

async function takeConversation(t, id) {
  try {
    await store.take(id);
  } catch (error) {
    store.toast("error", errorText(t, error));
  }
}

// ------------------------------------------------------------------------------ list

function ConversationList({ t, state }) {
  const now = useNow();
  const supervising = SUPERVISING.has(state.me.role);
  const tabs = supervising ? ["mine", "queue", "all"] : ["mine", "queue"];
  const conversations = Object.values(state.conversations);
  const mine = conversations.filter((c) => c.mine);
  const all = state.all.map((id) => state.conversations[id]).filter(Boolean);
  const counts = { mine: mine.length, queue: state.queue.length, all: all.length };
  const labels = { mine: t.tabMine, queue: t.tabQueue, all: t.tabAll };
  let body;
  if (state.tab === "queue") {
    body = state.queue.length
      ? state.queue.map((entry) => html`<${QueueItem} t=${t} state=${state} entry=${entry} now=${now} />`)
      : html`<p class="empty">${t.emptyQueue}</p>`;
  } else {
    const list = state.tab === "all" ? all : mine;
    const empty = state.tab !== "all" ? (state.presence === "online" ? t.emptyMineOnline : t.emptyMine)
      : state.allError ? errorText(t, state.allError) : t.emptyAll;
    body = list.length
      ? list.map((c) => html`<${ConversationItem} t=${t} state=${state} c=${c} now=${now} />`)
      : html`<p class="empty">${empty}</p>`;
  }
  return html`
    <nav class="pane list-pane" aria-label=${t.tabQueue}>
      <div class="tabs" role="tablist">
        ${tabs.map(
          (tab, i) => html`
            <button type="button" role="tab" aria-selected=${state.tab === tab} class=${"tab" + (state.tab === tab ? " on" : "")}
              onClick=${() => store.showTab(tab)} title=${"Alt+" + (i + 1)} data-testid=${"tab-" + tab}>
              ${labels[tab]} <span class="count">${counts[tab]}</span>
            </button>
          `,
        )}
      </div>
      ${state.tab === "all" && html`<div class="list-filter">
        <select aria-label=${t.filterStatus} value=${state.allStatus} onChange=${(e) => store.loadAll(e.target.value)}
          data-testid="all-status">
          <option value="">${t.everyStatus}</option>
          ${Object.keys(t.statuses).map((s) => html`<option value=${s}>${t.statuses[s]}</option>`)}
        </select>
      </div>`}
      <ul class="items" data-testid=${"list-" + state.tab}>${body}</ul>
    </nav>
  `;
}

function QueueItem({ t, state, entry, now }) {
  const id = entry.conversation_id;
  const high = entry.priority === "high";
  const offeredToMe = entry.offered_to && entry.offered_to === state.me.operatorId;
  return html`
    <li class=${"item" + (state.selected === id ? " selected" : "") + (high ? " high" : "")} data-testid="queue-entry">
      <button type="button" class="item-main" onClick=${() => store.select(id)}>
        <span class="item-top">
          <span class=${"badge " + (high ? "high" : "normal")}>${high ? t.priorityHigh : t.priorityNormal}</span>
          <span class="wait" data-testid="queue-wait">${t.waiting} ${duration(now - new Date(entry.waiting_since).getTime())}</span>
        </span>
        <span class="item-reason wrap" data-testid="queue-reason">${reasonText(t, entry.reason)}</span>
        <span class="item-sub">
          ${t.position} ${entry.position} · ${shortId(id)}${entry.intent ? " · " + entry.intent : ""}
        </span>
        ${entry.offered_to && html`<span class="item-sub" data-testid="queue-offered">
          ${t.offeredTo} ${offeredToMe ? t.you : operatorName(t, state, entry.offered_to)}</span>`}
      </button>
      <button type="button" class="take" onClick=${() => takeConversation(t, id)} data-testid="take">
        ${offeredToMe ? t.accept : t.take}
      </button>
    </li>
  `;
}

function ConversationItem({ t, state, c, now }) {
  const last = c.messages[c.messages.length - 1];
  const unreadDraft = store.draft(c.id);
  return html`
    <li class=${"item" + (state.selected === c.id ? " selected" : "") + (c.priority === "high" ? " high" : "")}
      data-testid="conversation-item">
      <button type="button" class="item-main" onClick=${() => store.select(c.id)}>
        <span class="item-top">
          <span class="item-id">${shortId(c.id)}</span>
          ${c.status && html`<span class=${"status s-" + c.status}>${t.statuses[c.status] || c.status}</span>`}
          ${c.priority === "high" && html`<span class="badge high">${t.priorityHigh}</span>`}
        </span>
        <span class="item-reason">${last ? last.text.slice(0, 80) : reasonText(t, c.reason)}</span>
        <span class="item-sub">${[
          ownerName(state, c) || (c.queued ? t.tabQueue : ""),
          c.waitingSince && c.queued ? duration(now - new Date(c.waitingSince).getTime()) : "",
          c.updatedAt && !c.queued ? clock(c.updatedAt, t) : "",
          unreadDraft ? "✎" : "",
        ].filter(Boolean).join(" · ")}</span>
      </button>
    </li>
  `;
}

// ------------------------------------------------------------------------------ chat

function Chat({ t, state }) {
  const c = state.selected ? state.conversations[state.selected] : null;
  const scroller = useRef(null);
  const count = c ? c.messages.length + c.pending.length : 0;
  useEffect(() => {
    if (scroller.current) scroller.current.scrollTop = scroller.current.scrollHeight;
  }, [count, state.selected]);
  if (!c) return html`<section class="pane chat-pane empty-chat"><p class="empty">${t.selectConversation}</p></section>`;
  const split = c.messages.findIndex((m) => m.sender === "operator");
  const aiPart = split === -1 ? c.messages : c.messages.slice(0, split);
  const operatorPart = split === -1 ? [] : c.messages.slice(split);
  const handedOver = split !== -1 || ["WITH_OPERATOR", "WAITING_CUSTOMER"].includes(c.status) || closed(c);
  return html`
    <section class="pane chat-pane" aria-label=${shortId(c.id)}>
      <div class="chat-head">
        <div>
          <h2>${shortId(c.id)}</h2>
          <span class="muted">${reasonText(t, c.reason)}</span>
        </div>
        ${c.status && html`<span class=${"status s-" + c.status} data-testid="chat-status">${t.statuses[c.status] || c.status}</span>`}
      </div>
      ${c.lost && html`<p class="chat-notice" role="status" data-testid="now-with">
        <strong>${nowWith(t, state, c)}</strong> ${t.noLongerYours}</p>`}
      <div class="transcript" ref=${scroller} data-testid="transcript" aria-live="polite">
        ${aiPart.length > 0 && html`<div class="divider ai">${t.aiPart}</div>`}
        ${aiPart.map((m) => html`<${Message} t=${t} m=${m} />`)}
        ${handedOver && html`<div class="divider op">${t.operatorPart}</div>`}
        ${operatorPart.map((m) => html`<${Message} t=${t} m=${m} />`)}
        ${c.pending.map(
          (p) => html`<div class="msg operator pending" data-testid="pending"><div class="bubble">${p.text}</div>
            <div class="meta">${t.sending}</div></div>`,
        )}
      </div>
      <${Composer} t=${t} state=${state} c=${c} />
    </section>
  `;
}

function Message({ t, m }) {
  return html`
    <div class=${"msg " + m.sender} data-testid="message" data-sender=${m.sender}>
      <div class="meta"><span class="sender">${t.senders[m.sender] || m.sender}</span> ${clock(m.created_at, t)}</div>
      <div class="bubble"><${RichText} text=${m.text} /></div>
    </div>
  `;
}

// Text as the widget shows it to the customer: **bold** spans (knowledge-base answers use them)
// and http(s) addresses as links; everything else is text (htm escapes it).
const BOLD_RE = /\*\*([^*\n]+)\*\*/g;
const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

function RichText({ text }) {
  const value = String(text || "");
  const parts = [];
  let last = 0;
  for (const match of value.matchAll(BOLD_RE)) {
    parts.push(...linked(value.slice(last, match.index)), html`<strong>${linked(match[1])}</strong>`);
    last = match.index + match[0].length;
  }
  parts.push(...linked(value.slice(last)));
  return parts;
}

function linked(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const address = match[0].replace(/[.,;:!?)\]]+$/, ""); // the sentence's end is not the link's
    parts.push(text.slice(last, match.index));
    parts.push(html`<a href=${address} target="_blank" rel="noopener noreferrer">${address}</a>`);
    last = match.index + address.length;
  }
  parts.push(text.slice(last));
  return parts;
}

function Composer({ t, state, c }) {
  const [text, setText] = useState(store.draft(c.id));
  const [pick, setPick] = useState(0);
  const area = useRef(null);
  const [suggested, setSuggested] = useState(null); // {loading} | {data} | null
  useEffect(() => {
    setText(store.draft(c.id));
    setSuggested(null);
  }, [c.id]);
  const writable = canWrite(state, c);
  const match = /^\/(\S*)$/.exec(text);
  const suggestions = useMemo(() => {
    if (!match) return [];
    const q = match[1].toLowerCase();
    return state.canned.filter((r) => r.shortcut.toLowerCase().startsWith(q) || r.title.toLowerCase().includes(q)).slice(0, 6);
  }, [text, state.canned]);
  const update = (value) => {
    setText(value);
    setPick(0);
    store.setDraft(c.id, value);
  };
  const insert = (response) => {
    update(response.text.replace(/\{operator\}/g, state.me.name));
    area.current && area.current.focus();
  };
  const suggest = async () => {
    const id = c.id;
    setSuggested({ loading: true });
    try {
      const data = await store.suggestion(id);
      if (store.state.selected === id) setSuggested({ data });
    } catch (error) {
      setSuggested(null);
      store.toast("error", error.code === "no_question" ? t.suggestionNoQuestion : errorText(t, error));
    }
  };
  const insertSuggestion = () => {
    update(suggested.data.text);
    setSuggested(null);
    area.current && area.current.focus();
  };
  const submit = async () => {
    const value = text.trim();
    if (!value || !writable) return;
    update("");
    try {
      await store.sendMessage(c.id, value);
    } catch (error) {
      update(value);
      store.toast("error", t.sendFailed + " " + errorText(t, error));
    }
  };
  const onKeyDown = (event) => {
    if (suggestions.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        setPick((pick + step + suggestions.length) % suggestions.length);
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        insert(suggestions[pick] || suggestions[0]);
        return;
      }
      if (event.key === "Escape") {
        update("");
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  return html`
    <div class="composer">
      ${suggestions.length > 0 &&
      html`<ul class="canned" role="listbox" data-testid="canned">
        ${suggestions.map(
          (r, i) => html`<li role="option" aria-selected=${i === pick} class=${i === pick ? "on" : ""}
            onMouseDown=${(e) => {
              e.preventDefault();
              insert(r);
            }}><code>/${r.shortcut}</code> <strong>${r.title}</strong> <span class="muted">${r.text.slice(0, 70)}</span></li>`,
        )}
      </ul>`}
      ${suggested && suggested.data &&
      html`<div class="suggestion" data-testid="suggestion">
        <div class="suggestion-head"><strong>${t.suggestionTitle}</strong>
          ${suggested.data.text &&
          html`<span class="muted small">${t.suggestionConfidence} ${Math.round(suggested.data.confidence * 100)}%</span>`}</div>
        ${suggested.data.text
          ? html`<div class="suggestion-text" data-testid="suggestion-text"><${RichText} text=${suggested.data.text} /></div>
              ${suggested.data.sources.length > 0 &&
              html`<div class="muted small" data-testid="suggestion-sources">${t.suggestionSources}: ${suggested.data.sources.map((s) => s.title).join(" · ")}</div>`}
              ${suggested.data.handoff_reason && html`<div class="muted small">${t.suggestionHandoff}</div>`}`
          : html`<div class="muted" data-testid="suggestion-none">${noSuggestionText(t, suggested.data.handoff_reason)}</div>`}
        <div class="suggestion-bar">
          ${suggested.data.text &&
          html`<button type="button" class="primary" disabled=${!writable} onClick=${insertSuggestion} data-testid="use-suggestion">${t.suggestionUse}</button>`}
          <button type="button" class="secondary" onClick=${() => setSuggested(null)}>${t.suggestionDismiss}</button>
        </div>
      </div>`}
      <textarea ref=${area} id="composer" rows="3" value=${text} disabled=${!writable}
        placeholder=${writable ? t.composerPlaceholder : readOnlyHint(t, state, c)}
        onInput=${(e) => update(e.target.value)} onKeyDown=${onKeyDown} data-testid="composer"
        aria-label=${t.composerPlaceholder}></textarea>
      <div class="composer-bar">
        <span class="hint">${t.shortcuts}</span>
        <button type="button" class="secondary" disabled=${!writable || (suggested && suggested.loading)} onClick=${suggest}
          data-testid="suggest">${suggested && suggested.loading ? t.suggesting : t.suggest}</button>
        <button type="button" class="primary" disabled=${!writable || !text.trim()} onClick=${submit} data-testid="send">${t.send}</button>
      </div>
    </div>
  `;
}

// Why the composer is closed: the conversation can be taken, or it is someone else's.
function readOnlyHint(t, state, c) {
  if (c.lost) return nowWith(t, state, c) + ".";
  if (takeable(state, c)) return t.composerReadOnly;
  return closed(c) ? t.composerClosed : t.composerNotYours;
}

// ------------------------------------------------------------------------------ details

function Details({ t, state }) {
  const c = state.selected ? state.conversations[state.selected] : null;
  if (!c) return html`<aside class="pane details-pane"></aside>`;
  const writable = canWrite(state, c);
  const summary = c.summaryState === "server" && c.summary ? c.summary : localSummary(c);
  return html`
    <aside class="pane details-pane" aria-label=${t.details}>
      <section class="card">
        <h3>${t.details}</h3>
        <dl>
          <dt>${t.status}</dt><dd data-testid="detail-status">${c.status ? t.statuses[c.status] || c.status : "—"}</dd>
          <dt>${t.owner}</dt><dd data-testid="detail-owner">${c.mine ? state.me.name + " (" + t.you + ")"
            : ownerName(state, c) || (c.lost ? t.aColleague : t.nobody)}</dd>
          <dt>${t.handoffReason}</dt><dd data-testid="detail-reason">${reasonText(t, c.reason)}</dd>
          <dt>${t.priority}</dt><dd>${c.priority === "high" ? html`<span class="badge high">${t.priorityHigh}</span>` : t.priorityNormal}</dd>
          ${c.intent && html`<dt>${t.topic}</dt><dd>${c.intent}</dd>`}
        </dl>
        ${takeable(state, c) && html`<button type="button" class="primary wide" onClick=${() => takeConversation(t, c.id)} data-testid="take-selected">
          ${state.offers[c.id] ? t.accept : t.take} <kbd>Alt+T</kbd></button>`}
      </section>
      <section class="card" data-testid="summary">
        <h3>${t.summary} ${c.summaryState !== "server" && html`<span class="muted small">(${t.summaryFromTranscript})</span>`}</h3>
        <dl class="stack">
          <dt>${t.customerWants}</dt><dd>${summary.customer_wants || "—"}</dd>
          <dt>${t.aiAnswered}</dt><dd>${summary.ai_answered && summary.ai_answered.length ? html`<ul>${summary.ai_answered.map((x) => html`<li>${x}</li>`)}</ul>` : "—"}</dd>
          <dt>${t.stillOpen}</dt><dd>${summary.still_open && summary.still_open.length ? html`<ul>${summary.still_open.map((x) => html`<li>${x}</li>`)}</ul>` : "—"}</dd>
          <dt>${t.mood}</dt><dd class=${summary.mood === "upset" ? "upset" : ""}>${summary.mood === "upset" ? t.moodUpset : t.moodNeutral}</dd>
        </dl>
      </section>
      <${Notes} t=${t} state=${state} c=${c} writable=${!c.lost && (writable || SUPERVISING.has(state.me.role))} />
      ${writable && html`<${Actions} t=${t} state=${state} c=${c} />`}
    </aside>
  `;
}

function Notes({ t, state, c, writable }) {
  const [text, setText] = useState("");
  const add = async (event) => {
    event.preventDefault();
    const value = text.trim();
    if (!value) return;
    try {
      await store.call("POST", "/v1/conversations/" + c.id + "/notes", { text: value });
      setText("");
      store.toast("ok", t.noteAdded);
    } catch (error) {
      store.toast("error", errorText(t, error));
    }
  };
  return html`
    <section class="card notes" data-testid="notes">
      <h3>${t.notes} <span class="muted small">${t.notesHint}</span></h3>
      ${c.notes.length ? html`<ul class="note-list">${c.notes.map((n) => html`<li data-testid="note"><div>${n.text}</div>
        <span class="muted small" data-testid="note-author">${operatorName(t, state, n.operator_id)} · ${clock(n.created_at, t)}</span></li>`)}</ul>` : html`<p class="muted small">${t.noNotes}</p>`}
      ${writable && html`<form onSubmit=${add} class="inline-form">
        <textarea rows="2" value=${text} placeholder=${t.notePlaceholder} aria-label=${t.addNote}
          onInput=${(e) => setText(e.target.value)} data-testid="note-input"
          onKeyDown=${(e) => e.key === "Enter" && (e.ctrlKey || e.metaKey) && add(e)}></textarea>
        <button type="submit" class="secondary" data-testid="add-note">${t.addNote}</button>
      </form>`}
    </section>
  `;
}

function Actions({ t, state, c }) {
  const [closing, setClosing] = useState(false);
  const [resolution, setResolution] = useState("resolved");
  const [target, setTarget] = useState("");
  const first = useRef(null);
  useEffect(() => {
    const open = () => setClosing(true);
    addEventListener("dashboard:close", open);
    return () => removeEventListener("dashboard:close", open);
  }, []);
  useEffect(() => {
    if (closing && first.current) first.current.focus();
  }, [closing]);
  const act = async (path, body, done) => {
    try {
      await store.call("POST", "/v1/conversations/" + c.id + path, body);
      store.toast("ok", done);
      return true;
    } catch (error) {
      store.toast("error", errorText(t, error));
      return false;
    }
  };
  useEffect(() => {
    store.loadOperators(); // fresh presence and load each time a conversation's actions show
  }, [c.id]);
  // Online first, then away, then offline; an offline operator cannot take it (routing would queue it).
  const rank = { online: 0, away: 1, offline: 2 };
  const others = Object.entries(state.operators)
    .filter(([id]) => id !== state.me.operatorId && id !== c.ownerId)
    .sort(([, a], [, b]) => (rank[a.presence] ?? 3) - (rank[b.presence] ?? 3) || String(a.name).localeCompare(String(b.name)));
  return html`
    <section class="card actions">
      ${closing
        ? html`<form class="close-form" data-testid="close-form" onSubmit=${async (e) => {
            e.preventDefault();
            if (await act("/close", { resolution }, t.closed)) setClosing(false);
          }} onKeyDown=${(e) => e.key === "Escape" && setClosing(false)}>
            <fieldset>
              <legend>${t.closeAs}</legend>
              ${["resolved", "not_resolved", "cancelled"].map(
                (r, i) => html`<label class="radio"><input type="radio" name="resolution" value=${r} ref=${i === 0 ? first : null}
                  checked=${resolution === r} onChange=${() => setResolution(r)} data-testid=${"resolution-" + r} /> ${t[r]}</label>`,
              )}
            </fieldset>
            <div class="row">
              <button type="submit" class="danger" data-testid="confirm-close">${t.confirmClose}</button>
              <button type="button" class="ghost" onClick=${() => setClosing(false)}>${t.cancel}</button>
            </div>
          </form>`
        : html`<button type="button" class="danger wide" onClick=${() => setClosing(true)} data-testid="close">
            ${t.close} <kbd>Alt+C</kbd></button>`}
      <form class="inline-form" onSubmit=${(e) => {
        e.preventDefault();
        store.transfer(c.id, target).then(
          () => {
            store.toast("ok", t.transferred);
            setTarget("");
          },
          (error) => store.toast("error", errorText(t, error)),
        );
      }}>
        <label class="small muted" for="transfer-to">${t.transferTo}</label>
        <select id="transfer-to" value=${target} onChange=${(e) => setTarget(e.target.value)} data-testid="transfer-to">
          <option value="">${t.transferToQueue}</option>
          ${others.map(
            ([id, o]) => html`<option value=${id} disabled=${o.presence === "offline"}>
              ${(o.name || id) + " · " + (t[o.presence] || o.presence || "?") + (o.capacity ? " · " + (o.active || 0) + "/" + o.capacity : "")}</option>`,
          )}
        </select>
        <button type="submit" class="secondary" data-testid="transfer">${t.transfer}</button>
      </form>
      <button type="button" class="secondary wide" onClick=${() => act("/release", undefined, t.handedBack)} data-testid="hand-back">
        ${t.handBack}</button>
    </section>
  `;
}


// ------------------------------------------------------------------------------ tickets

function operatorName(t, state, id) {
  if (!id) return t.unassigned;
  const known = state.operators[id];
  const name = (known && known.name) || id;
  return id === state.me.operatorId ? name + " (" + t.you + ")" : name;
}

function TicketStatus({ t, status }) {
  return html`<span class=${"status t-" + status} data-testid="ticket-status-pill">${t.ticketStatuses[status] || status}</span>`;
}

function PriorityBadge({ t, priority }) {
  return html`<span class=${"badge p-" + priority} data-testid="ticket-priority-badge">${t.ticketPriorities[priority] || priority}</span>`;
}

// How long a clock has left (or is late by); a paused clock's frozen remainder; nothing once met.
// `beside`: next to the clock's own badge, which already says "paused".
function slaTime(t, clock, now, beside = false) {
  if (clock.state === "met") return "";
  if (clock.state === "paused") {
    if (clock.remaining_seconds == null) return "";
    return (beside ? t.left : t.pausedLeft) + " " + duration(clock.remaining_seconds * 1000);
  }
  if (!clock.due_at) return "";
  const left = new Date(clock.due_at).getTime() - now;
  // A breached clock is late even if this screen's clock is a little behind the server's.
  return left > 0 && clock.state !== "breached" ? t.dueIn + " " + duration(left) : t.overdueBy + " " + duration(Math.max(-left, 0));
}

function SlaBadge({ t, state }) {
  return html`<span class=${"sla sla-" + state} data-testid="sla-badge" data-state=${state}>${t.slaStates[state] || state}</span>`;
}

// The clock a list row talks about: the worst one still counting, else the worst.
function headlineClock(ticket) {
  const clocks = ticket.sla || [];
  return clocks.slice().sort((a, b) => SLA_RANK[b.state] - SLA_RANK[a.state])[0] || null;
}

function TicketsView({ t, state }) {
  return html`
    <div class="panes">
      <${TicketList} t=${t} state=${state} />
      <${TicketThread} t=${t} state=${state} />
      <${TicketSide} t=${t} state=${state} />
    </div>
  `;
}

function TicketList({ t, state }) {
  const now = useNow();
  const supervising = SUPERVISING.has(state.me.role);
  const tabs = supervising ? ["all", "mine", "risk"] : ["all", "mine"];
  const labels = { all: t.ticketTabAll, mine: t.ticketTabMine, risk: t.ticketTabRisk };
  const f = state.ticketFilters;
  const tickets = state.ticketList.map((id) => state.tickets[id]).filter(Boolean);
  const operators = Object.entries(state.operators).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
  // Arrow keys move along the list (and open the ticket), as in a mail client.
  const onKeyDown = (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = Array.from(event.currentTarget.querySelectorAll(".item-main"));
    const at = buttons.indexOf(document.activeElement);
    const next = buttons[Math.min(Math.max(at + (event.key === "ArrowDown" ? 1 : -1), 0), buttons.length - 1)];
    if (next) {
      event.preventDefault();
      next.focus();
      next.click();
    }
  };
  let body;
  if (state.ticketState === "error") body = html`<p class="empty">${errorText(t, state.ticketError)}</p>`;
  else if (!tickets.length) {
    body = html`<p class="empty">${state.ticketState === "loading" ? t.loadingTickets : state.ticketTab === "risk" ? t.noTicketsRisk : t.noTickets}</p>`;
  } else body = tickets.map((ticket) => html`<${TicketItem} t=${t} state=${state} ticket=${ticket} now=${now} />`);
  return html`
    <nav class="pane list-pane" aria-label=${t.viewTickets}>
      <div class="tabs" role="tablist">
        ${tabs.map(
          (tab) => html`
            <button type="button" role="tab" aria-selected=${state.ticketTab === tab}
              class=${"tab" + (state.ticketTab === tab ? " on" : "")} onClick=${() => store.showTicketTab(tab)}
              title=${tab === "risk" ? "Alt+5" : ""} data-testid=${"ticket-tab-" + tab}>
              ${labels[tab]}${state.ticketTab === tab ? html` <span class="count">${tickets.length}</span>` : ""}
            </button>
          `,
        )}
      </div>
      <div class="ticket-filters" role="search" aria-label=${t.filters}>
        <input type="search" id="ticket-search" value=${f.q} placeholder=${t.searchTickets} aria-label=${t.searchTickets}
          onInput=${(e) => store.setTicketFilter("q", e.target.value)}
          onKeyDown=${(e) => e.key === "Escape" && store.setTicketFilter("q", "")} data-testid="ticket-search" />
        <div class="filter-grid">
          <select aria-label=${t.status} value=${f.status} onChange=${(e) => store.setTicketFilter("status", e.target.value)}
            data-testid="ticket-filter-status">
            <option value="">${t.anyStatus}</option>
            ${Object.keys(t.ticketStatuses).map((s) => html`<option value=${s}>${t.ticketStatuses[s]}</option>`)}
          </select>
          <select aria-label=${t.priority} value=${f.priority} onChange=${(e) => store.setTicketFilter("priority", e.target.value)}
            data-testid="ticket-filter-priority">
            <option value="">${t.anyPriority}</option>
            ${["urgent", "high", "normal", "low"].map((p) => html`<option value=${p}>${t.ticketPriorities[p]}</option>`)}
          </select>
          ${state.ticketTab !== "risk" && html`
            <select aria-label=${t.sla} value=${f.sla} onChange=${(e) => store.setTicketFilter("sla", e.target.value)}
              data-testid="ticket-filter-sla">
              <option value="">${t.anySla}</option>
              ${Object.keys(t.slaStates).map((s) => html`<option value=${s}>${t.slaStates[s]}</option>`)}
            </select>`}
          ${state.ticketTab !== "mine" && html`
            <select aria-label=${t.assignee} value=${f.assignee} onChange=${(e) => store.setTicketFilter("assignee", e.target.value)}
              data-testid="ticket-filter-assignee">
              <option value="">${t.anyAssignee}</option>
              ${operators.map(([id, o]) => html`<option value=${id}>${id === state.me.operatorId ? o.name + " (" + t.you + ")" : o.name || id}</option>`)}
            </select>`}
        </div>
      </div>
      <ul class="items" data-testid="ticket-list" onKeyDown=${onKeyDown}>${body}</ul>
    </nav>
  `;
}

function TicketItem({ t, state, ticket, now }) {
  const id = ticket.ticket_id;
  const clockShown = headlineClock(ticket);
  const urgent = ticket.priority === "urgent" || ticket.priority === "high";
  return html`
    <li class=${"item" + (state.ticketSelected === id ? " selected" : "") + (urgent ? " high" : "")}
      data-testid="ticket-item" data-ticket-id=${id}>
      <button type="button" class="item-main" onClick=${() => store.selectTicket(id)}
        aria-current=${state.ticketSelected === id ? "true" : null}>
        <span class="item-top">
          <span class="item-id">${ticket.ticket_number}</span>
          <${TicketStatus} t=${t} status=${ticket.status} />
          <${PriorityBadge} t=${t} priority=${ticket.priority} />
        </span>
        <span class="item-reason">${ticket.subject || "—"}</span>
        <span class="item-sub item-sla">
          <${SlaBadge} t=${t} state=${ticket.sla_state} />
          ${clockShown && ticket.sla_state !== "met" ? html`<span class="sla-time">${t.slaClocks[clockShown.clock]} ${slaTime(t, clockShown, now)}</span>` : ""}
        </span>
        <span class="item-sub">${ticket.contact_name} · ${operatorName(t, state, ticket.assignee_id)} · ${clock(ticket.updated_at, t)}</span>
      </button>
    </li>
  `;
}

function Bubble({ t, who, sender, text, at, testid, pending }) {
  return html`
    <div class=${"msg " + sender + (pending ? " pending" : "")} data-testid=${testid} data-sender=${sender}>
      <div class="meta"><span class="sender">${who}</span> ${pending ? t.sending : at ? dateTime(at, t) : ""}</div>
      <div class="bubble"><${RichText} text=${text} /></div>
    </div>
  `;
}

function dateTime(value, t) {
  return formatDate(value, t.lang, { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function TicketThread({ t, state }) {
  const id = state.ticketSelected;
  const view = id ? state.ticketDetail[id] : null;
  const [full, setFull] = useState(false);
  const scroller = useRef(null);
  useEffect(() => setFull(false), [id]);
  const replies = view ? view.replies.length + (state.ticketPending[id] || []).length : 0;
  useEffect(() => {
    if (scroller.current) scroller.current.scrollTop = scroller.current.scrollHeight;
  }, [replies, id]);
  if (!id) return html`<section class="pane chat-pane empty-chat"><p class="empty">${t.selectTicket}</p></section>`;
  if (!view) return html`<section class="pane chat-pane empty-chat"><p class="empty">${t.loadingTickets}</p></section>`;
  const conversation = view.conversation_id ? state.conversations[view.conversation_id] : null;
  const toggleFull = () => {
    if (!full) store.follow(view.conversation_id); // the stream sends its history
    setFull(!full);
  };
  const excerpt = view.transcript;
  return html`
    <section class="pane chat-pane" aria-label=${view.ticket_number}>
      <div class="chat-head">
        <div class="ticket-title">
          <h2 data-testid="ticket-number">${view.ticket_number}</h2>
          <span class="muted">${view.subject || "—"}</span>
        </div>
        <div class="head-badges">
          <${PriorityBadge} t=${t} priority=${view.priority} />
          <${TicketStatus} t=${t} status=${view.status} />
        </div>
      </div>
      <div class="transcript" ref=${scroller} data-testid="ticket-thread" aria-live="polite">
        ${excerpt && html`
          <div class="divider ai">${full ? t.wholeConversation : t.transcriptTitle + " · " + excerpt.total_messages + " " + t.messagesTotal}</div>
          ${full && conversation
            ? conversation.error
              ? html`<p class="muted small">${errorText(t, conversation.error)}</p>`
              : conversation.messages.length
                ? conversation.messages.map((m) => html`<${Message} t=${t} m=${m} />`)
                : html`<p class="muted small">${t.conversationLoading}</p>`
            : excerpt.lines.map(
                (line) => html`<${Bubble} t=${t} who=${t.senders[line.sender] || line.sender} sender=${line.sender}
                  text=${line.text} testid="transcript-line" />`,
              )}
          ${view.conversation_id && html`<button type="button" class="secondary show-all" onClick=${toggleFull}
            data-testid="show-conversation">${full ? t.hideConversation : t.showConversation}</button>`}
        `}
        <div class="divider op">${t.customerRequest}</div>
        <${Bubble} t=${t} who=${view.contact.name} sender="customer" text=${view.message || view.subject || "—"}
          at=${view.created_at} testid="ticket-message" />
        ${view.replies.map(
          (r) => html`<${Bubble} t=${t} who=${r.author === "customer" ? view.contact.name : operatorName(t, state, r.operator_id)}
            sender=${r.author} text=${r.text} at=${r.created_at} testid="ticket-reply" />`,
        )}
        ${(state.ticketPending[id] || []).map(
          (p) => html`<${Bubble} t=${t} who=${state.me.name} sender="operator" text=${p.text} pending=${true} testid="ticket-reply-pending" />`,
        )}
      </div>
      <${TicketComposer} t=${t} view=${view} />
    </section>
  `;
}

function TicketComposer({ t, view }) {
  const key = "ticket:" + view.ticket_id;
  const [text, setText] = useState(store.draft(key));
  useEffect(() => setText(store.draft(key)), [key]);
  const closedTicket = view.status === "CLOSED";
  // "Send and wait": the reply, then the ticket set waiting for the customer (its clocks pause).
  // Both are commands about the ticket, applied in the order sent: the reply starts an open
  // ticket, and the change then finds it in progress.
  const canWait = (TICKET_MOVES[view.status] || []).includes("WAITING_CUSTOMER");
  const update = (value) => {
    setText(value);
    store.setDraft(key, value);
  };
  const submit = async (thenWait) => {
    const value = text.trim();
    if (!value || closedTicket) return;
    update("");
    try {
      await store.replyToTicket(view.ticket_id, value);
    } catch (error) {
      update(value);
      store.toast("error", t.sendFailed + " " + errorText(t, error));
      return;
    }
    if (!thenWait || !canWait) return;
    try {
      await store.updateTicket(view.ticket_id, { status: "WAITING_CUSTOMER" });
    } catch (error) {
      store.toast("error", t.waitFailed + " " + errorText(t, error));
    }
  };
  return html`
    <div class="composer">
      <textarea id="ticket-reply" rows="3" value=${text} disabled=${closedTicket}
        placeholder=${closedTicket ? t.replyClosed : t.replyPlaceholder} aria-label=${t.replyPlaceholder}
        onInput=${(e) => update(e.target.value)} data-testid="ticket-reply-input"
        onKeyDown=${(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            submit(e.shiftKey);
          }
        }}></textarea>
      <div class="composer-bar">
        <span class="hint">${t.ticketShortcuts}</span>
        ${canWait &&
        html`<button type="button" class="secondary" disabled=${!text.trim()} onClick=${() => submit(true)}
          title=${t.sendAndWaitHint} data-testid="ticket-send-and-wait">${t.sendAndWait} <kbd>Ctrl+⇧+↵</kbd></button>`}
        <button type="button" class="primary" disabled=${closedTicket || !text.trim()} onClick=${() => submit(false)}
          data-testid="ticket-send-reply">${t.sendReply} <kbd>Ctrl+↵</kbd></button>
      </div>
    </div>
  `;
}

function TicketSide({ t, state }) {
  const now = useNow();
  const id = state.ticketSelected;
  const view = id ? state.ticketDetail[id] : null;
  if (!view) return html`<aside class="pane details-pane"></aside>`;
  const change = async (body) => {
    try {
      await store.updateTicket(view.ticket_id, body);
      store.toast("ok", t.changeSent);
    } catch (error) {
      store.toast("error", errorText(t, error));
    }
  };
  const moves = TICKET_MOVES[view.status] || [];
  const operators = Object.entries(state.operators).sort(([, a], [, b]) => String(a.name).localeCompare(String(b.name)));
  const contact = view.contact;
  const closedTicket = view.status === "CLOSED";
  return html`
    <aside class="pane details-pane" aria-label=${t.details}>
      <section class="card" data-testid="ticket-details">
        <h3>${t.details}</h3>
        <div class="field">
          <label for="ticket-status">${t.status}</label>
          <select id="ticket-status" value=${view.status} disabled=${!moves.length}
            onChange=${(e) => change({ status: e.target.value })} data-testid="ticket-status">
            ${[view.status, ...moves].map((s) => html`<option value=${s}>${t.ticketStatuses[s] || s}</option>`)}
          </select>
        </div>
        <div class="field">
          <label for="ticket-priority">${t.priority}</label>
          <select id="ticket-priority" value=${view.priority} disabled=${closedTicket}
            onChange=${(e) => change({ priority: e.target.value })} data-testid="ticket-priority">
            ${["urgent", "high", "normal", "low"].map((p) => html`<option value=${p}>${t.ticketPriorities[p]}</option>`)}
          </select>
        </div>
        <div class="field">
          <label for="ticket-assignee">${t.assignee}</label>
          <select id="ticket-assignee" value=${view.assignee_id || ""} disabled=${closedTicket}
            onChange=${(e) => change({ assignee_id: e.target.value || null })} data-testid="ticket-assignee">
            <option value="">${t.unassigned}</option>
            ${operators.map(([oid, o]) => html`<option value=${oid}>${(o.name || oid) + (o.presence ? " · " + (t[o.presence] || o.presence) : "")}</option>`)}
            ${view.assignee_id && !state.operators[view.assignee_id] && html`<option value=${view.assignee_id}>${view.assignee_id}</option>`}
          </select>
        </div>
        ${view.assignee_id !== state.me.operatorId && !closedTicket &&
        html`<button type="button" class="secondary" onClick=${() => change({ assignee_id: state.me.operatorId })}
          data-testid="ticket-assign-me">${t.assignToMe}</button>`}
      </section>
      <section class="card" data-testid="ticket-sla">
        <h3>${t.sla} <${SlaBadge} t=${t} state=${view.sla_state} /></h3>
        <dl>
          ${(view.sla || []).map(
            (c) => html`<dt>${t.slaClocks[c.clock] || c.clock}</dt>
              <dd class="sla-line"><${SlaBadge} t=${t} state=${c.state} /> <span class="muted small">${slaTime(t, c, now, true)}</span></dd>`,
          )}
        </dl>
      </section>
      <section class="card" data-testid="ticket-contact">
        <h3>${t.contact}</h3>
        <div class="contact">
          <strong>${contact.name}</strong>
          ${contact.email && html`<span class="wrap-any">${contact.email}</span>`}
          ${contact.phone && html`<span>${contact.phone}</span>`}
        </div>
        <dl>
          <dt>${t.preferredContact}</dt><dd>${t.channels[contact.preferred_contact] || contact.preferred_contact}</dd>
          ${view.language && html`<dt>${t.language}</dt><dd>${view.language.toUpperCase()}</dd>`}
          <dt>${t.created}</dt><dd>${dateTime(view.created_at, t)}</dd>
        </dl>
      </section>
      <${TicketNotes} t=${t} state=${state} view=${view} />
      <section class="card" data-testid="ticket-history">
        <h3>${t.history}</h3>
        <ul class="history">
          ${(view.history || []).map(
            (h) => html`<li><${TicketStatus} t=${t} status=${h.status} />
              <span class="muted small">${dateTime(h.changed_at, t)} · ${t.by} ${h.changed_by === "customer" ? t.customer : h.changed_by === "system" ? t.system : operatorName(t, state, h.changed_by)}</span></li>`,
          )}
        </ul>
      </section>
    </aside>
  `;
}

function TicketNotes({ t, state, view }) {
  const [text, setText] = useState("");
  const add = async (event) => {
    event.preventDefault();
    const value = text.trim();
    if (!value) return;
    try {
      await store.noteOnTicket(view.ticket_id, value);
      setText("");
      store.toast("ok", t.noteAdded);
    } catch (error) {
      store.toast("error", errorText(t, error));
    }
  };
  return html`
    <section class="card notes" data-testid="ticket-notes">
      <h3>${t.notes} <span class="muted small">${t.notesHint}</span></h3>
      ${view.notes.length
        ? html`<ul class="note-list">${view.notes.map((n) => html`<li data-testid="ticket-note"><div>${n.text}</div>
            <span class="muted small">${operatorName(t, state, n.operator_id)} · ${dateTime(n.created_at, t)}</span></li>`)}</ul>`
        : html`<p class="muted small">${t.noNotes}</p>`}
      <form onSubmit=${add} class="inline-form">
        <textarea rows="2" value=${text} placeholder=${t.notePlaceholder} aria-label=${t.addNote}
          onInput=${(e) => setText(e.target.value)} data-testid="ticket-note-input"
          onKeyDown=${(e) => e.key === "Enter" && (e.ctrlKey || e.metaKey) && add(e)}></textarea>
        <button type="submit" class="secondary" data-testid="ticket-add-note">${t.addNote}</button>
      </form>
    </section>
  `;
}

// ------------------------------------------------------------------------------ shell

function Toast({ state }) {
  if (!state.toast) return null;
  return html`<div class=${"toast " + state.toast.kind} role=${state.toast.kind === "ok" ? "status" : "alert"} data-testid="toast">${state.toast.text}</div>`;
}

function shortcuts(t, event) {
  const state = store.state;
  if (!state.session || !event.altKey || event.ctrlKey || event.metaKey) return;
  const c = state.selected ? state.conversations[state.selected] : null;
  if (event.code === "KeyT") {
    event.preventDefault();
    const offered = Object.keys(state.offers);
    const id = takeable(state, c) ? c.id : offered[0] || (state.queue[0] && state.queue[0].conversation_id);
    if (id) takeConversation(t, id);
  } else if (event.code === "KeyC") {
    event.preventDefault();
    if (c && canWrite(state, c)) dispatchEvent(new Event("dashboard:close"));
  } else if (/^Digit[123]$/.test(event.code)) {
    event.preventDefault();
    const tabs = SUPERVISING.has(state.me.role) ? ["mine", "queue", "all"] : ["mine", "queue"];
    const tab = tabs[Number(event.code.slice(5)) - 1];
    if (tab) store.showTab(tab);
  } else if (event.code === "Digit4") {
    event.preventDefault();
    store.showView("tickets");
  } else if (event.code === "Digit5" && SUPERVISING.has(state.me.role)) {
    event.preventDefault();
    store.showTicketTab("risk");
  } else if (event.code === "Digit6" && SUPERVISING.has(state.me.role)) {
    event.preventDefault();
    store.showView("analytics");
  } else if (event.code === "Digit7" && SUPERVISING.has(state.me.role)) {
    event.preventDefault();
    store.showView("kb");
  } else if (event.code === "Digit8" && SUPERVISING.has(state.me.role)) {
    event.preventDefault();
    store.showView("settings");
  }
}

// "/" anywhere but in a field goes to the ticket search (the tickets view only).
function slashToSearch(event) {
  const target = event.target;
  const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  if (event.key !== "/" || typing || event.altKey || event.ctrlKey || event.metaKey) return;
  if (store.state.view !== "tickets") return;
  const search = document.getElementById("ticket-search");
  if (search) {
    event.preventDefault();
    search.focus();
  }
}

function App() {
  const state = useStore();
  const [lang, setLang] = useState(langHolder.value);
  langHolder.value = lang;
  langHolder.set = (code) => {
    saveLanguage(code);
    setLang(code);
  };
  const t = words(lang);
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = "Lucine Support · " + t.title;
  }, [lang]);
  useEffect(() => {
    const onKey = (event) => {
      shortcuts(words(langHolder.value), event);
      slashToSearch(event);
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);
  useEffect(() => {
    store.onOffer = (id, data) => {
      const tt = words(langHolder.value);
      chime();
      if ("Notification" in window && Notification.permission === "granted") {
        const n = new Notification(tt.newOffer, { body: tt.notificationBody + " " + reasonText(tt, data.reason), tag: id });
        n.onclick = () => {
          focus();
          store.showTab("mine");
          store.select(id);
        };
      }
    };
    store.onPresenceChanged = (presence, reason) => {
      const tt = words(langHolder.value);
      const why = reason === "missed_offers" && presence === "away" ? tt.awayAfterMissedOffers : "";
      store.toast("warn", why || tt.presenceNow + " " + (tt[presence] || presence) + ".");
    };
    store.onConversationLost = (id, reason) => {
      const tt = words(langHolder.value);
      const c = store.state.conversations[id];
      const where = reason === "requeued" ? tt.backInQueue : nowWith(tt, store.state, c);
      store.toast("warn", tt.reassignedAway + " " + shortId(id) + " · " + where);
    };
    store.onTicketRefused = (id, data) => {
      const tt = words(langHolder.value);
      store.toast("error", tt.changeRefused + ": " + (data.message || data.code));
    };
  }, []);
  if (!state.session) return html`<${Login} t=${t} />`;
  return html`
    <div class="app">
      <${Header} t=${t} state=${state} />
      <${Offers} t=${t} state=${state} />
      ${state.view === "analytics" && SUPERVISING.has(state.me.role)
        ? html`<${AnalyticsView} lang=${lang} store=${store} />`
        : state.view === "kb" && SUPERVISING.has(state.me.role)
        ? html`<${KnowledgeView} lang=${lang} store=${store} />`
        : state.view === "settings" && SUPERVISING.has(state.me.role)
        ? html`<${SettingsView} lang=${lang} store=${store} />`
        : state.view === "tickets"
        ? html`<${TicketsView} t=${t} state=${state} />`
        : html`<div class="panes">
            <${ConversationList} t=${t} state=${state} />
            <${Chat} t=${t} state=${state} />
            <${Details} t=${t} state=${state} />
          </div>`}
      <${Toast} state=${state} />
    </div>
  `;
}

render(html`<${App} />`, document.getElementById("app"));
store.start();

// The analytics page (supervisors and admins): the tenant's figures over a period from
// GET /v1/analytics/*, charts drawn with uPlot (vendored), drill-downs to the conversations behind a
// figure, CSV exports, and live tiles of the moment (GET /v1/analytics/live). Its own words and
// styles live here and in analytics.css, so the rest of the dashboard needs only a hook.
import { html, useEffect, useRef, useState } from "/dashboard/vendor/preact-htm.module.js";
import uPlot from "/dashboard/vendor/uplot.esm.js";
import { fill, formatDate } from "/dashboard/i18n.js";

const LIVE_EVERY_MS = 15000;
const DAY_MS = 86400000;

const WORDS = {
  it: {
    lang: "it",
    title: "Analisi",
    period: "Periodo",
    today: "Oggi",
    days7: "7 giorni",
    days30: "30 giorni",
    days90: "90 giorni",
    from: "Dal",
    to: "Al",
    refresh: "Aggiorna",
    loading: "Caricamento…",
    failed: "Dati non disponibili",
    live: "Adesso",
    liveWithAi: "Con l'assistente",
    liveQueued: "In coda",
    liveWithOperators: "Con un operatore",
    liveOnline: "Operatori online",
    started: "Conversazioni",
    aiResolution: "Risolte dall'AI",
    aiResolutionHint: "{n} di {d} con l'AI · {c} confermate",
    automation: "Automazione",
    automationHint: "risolte dall'AI sul totale",
    handoffs: "Passate a un operatore",
    abandoned: "Abbandonate",
    abandonedHint: "{q} in coda · {u} senza risposta",
    queueTime: "Attesa in coda (mediana)",
    queueTimeHint: "p90 {p} · {n} attese",
    firstResponse: "Prima risposta operatore",
    tickets: "Ticket aperti",
    slaFirst: "SLA prima risposta",
    slaResolution: "SLA risoluzione",
    slaHint: "{m} rispettati · {x} mancati · {p} in corso",
    csat: "Soddisfazione (CSAT)",
    csatHint: "{n} valutazioni",
    volume: "Volume",
    volumeByHour: "Volume per ora",
    seriesStarted: "Avviate",
    seriesAiResolved: "Risolte dall'AI",
    seriesHandedOff: "Operatore",
    seriesAbandoned: "Abbandonate",
    seriesTickets: "Ticket",
    reasons: "Motivi del passaggio a un operatore",
    busiest: "Ore più trafficate",
    ratings: "Valutazioni",
    operators: "Operatori",
    operator: "Operatore",
    conversations: "Conversazioni",
    turns: "Turni",
    handleTime: "Gestione (media)",
    gaps: "Lacune della base di conoscenza",
    gapsHint: "domande a cui l'assistente non ha saputo rispondere",
    question: "Domanda",
    times: "Volte",
    examples: "Esempi",
    noGaps: "Nessuna lacuna nel periodo.",
    noData: "Nessun dato nel periodo.",
    exportCsv: "CSV",
    exportTitle: "Scarica in CSV",
    drillTitle: "Conversazioni dietro la cifra",
    drillCount: "{n} in tutto",
    drillOpen: "Apri",
    drillClose: "Chiudi",
    drillHint: "Clicca una cifra o un grafico per vedere le conversazioni.",
    hour: "ore",
    when: "Quando",
    none: "—",
    reasonNames: {
      customer_request: "Richiesta del cliente",
      low_confidence: "AI poco sicura",
      sensitive_topic: "Argomento delicato",
      negative_sentiment: "Cliente contrariato",
      unknown_answer: "AI senza risposta",
      answer_not_helpful: "Risposta non utile",
      unspecified: "Non specificato",
    },
  },
  en: {
    lang: "en",
    title: "Analytics",
    period: "Period",
    today: "Today",
    days7: "7 days",
    days30: "30 days",
    days90: "90 days",
    from: "From",
    to: "To",
    refresh: "Refresh",
    loading: "Loading…",
    failed: "Figures unavailable",
    live: "Right now",
    liveWithAi: "With the assistant",
    liveQueued: "In the queue",
    liveWithOperators: "With an operator",
    liveOnline: "Operators online",
    started: "Conversations",
    aiResolution: "Resolved by the AI",
    aiResolutionHint: "{n} of {d} the AI answered · {c} confirmed",
    automation: "Automation",
    automationHint: "resolved by the AI of all",
    handoffs: "Handed to an operator",
    abandoned: "Abandoned",
    abandonedHint: "{q} in the queue · {u} unanswered",
    queueTime: "Time in queue (median)",
    queueTimeHint: "p90 {p} · {n} waits",
    firstResponse: "Operator first response",
    tickets: "Tickets opened",
    slaFirst: "First response SLA",
    slaResolution: "Resolution SLA",
    slaHint: "{m} met · {x} missed · {p} running",
    csat: "Satisfaction (CSAT)",
    csatHint: "{n} ratings",
    volume: "Volume",
    volumeByHour: "Volume by hour",
    seriesStarted: "Started",
    seriesAiResolved: "Resolved by the AI",
    seriesHandedOff: "Operator",
    seriesAbandoned: "Abandoned",
    seriesTickets: "Tickets",
    reasons: "Why customers were handed to an operator",
    busiest: "Busiest hours",
    ratings: "Ratings",
    operators: "Operators",
    operator: "Operator",
    conversations: "Conversations",
    turns: "Turns",
    handleTime: "Handle time (mean)",
    gaps: "Knowledge-base gaps",
    gapsHint: "questions the assistant could not answer",
    question: "Question",
    times: "Times",
    examples: "Examples",
    noGaps: "No gaps in the period.",
    noData: "Nothing in the period.",
    exportCsv: "CSV",
    exportTitle: "Download as CSV",
    drillTitle: "Conversations behind the figure",
    drillCount: "{n} in all",
    drillOpen: "Open",
    drillClose: "Close",
    drillHint: "Click a figure or a chart to see its conversations.",
    hour: "h",
    when: "When",
    none: "—",
    reasonNames: {
      customer_request: "Customer asked",
      low_confidence: "AI unsure",
      sensitive_topic: "Sensitive topic",
      negative_sentiment: "Upset customer",
      unknown_answer: "AI did not know",
      answer_not_helpful: "Answer not helpful",
      unspecified: "Unspecified",
    },
  },
};

// Colours of the series, the same in every chart and legend.
const COLOURS = { started: "#1f5fbf", ai: "#1e7d4f", handoff: "#b26b00", abandoned: "#b3261e", tickets: "#6b4fbb" };

function percent(rate) {
  return rate === null || rate === undefined ? "—" : Math.round(rate * 1000) / 10 + "%";
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  const s = Math.round(value);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

function isoDay(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 10);
}

function presetRange(days) {
  const today = new Date();
  return { from: isoDay(new Date(today.getTime() - (days - 1) * DAY_MS)), to: isoDay(today), preset: days };
}

function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

let stylesAdded = false;
function addStyles() {
  if (stylesAdded) return;
  stylesAdded = true;
  for (const href of ["/dashboard/vendor/uplot.min.css", "/dashboard/analytics.css"]) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }
}

// Reads through the store's session: a 401 refreshes the token once, as the store's own calls do.
async function fetchWithSession(store, path, retried = false) {
  const session = store.state.session;
  if (!session) throw new Error("not logged in");
  const response = await fetch(path, { headers: { Authorization: "Bearer " + session.accessToken } });
  if (response.status === 401 && !retried && (await store.refresh())) return fetchWithSession(store, path, true);
  if (!response.ok) {
    let message = response.status + "";
    try {
      message = (await response.json()).error.message || message;
    } catch {
      /* not JSON */
    }
    throw new Error(message);
  }
  return response;
}

function query(range, extra) {
  const params = new URLSearchParams({ from: range.from, to: range.to, tz: timeZone() });
  for (const [name, value] of Object.entries(extra || {})) if (value !== null && value !== undefined) params.set(name, value);
  return params.toString();
}

async function downloadCsv(store, report, range, extra) {
  const response = await fetchWithSession(store, `/v1/analytics/${report}?${query(range, { ...extra, format: "csv" })}`);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : report + ".csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ------------------------------------------------------------------------------ charts

// One uPlot chart, made again when its data change and resized with its box.
function Chart({ options, data, onPick, testid, label }) {
  const box = useRef(null);
  useEffect(() => {
    const element = box.current;
    if (!element || !data) return undefined;
    const width = () => Math.max(240, element.clientWidth);
    const chart = new uPlot({ ...options, width: width(), height: options.height || 220 }, data, element);
    element.dataset.points = String(data[0].length);
    const resize = new ResizeObserver(() => chart.setSize({ width: width(), height: options.height || 220 }));
    resize.observe(element);
    const pick = () => {
      const index = chart.cursor.idx;
      if (onPick && index !== null && index !== undefined) onPick(index);
    };
    chart.over.addEventListener("click", pick);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [options, data]);
  return html`<div class="an-chart" ref=${box} data-testid=${testid} role="img" aria-label=${label}></div>`;
}

function barSeries(label, colour) {
  return {
    label,
    stroke: colour,
    fill: colour + "cc",
    width: 1,
    paths: uPlot.paths.bars({ size: [0.6, 48], align: 0 }),
    points: { show: false },
  };
}

// Bars over categories (reasons, hours, scores): x is the category's index.
function categoryOptions(labels, series) {
  return {
    height: 210,
    legend: { show: series.length > 1 },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
    axes: [
      {
        splits: () => labels.map((_, i) => i),
        values: (u, splits) => splits.map((i) => labels[i] ?? ""),
        gap: 4,
        size: 34,
      },
      { values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : "")), size: 36 },
    ],
    series: [{}, ...series],
  };
}

// Every day (or, for one day, every hour) of the period on the browser's clock, the days the
// report leaves out (nothing to count) as zeros: the axis shows the whole period.
function slotsOf(range, granularity) {
  const [y, m, d] = range.from.split("-").map(Number);
  const [ty, tm, td] = range.to.split("-").map(Number);
  const slots = [];
  if (granularity === "hour") {
    for (let hour = 0; hour < 24; hour++) slots.push(new Date(y, m - 1, d, hour).getTime());
  } else {
    for (let day = new Date(y, m - 1, d); day <= new Date(ty, tm - 1, td); day = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1))
      slots.push(day.getTime());
  }
  return slots;
}

function VolumeChart({ w, series, granularity, range, onPick }) {
  const reported = series ? series.points : [];
  const slots = slotsOf(range, granularity);
  const byStart = Object.fromEntries(reported.map((p) => [Date.parse(p.period_start), p]));
  const points = slots.map(
    (at) =>
      byStart[at] || {
        period_start: new Date(at).toISOString(),
        conversations_started: 0,
        ai_resolved: 0,
        handed_off: 0,
        abandoned: 0,
        tickets_created: 0,
      },
  );
  const [options, data] = useMemoJson(() => {
    const xs = slots.map((at) => at / 1000);
    const column = (name) => points.map((p) => p[name]);
    const step = granularity === "hour" ? 3600 : 86400;
    const label = (v) =>
      granularity === "hour"
        ? new Date(v * 1000).getHours() + ":00"
        : formatDate(v * 1000, w.lang, { day: "numeric", month: "short" });
    const line = (label, colour, name) => ({ label, stroke: colour, width: 2, points: { size: 6, fill: colour } });
    return [
      {
        height: 240,
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true, range: () => [xs[0] - step / 2, xs[xs.length - 1] + step / 2] },
          y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
        },
        axes: [
          // One tick per day (or every third hour), labelled on the browser's clock.
          { splits: () => xs.filter((_, i) => granularity !== "hour" || i % 3 === 0), values: (u, splits) => splits.map(label), space: 40 },
          { size: 36, values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : "")) },
        ],
        series: [
          { label: w.when, value: (u, v) => (v === null || v === undefined ? "—" : label(v)) },
          { ...barSeries(w.seriesStarted, COLOURS.started), fill: COLOURS.started + "33" },
          line(w.seriesAiResolved, COLOURS.ai),
          line(w.seriesHandedOff, COLOURS.handoff),
          line(w.seriesAbandoned, COLOURS.abandoned),
          line(w.seriesTickets, COLOURS.tickets),
        ],
      },
      [xs, column("conversations_started"), column("ai_resolved"), column("handed_off"), column("abandoned"), column("tickets_created")],
    ];
  }, [points, w, granularity, slots]);
  if (!reported.length) return html`<p class="empty">${w.noData}</p>`;
  return html`<${Chart} options=${options} data=${data} onPick=${(i) => onPick(points[i])} testid="chart-volume"
    label=${w.volume} />`;
}

// useMemo keyed on the JSON of its inputs: the charts are made again only when the figures change.
function useMemoJson(make, inputs) {
  const memo = useRef({ key: null, value: null });
  const key = JSON.stringify(inputs);
  if (memo.current.key !== key) memo.current = { key, value: make() };
  return memo.current.value;
}

function CategoryChart({ labels, values, colour, label, testid, onPick, w }) {
  const [options, data] = useMemoJson(
    () => [categoryOptions(labels, [barSeries(label, colour)]), [labels.map((_, i) => i), values]],
    [labels, values, label],
  );
  if (!values.some((v) => v > 0)) return html`<p class="empty">${w.noData}</p>`;
  return html`<${Chart} options=${options} data=${data} onPick=${onPick} testid=${testid} label=${label} />`;
}

// ------------------------------------------------------------------------------ the page

function Tile({ label, value, hint, onPick, testid, tone }) {
  const body = html`<span class="an-tile-label">${label}</span><strong class="an-tile-value" data-testid=${testid + "-value"}>${value}</strong>
    ${hint && html`<span class="an-tile-hint">${hint}</span>`}`;
  return onPick
    ? html`<button type="button" class=${"an-tile pick " + (tone || "")} onClick=${onPick} data-testid=${testid}>${body}</button>`
    : html`<div class=${"an-tile " + (tone || "")} data-testid=${testid}>${body}</div>`;
}

function ExportButton({ w, onExport }) {
  return html`<button type="button" class="secondary an-export" title=${w.exportTitle} onClick=${onExport}
    data-testid="export">⤓ ${w.exportCsv}</button>`;
}

function Panel({ title, hint, children, onExport, w, testid, wide }) {
  return html`<section class=${"an-panel" + (wide ? " wide" : "")} data-testid=${testid}>
    <header><h3>${title}${hint && html` <span class="small muted">${hint}</span>`}</h3>
      ${onExport && html`<${ExportButton} w=${w} onExport=${onExport} />`}</header>
    ${children}
  </section>`;
}

function LiveTiles({ w, store }) {
  const [live, setLive] = useState(null);
  useEffect(() => {
    let stopped = false;
    const read = async () => {
      try {
        const body = await (await fetchWithSession(store, "/v1/analytics/live")).json();
        if (!stopped) setLive(body);
      } catch {
        if (!stopped) setLive((previous) => previous && { ...previous, stale: true });
      }
    };
    read();
    const timer = setInterval(read, LIVE_EVERY_MS);
    // A change on the operators' stream (queue, assignment, presence) is read at once.
    const unsubscribe = store.subscribe(() => {
      clearTimeout(read.soon);
      read.soon = setTimeout(read, 1500);
    });
    return () => {
      stopped = true;
      clearInterval(timer);
      clearTimeout(read.soon);
      unsubscribe();
    };
  }, []);
  const value = (name) => (live ? live[name] : "…");
  return html`<section class=${"an-live" + (live && live.stale ? " stale" : "")} aria-label=${w.live} data-testid="live">
    <h3><span class="an-pulse" aria-hidden="true"></span>${w.live}</h3>
    <${Tile} label=${w.liveWithAi} value=${value("with_ai")} testid="live-with-ai" />
    <${Tile} label=${w.liveQueued} value=${value("queued")} testid="live-queued" tone=${live && live.queued ? "warn" : ""} />
    <${Tile} label=${w.liveWithOperators} value=${value("with_operators")} testid="live-with-operators" />
    <${Tile} label=${w.liveOnline} value=${value("operators_online")} testid="live-online" />
  </section>`;
}

function Drilldown({ w, drill, onClose, onOpen }) {
  if (!drill) return html`<p class="an-drill-hint muted">${w.drillHint}</p>`;
  return html`<section class="an-drill" aria-live="polite" data-testid="drilldown">
    <header><h3>${w.drillTitle}: ${drill.title}</h3>
      <span class="muted" data-testid="drilldown-count">${drill.view ? fill(w.drillCount, { n: drill.view.count }) : w.loading}</span>
      ${drill.onExport && html`<${ExportButton} w=${w} onExport=${drill.onExport} />`}
      <button type="button" class="ghost" onClick=${onClose}>${w.drillClose}</button></header>
    ${drill.error && html`<p class="form-error" role="alert">${w.failed}: ${drill.error}</p>`}
    ${drill.view &&
    html`<ul class="an-drill-list">
      ${drill.view.items.slice(0, 200).map(
        (item) => html`<li data-testid="drilldown-item">
          <span class="mono">#${String(item.conversation_id || item.ticket_id).slice(0, 8)}</span>
          <span class="muted">${formatDate(item.at, w.lang)}</span>
          ${item.conversation_id && html`<button type="button" class="secondary" onClick=${() => onOpen(item.conversation_id)}>${w.drillOpen}</button>`}
        </li>`,
      )}
    </ul>`}
  </section>`;
}

export function AnalyticsView({ lang, store }) {
  const w = WORDS[lang] || WORDS.en;
  addStyles();
  const [range, setRange] = useState(() => presetRange(7));
  const [figures, setFigures] = useState(null);
  const [error, setError] = useState(null);
  const [drill, setDrill] = useState(null);
  const [reload, setReload] = useState(0);
  const single = range.from === range.to;
  const granularity = single ? "hour" : "day";

  useEffect(() => {
    let current = true;
    setError(null);
    const get = async (report, extra) => (await fetchWithSession(store, `/v1/analytics/${report}?${query(range, extra)}`)).json();
    Promise.all([
      get("overview"),
      get("series", { granularity }),
      get("handoff-reasons"),
      get("operators"),
      get("kb-gaps"),
    ])
      .then(([overview, series, reasons, operators, gaps]) => current && setFigures({ overview, series, reasons, operators, gaps }))
      .catch((failure) => current && setError(failure.message));
    return () => {
      current = false;
    };
  }, [range.from, range.to, reload]);

  const exportOf = (report, extra) => () =>
    downloadCsv(store, report, range, extra).catch((failure) => store.toast("error", w.failed + ": " + failure.message));

  // Opens the conversations behind a figure (the same condition that counts it).
  const drillInto = async (title, figure, filters, periodOverride) => {
    const period = periodOverride || range;
    const extra = { figure, ...filters };
    setDrill({ title, view: null, onExport: () => downloadCsv(store, "conversations", period, extra) });
    try {
      const view = await (await fetchWithSession(store, `/v1/analytics/conversations?${query(period, extra)}`)).json();
      setDrill((d) => d && d.title === title && { ...d, view });
    } catch (failure) {
      setDrill((d) => d && { ...d, error: failure.message, view: { count: 0, items: [] } });
    }
  };
  const openConversation = (id) => {
    store.showTab("all");
    store.select(id);
  };

  const picker = html`<div class="an-period" role="group" aria-label=${w.period}>
    ${[1, 7, 30, 90].map(
      (days) => html`<button type="button" class=${"secondary" + (range.preset === days ? " on" : "")} aria-pressed=${range.preset === days}
        onClick=${() => setRange(presetRange(days))} data-testid=${"period-" + days}>${days === 1 ? w.today : w["days" + days]}</button>`,
    )}
    <label>${w.from} <input type="date" value=${range.from} max=${range.to} data-testid="period-from"
      onChange=${(e) => e.target.value && setRange({ ...range, from: e.target.value, preset: null })} /></label>
    <label>${w.to} <input type="date" value=${range.to} min=${range.from} data-testid="period-to"
      onChange=${(e) => e.target.value && setRange({ ...range, to: e.target.value, preset: null })} /></label>
    <button type="button" class="ghost" onClick=${() => setReload((n) => n + 1)} data-testid="period-refresh">↻ ${w.refresh}</button>
    <span data-testid="export-overview"><${ExportButton} w=${w} onExport=${exportOf("overview")} /></span>
  </div>`;

  let body;
  if (error) body = html`<p class="form-error" role="alert" data-testid="analytics-error">${w.failed}: ${error}</p>`;
  else if (!figures) body = html`<p class="empty">${w.loading}</p>`;
  else body = Figures({ w, figures, granularity, drillInto, exportOf, range });

  return html`<main class="analytics" data-testid="analytics">
    <div class="an-head"><h2>${w.title}</h2>${picker}</div>
    <${LiveTiles} w=${w} store=${store} />
    ${body}
    <${Drilldown} w=${w} drill=${drill} onClose=${() => setDrill(null)} onOpen=${openConversation} />
  </main>`;
}

function Figures({ w, figures, granularity, drillInto, exportOf, range }) {
  const o = figures.overview;
  const sla = (clock) => fill(w.slaHint, { m: clock.met, x: clock.missed, p: clock.pending });
  const reasonName = (reason) => w.reasonNames[reason] || reason.replace(/_/g, " ");
  const reasons = figures.reasons.reasons;
  const hours = Array.from({ length: 24 }, (_, hour) => hour);
  const byHour = Object.fromEntries(o.busiest_hours.map((h) => [h.hour, h.conversations]));
  const scores = [1, 2, 3, 4, 5];
  const byScore = Object.fromEntries(o.csat.distribution.map((s) => [s.score, s.count]));
  const pickDay = (point) => {
    const day = isoDay(new Date(point.period_start));
    const local = granularity === "hour" ? range : { from: day, to: day };
    const hour = granularity === "hour" ? new Date(point.period_start).getHours() : null;
    drillInto(w.seriesStarted + " · " + (hour === null ? day : hour + " " + w.hour), "started", { hour }, local);
  };
  return html`
    <section class="an-tiles" data-testid="kpis">
      <${Tile} label=${w.started} value=${o.conversations_started} testid="kpi-started"
        onPick=${() => drillInto(w.started, "started")} />
      <${Tile} label=${w.aiResolution} value=${percent(o.ai_resolution_rate)} testid="kpi-ai-resolution" tone="ok"
        hint=${fill(w.aiResolutionHint, { n: o.ai_resolved, d: o.ai_involved, c: o.ai_resolved_confirmed })}
        onPick=${() => drillInto(w.aiResolution, "ai_resolved")} />
      <${Tile} label=${w.automation} value=${percent(o.automation_rate)} hint=${w.automationHint} testid="kpi-automation"
        onPick=${() => drillInto(w.aiResolution, "ai_resolved")} />
      <${Tile} label=${w.handoffs} value=${o.handed_off} hint=${percent(o.handoff_rate)} testid="kpi-handoffs"
        onPick=${() => drillInto(w.handoffs, "handed_off")} />
      <${Tile} label=${w.abandoned} value=${o.abandoned} testid="kpi-abandoned" tone=${o.abandoned ? "bad" : ""}
        hint=${fill(w.abandonedHint, { q: o.abandoned_in_queue, u: o.abandoned_unanswered })}
        onPick=${() => drillInto(w.abandoned, "abandoned")} />
      <${Tile} label=${w.queueTime} value=${seconds(o.queue_wait.p50_seconds)} testid="kpi-queue"
        hint=${fill(w.queueTimeHint, { p: seconds(o.queue_wait.p90_seconds), n: o.queue_wait.count })}
        onPick=${() => drillInto(w.queueTime, "queue_wait")} />
      <${Tile} label=${w.firstResponse} value=${seconds(o.operator_first_response.p50_seconds)} testid="kpi-first-response"
        onPick=${() => drillInto(w.firstResponse, "operator_handled")} />
      <${Tile} label=${w.tickets} value=${o.tickets_created} testid="kpi-tickets"
        onPick=${() => drillInto(w.tickets, "tickets_created")} />
      <${Tile} label=${w.slaFirst} value=${percent(o.sla_first_response.compliance)} hint=${sla(o.sla_first_response)}
        testid="kpi-sla-first" onPick=${() => drillInto(w.slaFirst, "sla_first_response_missed")} />
      <${Tile} label=${w.slaResolution} value=${percent(o.sla_resolution.compliance)} hint=${sla(o.sla_resolution)}
        testid="kpi-sla-resolution" onPick=${() => drillInto(w.slaResolution, "sla_resolution_missed")} />
      <${Tile} label=${w.csat} value=${o.csat.average === null ? "—" : o.csat.average.toFixed(1) + " / 5"} testid="kpi-csat"
        hint=${fill(w.csatHint, { n: o.csat.count })} onPick=${() => drillInto(w.csat, "rated")} />
    </section>
    <div class="an-grid">
      <${Panel} w=${w} wide title=${granularity === "hour" ? w.volumeByHour : w.volume} testid="panel-volume"
        onExport=${exportOf("series", { granularity })}>
        <${VolumeChart} w=${w} series=${figures.series} granularity=${granularity} range=${range} onPick=${pickDay} />
      </${Panel}>
      <${Panel} w=${w} title=${w.reasons} testid="panel-reasons" onExport=${exportOf("handoff-reasons")}>
        <${CategoryChart} w=${w} labels=${reasons.map((r) => reasonName(r.reason))} values=${reasons.map((r) => r.conversations)}
          colour=${COLOURS.handoff} label=${w.handoffs} testid="chart-reasons"
          onPick=${(i) => drillInto(reasonName(reasons[i].reason), "handed_off", { handoff_reason: reasons[i].reason })} />
        <ul class="an-legend">${reasons.map(
          (r) => html`<li><button type="button" class="link" onClick=${() => drillInto(reasonName(r.reason), "handed_off", { handoff_reason: r.reason })}>
            ${reasonName(r.reason)}</button> <strong>${r.conversations}</strong> <span class="muted">${percent(r.share)}</span></li>`,
        )}</ul>
      </${Panel}>
      <${Panel} w=${w} title=${w.busiest} testid="panel-hours">
        <${CategoryChart} w=${w} labels=${hours.map((h) => (h % 3 === 0 ? String(h) : ""))} values=${hours.map((h) => byHour[h] || 0)}
          colour=${COLOURS.started} label=${w.started} testid="chart-hours"
          onPick=${(h) => byHour[h] && drillInto(w.busiest + " · " + h + " " + w.hour, "started", { hour: h })} />
      </${Panel}>
      <${Panel} w=${w} title=${w.ratings} hint=${fill(w.csatHint, { n: o.csat.count })} testid="panel-ratings">
        <${CategoryChart} w=${w} labels=${scores.map((s) => "★".repeat(s))} values=${scores.map((s) => byScore[s] || 0)}
          colour=${COLOURS.ai} label=${w.csat} testid="chart-ratings"
          onPick=${(i) => drillInto(w.csat + " · " + (i + 1), "rated", { score: i + 1 })} />
      </${Panel}>
      <${Panel} w=${w} title=${w.operators} testid="panel-operators" onExport=${exportOf("operators")}>
        ${figures.operators.operators.length
          ? html`<table class="an-table"><thead><tr><th>${w.operator}</th><th>${w.conversations}</th><th>${w.firstResponse}</th>
              <th>${w.handleTime}</th><th>CSAT</th></tr></thead><tbody>
              ${figures.operators.operators.map(
                (op) => html`<tr data-testid="operator-row"><td><button type="button" class="link"
                    onClick=${() => drillInto(w.operator + " " + op.operator_id, "operator_handled", { operator_id: op.operator_id })}>${op.operator_id}</button></td>
                  <td>${op.conversations}</td><td>${seconds(op.first_response_mean_seconds)}</td>
                  <td>${seconds(op.handle_time_mean_seconds)}</td>
                  <td>${op.csat_average === null ? "—" : op.csat_average.toFixed(1)}</td></tr>`,
              )}</tbody></table>`
          : html`<p class="empty">${w.noData}</p>`}
      </${Panel}>
      <${Panel} w=${w} wide title=${w.gaps} hint=${w.gapsHint} testid="panel-gaps" onExport=${exportOf("kb-gaps")}>
        ${figures.gaps.gaps.length
          ? html`<table class="an-table"><thead><tr><th>${w.question}</th><th>${w.times}</th><th>${w.examples}</th></tr></thead><tbody>
              ${figures.gaps.gaps.map(
                (gap) => html`<tr data-testid="gap-row"><td>${gap.question}</td><td>${gap.count}</td>
                  <td class="muted">${gap.examples.join(" · ")}</td></tr>`,
              )}</tbody></table>`
          : html`<p class="empty">${w.noGaps}</p>`}
      </${Panel}>
    </div>
  `;
}

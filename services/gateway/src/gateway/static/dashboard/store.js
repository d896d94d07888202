// The dashboard's state and its I/O: the session (tokens, refresh before expiry), the REST calls,
// the operator stream (reconnect with back-off, re-following the open conversations), and the
// tenant's tickets (the list, kept live by the stream's `ticket` frames, and one ticket's detail).
// The UI (app.js) reads `store.state` and re-renders on every `store.changed()`.

const SESSION = "lucine.dashboard.session";
const DRAFTS = "lucine.dashboard.drafts";
const FOLLOWED = "lucine.dashboard.followed";
const REFRESH_MARGIN_MS = 60_000;
const PING_EVERY_MS = 25_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
// How long after the operator's own choice of presence the stream's older word on it is not
// shown: a frame written before routing applied the choice still names the previous presence.
const PRESENCE_SETTLE_MS = 5_000;
// An operator's conversations are theirs in these statuses (the API's HELD_STATUSES).
const HELD = ["WITH_OPERATOR", "WAITING_CUSTOMER"];
const SUPERVISING_ROLES = new Set(["supervisor", "admin"]);
const HELD_READ_RETRIES = 3; // see `readHeld`
const HELD_READ_DELAY_MS = 300;
// A ticket's moves the tickets service accepts (its README's lifecycle table); the status picker
// offers only these, the service's word stays final (a refusal comes back as a frame).
export const TICKET_MOVES = {
  OPEN: ["IN_PROGRESS", "WAITING_CUSTOMER", "RESOLVED"],
  IN_PROGRESS: ["OPEN", "WAITING_CUSTOMER", "RESOLVED"],
  WAITING_CUSTOMER: ["OPEN", "IN_PROGRESS", "RESOLVED"],
  RESOLVED: ["OPEN", "IN_PROGRESS", "CLOSED"],
  CLOSED: [],
};
export const SLA_RANK = { met: 0, paused: 1, on_time: 2, at_risk: 3, breached: 4 };
const TICKET_FILTERS = { status: "", priority: "", sla: "", assignee: "", q: "" };

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

function readJson(storage, key, fallback) {
  try {
    const value = JSON.parse(storage.getItem(key) || "null");
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const body = JSON.parse(text);
    return { operatorId: body.sub, tenantId: body.tenant_id, role: body.role, name: body.name || body.sub };
  } catch {
    return null;
  }
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Store {
  constructor() {
    this.listeners = new Set();
    this.socket = null;
    this.backoff = BACKOFF_MIN_MS;
    this.reconnectTimer = null;
    this.refreshTimer = null;
    this.pingTimer = null;
    this.queueTimer = null;
    this.allTimer = null;
    this.onOffer = () => {};
    this.onPresenceChanged = () => {}; // (presence, reason): routing changed the operator's own presence
    this.onConversationLost = () => {}; // (id, reason): a supervisor moved one of the operator's away
    this.missedOffers = 0; // offers to this operator expired in a row, as the stream told them
    this.presenceAsked = null; // {status, until}: the operator's choice routing may not have applied yet
    this.presenceDecided = null; // the presence routing set by itself (away after missed offers)
    this.ownership = 0; // counts conversations becoming the operator's, to order them with `loadMine`
    const session = readJson(sessionStorage, SESSION, null);
    this.state = {
      session: session && session.refreshToken ? session : null,
      me: session ? claimsOf(session.accessToken) : null,
      presence: (session && session.presence) || "offline",
      connection: "idle", // idle | connecting | open | retrying
      queue: [],
      all: [], // ids of the "all" tab (supervisors), newest change first, from GET /v1/conversations
      allStatus: "", // its status filter; "" for every status
      conversations: {}, // id -> conversation
      operators: {}, // id -> {name, role, presence, active, capacity}, from GET /v1/operators and presence frames
      offers: {}, // conversation id -> offer frame data
      selected: null,
      tab: "mine",
      toast: null,
      canned: [],
      view: "conversations", // conversations | tickets
      tickets: {}, // id -> the list's summary (TicketSummaryView), patched by `ticket` frames
      ticketList: [], // ids of the list shown
      ticketTab: "all", // all | mine | risk (supervisors: at risk or breached, soonest deadline first)
      ticketFilters: { ...TICKET_FILTERS },
      ticketState: "idle", // idle | loading | ready | error
      ticketError: null,
      ticketSelected: null,
      ticketDetail: {}, // id -> TicketView
      ticketPending: {}, // id -> replies sent and not yet in the detail
      ticketsNew: 0, // tickets opened while the operator looked at conversations
    };
    this.ticketTimer = null;
    this.detailTimer = null;
    this.commands = new Map(); // command id of a PATCH -> ticket id, to tell its refusal
    this.drafts = readJson(localStorage, DRAFTS, {});
  }

  // ---------------------------------------------------------------------------- change feed

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    for (const listener of this.listeners) listener();
  }

  toast(kind, text) {
    const toast = { kind, text, id: newId() };
    this.state.toast = toast;
    this.changed();
    setTimeout(() => {
      if (this.state.toast === toast) {
        this.state.toast = null;
        this.changed();
      }
    }, 5000);
  }

  // ---------------------------------------------------------------------------- session

  saveSession() {
    const s = this.state.session;
    if (s) sessionStorage.setItem(SESSION, JSON.stringify({ ...s, presence: this.state.presence }));
    else sessionStorage.removeItem(SESSION);
  }

  adopt(pair) {
    this.state.session = {
      accessToken: pair.access_token,
      refreshToken: pair.refresh_token,
      expiresAt: Date.now() + pair.expires_in * 1000,
    };
    this.state.me = claimsOf(pair.access_token);
    this.saveSession();
    this.scheduleRefresh();
  }

  async login(username, password) {
    const response = await fetch("/v1/operators/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) throw await this.failure(response);
    this.adopt(await response.json());
    this.start();
  }

  async refresh() {
    const session = this.state.session;
    if (!session) return false;
    try {
      const response = await fetch("/v1/operators/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: session.refreshToken }),
      });
      if (response.status === 401) {
        this.logout(false);
        return false;
      }
      if (!response.ok) return false;
      this.adopt(await response.json());
      return true;
    } catch {
      return false;
    }
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const session = this.state.session;
    if (!session) return;
    const wait = Math.max(session.expiresAt - Date.now() - REFRESH_MARGIN_MS, 1000);
    this.refreshTimer = setTimeout(async () => {
      if (!(await this.refresh())) this.refreshTimer = setTimeout(() => this.scheduleRefresh(), 5000);
    }, wait);
  }

  async logout(sayOffline = true) {
    if (sayOffline && this.state.session) {
      try {
        await this.call("PUT", "/v1/operators/me/status", { status: "offline" });
      } catch {
        // logging out anyway
      }
    }
    clearTimeout(this.refreshTimer);
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "logout");
    this.state.session = null;
    this.state.me = null;
    this.state.connection = "idle";
    this.state.queue = [];
    this.state.all = [];
    this.state.operators = {};
    this.state.conversations = {};
    this.state.offers = {};
    this.state.selected = null;
    this.state.tickets = {};
    this.state.ticketList = [];
    this.state.ticketDetail = {};
    this.state.ticketSelected = null;
    this.state.view = "conversations";
    this.state.presence = "offline";
    this.missedOffers = 0;
    this.presenceAsked = null;
    this.presenceDecided = null;
    this.saveSession();
    sessionStorage.removeItem(FOLLOWED);
    this.changed();
  }

  start() {
    if (!this.state.session) return;
    if (this.state.session.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      this.refresh().then((ok) => ok && this.connect());
    } else {
      this.scheduleRefresh();
      this.connect();
    }
    this.loadQueue();
    this.loadCanned();
    this.loadOperators();
    // Conversations followed before a reload come back (the stream re-sends their history).
    for (const id of readJson(sessionStorage, FOLLOWED, [])) this.conversation(id).mine = true;
    this.changed();
  }

  // ---------------------------------------------------------------------------- REST

  async failure(response) {
    let code = "http_" + response.status;
    let message = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch {
      // not JSON
    }
    return new ApiFailure(response.status, code, message);
  }

  async call(method, path, body, retried = false) {
    const session = this.state.session;
    if (!session) throw new ApiFailure(401, "unauthorized", "not logged in");
    const headers = { Authorization: "Bearer " + session.accessToken };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401 && !retried && (await this.refresh())) return this.call(method, path, body, true);
    if (!response.ok) throw await this.failure(response);
    return response.status === 204 ? null : response.json();
  }

  async setPresence(status) {
    const previous = this.state.presence;
    const decided = this.presenceDecided;
    // A click is a choice (the gateway says so to routing): "online" after routing's away puts
    // the operator back online, though the heartbeat has been repeating "online" all along.
    this.presenceDecided = null;
    this.presenceAsked = { status, until: Date.now() + PRESENCE_SETTLE_MS };
    this.state.presence = status;
    this.changed();
    try {
      await this.call("PUT", "/v1/operators/me/status", { status });
      this.saveSession();
    } catch (error) {
      this.presenceAsked = null;
      this.presenceDecided = decided;
      this.state.presence = previous;
      this.changed();
      throw error;
    }
  }

  // A presence frame about the operator: routing's word on their presence is the one shown (it
  // sets an operator away after missed offers), told with its reason when the stream showed it.
  onOwnPresence(presence) {
    const asked = this.presenceAsked;
    if (asked && presence === asked.status) this.presenceAsked = null;
    else if (asked && Date.now() < asked.until) return; // written before the choice was applied
    if (presence === this.state.presence) return;
    const reason = presence === "away" && this.missedOffers > 0 ? "missed_offers" : null;
    this.missedOffers = 0;
    this.state.presence = presence;
    this.presenceDecided = presence;
    this.saveSession();
    this.onPresenceChanged(presence, reason);
  }

  // Routing sets an operator away after offers expired in a row; answering one starts again.
  countMissedOffer(outcome) {
    if (outcome === "expired") this.missedOffers += 1;
    else if (outcome === "declined") this.missedOffers = 0;
  }

  async loadQueue() {
    try {
      const view = await this.call("GET", "/v1/queue");
      this.state.queue = view.entries || [];
      for (const entry of this.state.queue) {
        const c = this.conversation(entry.conversation_id);
        c.priority = entry.priority;
        c.reason = entry.reason ?? c.reason;
        c.intent = entry.intent ?? c.intent;
        c.waitingSince = entry.waiting_since;
        c.queued = true;
      }
      const waiting = new Set(this.state.queue.map((e) => e.conversation_id));
      for (const c of Object.values(this.state.conversations)) if (!waiting.has(c.id)) c.queued = false;
      this.changed();
    } catch (error) {
      if (error.status !== 401) this.state.queueError = error.message;
    }
  }

  // Routing's frames say the queue moved: read it again, at most a few times a second (and the
  // "all" tab, while it is shown: assignments and releases change it too).
  queueSoon() {
    if (this.state.tab === "all") this.allSoon();
    if (this.queueTimer) return;
    this.queueTimer = setTimeout(() => {
      this.queueTimer = null;
      this.loadQueue();
    }, 150);
  }

  allSoon() {
    if (this.allTimer) return;
    this.allTimer = setTimeout(() => {
      this.allTimer = null;
      this.loadAll();
    }, 500);
  }

  showTab(tab) {
    this.state.view = "conversations";
    this.state.tab = tab;
    if (tab === "all") this.loadAll();
    this.changed();
  }

  // The "all" tab: the tenant's conversations the operator may see (a supervisor: all of them).
  async loadAll(status = this.state.allStatus) {
    this.state.allStatus = status;
    const query = "?limit=100" + (status ? "&status=" + encodeURIComponent(status) : "");
    try {
      const view = await this.call("GET", "/v1/conversations" + query);
      if (this.state.allStatus !== status) return; // the filter changed meanwhile
      this.state.all = (view.conversations || []).map((item) => {
        const c = this.conversation(item.conversation_id);
        c.status = item.status;
        c.reason = item.handoff_reason ?? c.reason;
        c.updatedAt = item.updated_at;
        const held = item.status === "WITH_OPERATOR" || item.status === "WAITING_CUSTOMER";
        c.ownerId = held ? item.operator_id : null;
        const known = c.ownerId && this.state.operators[c.ownerId];
        c.ownerName = known ? known.name : null;
        return c.id;
      });
      this.state.allError = null;
    } catch (error) {
      this.state.allError = error;
    }
    this.changed();
  }

  // The operator's own open conversations, as the API has them: a new browser remembers none, and
  // one that was away may remember some closed or moved meanwhile. Read at every (re)connect.
  // A supervisor's read is the whole tenant's: only the conversations they hold are theirs.
  async loadMine() {
    const me = this.state.me;
    const asked = this.ownership;
    let items;
    try {
      const views = await Promise.all(
        HELD.map((status) => this.call("GET", "/v1/conversations?limit=200&status=" + status)),
      );
      items = views.flatMap((view) => view.conversations || []);
    } catch {
      return; // what the browser remembers stays; read again at the next reconnect
    }
    if (this.state.me !== me) return; // logged out meanwhile
    const held = new Set();
    for (const item of items) {
      if (item.operator_id !== me.operatorId || !HELD.includes(item.status)) continue;
      held.add(item.conversation_id);
      const c = this.conversation(item.conversation_id);
      c.status = item.status;
      c.reason = item.handoff_reason ?? c.reason;
      c.updatedAt = item.updated_at;
      c.ownerId = me.operatorId;
      c.queued = false;
      c.lost = false;
      c.mine = true;
      this.follow(c.id);
    }
    // Not in the read: no longer the operator's, unless it became theirs after the read was asked.
    for (const c of Object.values(this.state.conversations)) {
      if (c.mine && !held.has(c.id) && c.mineSince <= asked) {
        c.mine = false;
        this.unfollow(c.id);
      }
    }
    this.rememberFollowed();
    this.changed();
  }

  // The tenant's operators with presence and load, for the transfer picker and the owners' names.
  async loadOperators() {
    try {
      const view = await this.call("GET", "/v1/operators");
      for (const o of view.operators || []) {
        this.state.operators[o.operator_id] = {
          name: o.display_name,
          role: o.role,
          presence: o.presence,
          active: o.active_conversations,
          capacity: o.capacity,
        };
      }
      this.changed();
    } catch {
      // the picker shows those heard of on the stream
    }
  }

  // The tenant's canned responses (every language; the admins keep them in the settings). None
  // when the read fails: the composer works without them.
  async loadCanned() {
    try {
      this.state.canned = (await this.call("GET", "/v1/canned-responses")).responses || [];
    } catch {
      this.state.canned = [];
    }
    this.changed();
  }

  // The copilot: a reply the assistant suggests from the knowledge base; only text, never sent.
  suggestion(id) {
    return this.call("GET", "/v1/conversations/" + id + "/suggestion");
  }

  // A conversation routing has just given the operator can still be the previous owner's in the
  // conversation service for a moment (it applies the assignment a little after routing tells
  // the gateway): a refused read of a conversation the operator holds is asked again shortly.
  async readHeld(c, path) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.call("GET", path);
      } catch (error) {
        if (error.status !== 403 || !c.mine || attempt > HELD_READ_RETRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, HELD_READ_DELAY_MS * attempt));
      }
    }
  }

  async loadSummary(id) {
    const c = this.conversation(id);
    if (c.summaryState) return;
    c.summaryState = "loading";
    try {
      c.summary = await this.readHeld(c, "/v1/conversations/" + id + "/summary");
      c.summaryState = "server";
    } catch {
      c.summaryState = "local"; // built from the transcript by the UI
    }
    this.changed();
  }

  // The notes' history comes from this read; the stream carries only the notes added after its
  // feed of the conversation started. So it is read each time a feed starts (see `onFrame`,
  // "status"): on opening a chat, on an assignment, and after every reconnect.
  async loadNotes(id) {
    const c = this.conversation(id);
    if (c.lost) return;
    try {
      const view = await this.readHeld(c, "/v1/conversations/" + id + "/notes");
      for (const note of view.notes || []) this.addNote(c, note);
      this.changed();
    } catch (error) {
      // Read again when the feed restarts (live note frames arrive meanwhile); a refusal means
      // the conversation is another operator's now.
      if (error.status === 403 && !c.mine) this.lose(c);
    }
  }

  // ---------------------------------------------------------------------------- conversations

  conversation(id) {
    let c = this.state.conversations[id];
    if (!c) {
      c = {
        id,
        messages: [],
        notes: [],
        pending: [],
        status: null,
        ownerId: null,
        ownerName: null,
        priority: "normal",
        reason: null,
        intent: null,
        waitingSince: null,
        queued: false,
        mine: false,
        mineSince: 0, // `ownership` when it became the operator's (0: remembered by the browser)
        lost: false, // another operator's now, which this one may no longer read
        handing: null, // {to}: a transfer this operator asked for, until routing releases it
        followed: false,
        lastSeq: 0,
        summary: null,
        summaryState: null,
        notesDue: false,
        firstOperatorSeq: null,
      };
      this.state.conversations[id] = c;
    }
    return c;
  }

  rememberFollowed() {
    const ids = Object.values(this.state.conversations)
      .filter((c) => c.mine)
      .map((c) => c.id);
    sessionStorage.setItem(FOLLOWED, JSON.stringify(ids));
  }

  select(id) {
    this.state.selected = id;
    if (id) {
      this.follow(id);
      this.loadSummary(id);
    }
    this.changed();
  }

  follow(id) {
    const c = this.conversation(id);
    if (c.followed || c.lost) return;
    if (this.send({ type: "subscribe", conversation_id: id, after: c.lastSeq })) {
      c.followed = true;
      c.notesDue = true;
    }
  }

  draft(id) {
    return this.drafts[id] || "";
  }

  setDraft(id, text) {
    if (text) this.drafts[id] = text;
    else delete this.drafts[id];
    localStorage.setItem(DRAFTS, JSON.stringify(this.drafts));
  }

  async take(id) {
    try {
      await this.call("POST", "/v1/conversations/" + id + "/take");
      const c = this.conversation(id);
      this.becomeMine(c);
      delete this.state.offers[id];
      this.rememberFollowed();
      this.state.tab = "mine";
      this.state.view = "conversations";
      this.select(id);
      this.queueSoon();
      return true;
    } catch (error) {
      delete this.state.offers[id];
      this.queueSoon();
      this.changed();
      throw error;
    }
  }

  async sendMessage(id, text) {
    const c = this.conversation(id);
    const clientId = newId();
    const pending = { clientId, text, messageId: null };
    c.pending.push(pending);
    this.changed();
    try {
      const accepted = await this.call("POST", "/v1/conversations/" + id + "/operator-messages", {
        text,
        client_message_id: clientId,
      });
      pending.messageId = accepted.message_id;
      if (c.messages.some((m) => m.message_id === accepted.message_id)) {
        c.pending = c.pending.filter((p) => p !== pending);
      }
      this.changed();
    } catch (error) {
      c.pending = c.pending.filter((p) => p !== pending);
      this.changed();
      throw error;
    }
  }

  addNote(c, note) {
    if (!c.notes.some((n) => n.note_id === note.note_id)) {
      c.notes.push(note);
      c.notes.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    }
  }

  // To another operator (`to`), or back to the queue (null). Remembered until routing releases
  // the conversation: the operator is then told who has it without being told it was moved.
  async transfer(id, to) {
    const c = this.conversation(id);
    c.handing = { to: to || null };
    try {
      await this.call("POST", "/v1/conversations/" + id + "/transfer", to ? { operator_id: to } : {});
    } catch (error) {
      c.handing = null;
      throw error;
    }
  }

  becomeMine(c) {
    c.mine = true;
    c.mineSince = ++this.ownership;
    c.lost = false;
    c.handing = null;
    c.ownerId = this.state.me.operatorId;
    c.ownerName = null;
  }

  supervising() {
    return SUPERVISING_ROLES.has(this.state.me.role);
  }

  // Another operator's now, and not for this one to read (a supervisor reads every one): its feed
  // stops and nothing more of it is asked for; the view keeps what it had and says who has it.
  lose(c) {
    if (this.supervising()) return;
    c.lost = true;
    c.notesDue = false;
    if (c.followed) this.send({ type: "unsubscribe", conversation_id: c.id });
    c.followed = false;
  }

  // The gateway has stopped the feed of a conversation the operator no longer has. Moved to a
  // colleague (their transfer, or a supervisor's reassign), it is the colleague's to read now;
  // closed, handed back to the AI or put back in the queue, the open one is followed again.
  releasedFromMe(c, reason) {
    const handing = c.handing;
    c.handing = null;
    c.mine = false;
    c.followed = false;
    if (reason === "transferred") {
      if (handing && handing.to && c.ownerId !== handing.to) {
        c.ownerId = handing.to;
        c.ownerName = null;
      }
      c.queued = false;
      this.lose(c);
    } else if (reason === "requeued") {
      c.queued = true; // until the queue's read says otherwise
    }
    if (!handing && (reason === "transferred" || reason === "requeued")) this.onConversationLost(c.id, reason);
    if (this.state.selected === c.id) this.follow(c.id); // keep watching the open one, if allowed
  }


  // ---------------------------------------------------------------------------- tickets

  showView(view) {
    this.state.view = view;
    if (view === "tickets") {
      this.state.ticketsNew = 0;
      this.loadTickets();
    }
    this.changed();
  }

  showTicketTab(tab) {
    this.state.view = "tickets";
    this.state.ticketsNew = 0;
    this.state.ticketTab = tab;
    this.loadTickets();
    this.changed();
  }

  setTicketFilter(name, value) {
    this.state.ticketFilters = { ...this.state.ticketFilters, [name]: value };
    // Typing in the search box reads once the operator pauses; a select reads at once.
    if (name === "q") this.ticketsSoon(300);
    else this.loadTickets();
    this.changed();
  }

  ticketQuery(extra) {
    const f = this.state.ticketFilters;
    const params = new URLSearchParams({ limit: "100" });
    if (f.status) params.set("status", f.status);
    if (f.priority) params.set("priority", f.priority);
    if (f.sla) params.set("sla", f.sla);
    if (f.q.trim()) params.set("q", f.q.trim());
    const assignee = this.state.ticketTab === "mine" ? this.state.me.operatorId : f.assignee;
    if (assignee) params.set("assignee_id", assignee);
    for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
    return "/v1/tickets?" + params.toString();
  }

  // The list is read whole each time (filters, a frame, a reconnect): the read is the truth,
  // frames only make the rows change at once. The latest read wins over slower earlier ones.
  async loadTickets() {
    if (!this.state.session) return;
    const asked = (this.ticketAsk = (this.ticketAsk || 0) + 1);
    this.state.ticketState = this.state.ticketList.length ? this.state.ticketState : "loading";
    try {
      let found;
      if (this.state.ticketTab === "risk") {
        const views = await Promise.all(
          ["at_risk", "breached"].map((sla) => this.call("GET", this.ticketQuery({ sla }))),
        );
        found = views.flatMap((view) => view.tickets || []);
      } else {
        found = (await this.call("GET", this.ticketQuery())).tickets || [];
      }
      if (asked !== this.ticketAsk) return; // a newer read is on its way
      for (const ticket of found) this.state.tickets[ticket.ticket_id] = ticket;
      if (this.state.ticketTab === "risk") found.sort((a, b) => nextDeadline(a) - nextDeadline(b));
      this.state.ticketList = found.map((t) => t.ticket_id);
      this.state.ticketState = "ready";
      this.state.ticketError = null;
    } catch (error) {
      if (asked !== this.ticketAsk) return;
      this.state.ticketState = "error";
      this.state.ticketError = error;
    }
    this.changed();
  }

  ticketsSoon(wait = 400) {
    clearTimeout(this.ticketTimer);
    this.ticketTimer = setTimeout(() => this.loadTickets(), wait);
  }

  selectTicket(id) {
    this.state.view = "tickets";
    const previous = this.state.ticketDetail[this.state.ticketSelected];
    if (previous && previous.conversation_id && previous.conversation_id !== this.state.selected) {
      this.unfollow(previous.conversation_id);
    }
    this.state.ticketSelected = id;
    if (id) this.loadTicket(id);
    this.changed();
  }

  async loadTicket(id) {
    try {
      const view = await this.call("GET", "/v1/tickets/" + id);
      this.state.ticketDetail[id] = view;
      this.state.tickets[id] = { ...(this.state.tickets[id] || {}), ...summaryOf(view) };
      const pending = this.state.ticketPending[id] || [];
      const stored = new Set((view.replies || []).map((r) => r.reply_id));
      this.state.ticketPending[id] = pending.filter((p) => !stored.has(p.replyId));
      this.changed();
      return view;
    } catch (error) {
      if (error.status === 404) {
        delete this.state.ticketDetail[id];
        if (this.state.ticketSelected === id) this.state.ticketSelected = null;
      }
      this.changed();
      return null;
    }
  }

  ticketSoon(id) {
    if (id !== this.state.ticketSelected) return;
    clearTimeout(this.detailTimer);
    this.detailTimer = setTimeout(() => this.loadTicket(id), 250);
  }

  // Replies and notes are not on the stream (only what the list shows is): after sending one, the
  // detail is read again until it has it (the command is applied within moments).
  async untilTicketHas(id, found) {
    for (const wait of [300, 600, 1000, 1500, 2500, 4000]) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      const view = await this.loadTicket(id);
      if (view && found(view)) return true;
    }
    return false;
  }

  async replyToTicket(id, text) {
    const clientId = newId();
    const pending = { clientId, text, replyId: null };
    this.state.ticketPending[id] = [...(this.state.ticketPending[id] || []), pending];
    this.changed();
    try {
      const accepted = await this.call("POST", "/v1/tickets/" + id + "/replies", { text, client_reply_id: clientId });
      pending.replyId = accepted.reply_id;
    } catch (error) {
      this.state.ticketPending[id] = (this.state.ticketPending[id] || []).filter((p) => p !== pending);
      this.changed();
      throw error;
    }
    this.untilTicketHas(id, (view) => (view.replies || []).some((r) => r.reply_id === pending.replyId));
  }

  async noteOnTicket(id, text) {
    const accepted = await this.call("POST", "/v1/tickets/" + id + "/notes", { text });
    this.untilTicketHas(id, (view) => (view.notes || []).some((n) => n.note_id === accepted.note_id));
  }

  // status, priority or assignee_id (null unassigns); a refusal arrives as a `command_rejected`
  // frame naming this command, and the change itself as a `ticket_updated` frame.
  async updateTicket(id, change) {
    const accepted = await this.call("PATCH", "/v1/tickets/" + id, change);
    this.commands.set(accepted.command_id, id);
    if (this.commands.size > 200) this.commands.delete(this.commands.keys().next().value);
    return accepted;
  }

  unfollow(id) {
    const c = this.state.conversations[id];
    if (!c || !c.followed || c.mine || id === this.state.selected) return;
    this.send({ type: "unsubscribe", conversation_id: id });
    c.followed = false;
  }

  // A `ticket` frame: the row changes at once, and the list and the open ticket are read again
  // (a frame may be one the last read already had, or arrive after a newer read: the read wins).
  onTicketFrame(frame) {
    const id = frame.ticket_id;
    const data = frame.data || {};
    if (frame.event === "command_rejected") {
      if (this.commands.has(data.command_id)) {
        this.commands.delete(data.command_id);
        this.onTicketRefused(id, data);
      }
      this.ticketSoon(id);
      return;
    }
    const t = this.state.tickets[id];
    if (t) {
      // Not over a newer state the last read had (occurred_at is at or after the change's updated_at).
      const older = t.updated_at && Date.parse(frame.occurred_at) < Date.parse(t.updated_at);
      if (frame.event === "ticket_updated" && !older) {
        t.status = data.status;
        t.priority = data.priority;
        t.assignee_id = data.assignee_id;
      } else if (frame.event === "sla_warning" || frame.event === "sla_breached") {
        t.sla = (t.sla || []).map((clock) =>
          clock.clock === data.clock && SLA_RANK[data.sla_state] > SLA_RANK[clock.state]
            ? { ...clock, state: data.sla_state }
            : clock,
        );
        if (SLA_RANK[data.sla_state] > SLA_RANK[t.sla_state]) t.sla_state = data.sla_state;
      }
    }
    if (frame.event === "ticket_opened" && this.state.view !== "tickets") this.state.ticketsNew += 1;
    if (this.state.view === "tickets" || frame.event === "ticket_opened") this.ticketsSoon();
    this.ticketSoon(id);
  }

  onTicketRefused() {}

  // ---------------------------------------------------------------------------- the stream

  connect() {
    if (!this.state.session || this.socket) return;
    const url = location.origin.replace(/^http/, "ws") + "/v1/operators/stream";
    const socket = new WebSocket(url);
    this.socket = socket;
    this.state.connection = this.state.connection === "idle" ? "connecting" : "retrying";
    this.changed();
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "auth", access_token: this.state.session.accessToken }));
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    socket.onclose = async (event) => {
      if (this.socket !== socket) return; // replaced or logged out
      this.socket = null;
      clearInterval(this.pingTimer);
      for (const c of Object.values(this.state.conversations)) c.followed = false;
      if (!this.state.session) return;
      this.state.connection = "retrying";
      this.changed();
      if (event.code === 4401 && !(await this.refresh())) return;
      const wait = this.backoff * (0.75 + Math.random() / 2);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
      this.reconnectTimer = setTimeout(() => this.connect(), wait);
    };
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && this.state.connection === "open") {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  onFrame(frame) {
    const me = this.state.me;
    switch (frame.type) {
      case "ready": {
        this.state.connection = "open";
        this.backoff = BACKOFF_MIN_MS;
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
        // Follow again what was followed: the messages after the last seen seq come back.
        for (const c of Object.values(this.state.conversations)) {
          if (c.mine || c.id === this.state.selected) this.follow(c.id);
        }
        this.loadMine();
        this.loadQueue();
        this.loadOperators();
        if (this.state.tab === "all") this.loadAll();
        // Ticket frames come from now on: what changed while away is in this read.
        if (this.state.view === "tickets") this.loadTickets();
        if (this.state.ticketSelected) this.loadTicket(this.state.ticketSelected);
        break;
      }
      case "ticket":
        this.onTicketFrame(frame);
        break;
      case "queue":
        this.queueSoon();
        break;
      case "offer": {
        const id = frame.conversation_id;
        const data = frame.data || {};
        if (frame.event === "offer_made") {
          const c = this.conversation(id);
          c.priority = data.priority || c.priority;
          c.reason = data.reason || c.reason;
          if (data.operator_id === me.operatorId) {
            this.state.offers[id] = { ...data, conversation_id: id };
            this.onOffer(id, data);
          }
        } else if (frame.event === "offer_closed") {
          const offer = this.state.offers[id];
          if (offer && offer.offer_id === data.offer_id) delete this.state.offers[id];
          if (data.operator_id === me.operatorId) this.countMissedOffer(data.outcome);
        }
        this.queueSoon();
        break;
      }
      case "assignment": {
        const id = frame.conversation_id;
        const data = frame.data || {};
        const c = this.conversation(id);
        if (frame.event === "operator_assigned") {
          this.state.operators[data.operator_id] = {
            ...(this.state.operators[data.operator_id] || {}),
            name: data.display_name,
          };
          if (data.operator_id === me.operatorId) {
            this.becomeMine(c);
            c.followed = true; // the gateway follows an operator's own conversations
            c.notesDue = true;
            this.missedOffers = 0;
            delete this.state.offers[id];
            if (!this.state.selected) this.select(id);
          } else {
            c.mine = false;
            delete this.state.offers[id];
            this.lose(c); // followed while it waited, or the operator's until this transfer
          }
          c.ownerId = data.operator_id;
          c.ownerName = data.display_name;
          c.queued = false;
        } else if (frame.event === "operator_released") {
          if (c.ownerId === data.operator_id) {
            c.ownerId = null;
            c.ownerName = null;
          }
          if (data.operator_id === me.operatorId) this.releasedFromMe(c, data.reason);
        }
        this.rememberFollowed();
        this.queueSoon();
        break;
      }
      case "presence": {
        const data = frame.data || {};
        if (data.operator_id === me.operatorId) this.onOwnPresence(data.presence);
        this.state.operators[data.operator_id] = {
          ...(this.state.operators[data.operator_id] || {}),
          presence: data.presence,
          active: data.active_conversations,
          capacity: data.capacity,
        };
        break;
      }
      case "message": {
        const c = this.conversation(frame.conversation_id);
        const message = frame.message;
        if (message.seq <= c.lastSeq) return;
        c.messages.push(message);
        c.lastSeq = message.seq;
        if (message.sender === "operator" && c.firstOperatorSeq === null) c.firstOperatorSeq = message.seq;
        c.pending = c.pending.filter((p) => p.messageId !== message.message_id);
        break;
      }
      case "status": {
        const c = this.conversation(frame.conversation_id);
        c.status = frame.status;
        if (c.notesDue) {
          // The feed's first status comes once the gateway has registered it: a note added from
          // now on arrives live, and the read below has every one added before.
          c.notesDue = false;
          this.loadNotes(c.id);
        }
        break;
      }
      case "note":
        this.addNote(this.conversation(frame.conversation_id), frame.note);
        break;
      case "error":
        if (frame.conversation_id) {
          const c = this.conversation(frame.conversation_id);
          c.followed = false;
          c.error = frame.error;
          if (frame.error && frame.error.code === "forbidden" && !c.mine) this.lose(c);
        }
        break;
      default:
        return; // pong, typing and frames of later versions
    }
    this.changed();
  }
}

// The soonest deadline of a ticket's clocks still counting (breached ones are in the past).
export function nextDeadline(ticket) {
  const dues = (ticket.sla || [])
    .filter((clock) => clock.due_at && clock.state !== "met" && clock.state !== "paused")
    .map((clock) => new Date(clock.due_at).getTime());
  return dues.length ? Math.min(...dues) : Infinity;
}

function summaryOf(view) {
  const { ticket_id, ticket_number, status, priority, assignee_id, contact_name, subject, conversation_id } = view;
  const { created_at, updated_at, sla_state, sla, tenant_id } = view;
  return {
    ticket_id, tenant_id, ticket_number, status, priority, assignee_id, contact_name, subject, conversation_id,
    created_at, updated_at, sla_state, sla,
  };
}

/*!
 * The public status page of a ticket (served at /tickets/status, no dependencies).
 *
 * Two ways in: a form (the ticket number plus the email or phone it was opened with; the
 * tenant's widget key, public like the widget's, is put in the page by the gateway), or the
 * signed link of an email (`?t=<token>`), which loads the ticket at once and lets the customer
 * answer. Whatever is wrong, the gateway answers one 404, and so does this page: "not found";
 * a bad link still offers the form, of the tenant the gateway read from the link (or the page's
 * `?tenant=`), or says where to find the request when no tenant is known.
 * Text from the server is only ever set with textContent.
 */
(function () {
  "use strict";

  var STRINGS = {
    it: {
      title: "Stato della richiesta",
      lookupTitle: "Cerca la tua richiesta",
      numberLabel: "Numero della richiesta",
      contactLabel: "Email o telefono",
      contactHint: "Quelli che ci hai lasciato aprendo la richiesta.",
      lookupButton: "Cerca",
      searching: "Ricerca…",
      noTenant: "Apri questa pagina dal link che ti abbiamo inviato via email.",
      repliesTitle: "Risposte",
      requestTitle: "La tua richiesta",
      due: "Ti risponderemo entro il {d}.",
      dueSoon: "Ti risponderemo il prima possibile.",
      noReplies: "Nessuna risposta per ora.",
      replyTitle: "Rispondi",
      replyLabel: "Il tuo messaggio",
      replyButton: "Invia",
      sending: "Invio…",
      sent: "Inviato: lo riceviamo subito.",
      closedNote: "Questa richiesta è chiusa. Per una nuova domanda scrivici di nuovo.",
      lookupAgain: "Cerca un'altra richiesta",
      opened: "Aperta il {d}",
      you: "Tu",
      us: "Assistenza",
      notFound: "Nessuna richiesta corrisponde a questo numero e a questo contatto. Controlla e riprova.",
      linkNotFound: "Il link non è valido o è scaduto. Cerca la richiesta con il numero e il tuo contatto qui sotto.",
      linkNoTenant:
        "Il link non è valido o è scaduto. Per ritrovare la richiesta apri «Stato della richiesta» dal sito dove ci " +
        "hai scritto, oppure il link della nostra email più recente: servono il numero della richiesta (come " +
        "TCK-2026-000123) e l'email o il telefono che ci hai lasciato.",
      badNumber: "Il numero ha la forma TCK-2026-000123.",
      needContact: "Scrivi l'email o il numero di telefono.",
      needText: "Scrivi un messaggio.",
      rateLimited: "Troppi tentativi: riprova tra {n} minuti.",
      closed: "La richiesta è chiusa: non si può più rispondere.",
      network: "Connessione non disponibile, riprova.",
      generic: "Si è verificato un errore, riprova.",
      status: {
        OPEN: "Aperta",
        IN_PROGRESS: "In lavorazione",
        WAITING_CUSTOMER: "In attesa di una tua risposta",
        RESOLVED: "Risolta",
        CLOSED: "Chiusa"
      }
    },
    en: {
      title: "Request status",
      lookupTitle: "Find your request",
      numberLabel: "Request number",
      contactLabel: "Email or phone",
      contactHint: "The ones you left us when you opened the request.",
      lookupButton: "Search",
      searching: "Searching…",
      noTenant: "Open this page from the link we sent you by email.",
      repliesTitle: "Replies",
      requestTitle: "Your request",
      due: "We will answer by {d}.",
      dueSoon: "We will answer as soon as possible.",
      noReplies: "No replies yet.",
      replyTitle: "Reply",
      replyLabel: "Your message",
      replyButton: "Send",
      sending: "Sending…",
      sent: "Sent: it reaches us right away.",
      closedNote: "This request is closed. For a new question, write to us again.",
      lookupAgain: "Find another request",
      opened: "Opened on {d}",
      you: "You",
      us: "Support",
      notFound: "No request matches this number and this contact. Check them and try again.",
      linkNotFound: "The link is not valid or has expired. Find the request with its number and your contact below.",
      linkNoTenant:
        "The link is not valid or has expired. To find the request, open \u201cRequest status\u201d on the site " +
        "where you wrote to us, or the link of our latest email: you need the request number (like " +
        "TCK-2026-000123) and the email or phone you gave us.",
      badNumber: "The number looks like TCK-2026-000123.",
      needContact: "Write your email or phone number.",
      needText: "Write a message.",
      rateLimited: "Too many attempts: try again in {n} minutes.",
      closed: "The request is closed: it can no longer be answered.",
      network: "No connection, please try again.",
      generic: "Something went wrong, please try again.",
      status: {
        OPEN: "Open",
        IN_PROGRESS: "In progress",
        WAITING_CUSTOMER: "Waiting for your reply",
        RESOLVED: "Resolved",
        CLOSED: "Closed"
      }
    }
  };

  var params = new URLSearchParams(window.location.search);

  function pickLang() {
    var asked = (params.get("lang") || "").toLowerCase();
    if (asked === "it" || asked === "en") {
      return asked;
    }
    var nav = (navigator.language || (navigator.languages && navigator.languages[0]) || "").toLowerCase();
    return nav.indexOf("en") === 0 ? "en" : "it";
  }

  var lang = pickLang();
  var T = STRINGS[lang];
  var NUMBER_RE = /^[A-Za-z]{2,5}-[0-9]{4}-[0-9]{6,10}$/;
  var POLL_MS = [800, 1500, 2500, 4000, 6000];
  var MAX_TIMEOUT_MS = 2147483647; // longer delays fire at once in browsers

  function $(testid) {
    return document.querySelector('[data-testid="' + testid + '"]');
  }

  function meta(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    var value = node ? node.getAttribute("content") || "" : "";
    return /^__[A-Z_]+__$/.test(value) ? "" : value; // an un-substituted placeholder is nothing
  }

  var widgetKey = meta("widget-key");
  var tenantName = meta("tenant-name");
  var token = params.get("t") || "";

  // ------------------------------------------------------------------ texts

  document.documentElement.lang = lang;
  document.title = tenantName ? T.title + " — " + tenantName : T.title;
  var translated = document.querySelectorAll("[data-i18n]");
  for (var i = 0; i < translated.length; i++) {
    var text = T[translated[i].getAttribute("data-i18n")];
    if (typeof text === "string") {
      translated[i].textContent = text;
    }
  }
  function showTenant(name) {
    if (name) {
      $("tenant-name").textContent = name;
      $("tenant-name").hidden = false;
      document.title = T.title + " — " + name;
    }
  }
  showTenant(tenantName);

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function show(testid, message) {
    var node = $(testid);
    node.textContent = message || "";
    node.hidden = !message;
  }

  // The zone of a moment as the emails name it: its abbreviation (CET, CEST, EST, BST), which
  // browsers give in some locales only, else its offset (UTC+05:45) as the email writes it.
  function zoneName(d, zone) {
    var locales = [lang === "it" ? "it-IT" : "en-GB", "en-GB", "en-US"];
    var offset = "";
    for (var k = 0; k < locales.length; k++) {
      var name = "";
      var parts = new Intl.DateTimeFormat(locales[k], { timeZone: zone, timeZoneName: "short" }).formatToParts(d);
      for (var j = 0; j < parts.length; j++) {
        if (parts[j].type === "timeZoneName") {
          name = parts[j].value;
        }
      }
      if (/^[A-Z]{2,5}$/.test(name)) {
        return name;
      }
      offset = offset || name;
    }
    var m = /^GMT(?:([+-])(\d{1,2})(?::(\d{2}))?)?$/.exec(offset);
    if (m && m[1]) {
      return "UTC" + m[1] + (m[2].length < 2 ? "0" : "") + m[2] + ":" + (m[3] || "00");
    }
    return m ? "UTC" : offset;
  }

  // The one way this page writes a moment (the promised answer, a reply, the opening): as the
  // acknowledgment email writes it, in the tenant's zone and naming it (`12/12/2025 alle 14:30 CET`,
  // `01 Jul 2026 at 18:00 CEST`), so that the times of one ticket read alike wherever the customer is.
  function tenantTime(iso, zone) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) {
      return "";
    }
    try {
      new Intl.DateTimeFormat("en-GB", { timeZone: zone || undefined });
    } catch (e) {
      zone = undefined; // a zone this browser does not know: the reader's own, still named
    }
    var options = {
      day: "2-digit",
      month: lang === "it" ? "2-digit" : "short",
      year: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      timeZone: zone || undefined
    };
    var parts = new Intl.DateTimeFormat(lang === "it" ? "it-IT" : "en-GB", options).formatToParts(d);
    var p = {};
    for (var k = 0; k < parts.length; k++) {
      p[parts[k].type] = parts[k].value;
    }
    var date = lang === "it" ? p.day + "/" + p.month + "/" + p.year + " alle " : p.day + " " + p.month + " " + p.year + " at ";
    return date + p.hour + ":" + p.minute + " " + zoneName(d, zone);
  }

  // ------------------------------------------------------------------ HTTP

  // Whether a promised time has passed is the server's word, not the reader's device clock, which
  // may be minutes or hours off: each answer's Date header (to the second) tells how far.
  var serverClockOffsetMs = 0;

  function noteServerClock(dateHeader) {
    var serverTime = dateHeader ? Date.parse(dateHeader) : NaN;
    if (!isNaN(serverTime)) {
      serverClockOffsetMs = serverTime - Date.now();
    }
  }

  function serverNow() {
    return Date.now() + serverClockOffsetMs;
  }

  function call(method, path, body, withKey) {
    var headers = { Accept: "application/json" };
    if (body) {
      headers["Content-Type"] = "application/json";
    }
    if (withKey) {
      headers["X-Widget-Key"] = widgetKey;
    }
    return fetch(path, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      noteServerClock(response.headers.get("Date"));
      return response.text().then(function (raw) {
        var data = null;
        try {
          data = raw ? JSON.parse(raw) : null;
        } catch (e) {
          data = null;
        }
        return { ok: response.ok, status: response.status, data: data, retryAfter: response.headers.get("Retry-After") };
      });
    });
  }

  function failure(res, notFound) {
    if (!res) {
      return T.network;
    }
    if (res.status === 404) {
      return notFound;
    }
    if (res.status === 429) {
      var seconds = parseInt(res.retryAfter || "60", 10) || 60;
      return T.rateLimited.replace("{n}", String(Math.max(1, Math.ceil(seconds / 60))));
    }
    if (res.status === 409) {
      return T.closed;
    }
    return T.generic;
  }

  // ------------------------------------------------------------------ the ticket

  var current = null; // the PublicTicketView shown
  var dueTimer = null; // says the promise again when its time passes with the page open
  var viaLink = false; // shown by the link's token (which can answer), not by number and contact
  var pending = {}; // reply_id -> text, sent but not yet in the ticket's replies

  function render(view) {
    current = view;
    $("ticket-number").textContent = view.ticket_number;
    var badge = $("ticket-status");
    badge.textContent = T.status[view.status] || view.status;
    badge.setAttribute("data-status", view.status);
    $("ticket-opened").textContent = T.opened.replace("{d}", tenantTime(view.created_at, view.time_zone));
    showTenant(view.tenant_name);
    showDue(view);
    var request = typeof view.request === "string" ? view.request : "";
    $("ticket-request").textContent = request;
    $("ticket-request-box").hidden = !request.trim();
    var list = $("replies");
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    var replies = Array.isArray(view.replies) ? view.replies : [];
    for (var j = 0; j < replies.length; j++) {
      delete pending[replies[j].reply_id];
      var time = tenantTime(replies[j].created_at, view.time_zone);
      list.appendChild(replyItem(replies[j].author, replies[j].text, time, false));
    }
    for (var id in pending) {
      if (Object.prototype.hasOwnProperty.call(pending, id)) {
        list.appendChild(replyItem("customer", pending[id], T.sending, true));
      }
    }
    $("no-replies").hidden = list.childNodes.length > 0;
    $("ticket").hidden = false;
    var closed = view.status === "CLOSED";
    $("reply").hidden = !viaLink || closed;
    $("closed-note").hidden = !(viaLink && closed);
  }

  // What is owed before the first answer: the promised time while it is ahead; once it has passed
  // unanswered, no time at all (a time in the past, or a new one made up, would not be true).
  // Nothing once the ticket is solved, or when the server promises nothing (someone answered:
  // the tickets service sends no `answer_due` then).
  function showDue(view) {
    clearTimeout(dueTimer);
    var due = view.answer_due ? new Date(view.answer_due).getTime() : NaN;
    if (isNaN(due) || view.status === "RESOLVED" || view.status === "CLOSED") {
      show("ticket-due", "");
      return;
    }
    var left = due - serverNow();
    if (left <= 0) {
      show("ticket-due", T.dueSoon);
      return;
    }
    show("ticket-due", T.due.replace("{d}", tenantTime(view.answer_due, view.time_zone)));
    if (left < MAX_TIMEOUT_MS) {
      dueTimer = setTimeout(function () {
        showDue(view);
      }, left + 1000);
    }
  }

  function replyItem(author, text, time, isPending) {
    var item = el("li", "reply");
    item.setAttribute("data-testid", "reply-item");
    item.setAttribute("data-author", author === "customer" ? "customer" : "operator");
    if (isPending) {
      item.setAttribute("data-pending", "true");
    }
    item.appendChild(el("span", "who", author === "customer" ? T.you : T.us));
    item.appendChild(document.createTextNode(text));
    if (time) {
      item.appendChild(el("span", "when", time));
    }
    return item;
  }

  // ------------------------------------------------------------------ by number

  var lookupBusy = false;

  function lookup(ev) {
    ev.preventDefault();
    if (lookupBusy) {
      return;
    }
    var number = $("lookup-number").value.replace(/\s+/g, "").toUpperCase();
    var contact = $("lookup-contact").value.trim();
    if (!NUMBER_RE.test(number)) {
      show("lookup-error", T.badNumber);
      $("lookup-number").focus();
      return;
    }
    if (!contact) {
      show("lookup-error", T.needContact);
      $("lookup-contact").focus();
      return;
    }
    show("lookup-error", "");
    var query = (contact.indexOf("@") >= 0 ? "email=" : "phone=") + encodeURIComponent(contact);
    var button = $("lookup-submit");
    lookupBusy = true;
    button.disabled = true;
    button.textContent = T.searching;
    call("GET", "/v1/tickets/by-number/" + encodeURIComponent(number) + "?" + query, null, true)
      .then(function (res) {
        if (res.ok && res.data) {
          viaLink = false;
          show("link-error", "");
          render(res.data);
          $("lookup").hidden = true;
          $("lookup-again").hidden = false;
        } else {
          show("lookup-error", failure(res, T.notFound));
        }
      })
      .catch(function () {
        show("lookup-error", T.network);
      })
      .then(function () {
        lookupBusy = false;
        button.disabled = false;
        button.textContent = T.lookupButton;
      });
  }

  function lookupAgain() {
    $("ticket").hidden = true;
    $("lookup-again").hidden = true;
    $("lookup").hidden = false;
    $("lookup-number").focus();
  }

  // ------------------------------------------------------------------ by link, and replying

  function loadByLink() {
    return call("GET", "/v1/tickets/by-link?t=" + encodeURIComponent(token), null, false).then(function (res) {
      if (res.ok && res.data) {
        show("link-error", "");
        viaLink = true;
        render(res.data);
      } else if (!current) {
        // Never a dead end: the number and the contact still work, on the form of the tenant the
        // gateway read from the link (or the page's own); without one, say where to find it.
        show("link-error", failure(res, widgetKey ? T.linkNotFound : T.linkNoTenant));
        $("lookup").hidden = !widgetKey;
      }
      return res;
    });
  }

  function newReplyId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = "";
    for (var k = 0; k < 16; k++) {
      hex += (bytes[k] < 16 ? "0" : "") + bytes[k].toString(16);
    }
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  var replyBusy = false;
  var retryId = null; // a send that may have reached the server: resending reuses its id

  function reply(ev) {
    ev.preventDefault();
    if (replyBusy) {
      return;
    }
    var box = $("reply-text");
    var text = box.value.trim();
    if (!text) {
      show("reply-error", T.needText);
      box.focus();
      return;
    }
    show("reply-error", "");
    show("reply-sent", "");
    var id = retryId || newReplyId();
    var button = $("reply-submit");
    replyBusy = true;
    button.disabled = true;
    button.textContent = T.sending;
    call("POST", "/v1/tickets/by-link/replies", { t: token, text: text, reply_id: id }, false)
      .then(function (res) {
        if (res.ok && res.data) {
          retryId = null;
          box.value = "";
          pending[res.data.reply_id] = text;
          show("reply-sent", T.sent);
          if (current) {
            render(current);
          }
          poll(res.data.reply_id, 0);
        } else {
          retryId = res.status >= 500 ? id : null;
          show("reply-error", failure(res, T.linkNotFound));
        }
      })
      .catch(function () {
        retryId = id;
        show("reply-error", T.network);
      })
      .then(function () {
        replyBusy = false;
        button.disabled = false;
        button.textContent = T.replyButton;
      });
  }

  // The reply is stored by the tickets service a moment after it is accepted: reload until it shows.
  function poll(replyId, attempt) {
    if (!pending[replyId] || attempt >= POLL_MS.length) {
      return;
    }
    setTimeout(function () {
      loadByLink()
        .catch(function () {
          return null;
        })
        .then(function () {
          poll(replyId, attempt + 1);
        });
    }, POLL_MS[attempt]);
  }

  // ------------------------------------------------------------------ start

  $("lookup-form").addEventListener("submit", lookup);
  $("reply-form").addEventListener("submit", reply);
  $("lookup-again").addEventListener("click", lookupAgain);

  if (token) {
    loadByLink().catch(function () {
      show("link-error", T.network);
    });
  } else if (widgetKey) {
    $("lookup").hidden = false;
    var number = params.get("number");
    if (number) {
      $("lookup-number").value = number;
    }
  } else {
    $("no-tenant").hidden = false;
  }
})();

/*!
 * Customer-support chat widget (no build step, no dependencies).
 *
 * Embed with:
 *   <script src="https://GATEWAY/widget.js" data-widget-key="KEY" defer></script>
 *
 * Optional attributes: data-title (default: the tenant's name), data-lang (it|en: the widget
 * always speaks it), data-ticket-response-hours. Without data-lang the widget starts in the
 * browser's language and then speaks the conversation's: when the assistant answers in the other
 * one (the language it read the customer's message in), every word of the widget follows, and
 * the choice is kept with the conversation across reloads. At start-up the widget fetches
 * GET /v1/widget/config and applies the tenant's colours, position and texts in its language; if
 * that fails it keeps its built-in look.
 *
 * Everything lives inside an open shadow root, so the host page's CSS cannot
 * reach it and its CSS cannot leak out. All server and user text is rendered
 * with textContent / createTextNode: this file never builds HTML from strings.
 *
 * Automation hook: window.LucineWidget = {open(), close(), toggle(), state()}.
 * Stable data-testid attributes: launcher, unread, panel, close, status,
 * messages, welcome, message (data-sender, data-seq, data-message-id,
 * data-pending), actions, action-button (data-action), typing, error,
 * input, send, new-conversation; menu, menu-leave-message; the ticket form:
 * ticket-form, ticket-name, ticket-email, ticket-phone, ticket-preferred
 * (data-channel), ticket-message, ticket-submit, ticket-error, ticket-back,
 * ticket-back-to-ai (no operator available: back to the assistant),
 * ticket-registering, ticket-confirmation, ticket-number, ticket-promise,
 * ticket-status-link; the rating card of a closed conversation: rating,
 * rating-star (data-score 1..5), rating-comment, rating-submit, rating-thanks. Near the
 * 4,000-character limit of the message box and the form's message: input-counter,
 * ticket-message-counter; a paste the limit cut short: input-cut, ticket-message-cut.
 * data-ticket-response-hours on the script tag: the answer time promised when
 * a request is registered.
 */
(function () {
  "use strict";

  if (window.LucineWidget && window.LucineWidget.__loaded) {
    return;
  }

  // ---------------------------------------------------------------------------
  // Configuration from the script tag
  // ---------------------------------------------------------------------------

  var script =
    document.currentScript ||
    document.querySelector('script[data-widget-key][src*="widget.js"]');
  if (!script) {
    return;
  }

  var widgetKey = script.getAttribute("data-widget-key") || "";
  var scriptUrl = new URL(script.getAttribute("src") || "widget.js", document.baseURI);
  // Base URL = the script's directory (supports a gateway mounted under a path prefix).
  var basePath = scriptUrl.pathname.replace(/\/[^\/]*$/, "");
  var httpBase = scriptUrl.origin + basePath;
  var wsBase = (scriptUrl.protocol === "https:" ? "wss://" : "ws://") + scriptUrl.host + basePath;

  function supportedLang(value) {
    return value === "it" || value === "en" ? value : null;
  }

  // The site's choice, which nothing overrides; null: the widget follows the conversation.
  var forcedLang = supportedLang((script.getAttribute("data-lang") || "").toLowerCase());

  function pickLang() {
    if (forcedLang) {
      return forcedLang;
    }
    var nav = (navigator.language || (navigator.languages && navigator.languages[0]) || "").toLowerCase();
    if (nav.indexOf("en") === 0) {
      return "en";
    }
    return "it";
  }

  var lang = pickLang();

  var STRINGS = {
    it: {
      defaultTitle: "Assistente",
      subtitle: "Ti rispondiamo subito",
      open: "Apri la chat",
      close: "Chiudi la chat",
      placeholder: "Scrivi un messaggio…",
      inputLabel: "Messaggio",
      send: "Invia",
      messages: "Messaggi della conversazione",
      welcome: "Ciao! Come possiamo aiutarti?",
      you: "Tu",
      assistant: "Assistente",
      operator: "Operatore",
      typing: "Sta scrivendo…",
      sending: "Invio in corso…",
      connecting: "Connessione…",
      reconnecting: "Riconnessione…",
      queued: "In attesa di un operatore…",
      queuedAt: "In attesa di un operatore: sei {p}° in coda",
      queuedWait: " (circa {m} min)",
      askPerson: "Parla con una persona",
      handoffYes: "Sì, chiama un operatore",
      handoffNo: "No, continua con l'assistente",
      withOperator: "Sei in chat con un operatore",
      ticketPending: "Lasciaci i tuoi contatti: ti risponderemo al più presto",
      ticketCreated: "Richiesta di assistenza registrata",
      closed: "Conversazione chiusa",
      newConversation: "Nuova conversazione",
      rateLimited: "Troppi messaggi, riprova tra {n} secondi",
      networkError: "Connessione non disponibile. Il messaggio non è stato inviato, riprova.",
      genericError: "Si è verificato un errore. Riprova.",
      sessionExpired: "La conversazione precedente non è più disponibile.",
      unread: "{n} messaggi non letti",
      newTabLink: "{v} (si apre in una nuova scheda)",
      menu: "Altre opzioni",
      leaveMessage: "Lascia un messaggio",
      ticketTitle: "Lasciaci un messaggio",
      ticketIntro: "Nessun operatore è disponibile ora: lasciaci i tuoi contatti e ti risponderemo noi.",
      ticketIntroChosen: "Lasciaci i tuoi contatti e il messaggio: ti risponderemo noi.",
      ticketName: "Nome",
      ticketEmail: "Email",
      ticketPhone: "Telefono",
      ticketContactHint: "Almeno uno dei due.",
      ticketPreferred: "Come preferisci essere ricontattato?",
      ticketPreferredHint: "Scrivi prima l'email o il telefono.",
      channelEmail: "Email",
      channelWhatsapp: "WhatsApp",
      channelSms: "SMS",
      channelPhone: "Telefonata",
      ticketMessage: "Messaggio",
      ticketMessagePlaceholder: "Di cosa hai bisogno?",
      ticketSubmit: "Invia la richiesta",
      ticketSending: "Invio…",
      ticketBack: "Torna alla chat",
      ticketBackToAi: "Torna all'assistente",
      ticketRegistering: "Stiamo registrando la tua richiesta…",
      errName: "Scrivi il tuo nome.",
      errNameInvalid: "Questo nome non sembra valido.",
      errEmail: "Questa email non sembra valida.",
      errPhone: "Questo numero non sembra valido.",
      errContact: "Lasciaci un'email o un numero di telefono.",
      errMessage: "Scrivi il tuo messaggio.",
      errMessageInvalid: "Questo messaggio non sembra valido.",
      ticketDone: "Richiesta registrata",
      ticketNumberLabel: "Numero della richiesta",
      ticketWithin: "Ti risponderemo entro {h} ore.",
      ticketSoon: "Ti risponderemo al più presto.",
      ticketVia: {
        email: "Ti scriveremo a {v}.",
        whatsapp: "Ti scriveremo su WhatsApp al {v}.",
        sms: "Ti scriveremo via SMS al {v}.",
        phone: "Ti chiameremo al {v}."
      },
      ticketCallConfirmEmail: "Ti chiameremo al {v}; una conferma scritta arriverà alla tua email {e}.",
      ticketCallConfirmSms: "Ti chiameremo al {v}; una conferma scritta arriverà via SMS allo stesso numero.",
      ticketCallConfirmWhatsapp: "Ti chiameremo al {v}; una conferma scritta arriverà su WhatsApp allo stesso numero.",
      ticketStatusLink: "Segui lo stato della richiesta",
      feedbackGroup: "Questa risposta ti è stata utile?",
      helpful: "Risposta utile",
      notHelpful: "Risposta non utile",
      feedbackThanks: "Grazie per il tuo parere!",
      ratingTitle: "Com'è andata?",
      ratingIntro: "Dai un voto da 1 a 5 stelle alla conversazione.",
      ratingStars: "Il tuo voto",
      ratingStarOne: "1 stella su 5",
      ratingStarMany: "{n} stelle su 5",
      ratingComment: "Commento (facoltativo)",
      ratingCommentPlaceholder: "Vuoi dirci qualcosa in più?",
      ratingSubmit: "Invia la valutazione",
      ratingSending: "Invio…",
      ratingThanks: "Grazie per la tua valutazione!",
      charsLeft: "{n} caratteri rimasti",
      charLeft: "1 carattere rimasto",
      charsNone: "Hai raggiunto il limite di {n} caratteri.",
      charsOver: "{n} caratteri oltre il limite",
      pasteCut: "Il testo incollato supera il limite di {n} caratteri: gli ultimi {m} non sono stati inseriti."
    },
    en: {
      defaultTitle: "Assistant",
      subtitle: "We reply right away",
      open: "Open chat",
      close: "Close chat",
      placeholder: "Write a message…",
      inputLabel: "Message",
      send: "Send",
      messages: "Conversation messages",
      welcome: "Hi! How can we help you?",
      you: "You",
      assistant: "Assistant",
      operator: "Operator",
      typing: "Typing…",
      sending: "Sending…",
      connecting: "Connecting…",
      reconnecting: "Reconnecting…",
      queued: "Waiting for an operator…",
      queuedAt: "Waiting for an operator: you are number {p} in the queue",
      queuedWait: " (about {m} min)",
      askPerson: "Talk to a person",
      handoffYes: "Yes, call an operator",
      handoffNo: "No, continue with the assistant",
      withOperator: "You are chatting with an operator",
      ticketPending: "Leave us your contact details: we will get back to you soon",
      ticketCreated: "Support request registered",
      closed: "Conversation closed",
      newConversation: "New conversation",
      rateLimited: "Too many messages, try again in {n} seconds",
      networkError: "No connection. Your message was not sent, please try again.",
      genericError: "Something went wrong. Please try again.",
      sessionExpired: "The previous conversation is no longer available.",
      unread: "{n} unread messages",
      newTabLink: "{v} (opens in a new tab)",
      menu: "More options",
      leaveMessage: "Leave a message",
      ticketTitle: "Leave us a message",
      ticketIntro: "No operator is available right now: leave us your details and we will get back to you.",
      ticketIntroChosen: "Leave us your details and your message: we will get back to you.",
      ticketName: "Name",
      ticketEmail: "Email",
      ticketPhone: "Phone",
      ticketContactHint: "At least one of the two.",
      ticketPreferred: "How would you like us to contact you?",
      ticketPreferredHint: "Write your email or phone first.",
      channelEmail: "Email",
      channelWhatsapp: "WhatsApp",
      channelSms: "SMS",
      channelPhone: "Phone call",
      ticketMessage: "Message",
      ticketMessagePlaceholder: "What do you need?",
      ticketSubmit: "Send request",
      ticketSending: "Sending…",
      ticketBack: "Back to the chat",
      ticketBackToAi: "Back to the assistant",
      ticketRegistering: "We are registering your request…",
      errName: "Write your name.",
      errNameInvalid: "This name does not look valid.",
      errEmail: "This email does not look valid.",
      errPhone: "This number does not look valid.",
      errContact: "Leave us an email or a phone number.",
      errMessage: "Write your message.",
      errMessageInvalid: "This message does not look valid.",
      ticketDone: "Request registered",
      ticketNumberLabel: "Request number",
      ticketWithin: "We will answer within {h} hours.",
      ticketSoon: "We will answer as soon as possible.",
      ticketVia: {
        email: "We will write to {v}.",
        whatsapp: "We will write to you on WhatsApp at {v}.",
        sms: "We will write to you by SMS at {v}.",
        phone: "We will call you at {v}."
      },
      ticketCallConfirmEmail: "We will call you at {v}; a written confirmation goes to your email {e}.",
      ticketCallConfirmSms: "We will call you at {v}; a written confirmation goes by SMS to the same number.",
      ticketCallConfirmWhatsapp: "We will call you at {v}; a written confirmation goes on WhatsApp to the same number.",
      ticketStatusLink: "Follow the request's status",
      feedbackGroup: "Was this answer helpful?",
      helpful: "Helpful answer",
      notHelpful: "Not helpful",
      feedbackThanks: "Thanks for your feedback!",
      ratingTitle: "How did it go?",
      ratingIntro: "Rate the conversation from 1 to 5 stars.",
      ratingStars: "Your rating",
      ratingStarOne: "1 star out of 5",
      ratingStarMany: "{n} stars out of 5",
      ratingComment: "Comment (optional)",
      ratingCommentPlaceholder: "Anything else you would like to tell us?",
      ratingSubmit: "Send rating",
      ratingSending: "Sending…",
      ratingThanks: "Thanks for your rating!",
      charsLeft: "{n} characters left",
      charLeft: "1 character left",
      charsNone: "You have reached the limit of {n} characters.",
      charsOver: "{n} characters over the limit",
      pasteCut: "The pasted text is longer than the {n}-character limit: its last {m} characters were left out."
    }
  };
  // The widget's words in its language (with the tenant's own, once its configuration is read):
  // replaced by setLang() only.
  var T = STRINGS[lang];
  var tenantTexts = {}; // the tenant's texts by language (GET /v1/widget/config)
  var handoffLabels = {}; // the tenant's labels of the handoff buttons, by action; empty: the server's
  var siteTitle = (script.getAttribute("data-title") || "").trim();
  // An un-substituted template placeholder is not a title.
  if (/^__[A-Z_]+__$/.test(siteTitle)) {
    siteTitle = "";
  }

  // The answer time the site promises for requests left when nobody is online (hours), e.g.
  // data-ticket-response-hours="24"; without it the confirmation promises no time.
  var responseHours = parseInt(script.getAttribute("data-ticket-response-hours") || "", 10);
  if (!(responseHours >= 1 && responseHours <= 720)) {
    responseHours = 0;
  }

  function fmt(s, n) {
    return s.replace("{n}", String(n));
  }

  var TERMINAL = { RESOLVED: 1, NOT_RESOLVED: 1, CANCELLED: 1, ABANDONED: 1 };
  // Where the customer may choose to leave a message instead of waiting (no conversation yet too).
  var CAN_LEAVE_MESSAGE = { AI: 1, HANDOFF_OFFERED: 1, QUEUED: 1 };
  var TICKET_NUMBER_RE = /\b[A-Z]{2,5}-[0-9]{4}-[0-9]{6,10}\b/;
  // Dot-separated parts on both sides of the @ (no leading, trailing or doubled dot): the server
  // refuses any other address, and the customer is better told before sending. Special-use
  // domains (RFC 6761) receive no mail, and the server refuses them too.
  var EMAIL_RE = /^[^\s@.]+(?:\.[^\s@.]+)*@(?:[^\s@.]+\.)+[^\s@.]{2,}$/;
  var SPECIAL_USE_DOMAIN_RE = /\.(?:arpa|invalid|local|localhost|onion|test)$/i;
  var PHONE_RE = /^\+?[0-9 ().-]{6,24}$/;
  // The longest message the server takes (a customer's message, a ticket's message).
  var MAX_MESSAGE_CHARS = 4000;
  var PING_MS = 25000;
  var TYPING_MS = 15000;

  // ---------------------------------------------------------------------------
  // Persistent state (one entry per widget key)
  // ---------------------------------------------------------------------------

  var storageKey = "lucine-widget:v1:" + widgetKey;

  function loadStored() {
    try {
      var raw = window.localStorage.getItem(storageKey);
      if (!raw) {
        return null;
      }
      var v = JSON.parse(raw);
      if (v && typeof v.conversation_id === "string" && typeof v.customer_token === "string") {
        return v;
      }
    } catch (e) {
      /* storage disabled or corrupt: start fresh */
    }
    return null;
  }

  function saveStored() {
    try {
      if (!conv) {
        window.localStorage.removeItem(storageKey);
        return;
      }
      var state = { conversation_id: conv.id, customer_token: conv.token, last_seq: lastSeq };
      if (!forcedLang) {
        state.lang = lang; // the conversation's, which the history may not tell before its next answer
      }
      if (ticketSent) {
        state.ticket_sent = true; // after a reload the form is not offered again
        if (sentContact) {
          // The server does not repeat it: the confirmation says where the answer goes after a reload too.
          state.sent_contact = sentContact;
        }
      }
      if (rated) {
        state.rated = true; // one rating per conversation: after a reload the card is not offered again
      }
      if (queuePosition) {
        // Neither the history nor the stream's replay repeats the place in the queue: after a
        // reload the last one known is shown until the next update replaces it.
        state.queue_position = queuePosition;
        if (queueWaitSeconds) {
          state.queue_wait_seconds = queueWaitSeconds;
        }
      }
      var given = Object.keys(feedbackGiven);
      if (given.length) {
        // The answers already judged (the newest 50): after a reload their buttons stay pressed.
        state.feedback = {};
        for (var f = Math.max(0, given.length - 50); f < given.length; f++) {
          state.feedback[given[f]] = feedbackGiven[given[f]];
        }
      }
      window.localStorage.setItem(storageKey, JSON.stringify(state));
    } catch (e) {
      /* ignore: the widget still works for this page view */
    }
  }

  // ---------------------------------------------------------------------------
  // Runtime state
  // ---------------------------------------------------------------------------

  var conv = null; // {id, token}
  var convStatus = null;
  var queuePosition = 0; // where the conversation is in the operators' queue, while QUEUED
  var queueWaitSeconds = 0;
  var lastSeq = 0;
  var isOpen = false;
  var connected = false;
  var everConnected = false;
  var ws = null;
  var wsAttempt = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  var typingTimer = null;
  var errorTimer = null;
  var unread = 0;
  var generation = 0; // bumps when the conversation is replaced; stale callbacks compare it

  var buffered = {}; // seq -> message, waiting for a gap to be filled
  var fetchingGap = false;
  var pendingByMessageId = {}; // message_id -> pending bubble element
  var seenMessageIds = {}; // message_id -> true once rendered from the server
  var failedClientIds = {}; // text -> client_message_id of a send that may have reached the server
  var creating = null; // promise of an in-flight POST /v1/conversations
  var ticketChosen = false; // the customer chose "leave a message" from the menu
  var ticketSent = false; // the ticket details were accepted; the ticket number follows
  var ticketBusy = false; // a POST of the details is in flight (a second click does nothing)
  var sentContact = null; // {channel, value}: where the customer asked to be contacted
  var feedbackGiven = {}; // AI message_id -> true (helpful) / false: one feedback per answer
  var rated = false; // this conversation's rating was accepted (the server keeps one)
  var ratingScore = 0; // the stars chosen on the rating card, 0 before a choice
  var ratingBusy = false; // a POST of the rating is in flight (a second click does nothing)

  // ---------------------------------------------------------------------------
  // DOM helpers (no HTML strings anywhere)
  // ---------------------------------------------------------------------------

  // attrs.say: the node's words, {text or attribute: key or [key, value]} (see say()).
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k) && attrs[k] !== null && attrs[k] !== undefined) {
          if (k === "say") {
            for (var a in attrs.say) {
              var what = [].concat(attrs.say[a]);
              say(node, a, what[0], what[1]);
            }
          } else if (k === "text") {
            node.textContent = attrs[k];
          } else if (k === "className") {
            node.className = attrs[k];
          } else {
            node.setAttribute(k, attrs[k]);
          }
        }
      }
    }
    if (children) {
      for (var i = 0; i < children.length; i++) {
        if (children[i]) {
          node.appendChild(children[i]);
        }
      }
    }
    return node;
  }

  // ---------------------------------------------------------------------------
  // The widget's words: every one on screen is set by say(), so that setLang() can say it again
  // ---------------------------------------------------------------------------

  // The string `key` in the widget's language, its placeholders ({n}, {m}...) filled in order from
  // `value` (one value or a list); without a key, `value` itself (the server's or the site's text).
  function words(key, value) {
    var values = value === undefined || value === null ? [] : [].concat(value);
    if (!key) {
      return values.length ? String(values[0]) : "";
    }
    var i = 0;
    return T[key].replace(/\{[a-z]\}/g, function (placeholder) {
      var v = values[i++];
      if (typeof v === "number") {
        return v.toLocaleString(lang === "it" ? "it-IT" : "en-GB");
      }
      return v === undefined ? placeholder : String(v);
    });
  }

  // Sets the node's text (attr "text") or attribute to words(key, value), and keeps both on the node.
  function say(node, attr, key, value) {
    if (!node.lwSaid) {
      node.lwSaid = {};
      node.setAttribute("data-lw-said", "");
    }
    node.lwSaid[attr] = [key, value];
    var text = words(key, value);
    if (attr === "text") {
      node.textContent = text;
    } else {
      node.setAttribute(attr, text);
    }
    return node;
  }

  // Says again, in the widget's language now, what say() put on `holder` and inside it.
  function sayAgain(holder) {
    var nodes = [holder].concat(Array.prototype.slice.call(holder.querySelectorAll("[data-lw-said]")));
    for (var i = 0; i < nodes.length; i++) {
      var said = nodes[i].lwSaid;
      for (var attr in said || {}) {
        say(nodes[i], attr, said[attr][0], said[attr][1]);
      }
    }
  }

  var SVG_NS = "http://www.w3.org/2000/svg";

  function svgIcon(paths, size) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 24));
    svg.setAttribute("height", String(size || 24));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (var i = 0; i < paths.length; i++) {
      var p = document.createElementNS(SVG_NS, "path");
      p.setAttribute("d", paths[i]);
      svg.appendChild(p);
    }
    return svg;
  }

  var ICON_CHAT = [
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-4.5 3.6A.9.9 0 0 1 3 20.9V6a2 2 0 0 1 1-2z"
  ];
  var ICON_CLOSE = ["M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z"];
  var ICON_SEND = ["M3.4 20.4 21 12 3.4 3.6 3.4 10.2 15 12 3.4 13.8z"];
  // A hand with its thumb up (drawn for this widget); "not helpful" shows it turned over (CSS).
  var ICON_THUMB = ["M2 10h4v11H2zM8 21h9.3a2 2 0 0 0 1.9-1.4l2.3-7A2 2 0 0 0 19.6 10H14l1-4.6A2 2 0 0 0 13.1 3L8 9.5z"];
  var ICON_STAR = ["M12 2.5l2.6 6.1 6.6.6-5 4.4 1.5 6.5L12 16.8 6.3 20.1l1.5-6.5-5-4.4 6.6-.6z"];
  var ICON_MORE = [
    "M12 7.5a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 6.5a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 6.5a2 2 0 1 1 0-4 2 2 0 0 1 0 4z"
  ];

  function safeHttpUrl(raw) {
    if (typeof raw !== "string" || !raw) {
      return null;
    }
    try {
      var u = new URL(raw, document.baseURI);
      if (u.protocol === "http:" || u.protocol === "https:") {
        return u.href;
      }
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  function externalLink(href, label, extraAttrs) {
    var a = el("a", extraAttrs || {});
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = label;
    return a;
  }

  // Renders text with http(s) URLs turned into safe links and **bold** spans (knowledge-base
  // answers use them) as <strong>; everything else is a text node.
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  var BOLD_RE = /\*\*([^*\n]+)\*\*/g;

  function appendRichText(parent, text) {
    text = typeof text === "string" ? text : "";
    var last = 0;
    var m;
    BOLD_RE.lastIndex = 0;
    while ((m = BOLD_RE.exec(text)) !== null) {
      if (m.index > last) {
        appendLinkedText(parent, text.slice(last, m.index));
      }
      var strong = el("strong", {});
      appendLinkedText(strong, m[1]);
      parent.appendChild(strong);
      last = m.index + m[0].length;
    }
    if (last < text.length) {
      appendLinkedText(parent, text.slice(last));
    }
  }

  function appendLinkedText(parent, text) {
    var last = 0;
    var m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var raw = m[0].replace(/[.,;:!?)\]]+$/, "");
      var href = safeHttpUrl(raw);
      if (!href) {
        continue;
      }
      if (m.index > last) {
        parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      }
      parent.appendChild(externalLink(href, raw, { className: "lw-inline-link" }));
      last = m.index + raw.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) {
      parent.appendChild(document.createTextNode(text.slice(last)));
    }
  }

  // ---------------------------------------------------------------------------
  // Styles
  // ---------------------------------------------------------------------------

  var CSS = [
    // Inherited properties cross the shadow boundary: reset them. `!important` on :host wins over
    // the page's `!important` rules (inner context wins for important declarations).
    ":host{all:initial !important;}",
    ".lw-root{--g:#0e3b2c;--g1:#1f6b4f;--g2:#15563f;--g3:#e7f2ec;--r:#a3162a;--r2:#7f1020;--gold:#e0b54a;--gold2:#f6dc8f;",
    "--ink:#1d2521;--muted:#5a655f;--bg:#fbf8f1;--line:#e4dccb;",
    "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;font-size:15px;line-height:1.45;",
    "color:var(--ink);-webkit-font-smoothing:antialiased;}",
    ".lw-root *,.lw-root *::before,.lw-root *::after{box-sizing:border-box;}",
    "[hidden]{display:none !important;}",
    ".lw-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;",
    "border:3px solid var(--gold);background:radial-gradient(circle at 30% 30%,var(--g1),var(--g) 70%);color:#fff;cursor:pointer;",
    "display:flex;align-items:center;justify-content:center;padding:0;margin:0;",
    "box-shadow:0 6px 20px rgba(14,59,44,.35),0 0 0 4px rgba(224,181,74,.18);transition:transform .15s ease,box-shadow .15s ease;}",
    ".lw-launcher:hover{transform:translateY(-2px) scale(1.04);box-shadow:0 10px 26px rgba(14,59,44,.42),0 0 0 5px rgba(224,181,74,.25);}",
    ".lw-launcher svg{fill:currentColor;}",
    ".lw-launcher .lw-icon-close{display:none;}",
    ".lw-launcher[aria-expanded='true'] .lw-icon-chat{display:none;}",
    ".lw-launcher[aria-expanded='true'] .lw-icon-close{display:block;}",
    ".lw-unread{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;",
    "background:var(--r);color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center;border:2px solid #fff;}",
    ".lw-panel{position:fixed;right:20px;bottom:92px;z-index:2147483000;width:380px;height:600px;",
    "max-height:calc(100vh - 112px);max-width:calc(100vw - 40px);display:flex;flex-direction:column;overflow:hidden;",
    "background:var(--bg);border-radius:18px;border:1px solid rgba(14,59,44,.12);",
    "box-shadow:0 18px 50px rgba(10,30,22,.28),0 2px 8px rgba(10,30,22,.12);",
    "transform-origin:bottom right;animation:lw-pop .18s ease-out;}",
    "@keyframes lw-pop{from{opacity:0;transform:translateY(8px) scale(.98);}to{opacity:1;transform:none;}}",
    ".lw-header{position:relative;display:flex;align-items:center;gap:12px;padding:14px 14px 18px 16px;color:#fff;",
    "background:linear-gradient(135deg,var(--g) 0%,var(--g2) 100%);}",
    // a discreet string of coloured lights along the bottom edge of the header
    ".lw-header::after{content:'';position:absolute;left:0;right:0;bottom:4px;height:6px;opacity:.95;",
    "background-image:radial-gradient(circle,var(--gold2) 2px,transparent 2.6px),radial-gradient(circle,#ff6b6b 2px,transparent 2.6px);",
    "background-size:28px 6px,28px 6px;background-position:0 0,14px 0;background-repeat:repeat-x;}",
    ".lw-avatar{flex:none;width:40px;height:40px;border-radius:50%;background:var(--r);border:2px solid var(--gold);",
    "display:flex;align-items:center;justify-content:center;color:var(--gold2);}",
    ".lw-avatar svg{fill:currentColor;}",
    ".lw-titles{flex:1;min-width:0;}",
    ".lw-title{margin:0;font-size:17px;font-weight:700;letter-spacing:.2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;}",
    ".lw-subtitle{margin:2px 0 0;font-size:13px;color:#d6eadf;}",
    ".lw-close{flex:none;width:40px;height:40px;border-radius:50%;border:0;background:transparent;color:#fff;cursor:pointer;",
    "display:flex;align-items:center;justify-content:center;padding:0;}",
    ".lw-close:hover{background:rgba(255,255,255,.14);}",
    ".lw-ask-person{flex:none;border:1px solid rgba(255,255,255,.6);background:transparent;color:#fff;border-radius:16px;",
    "padding:4px 10px;font:inherit;font-size:12px;font-weight:600;cursor:pointer;margin-top:6px;}",
    ".lw-ask-person:hover,.lw-ask-person:focus-visible{background:rgba(255,255,255,.16);}",
    ".lw-ask-person[hidden]{display:none;}",
    ".lw-close svg{fill:currentColor;}",
    ".lw-status{padding:7px 14px;font-size:13px;font-weight:600;text-align:center;background:#fff4d6;color:#5c4300;",
    "border-bottom:1px solid #f0dfae;}",
    ".lw-status[data-connection='down']{background:#fde8e8;color:#7f1020;border-bottom-color:#f5c2c2;}",
    ".lw-status[data-conversation-status='WITH_OPERATOR']{background:var(--g3);color:var(--g);border-bottom-color:#c9e2d4;}",
    ".lw-messages{flex:1;overflow-y:auto;padding:16px 14px 8px;display:flex;flex-direction:column;gap:10px;",
    "background:var(--bg);overscroll-behavior:contain;}",
    ".lw-row{display:flex;flex-direction:column;max-width:85%;}",
    ".lw-row.lw-customer{align-self:flex-end;align-items:flex-end;}",
    ".lw-row.lw-ai,.lw-row.lw-operator,.lw-row.lw-welcome{align-self:flex-start;align-items:flex-start;}",
    ".lw-row.lw-system{align-self:center;max-width:92%;}",
    ".lw-sender{font-size:12px;color:var(--muted);margin:0 0 3px 4px;font-weight:600;}",
    ".lw-bubble{padding:9px 13px;border-radius:16px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere;}",
    ".lw-customer .lw-bubble{background:var(--r);color:#fff;border-bottom-right-radius:5px;}",
    ".lw-customer .lw-bubble a{color:#fff;}",
    ".lw-ai .lw-bubble,.lw-welcome .lw-bubble{background:#fff;color:var(--ink);border:1px solid var(--line);",
    "border-left:3px solid var(--gold);border-bottom-left-radius:5px;}",
    ".lw-operator .lw-bubble{background:var(--g3);color:#0b2e22;border:1px solid #c9e2d4;border-bottom-left-radius:5px;}",
    ".lw-system .lw-bubble{background:transparent;color:var(--muted);font-size:13px;font-style:italic;text-align:center;padding:2px 8px;}",
    ".lw-bubble a{color:var(--g2);text-decoration:underline;}",
    ".lw-row[data-pending='true'] .lw-bubble{opacity:.7;}",
    ".lw-meta{font-size:11.5px;color:var(--muted);margin:3px 6px 0;}",
    ".lw-actions{display:flex;flex-wrap:wrap;gap:6px;margin-top:7px;}",
    ".lw-action{font:inherit;font-size:14px;font-weight:600;line-height:1.2;padding:8px 13px;border-radius:999px;cursor:pointer;",
    "border:1.5px solid var(--g);background:#fff;color:var(--g);text-decoration:none;display:inline-flex;align-items:center;gap:6px;}",
    ".lw-action:hover{background:var(--g3);}",
    ".lw-action[data-action='request_operator']{background:var(--g);color:#fff;}",
    ".lw-action[data-action='request_operator']:hover{background:var(--g2);}",
    ".lw-action[data-action='open_url']{border-color:var(--r);color:var(--r);}",
    ".lw-action[data-action='open_url']:hover{background:#fdeced;}",
    ".lw-action[data-action='open_url']::after{content:'\\2197';font-size:13px;}",
    ".lw-action:disabled,.lw-action[aria-disabled='true']{opacity:.5;cursor:default;background:#f1efe9;color:var(--muted);border-color:#cfc8b8;}",
    ".lw-feedback{display:flex;align-items:center;gap:4px;margin:4px 2px 0;}",
    ".lw-feedback-btn{display:inline-flex;align-items:center;line-height:1;padding:4px 8px;border-radius:999px;cursor:pointer;",
    "border:1px solid var(--line);background:#fff;color:var(--muted);opacity:.8;}",
    ".lw-feedback-btn svg{fill:currentColor;}",
    ".lw-feedback-btn[data-helpful='false'] svg{transform:rotate(180deg);}",
    ".lw-feedback-btn[aria-pressed='true']{color:var(--g);}",
    ".lw-feedback-btn:hover:not(:disabled),.lw-feedback-btn:focus-visible{filter:none;opacity:1;border-color:var(--g2);}",
    ".lw-feedback-btn[aria-pressed='true']{filter:none;opacity:1;background:var(--g3);border-color:var(--g);}",
    ".lw-feedback-btn:disabled{cursor:default;}",
    ".lw-feedback-btn:disabled:not([aria-pressed='true']){opacity:.35;}",
    ".lw-feedback-thanks{font-size:11.5px;color:var(--muted);margin-left:4px;}",
    ".lw-typing{align-self:flex-start;display:flex;align-items:center;gap:4px;padding:10px 13px;background:#fff;",
    "border:1px solid var(--line);border-radius:16px;border-bottom-left-radius:5px;margin:0 14px 6px;width:max-content;}",
    ".lw-typing span{width:7px;height:7px;border-radius:50%;background:var(--g2);opacity:.35;animation:lw-blink 1.2s infinite;}",
    ".lw-typing span:nth-child(2){animation-delay:.2s;}",
    ".lw-typing span:nth-child(3){animation-delay:.4s;}",
    "@keyframes lw-blink{0%,80%,100%{opacity:.25;transform:translateY(0);}40%{opacity:1;transform:translateY(-2px);}}",
    ".lw-sr{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0;}",
    ".lw-error{margin:0 12px 8px;padding:8px 12px;border-radius:10px;background:#fde8e8;color:#7f1020;font-size:13.5px;",
    "border:1px solid #f5c2c2;}",
    ".lw-newconv{align-self:center;margin:4px 0 8px;}",
    ".lw-composer{display:flex;flex-wrap:wrap;align-items:flex-end;gap:8px;padding:10px 12px 12px;border-top:1px solid var(--line);background:#fff;}",
    // Near the limit of a text box: how much is left, or what a paste lost to it.
    ".lw-limit{flex:1 0 100%;display:flex;justify-content:flex-end;font-size:12.5px;line-height:1.35;color:var(--muted);}",
    ".lw-field .lw-limit{margin:4px 0 0;}",
    ".lw-cut{flex:1;color:var(--r2);font-weight:600;}",
    ".lw-input{flex:1;resize:none;font:inherit;font-size:16px;line-height:1.4;color:var(--ink);background:#fff;",
    "border:1.5px solid #cfc8b8;border-radius:14px;padding:9px 12px;max-height:120px;min-height:42px;outline:none;margin:0;}",
    ".lw-input::placeholder{color:#7a847e;}",
    ".lw-input:focus{border-color:var(--g2);box-shadow:0 0 0 3px rgba(21,86,63,.15);}",
    ".lw-send{flex:none;width:44px;height:44px;border-radius:50%;border:0;cursor:pointer;background:var(--g);color:var(--gold2);",
    "display:flex;align-items:center;justify-content:center;padding:0;margin:0;}",
    ".lw-send:hover{background:var(--g2);}",
    ".lw-send:disabled{background:#b9c4be;color:#fff;cursor:default;}",
    ".lw-send svg{fill:currentColor;}",
    ".lw-root button:focus-visible,.lw-root a:focus-visible{outline:3px solid var(--gold);outline-offset:2px;}",
    ".lw-launcher:focus-visible{outline:3px solid var(--r);outline-offset:3px;}",
    // the header's menu
    ".lw-menu-wrap{position:relative;flex:none;}",
    ".lw-menu-btn{width:36px;height:40px;border-radius:50%;border:0;background:transparent;color:#fff;cursor:pointer;",
    "display:flex;align-items:center;justify-content:center;padding:0;}",
    ".lw-menu-btn:hover{background:rgba(255,255,255,.14);}",
    ".lw-menu-btn svg{fill:currentColor;}",
    ".lw-menu{position:absolute;right:0;top:44px;z-index:2;min-width:200px;background:#fff;border:1px solid var(--line);",
    "border-radius:12px;box-shadow:0 10px 28px rgba(10,30,22,.22);padding:6px;}",
    ".lw-menu-item{display:block;width:100%;text-align:left;font:inherit;font-size:14.5px;color:var(--ink);background:none;",
    "border:0;border-radius:8px;padding:9px 12px;cursor:pointer;}",
    ".lw-menu-item:hover,.lw-menu-item:focus-visible{background:var(--g3);}",
    // the ticket form and its confirmation, as cards at the end of the conversation
    // A long unbroken address or number ("Ti scriveremo a …") wraps inside the card, never past it.
    ".lw-card{align-self:stretch;background:#fff;border:1px solid var(--line);border-top:3px solid var(--gold);",
    "border-radius:14px;padding:14px 14px 16px;margin:2px 0 6px;overflow-wrap:anywhere;}",
    ".lw-card h3{margin:0 0 4px;font-size:16px;color:var(--g);}",
    ".lw-card p{margin:0 0 10px;font-size:13.5px;color:var(--muted);}",
    ".lw-field{margin:0 0 11px;border:0;padding:0;min-width:0;}",
    ".lw-label{display:block;font-size:13px;font-weight:700;color:var(--ink);margin:0 0 4px;}",
    ".lw-field input[type='text'],.lw-field input[type='email'],.lw-field input[type='tel'],.lw-field textarea{",
    "display:block;width:100%;font:inherit;font-size:16px;color:var(--ink);background:#fff;border:1.5px solid #cfc8b8;",
    "border-radius:10px;padding:8px 11px;margin:0;outline:none;}",
    ".lw-field textarea{resize:vertical;min-height:78px;max-height:200px;}",
    ".lw-field input:focus,.lw-field textarea:focus{border-color:var(--g2);box-shadow:0 0 0 3px rgba(21,86,63,.15);}",
    ".lw-field [aria-invalid='true']{border-color:var(--r);}",
    ".lw-pair{display:flex;gap:10px;}",
    ".lw-pair>.lw-field{flex:1;min-width:0;}",
    ".lw-hint{display:block;font-size:12.5px;color:var(--muted);margin:4px 0 0;}",
    ".lw-field-error{display:block;font-size:12.5px;color:var(--r2);font-weight:600;margin:4px 0 0;}",
    ".lw-choices{display:flex;flex-wrap:wrap;gap:6px;}",
    ".lw-choice{display:inline-flex;align-items:center;gap:6px;font-size:14px;border:1.5px solid #cfc8b8;border-radius:999px;",
    "padding:5px 12px 5px 9px;cursor:pointer;background:#fff;}",
    ".lw-choice input{margin:0;accent-color:var(--g);}",
    ".lw-choice:has(input:checked){border-color:var(--g);background:var(--g3);color:var(--g);font-weight:600;}",
    ".lw-form-actions{display:flex;flex-wrap:wrap;align-items:center;gap:12px;margin-top:4px;}",
    ".lw-primary{font:inherit;font-size:15px;font-weight:700;border:0;border-radius:999px;padding:10px 20px;cursor:pointer;",
    "background:var(--g);color:#fff;}",
    ".lw-primary:hover{background:var(--g2);}",
    ".lw-primary:disabled{background:#b9c4be;cursor:default;}",
    ".lw-to-ai{margin:0 0 14px;}",
    ".lw-to-ai::before{content:'\\2190';}",
    ".lw-linkbtn{font:inherit;font-size:14px;background:none;border:0;padding:4px 0;color:var(--g2);text-decoration:underline;cursor:pointer;}",
    ".lw-done-number{display:inline-block;font-size:19px;font-weight:800;letter-spacing:.4px;color:var(--g);",
    "background:var(--g3);border:1px dashed var(--g2);border-radius:10px;padding:4px 12px;margin:2px 0 10px;}",
    ".lw-card .lw-promise{color:var(--ink);font-weight:600;}",
    ".lw-card a{color:var(--g2);font-weight:600;}",
    // the rating card of a closed conversation: the stars light up to the chosen (or hovered) one
    ".lw-stars{display:flex;gap:2px;margin:0 0 12px -4px;}",
    ".lw-star{width:42px;height:42px;display:inline-flex;align-items:center;justify-content:center;padding:0;margin:0;",
    "border:0;border-radius:10px;background:transparent;cursor:pointer;}",
    ".lw-star svg{fill:transparent;stroke:#a99f86;stroke-width:1.4;stroke-linejoin:round;transition:transform .1s ease;}",
    ".lw-star[data-lit='true'] svg{fill:var(--gold);stroke:#b0862a;}",
    // Hovering previews a score; not on touch screens, where :hover sticks after a tap.
    "@media (hover:hover){",
    ".lw-star:hover:not(:disabled) ~ .lw-star svg{fill:transparent;stroke:#a99f86;}",
    ".lw-star:hover:not(:disabled) svg,.lw-star:has(~ .lw-star:hover:not(:disabled)) svg{fill:var(--gold2);stroke:#b0862a;}",
    ".lw-star:hover:not(:disabled) svg{transform:scale(1.12);}",
    "}",
    ".lw-star:disabled{cursor:default;}",
    ".lw-rating-thanks{align-self:center;display:flex;align-items:center;gap:6px;margin:2px 0 6px;padding:6px 14px;",
    "border-radius:999px;background:var(--g3);border:1px solid #c9e2d4;color:var(--g);font-size:14px;font-weight:600;}",
    ".lw-rating-thanks svg{fill:var(--gold);flex:none;}",
    ".lw-rating-thanks:focus{outline:none;}",
    // The tenant's position setting (GET /v1/widget/config): the launcher and panel on the left.
    ".lw-root.lw-left .lw-launcher,.lw-root.lw-left .lw-panel{left:20px;right:auto;}",
    ".lw-root.lw-left .lw-panel{transform-origin:bottom left;}",
    "@media (max-width:420px){",
    ".lw-root.lw-left .lw-panel{left:0;right:0;}",
    ".lw-panel{inset:0;right:0;bottom:0;width:100%;height:100%;height:100dvh;max-width:none;max-height:none;border-radius:0;border:0;}",
    ".lw-launcher[aria-expanded='true']{display:none;}",
    ".lw-row{max-width:90%;}",
    ".lw-pair{flex-direction:column;gap:0;}",
    ".lw-primary{width:100%;}",
    "}",
    "@media (prefers-reduced-motion:reduce){.lw-panel,.lw-typing span{animation:none;}.lw-launcher,.lw-star svg{transition:none;}}"
  ].join("\n");

  // ---------------------------------------------------------------------------
  // Build the UI
  // ---------------------------------------------------------------------------

  // A custom element name: host-page selectors such as `div {…}` do not match it.
  var host = el("lucine-chat-widget", { id: "lucine-widget-host", "data-testid": "widget-host" });
  var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = document.createElement("style");
  style.textContent = CSS;

  var root = el("div", { className: "lw-root", lang: lang });

  var unreadBadge = el("span", { className: "lw-unread", "data-testid": "unread", "aria-hidden": "true", hidden: "" });
  var launcher = el(
    "button",
    {
      type: "button",
      className: "lw-launcher",
      "data-testid": "launcher",
      "aria-label": T.open, // worded by updateUnread() from then on
      "aria-expanded": "false",
      "aria-controls": "lw-panel"
    },
    [svgIcon(ICON_CHAT, 28), svgIcon(ICON_CLOSE, 26), unreadBadge]
  );
  launcher.childNodes[0].setAttribute("class", "lw-icon-chat");
  launcher.childNodes[1].setAttribute("class", "lw-icon-close");

  var closeBtn = el(
    "button",
    { type: "button", className: "lw-close", "data-testid": "close", say: { "aria-label": "close" } },
    [svgIcon(ICON_CLOSE, 22)]
  );
  var askPersonBtn = el("button", {
    type: "button",
    className: "lw-ask-person",
    "data-testid": "ask-person",
    hidden: "",
    say: { text: "askPerson" }
  });
  var menuBtn = el(
    "button",
    {
      type: "button",
      className: "lw-menu-btn",
      "data-testid": "menu",
      say: { "aria-label": "menu", title: "menu" },
      "aria-haspopup": "true",
      "aria-expanded": "false",
      "aria-controls": "lw-menu"
    },
    [svgIcon(ICON_MORE, 22)]
  );
  var leaveMessageItem = el("button", {
    type: "button",
    className: "lw-menu-item",
    "data-testid": "menu-leave-message",
    role: "menuitem",
    say: { text: "leaveMessage" }
  });
  var menuEl = el("div", { className: "lw-menu", id: "lw-menu", role: "menu", hidden: "" }, [leaveMessageItem]);
  var menuWrap = el("div", { className: "lw-menu-wrap" }, [menuBtn, menuEl]);
  // The site's title (data-title), else the tenant's name once known, else the widget's own word.
  var titleEl = el("h2", {
    className: "lw-title",
    id: "lw-title",
    say: { text: siteTitle ? [null, siteTitle] : "defaultTitle" }
  });
  var header = el("div", { className: "lw-header" }, [
    el("div", { className: "lw-avatar", "aria-hidden": "true" }, [svgIcon(ICON_STAR, 22)]),
    // The "talk to a person" button sits under the title: beside it, it squeezed a long name away.
    el("div", { className: "lw-titles" }, [
      titleEl,
      el("p", { className: "lw-subtitle", say: { text: "subtitle" } }),
      askPersonBtn
    ]),
    menuWrap,
    closeBtn
  ]);

  var statusEl = el("div", {
    className: "lw-status",
    "data-testid": "status",
    role: "status",
    "aria-live": "polite",
    hidden: ""
  });

  var messagesEl = el("div", {
    className: "lw-messages",
    "data-testid": "messages",
    role: "log",
    "aria-live": "polite",
    "aria-relevant": "additions",
    say: { "aria-label": "messages" },
    tabindex: "0"
  });
  var welcomeBubble = el("div", { className: "lw-bubble", say: { text: "welcome" } });
  var welcomeEl = el("div", { className: "lw-row lw-welcome", "data-testid": "welcome" }, [welcomeBubble]);
  messagesEl.appendChild(welcomeEl);

  var newConvBtn = el("button", {
    type: "button",
    className: "lw-action lw-newconv",
    "data-testid": "new-conversation",
    say: { text: "newConversation" },
    hidden: ""
  });

  // ---- the ticket form (TICKET_PENDING, or chosen from the menu) and its confirmation ----

  var formSeq = 0;

  function field(labelKey, control, hintKey) {
    formSeq += 1;
    var id = "lw-f" + formSeq;
    control.id = id;
    var label = el("label", { className: "lw-label", for: id, say: { text: labelKey } });
    var error = el("span", { className: "lw-field-error", id: id + "-err", role: "alert", hidden: "" });
    var described = [];
    var hint = null;
    if (hintKey) {
      hint = el("span", { className: "lw-hint", id: id + "-hint", say: { text: hintKey } });
      described.push(hint.id);
    }
    described.push(error.id);
    control.setAttribute("aria-describedby", described.join(" "));
    var box = el("div", { className: "lw-field" }, [label, control, hint, error]);
    return { box: box, control: control, error: error };
  }

  // The limit of a text box (its maxlength) told to the customer: how much is left once near it,
  // and what a paste lost to it (the browser cuts a paste at the limit without a word). `box`
  // holds both; update() is for changes made by the widget (no input event).
  function limitNotes(control, testid) {
    var max = parseInt(control.getAttribute("maxlength"), 10);
    var near = Math.round(max / 10); // the counter shows from 10% left
    var counter = el("span", {
      className: "lw-counter",
      id: "lw-" + testid + "-count",
      "data-testid": testid + "-counter"
    });
    var cut = el("span", { className: "lw-cut", "data-testid": testid + "-cut", role: "alert", hidden: "" });
    var box = el("div", { className: "lw-limit", hidden: "" }, [counter, cut]);
    var pastedLength = -1; // what the paste under way would make the text's length; -1: none
    // Read with the box by a screen reader; empty while far from the limit.
    var described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", (described ? described + " " : "") + counter.id);
    control.addEventListener("paste", function (ev) {
      var pasted = (ev.clipboardData && ev.clipboardData.getData("text/plain")) || "";
      var replaced = Math.abs(control.selectionEnd - control.selectionStart);
      pastedLength = control.value.length - replaced + pasted.replace(/\r\n?/g, "\n").length;
      // A box already full takes nothing, and then no input event comes to tell.
      setTimeout(update, 0);
    });
    function update() {
      var length = control.value.length;
      var left = max - length;
      if (pastedLength > length) {
        say(cut, "text", "pasteCut", [max, pastedLength - length]);
        cut.hidden = false;
      } else if (left > near) {
        cut.hidden = true; // well under the limit again (or sent): the notice has been read
      }
      pastedLength = -1;
      counter.hidden = left > near || !cut.hidden; // the notice states the limit itself
      if (counter.hidden) {
        say(counter, "text", null, "");
      } else if (left < 0) {
        say(counter, "text", "charsOver", -left); // a text the widget put back (restoreText)
      } else if (left === 0) {
        say(counter, "text", "charsNone", max);
      } else {
        say(counter, "text", left === 1 ? "charLeft" : "charsLeft", left);
      }
      box.hidden = counter.hidden && cut.hidden;
    }
    control.addEventListener("input", update);
    return { box: box, update: update };
  }

  var nameField = field(
    "ticketName",
    el("input", { type: "text", "data-testid": "ticket-name", autocomplete: "name", maxlength: "200" })
  );
  var emailField = field(
    "ticketEmail",
    el("input", { type: "email", "data-testid": "ticket-email", autocomplete: "email", maxlength: "254", inputmode: "email" })
  );
  var phoneField = field(
    "ticketPhone",
    el("input", { type: "tel", "data-testid": "ticket-phone", autocomplete: "tel", maxlength: "24", inputmode: "tel" })
  );
  var messageField = field(
    "ticketMessage",
    el("textarea", {
      "data-testid": "ticket-message",
      rows: "3",
      maxlength: String(MAX_MESSAGE_CHARS),
      say: { placeholder: "ticketMessagePlaceholder" }
    })
  );
  var messageLimit = limitNotes(messageField.control, "ticket-message");
  messageField.box.insertBefore(messageLimit.box, messageField.error);
  var contactHint = el("span", { className: "lw-hint", say: { text: "ticketContactHint" } });

  // The preferred channel: only those for which a value was given, and of the written ones only
  // those the tenant can send on (the configuration's `channels`: WhatsApp and SMS need the
  // tenant's Twilio senders). A phone call is made by a person, so it is always offered.
  var CHANNELS = [
    { value: "email", label: "channelEmail", needs: "email", written: true },
    { value: "whatsapp", label: "channelWhatsapp", needs: "phone", written: true },
    { value: "sms", label: "channelSms", needs: "phone", written: true },
    { value: "phone", label: "channelPhone", needs: "phone", written: false }
  ];
  // Email until the configuration says more: the notifier always sends it.
  var writtenChannels = ["email"];
  // Whether the customer picked a channel: until then the first one offered is preselected.
  var channelChosen = false;
  var choicesEl = el("div", { className: "lw-choices", role: "radiogroup", "aria-labelledby": "lw-pref-label" });
  var choiceInputs = {};
  var choiceLabels = {};
  for (var ci = 0; ci < CHANNELS.length; ci++) {
    var radio = el("input", {
      type: "radio",
      name: "lw-preferred",
      value: CHANNELS[ci].value,
      "data-testid": "ticket-preferred",
      "data-channel": CHANNELS[ci].value
    });
    radio.addEventListener("change", function () {
      channelChosen = true;
    });
    choiceInputs[CHANNELS[ci].value] = radio;
    choiceLabels[CHANNELS[ci].value] = el("label", { className: "lw-choice" }, [
      radio,
      el("span", { say: { text: CHANNELS[ci].label } })
    ]);
    choicesEl.appendChild(choiceLabels[CHANNELS[ci].value]);
  }
  var preferredHint = el("span", {
    className: "lw-hint",
    "data-testid": "ticket-preferred-hint",
    say: { text: "ticketPreferredHint" }
  });
  var preferredBox = el("div", { className: "lw-field", role: "group" }, [
    el("span", { className: "lw-label", id: "lw-pref-label", say: { text: "ticketPreferred" } }),
    choicesEl,
    preferredHint
  ]);

  var ticketSubmit = el("button", {
    type: "submit",
    className: "lw-primary",
    "data-testid": "ticket-submit",
    say: { text: "ticketSubmit" }
  });
  var ticketBack = el("button", {
    type: "button",
    className: "lw-linkbtn",
    "data-testid": "ticket-back",
    say: { text: "ticketBack" }
  });
  var ticketIntro = el("p", { "data-testid": "ticket-intro", say: { text: "ticketIntro" } });
  // No operator was free (TICKET_PENDING): leaving a message is offered, not imposed. Under the
  // intro, where it is seen without scrolling through the form.
  var ticketToAi = el("button", {
    type: "button",
    className: "lw-action lw-to-ai",
    "data-testid": "ticket-back-to-ai",
    say: { text: "ticketBackToAi" },
    hidden: ""
  });
  var ticketFormError = el("div", { className: "lw-field-error", "data-testid": "ticket-error", role: "alert", hidden: "" });
  var ticketForm = el("form", {
    className: "lw-card",
    "data-testid": "ticket-form",
    novalidate: "",
    hidden: "",
    say: { "aria-label": "ticketTitle" }
  }, [
    el("h3", { say: { text: "ticketTitle" } }),
    ticketIntro,
    ticketToAi,
    nameField.box,
    el("div", { className: "lw-pair" }, [emailField.box, phoneField.box]),
    el("div", { className: "lw-field" }, [contactHint]),
    preferredBox,
    messageField.box,
    ticketFormError,
    el("div", { className: "lw-form-actions" }, [ticketSubmit, ticketBack])
  ]);

  var ticketWaiting = el("div", { className: "lw-card", "data-testid": "ticket-registering", role: "status", hidden: "" }, [
    el("p", { say: { text: "ticketRegistering" } })
  ]);

  var doneNumber = el("div", { className: "lw-done-number", "data-testid": "ticket-number" });
  var donePromise = el("p", { className: "lw-promise", "data-testid": "ticket-promise" });
  var doneVia = el("p", { "data-testid": "ticket-via", hidden: "" });
  var doneLinkBox = el("p", {});
  var ticketDone = el("div", { className: "lw-card", "data-testid": "ticket-confirmation", role: "status", hidden: "" }, [
    el("h3", { say: { text: "ticketDone" } }),
    el("span", { className: "lw-hint", say: { text: "ticketNumberLabel" } }),
    doneNumber,
    donePromise,
    doneVia,
    doneLinkBox
  ]);

  // ---- the rating card of a closed conversation, and the thanks that replaces it ----

  var starsEl = el("div", { className: "lw-stars", role: "group", say: { "aria-label": "ratingStars" } });
  var starButtons = [];
  for (var si = 1; si <= 5; si++) {
    var starLabel = si === 1 ? ["ratingStarOne"] : ["ratingStarMany", si];
    var star = el(
      "button",
      {
        type: "button",
        className: "lw-star",
        "data-testid": "rating-star",
        "data-score": String(si),
        say: { "aria-label": starLabel, title: starLabel },
        "aria-pressed": "false",
        // One tab stop for the row: the arrows move between the stars (see onStarKey).
        tabindex: si === 1 ? "0" : "-1"
      },
      [svgIcon(ICON_STAR, 30)]
    );
    starButtons.push(star);
    starsEl.appendChild(star);
  }
  var ratingCommentField = field(
    "ratingComment",
    el("textarea", {
      "data-testid": "rating-comment",
      rows: "2",
      maxlength: "2000",
      say: { placeholder: "ratingCommentPlaceholder" }
    })
  );
  var ratingSubmit = el("button", {
    type: "submit",
    className: "lw-primary",
    "data-testid": "rating-submit",
    say: { text: "ratingSubmit" },
    disabled: ""
  });
  var ratingIntro = el("p", { id: "lw-rating-intro", say: { text: "ratingIntro" } });
  var ratingCard = el(
    "form",
    {
      className: "lw-card",
      "data-testid": "rating",
      novalidate: "",
      "aria-describedby": ratingIntro.id,
      hidden: "",
      say: { "aria-label": "ratingTitle" }
    },
    [
      el("h3", { say: { text: "ratingTitle" } }),
      ratingIntro,
      starsEl,
      ratingCommentField.box,
      el("div", { className: "lw-form-actions" }, [ratingSubmit])
    ]
  );
  var ratingThanks = el(
    "div",
    { className: "lw-rating-thanks", "data-testid": "rating-thanks", role: "status", tabindex: "-1", hidden: "" },
    [svgIcon(ICON_STAR, 16), el("span", { say: { text: "ratingThanks" } })]
  );

  var typingEl = el(
    "div",
    { className: "lw-typing", "data-testid": "typing", role: "status", hidden: "" },
    [el("span"), el("span"), el("span"), el("span", { className: "lw-sr", say: { text: "typing" } })]
  );

  var errorEl = el("div", { className: "lw-error", "data-testid": "error", role: "alert", hidden: "" });

  var input = el("textarea", {
    className: "lw-input",
    "data-testid": "input",
    rows: "1",
    say: { placeholder: "placeholder", "aria-label": "inputLabel" },
    maxlength: String(MAX_MESSAGE_CHARS),
    autocomplete: "off"
  });
  var inputLimit = limitNotes(input, "input");
  var sendBtn = el(
    "button",
    { type: "button", className: "lw-send", "data-testid": "send", say: { "aria-label": "send", title: "send" } },
    [svgIcon(ICON_SEND, 22)]
  );
  var composer = el("div", { className: "lw-composer" }, [inputLimit.box, input, sendBtn]);

  var panel = el(
    "div",
    {
      className: "lw-panel",
      id: "lw-panel",
      "data-testid": "panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": "lw-title",
      hidden: ""
    },
    [header, statusEl, messagesEl, typingEl, errorEl, composer]
  );

  root.appendChild(panel);
  root.appendChild(launcher);
  shadow.appendChild(style);
  shadow.appendChild(root);

  function mount() {
    if (!host.isConnected) {
      document.body.appendChild(host);
    }
  }

  // ---------------------------------------------------------------------------
  // UI state updates
  // ---------------------------------------------------------------------------

  function nearBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
  }

  function scrollToBottom() {
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  // The end of the conversation in view, but never past the top of its first card: a form
  // taller than the list is shown from its title and first field, not from its last lines.
  function showEnd() {
    scrollToBottom();
    var card = firstVisibleCard();
    if (card) {
      var hidden = messagesEl.getBoundingClientRect().top - card.getBoundingClientRect().top + 8;
      if (hidden > 0) {
        messagesEl.scrollTop -= hidden;
      }
    }
  }

  // The banner sits above the list: when it grows (a second line, "sei 3° in coda (circa 4 min)")
  // the list shrinks from the bottom and its last message was left cut off. A customer reading
  // the end of the conversation keeps reading it.
  function setBannerText(text) {
    var wasNear = isOpen && nearBottom();
    var before = statusEl.offsetHeight;
    statusEl.textContent = text;
    statusEl.hidden = !text;
    if (wasNear && statusEl.offsetHeight !== before) {
      showEnd();
    }
  }

  function renderStatus() {
    var text = "";
    var down = conv && !connected;
    if (down) {
      text = everConnected ? T.reconnecting : T.connecting;
    } else if (convStatus === "QUEUED") {
      text = T.queued;
      if (queuePosition) {
        text = T.queuedAt.replace("{p}", String(queuePosition));
        if (queueWaitSeconds) {
          text += T.queuedWait.replace("{m}", String(Math.max(1, Math.round(queueWaitSeconds / 60))));
        }
      }
    } else if (convStatus === "WITH_OPERATOR") {
      text = T.withOperator;
    } else if (convStatus === "TICKET_PENDING") {
      text = T.ticketPending;
    } else if (convStatus === "TICKET_CREATED") {
      text = T.ticketCreated;
    } else if (convStatus && TERMINAL[convStatus]) {
      text = T.closed;
    }
    statusEl.setAttribute("data-connection", conv ? (connected ? "up" : "down") : "none");
    statusEl.setAttribute("data-conversation-status", convStatus || "");
    if (statusEl.textContent !== text || statusEl.hidden !== !text) {
      setBannerText(text);
    }
    // A conversation with a ticket takes no more messages: the next question is a new conversation.
    newConvBtn.hidden = !(convStatus && (TERMINAL[convStatus] || convStatus === "TICKET_CREATED"));
    // A person can be asked for at any time while the assistant has the conversation.
    askPersonBtn.hidden = !(conv && (convStatus === "AI" || convStatus === "HANDOFF_OFFERED"));
    if (!newConvBtn.hidden && messagesEl.lastChild !== newConvBtn) {
      messagesEl.appendChild(newConvBtn); // keep it last
    }
    renderTicket();
    renderRating();
  }

  // ---------------------------------------------------------------------------
  // The ticket form: no operator online (TICKET_PENDING), or chosen from the menu
  // ---------------------------------------------------------------------------

  // The cards at the end of the conversation: server messages are inserted above them.
  var CARDS = [ticketForm, ticketWaiting, ticketDone, ratingCard, ratingThanks];

  function firstVisibleCard() {
    for (var i = 0; i < CARDS.length; i++) {
      if (!CARDS[i].hidden && CARDS[i].parentNode === messagesEl) {
        return CARDS[i];
      }
    }
    return null;
  }

  function showCard(card, visible) {
    var appearing = visible && card.hidden;
    card.hidden = !visible;
    if (appearing) {
      // At the end of the conversation (before the "new conversation" button), in view. A hidden
      // button is no landmark: wherever it was left, the card would land above the messages.
      var shownBtn = !newConvBtn.hidden && newConvBtn.parentNode === messagesEl;
      messagesEl.insertBefore(card, shownBtn ? newConvBtn : null);
      welcomeEl.hidden = true;
      showEnd();
    }
  }

  // Where the keyboard is when the form replaces the composer: in the panel, or nowhere (the
  // focused input or handoff button went away). Focus on the host page stays there.
  function focusWasInPanel() {
    var active = document.activeElement;
    return isOpen && (panel.contains(shadow.activeElement) || !active || active === document.body);
  }

  function menuAllowed() {
    return !ticketSent && (!convStatus || CAN_LEAVE_MESSAGE[convStatus] === 1);
  }

  function renderTicket() {
    var created = convStatus === "TICKET_CREATED";
    var pendingTicket = convStatus === "TICKET_PENDING";
    var formShown = !created && !ticketSent && (pendingTicket || (ticketChosen && menuAllowed()));
    var formAppearing = formShown && ticketForm.hidden;
    var takeFocus = formAppearing && focusWasInPanel(); // asked before the composer is hidden
    // The keyboard was in the form (on its way back to the assistant, say): it goes on in the
    // message box rather than on the page's body.
    var giveFocusBack = !formShown && !ticketForm.hidden && focusWasInPanel();
    if (formAppearing) {
      updateChannels();
    }
    showCard(ticketForm, formShown);
    ticketBack.hidden = pendingTicket; // chosen, not needed: the customer may go back to the chat
    ticketToAi.hidden = !pendingTicket; // needed: going back is a request to the server
    if (!pendingTicket) {
      settleToAi();
    }
    say(ticketIntro, "text", pendingTicket ? "ticketIntro" : "ticketIntroChosen");
    showCard(ticketWaiting, ticketSent && !created && !TERMINAL[convStatus]);
    showCard(ticketDone, created);
    if (created) {
      fillConfirmation();
    }
    composer.hidden = formShown || !ticketWaiting.hidden || created;
    menuWrap.hidden = formShown || !menuAllowed();
    if (menuWrap.hidden) {
      toggleMenu(false);
    }
    if (giveFocusBack && !composer.hidden) {
      input.focus({ preventScroll: true });
    }
    if (formAppearing) {
      // Again now that the composer is gone (the list is taller): the customer must see the
      // form's first field, the only place left to type in.
      showEnd();
      if (takeFocus) {
        nameField.control.focus({ preventScroll: true });
      }
    }
  }

  // The conversation service announces the ticket with a system message carrying its number and,
  // when the ticket's SLA sets one, the time it promises ("Ti risponderemo entro 2 ore.").
  function ticketNotice() {
    var bubbles = messagesEl.querySelectorAll('.lw-row[data-sender="system"] .lw-bubble');
    for (var i = bubbles.length - 1; i >= 0; i--) {
      var text = bubbles[i].textContent || "";
      var m = TICKET_NUMBER_RE.exec(text);
      if (m) {
        var rest = text.slice(m.index + m[0].length).replace(/^[\s.]+/, "").replace(/\s+$/, "");
        return { number: m[0], promise: /\b(entro|within)\b/i.test(rest) ? rest : "" };
      }
    }
    return { number: "", promise: "" };
  }

  function fillConfirmation() {
    var notice = ticketNotice();
    var number = notice.number;
    doneNumber.textContent = number;
    doneNumber.hidden = !number;
    // The ticket's own promise first; else the site's (data-ticket-response-hours); else none.
    donePromise.textContent =
      notice.promise || (responseHours ? T.ticketWithin.replace("{h}", String(responseHours)) : T.ticketSoon);
    doneVia.hidden = !sentContact;
    if (sentContact && sentContact.confirm) {
      // A call, and the written confirmation where the notifier will send it.
      say(doneVia, "text", CALL_CONFIRM[sentContact.confirm.channel], [sentContact.value, sentContact.confirm.value]);
    } else if (sentContact) {
      say(doneVia, "text", null, T.ticketVia[sentContact.channel].replace("{v}", sentContact.value));
    }
    while (doneLinkBox.firstChild) {
      doneLinkBox.removeChild(doneLinkBox.firstChild);
    }
    if (number) {
      var href =
        httpBase +
        "/tickets/status?key=" +
        encodeURIComponent(widgetKey) +
        "&number=" +
        encodeURIComponent(number) +
        "&lang=" +
        lang;
      var link = externalLink(href, T.ticketStatusLink, { "data-testid": "ticket-status-link" });
      link.setAttribute("aria-label", words("newTabLink", T.ticketStatusLink));
      doneLinkBox.appendChild(link);
    }
    if (nearBottom() || number) {
      scrollToBottom();
    }
  }

  var CALL_CONFIRM = {
    email: "ticketCallConfirmEmail",
    sms: "ticketCallConfirmSms",
    whatsapp: "ticketCallConfirmWhatsapp"
  };

  // Where the notifier writes to a customer who asked for a call (its `customer_reach`): the
  // email when given, else an SMS, else WhatsApp, each only when the tenant can send it; else
  // nowhere, and the confirmation promises only the call.
  function callConfirmation(body) {
    if (body.email) {
      return { channel: "email", value: body.email };
    }
    var phoneChannels = ["sms", "whatsapp"];
    for (var i = 0; i < phoneChannels.length; i++) {
      if (canWrite(phoneChannels[i])) {
        return { channel: phoneChannels[i], value: body.phone };
      }
    }
    return null;
  }

  function trimmed(control) {
    return control.value.replace(/^\s+|\s+$/g, "");
  }

  function validEmail(v) {
    return v.length <= 254 && EMAIL_RE.test(v) && !SPECIAL_USE_DOMAIN_RE.test(v);
  }

  function validPhone(v) {
    return PHONE_RE.test(v) && v.replace(/[^0-9]/g, "").length >= 6;
  }

  function canWrite(channel) {
    return writtenChannels.indexOf(channel) >= 0;
  }

  // Offers only the channels for which a (valid) value was given and that the tenant can use;
  // preselects the first of them in CHANNELS' order, whichever field was filled first, and keeps
  // the customer's own choice while it is still offered.
  function updateChannels() {
    var have = { email: validEmail(trimmed(emailField.control)), phone: validPhone(trimmed(phoneField.control)) };
    var firstAvailable = null;
    var checkedAvailable = false;
    for (var i = 0; i < CHANNELS.length; i++) {
      var c = CHANNELS[i];
      var available = have[c.needs] && (!c.written || canWrite(c.value));
      choiceLabels[c.value].hidden = !available;
      choiceInputs[c.value].disabled = !available;
      if (available && !firstAvailable) {
        firstAvailable = c.value;
      }
      if (available && choiceInputs[c.value].checked) {
        checkedAvailable = true;
      }
    }
    if (!checkedAvailable) {
      channelChosen = false;
    }
    if (!channelChosen && firstAvailable) {
      choiceInputs[firstAvailable].checked = true;
    }
    choicesEl.hidden = !firstAvailable;
    preferredHint.hidden = !!firstAvailable;
  }

  // key: what to say about the field's value (null: nothing is wrong with it).
  function setFieldError(f, key) {
    say(f.error, "text", key || null, "");
    f.error.hidden = !key;
    if (key) {
      f.control.setAttribute("aria-invalid", "true");
    } else {
      f.control.removeAttribute("aria-invalid");
    }
    return !key;
  }

  function readTicketForm() {
    var name = trimmed(nameField.control);
    var email = trimmed(emailField.control);
    var phone = trimmed(phoneField.control);
    var message = trimmed(messageField.control);
    var wroteBefore = !!messagesEl.querySelector('.lw-row[data-sender="customer"]');
    var checks = [
      [nameField, name ? null : "errName"],
      [emailField, email && !validEmail(email) ? "errEmail" : !email && !phone ? "errContact" : null],
      [phoneField, phone && !validPhone(phone) ? "errPhone" : null],
      // The chat so far travels with the ticket; without one the message is all there is.
      [messageField, message || wroteBefore ? null : "errMessage"]
    ];
    var firstBad = null;
    for (var i = 0; i < checks.length; i++) {
      if (!setFieldError(checks[i][0], checks[i][1]) && !firstBad) {
        firstBad = checks[i][0].control;
      }
    }
    if (firstBad) {
      firstBad.focus();
      return null;
    }
    updateChannels();
    var preferred = "email";
    for (var j = 0; j < CHANNELS.length; j++) {
      if (choiceInputs[CHANNELS[j].value].checked && !choiceInputs[CHANNELS[j].value].disabled) {
        preferred = CHANNELS[j].value;
      }
    }
    return {
      name: name,
      email: email,
      phone: phone,
      preferred_contact: preferred,
      message: message
    };
  }

  // The form's fields by the name the API gives them, with what to say when the server refuses one.
  var TICKET_FIELDS = [
    ["name", nameField, "errNameInvalid"],
    ["email", emailField, "errEmail"],
    ["phone", phoneField, "errPhone"],
    ["message", messageField, "errMessageInvalid"]
  ];
  // A 422's message lists "<field path>: <problem>" joined by "; " (servicekit's
  // on_invalid_request); a path starts with the body's field, then the validator's name.
  var INVALID_FIELD_RE = /(?:^|;\s*)(?:[A-Za-z0-9_-]+\.)*?(name|email|phone|message)[.:]/g;

  function refusedFields(res) {
    var found = {};
    var error = res && res.status === 422 && res.data && res.data.error;
    var text = error && typeof error.message === "string" ? error.message : "";
    var m;
    INVALID_FIELD_RE.lastIndex = 0;
    while ((m = INVALID_FIELD_RE.exec(text)) !== null) {
      found[m[1]] = true;
    }
    return found;
  }

  function ticketFailed(res) {
    ticketBusy = false;
    ticketSubmit.disabled = false;
    ticketSubmit.removeAttribute("aria-busy");
    say(ticketSubmit, "text", "ticketSubmit");
    // A field the server refused is told beside it, in the widget's words, as the widget's own checks are.
    var refused = refusedFields(res);
    var firstBad = null;
    for (var i = 0; i < TICKET_FIELDS.length; i++) {
      if (refused[TICKET_FIELDS[i][0]]) {
        setFieldError(TICKET_FIELDS[i][1], TICKET_FIELDS[i][2]);
        firstBad = firstBad || TICKET_FIELDS[i][1].control;
      }
    }
    if (firstBad) {
      ticketFormError.hidden = true;
      firstBad.focus();
      return;
    }
    if (!res) {
      say(ticketFormError, "text", "networkError");
    } else if (res.status === 429) {
      say(ticketFormError, "text", "rateLimited", retryAfterSeconds(res));
    } else {
      say(ticketFormError, "text", "genericError");
    }
    ticketFormError.hidden = false;
  }

  function submitTicket(ev) {
    ev.preventDefault();
    if (ticketBusy || toAiBusy) {
      return; // a double click sends once (and the server opens one ticket anyway)
    }
    ticketFormError.hidden = true;
    var body = readTicketForm();
    if (!body) {
      return;
    }
    ticketBusy = true;
    ticketSubmit.disabled = true;
    ticketSubmit.setAttribute("aria-busy", "true");
    say(ticketSubmit, "text", "ticketSending");
    ensureConversation()
      .then(function (res) {
        if (!res.ok) {
          ticketFailed(res);
          return;
        }
        var gen = generation;
        var path = "/v1/conversations/" + encodeURIComponent(conv.id) + "/ticket";
        return withRetry(function () {
          return api("POST", path, body, true);
        }, 4).then(function (res2) {
          if (gen !== generation) {
            return;
          }
          if (!res2.ok) {
            ticketFailed(res2);
            return;
          }
          ticketBusy = false;
          ticketSubmit.disabled = false;
          ticketSubmit.removeAttribute("aria-busy");
          say(ticketSubmit, "text", "ticketSubmit");
          ticketSent = true;
          var channel = body.preferred_contact;
          sentContact = { channel: channel, value: channel === "email" ? body.email : body.phone };
          if (channel === "phone") {
            sentContact.confirm = callConfirmation(body);
          }
          saveStored();
          renderTicket();
        });
      })
      .catch(function () {
        ticketFailed(null);
      });
  }

  // Back to the assistant from "no operator available": the server moves the conversation to AI
  // (continue_ai) and the new status, in the answer or on the stream, puts the chat back.
  var toAiBusy = false;
  var toAiTimer = null;

  function settleToAi() {
    toAiBusy = false;
    if (toAiTimer) {
      clearTimeout(toAiTimer);
      toAiTimer = null;
    }
    // aria-disabled, not disabled: a disabled button would drop the keyboard focus on the page.
    ticketToAi.removeAttribute("aria-disabled");
    ticketToAi.removeAttribute("aria-busy");
  }

  function backToAssistant() {
    if (!conv || toAiBusy || ticketBusy) {
      return;
    }
    toAiBusy = true;
    ticketToAi.setAttribute("aria-disabled", "true");
    ticketToAi.setAttribute("aria-busy", "true");
    ticketFormError.hidden = true;
    var gen = generation;
    var path = "/v1/conversations/" + encodeURIComponent(conv.id) + "/actions";
    withRetry(function () {
      return api("POST", path, { action: "continue_ai" }, true);
    }, 3)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        if (!res.ok) {
          settleToAi();
          handleHttpError(res);
          return;
        }
        showError(null);
        ticketChosen = false;
        if (res.data && typeof res.data.status === "string") {
          setStatus(res.data.status);
        }
        if (convStatus === "TICKET_PENDING") {
          // Should the stream not bring the new status, the button works again.
          toAiTimer = setTimeout(settleToAi, 10000);
        }
      })
      .catch(function () {
        if (gen === generation) {
          settleToAi();
          showError("genericError");
        }
      });
  }

  function toggleMenu(open) {
    var show = typeof open === "boolean" ? open : menuEl.hidden;
    menuEl.hidden = !show;
    menuBtn.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) {
      leaveMessageItem.focus();
    }
  }

  function chooseTicket() {
    toggleMenu(false);
    ticketChosen = true;
    renderTicket();
    updateChannels();
    nameField.control.focus();
  }

  // ---------------------------------------------------------------------------
  // The rating card: once a conversation is closed, once per conversation
  // ---------------------------------------------------------------------------

  function renderRating() {
    var closed = !!(conv && convStatus && TERMINAL[convStatus]);
    showCard(ratingCard, closed && !rated);
    showCard(ratingThanks, closed && rated);
  }

  function chooseStars(score, focus) {
    ratingScore = score;
    for (var i = 0; i < starButtons.length; i++) {
      var n = i + 1;
      starButtons[i].setAttribute("data-lit", n <= score ? "true" : "false");
      starButtons[i].setAttribute("aria-pressed", n === score ? "true" : "false");
      starButtons[i].tabIndex = n === (score || 1) ? 0 : -1;
    }
    if (focus && score) {
      starButtons[score - 1].focus();
    }
    ratingSubmit.disabled = ratingBusy || !score;
  }

  function onStarKey(ev) {
    var next = 0;
    if (ev.key === "ArrowRight" || ev.key === "ArrowUp") {
      next = Math.min(5, ratingScore + 1);
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowDown") {
      next = Math.max(1, ratingScore - 1);
    } else if (ev.key === "Home") {
      next = 1;
    } else if (ev.key === "End") {
      next = 5;
    }
    if (next && !ratingBusy) {
      ev.preventDefault(); // the arrows would scroll the messages
      chooseStars(next, true);
    }
  }

  function setRatingBusy(busy) {
    ratingBusy = busy;
    say(ratingSubmit, "text", busy ? "ratingSending" : "ratingSubmit");
    if (busy) {
      ratingSubmit.setAttribute("aria-busy", "true");
    } else {
      ratingSubmit.removeAttribute("aria-busy");
    }
    for (var i = 0; i < starButtons.length; i++) {
      starButtons[i].disabled = busy;
    }
    ratingCommentField.control.readOnly = busy;
    ratingSubmit.disabled = busy || !ratingScore;
  }

  // Back to a blank card: a new conversation gets its own rating.
  function resetRatingCard() {
    setRatingBusy(false);
    ratingCommentField.control.value = "";
    chooseStars(0, false);
  }

  function submitRating(ev) {
    ev.preventDefault();
    if (ratingBusy || !ratingScore || !conv || rated) {
      return; // a double click sends once
    }
    var hadFocus = ratingCard.contains(shadow.activeElement);
    var body = { score: ratingScore, comment: trimmed(ratingCommentField.control) };
    var gen = generation;
    var path = "/v1/conversations/" + encodeURIComponent(conv.id) + "/rating";
    setRatingBusy(true);
    withRetry(function () {
      return api("POST", path, body, true);
    }, 3)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        setRatingBusy(false);
        if (!res.ok) {
          handleHttpError(res); // the card stays with its stars and comment for another try
          if (hadFocus) {
            ratingSubmit.focus();
          }
          return;
        }
        rated = true;
        saveStored();
        showError(null);
        renderRating();
        if (hadFocus) {
          ratingThanks.focus(); // the focused button is gone: keep the keyboard user in place
        }
      })
      .catch(function () {
        if (gen === generation) {
          setRatingBusy(false);
          showError("networkError");
          if (hadFocus) {
            ratingSubmit.focus();
          }
        }
      });
  }

  function setStatus(s) {
    if (typeof s !== "string" || !s) {
      return;
    }
    convStatus = s;
    if (s !== "QUEUED" && queuePosition) {
      setQueue(0, 0); // out of the queue: a later reload must not show the old place
    }
    if (s === "QUEUED" || s === "WITH_OPERATOR" || TERMINAL[s] || s.indexOf("TICKET") === 0) {
      disableHandoffButtons(null);
    }
    renderStatus();
  }

  // The place in the operators' queue and the estimated wait (0: not known).
  function keepQueue(position, waitSeconds) {
    queuePosition = typeof position === "number" && position >= 1 && isFinite(position) ? Math.floor(position) : 0;
    queueWaitSeconds =
      queuePosition && typeof waitSeconds === "number" && waitSeconds > 0 && isFinite(waitSeconds) ? waitSeconds : 0;
  }

  function setQueue(position, waitSeconds) {
    keepQueue(position, waitSeconds);
    saveStored(); // kept for a reload
  }

  function askForPerson() {
    if (!conv || askPersonBtn.disabled) {
      return;
    }
    askPersonBtn.disabled = true;
    var gen = generation;
    withRetry(function () {
      return api("POST", "/v1/conversations/" + encodeURIComponent(conv.id) + "/actions", { action: "request_operator" }, true);
    }, 3)
      .then(function (res) {
        askPersonBtn.disabled = false;
        if (gen !== generation) {
          return;
        }
        if (res.ok) {
          if (res.data && typeof res.data.status === "string") {
            setStatus(res.data.status);
          }
          showError(null);
        } else {
          handleHttpError(res);
        }
      })
      .catch(function () {
        askPersonBtn.disabled = false;
        showError("networkError");
      });
  }

  function setConnected(v) {
    connected = v;
    if (v) {
      everConnected = true;
    }
    renderStatus();
  }

  // key: the error to tell (null: none); seconds: counted down in its {n}, then it goes.
  function showError(key, seconds) {
    if (errorTimer) {
      clearInterval(errorTimer);
      errorTimer = null;
    }
    if (!key) {
      errorEl.hidden = true;
      say(errorEl, "text", null, "");
      return;
    }
    errorEl.hidden = false;
    if (seconds && seconds > 0 && T[key].indexOf("{n}") >= 0) {
      var left = seconds;
      say(errorEl, "text", key, left);
      errorTimer = setInterval(function () {
        left -= 1;
        if (left <= 0) {
          showError(null);
        } else {
          say(errorEl, "text", key, left);
        }
      }, 1000);
    } else {
      say(errorEl, "text", key);
    }
  }

  function showTyping(sender) {
    typingEl.hidden = false;
    var wasNear = nearBottom();
    if (typingTimer) {
      clearTimeout(typingTimer);
    }
    typingTimer = setTimeout(hideTyping, TYPING_MS);
    typingEl.setAttribute("data-sender", sender || "ai");
    if (wasNear) {
      scrollToBottom();
    }
  }

  function hideTyping() {
    typingEl.hidden = true;
    if (typingTimer) {
      clearTimeout(typingTimer);
      typingTimer = null;
    }
  }

  function updateUnread() {
    if (unread > 0 && !isOpen) {
      unreadBadge.hidden = false;
      unreadBadge.textContent = unread > 9 ? "9+" : String(unread);
      launcher.setAttribute("aria-label", T.open + " — " + fmt(T.unread, unread));
    } else {
      unreadBadge.hidden = true;
      unreadBadge.textContent = "";
      launcher.setAttribute("aria-label", isOpen ? T.close : T.open);
    }
  }

  function autoGrow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 3, 120) + "px";
  }

  // ---------------------------------------------------------------------------
  // The widget's language
  // ---------------------------------------------------------------------------

  // A language's built-in words, with the tenant's own for it (launcher label, greeting).
  function wordsOf(language) {
    var own = STRINGS[language];
    var texts = tenantTexts[language] || {};
    var result = {};
    for (var k in own) {
      if (Object.prototype.hasOwnProperty.call(own, k)) {
        result[k] = own[k];
      }
    }
    result.open = textOf(texts, "launcher_label") || own.open;
    result.welcome = textOf(texts, "greeting") || own.welcome;
    return result;
  }

  // The one place the widget's language is set: every word on screen is said again in it, and
  // whatever is drawn later is drawn in it.
  function setLang(next) {
    lang = next;
    T = wordsOf(lang);
    var texts = tenantTexts[lang] || {};
    handoffLabels = {
      request_operator: textOf(texts, "operator_button"),
      continue_ai: textOf(texts, "continue_button")
    };
    root.setAttribute("lang", lang);
    if (textOf(texts, "launcher_label")) {
      launcher.setAttribute("title", T.open);
    } else {
      launcher.removeAttribute("title");
    }
    // The cards and the "new conversation" button leave the list between conversations.
    var holders = [root, newConvBtn].concat(CARDS);
    for (var i = 0; i < holders.length; i++) {
      sayAgain(holders[i]);
    }
    var buttons = messagesEl.querySelectorAll("[data-handoff]");
    for (var b = 0; b < buttons.length; b++) {
      labelHandoff(buttons[b]);
    }
    // What is worded from the state: the banner, the form's intro, the confirmation, the launcher.
    renderStatus();
    updateUnread();
  }

  // The conversation is in `language` (the assistant's answers are in the language it read the
  // customer's message in): the widget speaks it too, if it can and the site did not choose one.
  function followLanguage(language) {
    language = supportedLang(language);
    if (language && language !== lang && !forcedLang) {
      setLang(language);
    }
  }

  // A handoff button says the tenant's label in the widget's language; else the server's, which is
  // in the language the widget spoke when it was drawn (the answer's, or the conversation's for a
  // notice); once the widget speaks another, the widget's own words for it.
  var HANDOFF_WORDS = { request_operator: "handoffYes", continue_ai: "handoffNo" };
  function labelHandoff(btn) {
    var action = btn.getAttribute("data-action");
    var server = btn.getAttribute("data-label-lang") === lang ? btn.getAttribute("data-label") : null;
    btn.textContent = handoffLabels[action] || server || T[HANDOFF_WORDS[action]] || btn.getAttribute("data-label") || action;
  }

  // ---------------------------------------------------------------------------
  // Rendering messages
  // ---------------------------------------------------------------------------

  function senderLabel(sender) {
    if (sender === "ai") {
      return "assistant";
    }
    if (sender === "operator") {
      return "operator";
    }
    return null;
  }

  function timeLabel(iso) {
    if (!iso) {
      return "";
    }
    var d = new Date(iso);
    if (isNaN(d.getTime())) {
      return "";
    }
    try {
      return d.toLocaleTimeString(lang === "it" ? "it-IT" : "en-GB", { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }

  function firstPendingRow() {
    return messagesEl.querySelector(".lw-row[data-pending]");
  }

  function insertRow(row) {
    var wasNear = nearBottom();
    var card = firstVisibleCard();
    // Server messages go before local pending bubbles so those stay at the bottom.
    var before = card || firstPendingRow();
    if (!before && !newConvBtn.hidden && newConvBtn.parentNode === messagesEl) {
      before = newConvBtn;
    }
    // A card being filled in (the keyboard is in it) stays put on screen: the message goes above.
    var held = card && card.contains(shadow.activeElement) ? card : null;
    var heldTop = held ? held.getBoundingClientRect().top : 0;
    if (before) {
      messagesEl.insertBefore(row, before);
    } else {
      messagesEl.appendChild(row);
    }
    if (row.classList.contains("lw-customer")) {
      scrollToBottom();
    } else if (held) {
      messagesEl.scrollTop += held.getBoundingClientRect().top - heldTop; // 0 where the browser anchors it
    } else if (wasNear) {
      showEnd();
    }
  }

  function buildRow(sender, text) {
    var cls = sender === "customer" || sender === "ai" || sender === "operator" || sender === "system" ? sender : "system";
    var row = el("div", { className: "lw-row lw-" + cls, "data-testid": "message", "data-sender": cls });
    var label = senderLabel(cls);
    if (label) {
      row.appendChild(el("div", { className: "lw-sender", say: { text: label } }));
    }
    var bubble = el("div", { className: "lw-bubble" });
    appendRichText(bubble, text);
    row.appendChild(bubble);
    return row;
  }

  function renderServerMessage(m) {
    var mid = typeof m.message_id === "string" ? m.message_id : m.message_id != null ? String(m.message_id) : "";
    if (mid) {
      seenMessageIds[mid] = true;
    }
    var pending = mid ? pendingByMessageId[mid] : null;
    if (pending) {
      delete pendingByMessageId[mid];
      if (pending.parentNode) {
        pending.parentNode.removeChild(pending);
      }
    }
    if (m.sender === "ai" || m.sender === "operator") {
      hideTyping();
    }
    if (m.sender === "ai") {
      followLanguage(m.language); // before the row is drawn: its labels are in that language too
    }
    var row = buildRow(m.sender, m.text);
    row.setAttribute("data-seq", String(m.seq));
    if (mid) {
      row.setAttribute("data-message-id", mid);
    }
    var t = timeLabel(m.created_at);
    if (t && m.sender !== "system") {
      row.appendChild(el("div", { className: "lw-meta", text: t }));
    }
    var actions = Array.isArray(m.smart_actions) ? m.smart_actions : [];
    if (actions.length) {
      var box = buildActions(actions);
      if (box) {
        if (box.querySelector("[data-handoff]")) {
          disableHandoffButtons(null); // only the newest offer stays clickable
        }
        row.insertBefore(box, row.querySelector(".lw-meta"));
      }
    }
    if (m.sender === "ai" && mid) {
      row.insertBefore(buildFeedback(mid), row.querySelector(".lw-meta"));
    }
    welcomeEl.hidden = true;
    insertRow(row);
    if (m.sender === "system" && convStatus === "TICKET_CREATED") {
      fillConfirmation(); // the number arrives just after the status
    }
    if (!isOpen && m.sender !== "customer") {
      unread += 1;
      updateUnread();
    }
  }

  function buildActions(actions) {
    var box = el("div", { className: "lw-actions", "data-testid": "actions" });
    var count = 0;
    for (var i = 0; i < actions.length; i++) {
      var a = actions[i];
      if (!a || typeof a !== "object") {
        continue;
      }
      var label = typeof a.label === "string" && a.label ? a.label : null;
      if (a.type === "open_url") {
        var href = safeHttpUrl(a.url);
        if (!href) {
          continue;
        }
        var link = externalLink(href, label || href, {
          className: "lw-action",
          "data-testid": "action-button",
          "data-action": "open_url"
        });
        say(link, "aria-label", "newTabLink", label || href);
        box.appendChild(link);
        count++;
      } else if (a.type === "request_operator" || a.type === "continue_ai") {
        var btn = el("button", {
          type: "button",
          className: "lw-action",
          "data-testid": "action-button",
          "data-action": a.type,
          "data-handoff": "true",
          "data-label": label, // the server's, in the conversation's language
          "data-label-lang": lang
        });
        labelHandoff(btn);
        btn.addEventListener("click", onHandoffClick);
        box.appendChild(btn);
        count++;
      }
    }
    return count ? box : null;
  }

  // 👍 / 👎 under each answer of the assistant: the first click counts (the server keeps the first
  // feedback on an answer); "not helpful" makes the conversation service offer a person.
  function buildFeedback(mid) {
    var box = el("div", {
      className: "lw-feedback",
      role: "group",
      say: { "aria-label": "feedbackGroup" },
      "data-testid": "feedback"
    });
    // Icons, not emoji: an emoji is drawn only where the system has a colour-emoji font.
    var choices = [
      [true, "helpful"],
      [false, "notHelpful"]
    ];
    for (var i = 0; i < choices.length; i++) {
      var btn = el(
        "button",
        {
          type: "button",
          className: "lw-feedback-btn",
          say: { "aria-label": choices[i][1], title: choices[i][1] },
          "aria-pressed": "false",
          "data-helpful": String(choices[i][0])
        },
        [svgIcon(ICON_THUMB, 16)]
      );
      btn.addEventListener("click", onFeedbackClick);
      box.appendChild(btn);
    }
    box.appendChild(el("span", { className: "lw-feedback-thanks", "aria-live": "polite" }));
    if (Object.prototype.hasOwnProperty.call(feedbackGiven, mid)) {
      markFeedback(box, feedbackGiven[mid], false);
    }
    box.setAttribute("data-message-id", mid);
    return box;
  }

  function markFeedback(box, helpful, thank) {
    var buttons = box.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) {
      var chosen = buttons[i].getAttribute("data-helpful") === String(helpful);
      buttons[i].disabled = true;
      buttons[i].setAttribute("aria-pressed", chosen ? "true" : "false");
    }
    box.setAttribute("data-given", String(helpful));
    if (thank) {
      say(box.querySelector(".lw-feedback-thanks"), "text", "feedbackThanks");
    }
  }

  function onFeedbackClick(ev) {
    var btn = ev.currentTarget;
    var box = btn.parentNode;
    var mid = box.getAttribute("data-message-id");
    var helpful = btn.getAttribute("data-helpful") === "true";
    if (!conv || !mid || btn.disabled) {
      return;
    }
    markFeedback(box, helpful, false); // disabled at once: a double click sends one feedback
    var gen = generation;
    var path = "/v1/conversations/" + encodeURIComponent(conv.id) + "/messages/" + encodeURIComponent(mid) + "/feedback";
    withRetry(function () {
      return api("POST", path, { helpful: helpful }, true);
    }, 3)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        if (res.ok) {
          feedbackGiven[mid] = helpful;
          saveStored();
          markFeedback(box, helpful, true);
        } else {
          unmarkFeedback(box);
          handleHttpError(res);
        }
      })
      .catch(function () {
        unmarkFeedback(box);
        showError("networkError");
      });
  }

  function unmarkFeedback(box) {
    var buttons = box.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = false;
      buttons[i].setAttribute("aria-pressed", "false");
    }
    box.removeAttribute("data-given");
  }

  function disableHandoffButtons(box) {
    var scope = box || messagesEl;
    var buttons = scope.querySelectorAll("button[data-handoff]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = true;
      buttons[i].setAttribute("aria-disabled", "true");
    }
  }

  function onHandoffClick(ev) {
    var btn = ev.currentTarget;
    var box = btn.parentNode;
    var action = btn.getAttribute("data-action");
    if (!conv || btn.disabled) {
      return;
    }
    var buttons = box.querySelectorAll("button[data-handoff]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = true;
    }
    btn.setAttribute("aria-busy", "true");
    var gen = generation;
    withRetry(function () {
      return api("POST", "/v1/conversations/" + encodeURIComponent(conv.id) + "/actions", { action: action }, true);
    }, 3)
      .then(function (res) {
        btn.removeAttribute("aria-busy");
        if (gen !== generation) {
          return;
        }
        if (res.ok) {
          disableHandoffButtons(box);
          btn.setAttribute("data-chosen", "true");
          if (res.data && typeof res.data.status === "string") {
            setStatus(res.data.status);
          }
          showError(null);
        } else if (res.status === 409) {
          // The choice is no longer available (already made, or state moved on).
          disableHandoffButtons(box);
          showError("genericError");
        } else {
          for (var j = 0; j < buttons.length; j++) {
            buttons[j].disabled = false;
          }
          handleHttpError(res);
        }
      })
      .catch(function () {
        btn.removeAttribute("aria-busy");
        for (var j = 0; j < buttons.length; j++) {
          buttons[j].disabled = false;
        }
        showError("networkError");
      });
  }

  // ---------------------------------------------------------------------------
  // Ordering: render each seq once, in order, filling gaps from the REST API
  // ---------------------------------------------------------------------------

  function validMessage(m) {
    return m && typeof m === "object" && typeof m.seq === "number" && isFinite(m.seq);
  }

  function acceptMessage(m) {
    if (!validMessage(m)) {
      return;
    }
    if (m.seq <= lastSeq) {
      // Already rendered (or a duplicate). Still clear a pending bubble if it matches.
      dropPendingFor(m);
      return;
    }
    if (fetchingGap || m.seq > lastSeq + 1) {
      buffered[m.seq] = m;
      if (!fetchingGap) {
        fetchGap();
      }
      return;
    }
    renderInOrder(m);
    drainBuffer(false);
  }

  function dropPendingFor(m) {
    var mid = m.message_id != null ? String(m.message_id) : "";
    if (mid && pendingByMessageId[mid]) {
      var p = pendingByMessageId[mid];
      delete pendingByMessageId[mid];
      if (p.parentNode) {
        p.parentNode.removeChild(p);
      }
    }
    if (mid) {
      seenMessageIds[mid] = true;
    }
  }

  function renderInOrder(m) {
    renderServerMessage(m);
    lastSeq = m.seq;
    saveStored();
  }

  // force=true: the server had its chance to fill holes; render what we have in order.
  function drainBuffer(force) {
    var keys = Object.keys(buffered)
      .map(Number)
      .sort(function (a, b) {
        return a - b;
      });
    for (var i = 0; i < keys.length; i++) {
      var s = keys[i];
      var m = buffered[s];
      if (s <= lastSeq) {
        delete buffered[s];
        dropPendingFor(m);
        continue;
      }
      if (s === lastSeq + 1 || force) {
        delete buffered[s];
        renderInOrder(m);
      } else {
        break;
      }
    }
    if (Object.keys(buffered).length && !fetchingGap) {
      fetchGap();
    }
  }

  function fetchGap() {
    if (!conv || fetchingGap) {
      return;
    }
    fetchingGap = true;
    var gen = generation;
    fetchAfter(lastSeq)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        fetchingGap = false;
        if (res && res.ok && res.data) {
          applyFetched(res.data);
          drainBuffer(true);
        } else {
          if (res && isGone(res)) {
            conversationLost();
            return;
          }
          // Could not fill the gap now; try again shortly without losing the buffer.
          setTimeout(function () {
            if (gen === generation && Object.keys(buffered).length) {
              fetchGap();
            }
          }, 2000);
        }
      })
      .catch(function () {
        if (gen !== generation) {
          return;
        }
        fetchingGap = false;
        setTimeout(function () {
          if (gen === generation && Object.keys(buffered).length) {
            fetchGap();
          }
        }, 2000);
      });
  }

  function applyFetched(data) {
    var list = Array.isArray(data.messages) ? data.messages.slice() : [];
    list.sort(function (a, b) {
      return (a && a.seq) - (b && b.seq);
    });
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      if (!validMessage(m)) {
        continue;
      }
      if (m.seq > lastSeq) {
        delete buffered[m.seq];
        renderInOrder(m);
      } else {
        dropPendingFor(m);
      }
    }
    if (typeof data.status === "string") {
      setStatus(data.status);
    }
  }

  function fetchAfter(seq) {
    return api(
      "GET",
      "/v1/conversations/" + encodeURIComponent(conv.id) + "/messages?after=" + encodeURIComponent(String(seq)),
      null,
      true
    );
  }

  // ---------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------

  function api(method, path, body, auth) {
    var headers = { Accept: "application/json" };
    if (body !== null && body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (auth && conv) {
      headers.Authorization = "Bearer " + conv.token;
    } else {
      headers["X-Widget-Key"] = widgetKey;
    }
    return fetch(httpBase + path, {
      method: method,
      headers: headers,
      body: body !== null && body !== undefined ? JSON.stringify(body) : undefined,
      credentials: "omit",
      mode: "cors",
      cache: "no-store"
    }).then(function (resp) {
      return resp.text().then(function (txt) {
        var data = null;
        if (txt) {
          try {
            data = JSON.parse(txt);
          } catch (e) {
            data = null;
          }
        }
        return {
          ok: resp.ok,
          status: resp.status,
          data: data,
          retryAfter: resp.headers.get("Retry-After")
        };
      });
    });
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function backoffMs(attempt, baseMs, capMs) {
    var exp = Math.min(capMs, baseMs * Math.pow(2, attempt));
    return Math.round(exp / 2 + Math.random() * (exp / 2)); // "equal jitter"
  }

  function retryable(res) {
    return res.status === 408 || res.status === 502 || res.status === 503 || res.status === 504 || res.status === 0;
  }

  // Runs fn() and retries it on network failure or a transient 5xx, with backoff and jitter.
  // Resolves with the last response; rejects only if the network never answered.
  function withRetry(fn, maxAttempts) {
    var attempt = 0;
    function run() {
      return fn().then(
        function (res) {
          if (retryable(res) && attempt + 1 < maxAttempts) {
            return sleep(backoffMs(attempt++, 600, 8000)).then(run);
          }
          return res;
        },
        function (err) {
          if (attempt + 1 < maxAttempts) {
            return sleep(backoffMs(attempt++, 600, 8000)).then(run);
          }
          throw err;
        }
      );
    }
    return run();
  }

  function retryAfterSeconds(res) {
    var raw = res.retryAfter;
    var n = raw ? parseInt(raw, 10) : NaN;
    if (isNaN(n) && raw) {
      var when = Date.parse(raw);
      if (!isNaN(when)) {
        n = Math.ceil((when - Date.now()) / 1000);
      }
    }
    if (isNaN(n) || n < 1) {
      n = 1;
    }
    return n;
  }

  // The server's error messages are written for developers (a 422 names pydantic's validators) and
  // in English: the customer reads the widget's own words, never them.
  function handleHttpError(res) {
    if (res.status === 429) {
      var n = retryAfterSeconds(res);
      showError("rateLimited", n);
    } else {
      showError("genericError");
    }
  }

  // ---------------------------------------------------------------------------
  // Conversation lifecycle
  // ---------------------------------------------------------------------------

  function resetConversation() {
    generation++;
    closeSocket();
    conv = null;
    convStatus = null;
    queuePosition = 0;
    queueWaitSeconds = 0;
    lastSeq = 0;
    buffered = {};
    fetchingGap = false;
    pendingByMessageId = {};
    seenMessageIds = {};
    everConnected = false;
    connected = false;
    unread = 0;
    ticketChosen = false;
    ticketSent = false;
    sentContact = null;
    feedbackGiven = {};
    rated = false;
    resetRatingCard();
    saveStored();
    var rows = messagesEl.querySelectorAll(".lw-row:not(.lw-welcome)");
    for (var i = 0; i < rows.length; i++) {
      rows[i].parentNode.removeChild(rows[i]);
    }
    // The old conversation's cards and button leave with its messages: left in place (hidden),
    // they sat above the new messages and the new conversation's cards were placed there too.
    var leftovers = CARDS.concat([newConvBtn]);
    for (var c = 0; c < leftovers.length; c++) {
      leftovers[c].hidden = true; // hidden, so showCard puts it back at the end when it is due
      if (leftovers[c].parentNode === messagesEl) {
        messagesEl.removeChild(leftovers[c]);
      }
    }
    welcomeEl.hidden = false;
    hideTyping();
    updateUnread();
    renderStatus();
  }

  // The token expired or the conversation no longer exists: reconnecting cannot help.
  function isGone(res) {
    return res.status === 401 || res.status === 403 || res.status === 404;
  }

  function conversationLost() {
    resetConversation();
    showError("sessionExpired");
  }

  function ensureConversation() {
    if (conv && !TERMINAL[convStatus]) {
      return Promise.resolve({ ok: true });
    }
    if (conv && TERMINAL[convStatus]) {
      resetConversation();
    }
    if (creating) {
      return creating;
    }
    creating = withRetry(function () {
      return api("POST", "/v1/conversations", { locale: lang }, false);
    }, 4)
      .then(function (res) {
        creating = null;
        if (res.ok && res.data && res.data.conversation_id && res.data.customer_token) {
          generation++;
          conv = { id: String(res.data.conversation_id), token: String(res.data.customer_token) };
          lastSeq = 0;
          convStatus = typeof res.data.status === "string" ? res.data.status : "AI";
          saveStored();
          renderStatus();
          connect();
          return { ok: true };
        }
        return res;
      })
      .catch(function (err) {
        creating = null;
        throw err;
      });
    return creating;
  }

  // A contact kept by saveStored, if it is one the confirmation can name.
  function storedContact(c) {
    if (
      c &&
      typeof c === "object" &&
      typeof c.value === "string" &&
      c.value &&
      Object.prototype.hasOwnProperty.call(T.ticketVia, c.channel)
    ) {
      var confirm = c.confirm;
      var known =
        confirm &&
        typeof confirm === "object" &&
        typeof confirm.value === "string" &&
        Object.prototype.hasOwnProperty.call(CALL_CONFIRM, confirm.channel);
      return known
        ? { channel: c.channel, value: c.value, confirm: { channel: confirm.channel, value: confirm.value } }
        : { channel: c.channel, value: c.value };
    }
    return null;
  }

  function resume(stored) {
    conv = { id: stored.conversation_id, token: stored.customer_token };
    ticketSent = stored.ticket_sent === true;
    sentContact = ticketSent ? storedContact(stored.sent_contact) : null;
    feedbackGiven = stored.feedback && typeof stored.feedback === "object" ? stored.feedback : {};
    rated = stored.rated === true;
    followLanguage(stored.lang);
    // Shown only while the conversation is QUEUED; any other status clears it (setStatus).
    keepQueue(stored.queue_position, stored.queue_wait_seconds);
    lastSeq = 0; // the DOM is empty after a reload: load the history from the start
    var gen = generation;
    fetchingGap = true; // buffer stream frames until the history is rendered
    renderStatus();
    withRetry(function () {
      return fetchAfter(0);
    }, 3)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        fetchingGap = false;
        if (res.ok && res.data) {
          applyFetched(res.data);
          // Messages that arrived before a reload are not "unread".
          unread = 0;
          updateUnread();
          drainBuffer(true);
          connect();
        } else if (isGone(res)) {
          resetConversation();
        } else {
          connect();
        }
      })
      .catch(function () {
        if (gen !== generation) {
          return;
        }
        fetchingGap = false;
        connect(); // the stream replays from lastSeq once the network is back
      });
  }

  // ---------------------------------------------------------------------------
  // WebSocket with reconnect
  // ---------------------------------------------------------------------------

  function closeSocket() {
    if (reconnectTimer) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
    if (pingTimer) {
      clearInterval(pingTimer);
      pingTimer = null;
    }
    if (ws) {
      var old = ws;
      ws = null;
      dropSocketAnswers();
      old.onopen = old.onclose = old.onerror = old.onmessage = null;
      try {
        old.close(1000);
      } catch (e) {
        /* ignore */
      }
    }
    connected = false;
  }

  function connect() {
    if (!conv) {
      return;
    }
    closeSocket();
    var gen = generation;
    var url =
      wsBase +
      "/v1/conversations/" +
      encodeURIComponent(conv.id) +
      "/stream?token=" +
      encodeURIComponent(conv.token) +
      "&after=" +
      encodeURIComponent(String(lastSeq));
    var sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect(gen);
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (gen !== generation || ws !== sock) {
        return;
      }
      wsAttempt = 0;
      setConnected(true);
      pingTimer = setInterval(function () {
        if (sock.readyState === 1) {
          try {
            sock.send(JSON.stringify({ type: "ping" }));
          } catch (e) {
            /* onclose will follow */
          }
        }
      }, PING_MS);
    };
    sock.onmessage = function (ev) {
      if (gen !== generation || ws !== sock) {
        return;
      }
      var frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      handleFrame(frame);
    };
    sock.onerror = function () {
      /* onclose follows and handles the reconnect */
    };
    sock.onclose = function (ev) {
      if (gen !== generation || ws !== sock) {
        return;
      }
      ws = null;
      dropSocketAnswers();
      if (pingTimer) {
        clearInterval(pingTimer);
        pingTimer = null;
      }
      setConnected(false);
      hideTyping();
      // 4401/4403/4404 (or 1008 policy): the token or the conversation is no longer valid.
      if (ev && (ev.code === 4401 || ev.code === 4403 || ev.code === 4404 || ev.code === 1008)) {
        probeConversation(gen);
        return;
      }
      scheduleReconnect(gen);
    };
  }

  // Checks over HTTP whether the conversation is still ours; catches up, then reconnects.
  function probeConversation(gen) {
    if (!conv) {
      return;
    }
    fetchAfter(lastSeq)
      .then(function (res) {
        if (gen !== generation) {
          return;
        }
        if (isGone(res)) {
          conversationLost();
          return;
        }
        if (res.ok && res.data && !fetchingGap) {
          applyFetched(res.data);
          drainBuffer(true);
        }
        scheduleReconnect(gen);
      })
      .catch(function () {
        if (gen === generation) {
          scheduleReconnect(gen);
        }
      });
  }

  function scheduleReconnect(gen) {
    if (gen !== generation || !conv || reconnectTimer) {
      return;
    }
    var delay = backoffMs(wsAttempt, 1000, 30000);
    wsAttempt = Math.min(wsAttempt + 1, 10);
    renderStatus();
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      if (gen !== generation) {
        return;
      }
      if (wsAttempt >= 3) {
        // Long outage: check the conversation is still valid before trying again.
        fetchAfter(lastSeq)
          .then(function (res) {
            if (gen !== generation) {
              return;
            }
            if (isGone(res)) {
              conversationLost();
              return;
            }
            connect();
          })
          .catch(function () {
            if (gen === generation) {
              connect();
            }
          });
      } else {
        connect();
      }
    }, delay);
  }

  function handleFrame(frame) {
    if (!frame || typeof frame !== "object") {
      return;
    }
    if (frame.type === "message") {
      acceptMessage(frame.message);
    } else if (frame.type === "status") {
      setStatus(frame.status);
    } else if (frame.type === "queue") {
      setQueue(frame.position, frame.estimated_wait_seconds);
      renderStatus();
    } else if (frame.type === "typing") {
      if (frame.sender !== "customer") {
        showTyping(frame.sender);
      }
    } else if (frame.type === "accepted" || frame.type === "error") {
      answerFromSocket(frame);
    }
    // "pong" and unknown frames: nothing to do.
  }

  // ---------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) {
        bytes[i] = Math.floor(Math.random() * 256);
      }
    }
    var s = "";
    for (var j = 0; j < 16; j++) {
      s += (bytes[j] < 16 ? "0" : "") + bytes[j].toString(16);
    }
    return "w-" + s;
  }

  function restoreText(text) {
    var current = input.value;
    if (!current) {
      input.value = text;
    } else if (current.indexOf(text) !== 0) {
      input.value = text + "\n" + current;
    }
    autoGrow();
    inputLimit.update();
  }

  // A message goes on the stream while it is open, which spares an HTTP request per message, and
  // is POSTed otherwise. The gateway takes it either way as the POST would (same checks, same
  // message id for the same client_message_id), so a message whose answer the socket did not
  // bring (closed, or too slow) is simply sent again, by whichever way is open then. A socket
  // that let a message go unanswered (a gateway too old to take messages on it, during an
  // upgrade) gets no more of them: they are POSTed until the next connection.
  var socketAnswers = {}; // client_message_id -> settles the send waiting for its answer frame
  var SOCKET_ANSWER_MS = 10000;
  var NO_ANSWER = { ok: false, status: 0, data: null, retryAfter: null }; // retried, as a network failure
  var unansweringSocket = null;

  function deliverMessage(path, body) {
    if (!ws || !connected || ws.readyState !== 1 || ws === unansweringSocket) {
      return api("POST", path, body, true);
    }
    var sock = ws;
    var id = body.client_message_id;
    return new Promise(function (resolve) {
      var timer = setTimeout(function () {
        unansweringSocket = sock;
        settle(NO_ANSWER);
      }, SOCKET_ANSWER_MS);
      function settle(res) {
        if (socketAnswers[id] === settle) {
          delete socketAnswers[id];
        }
        clearTimeout(timer);
        resolve(res);
      }
      socketAnswers[id] = settle;
      try {
        sock.send(JSON.stringify({ type: "message", client_message_id: id, text: body.text }));
      } catch (e) {
        settle(NO_ANSWER);
      }
    });
  }

  // The answer frame, shaped as the POST's response would be.
  function answerFromSocket(frame) {
    var settle = socketAnswers[frame.client_message_id];
    if (!settle) {
      return;
    }
    if (frame.type === "accepted") {
      settle({ ok: true, status: 202, data: { message_id: frame.message_id }, retryAfter: null });
    } else {
      var retryAfter = frame.retry_after != null ? String(frame.retry_after) : null;
      settle({ ok: false, status: frame.status || 0, data: { error: frame.error }, retryAfter: retryAfter });
    }
  }

  function dropSocketAnswers() {
    var waiting = socketAnswers;
    socketAnswers = {};
    for (var id in waiting) {
      if (Object.prototype.hasOwnProperty.call(waiting, id)) {
        waiting[id](NO_ANSWER);
      }
    }
  }

  var sending = 0;

  function send() {
    var text = input.value.replace(/^\s+|\s+$/g, "");
    if (!text) {
      return;
    }
    if (conv && TERMINAL[convStatus]) {
      resetConversation(); // the old conversation is closed: this message starts a new one
    }
    input.value = "";
    autoGrow();
    inputLimit.update();
    showError(null);

    var clientId = failedClientIds[text] || newClientId();
    delete failedClientIds[text];

    var row = buildRow("customer", text);
    row.setAttribute("data-pending", "true");
    row.setAttribute("data-client-message-id", clientId);
    row.setAttribute("aria-busy", "true");
    var meta = el("div", { className: "lw-meta", say: { text: "sending" } });
    row.appendChild(meta);
    welcomeEl.hidden = true;
    messagesEl.appendChild(row);
    if (!newConvBtn.hidden) {
      messagesEl.appendChild(newConvBtn);
    }
    scrollToBottom();
    sending++;

    var failed = false;
    function fail(res, networkFailure) {
      if (failed) {
        return;
      }
      failed = true;
      sending--;
      if (row.parentNode) {
        row.parentNode.removeChild(row);
      }
      if (networkFailure) {
        // The server may have received it: resending the same text reuses the id (deduped).
        failedClientIds[text] = clientId;
        showError("networkError");
      } else {
        handleHttpError(res);
      }
      restoreText(text);
      if (!messagesEl.querySelector(".lw-row:not(.lw-welcome)")) {
        welcomeEl.hidden = false;
      }
    }

    ensureConversation()
      .then(function (res) {
        if (!res.ok) {
          fail(res, retryable(res));
          return;
        }
        var gen = generation;
        var path = "/v1/conversations/" + encodeURIComponent(conv.id) + "/messages";
        return withRetry(function () {
          return deliverMessage(path, { text: text, client_message_id: clientId });
        }, 6).then(
          function (res2) {
            if (gen !== generation) {
              failed = true;
              sending--;
              return;
            }
            if (res2.ok) {
              failed = true; // settled: a later exception must not undo the send
              sending--;
              var mid = res2.data && res2.data.message_id != null ? String(res2.data.message_id) : "";
              row.removeAttribute("aria-busy");
              if (mid) {
                row.setAttribute("data-message-id", mid);
                if (seenMessageIds[mid]) {
                  // The stream echoed it before the POST answered.
                  if (row.parentNode) {
                    row.parentNode.removeChild(row);
                  }
                } else {
                  pendingByMessageId[mid] = row;
                }
              }
              return;
            }
            if (res2.status === 401 || res2.status === 403 || res2.status === 404) {
              fail(res2, false);
              conversationLost();
              return;
            }
            if (res2.status === 409 && res2.data && res2.data.error) {
              // e.g. the conversation was closed meanwhile.
              fail(res2, false);
              return;
            }
            fail(res2, retryable(res2));
          },
          function () {
            if (gen !== generation) {
              failed = true;
              sending--;
              return;
            }
            fail(null, true);
          }
        );
      })
      .catch(function () {
        fail(null, true);
      });
  }

  // ---------------------------------------------------------------------------
  // Open / close
  // ---------------------------------------------------------------------------

  function open() {
    mount();
    if (isOpen) {
      input.focus();
      return;
    }
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    updateUnread();
    scrollToBottom();
    // Focus after the panel is laid out (also works when called from automation).
    input.focus();
    setTimeout(function () {
      if (isOpen) {
        input.focus();
      }
    }, 30);
  }

  function close() {
    if (!isOpen) {
      return;
    }
    var hadFocus = shadow.activeElement && panel.contains(shadow.activeElement);
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    updateUnread();
    if (hadFocus) {
      launcher.focus();
    }
  }

  launcher.addEventListener("click", function () {
    if (isOpen) {
      close();
    } else {
      open();
    }
  });
  closeBtn.addEventListener("click", close);
  askPersonBtn.addEventListener("click", askForPerson);
  menuBtn.addEventListener("click", function () {
    toggleMenu();
  });
  leaveMessageItem.addEventListener("click", chooseTicket);
  panel.addEventListener("click", function (ev) {
    if (!menuEl.hidden && !menuWrap.contains(ev.target)) {
      toggleMenu(false);
    }
  });
  ticketForm.addEventListener("submit", submitTicket);
  ticketToAi.addEventListener("click", backToAssistant);
  ticketBack.addEventListener("click", function () {
    ticketChosen = false;
    renderTicket();
    input.focus();
  });
  // A field's error goes as soon as it is edited (the contact error belongs to both contact fields).
  [nameField, emailField, phoneField, messageField].forEach(function (f) {
    f.control.addEventListener("input", function () {
      setFieldError(f, null);
      if (f === phoneField && emailField.error.textContent === T.errContact) {
        setFieldError(emailField, null);
      }
      if (f === emailField || f === phoneField) {
        updateChannels();
      }
    });
  });
  for (var sb = 0; sb < starButtons.length; sb++) {
    starButtons[sb].addEventListener("click", function (ev) {
      chooseStars(parseInt(ev.currentTarget.getAttribute("data-score"), 10), false);
    });
  }
  starsEl.addEventListener("keydown", onStarKey);
  ratingCard.addEventListener("submit", submitRating);
  newConvBtn.addEventListener("click", function () {
    resetConversation();
    showError(null);
    input.focus();
  });
  sendBtn.addEventListener("click", function () {
    send();
    input.focus();
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      send();
    }
  });
  input.addEventListener("input", autoGrow);
  panel.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      ev.stopPropagation();
      if (!menuEl.hidden) {
        toggleMenu(false);
        menuBtn.focus();
        return;
      }
      close();
    }
  });
  window.addEventListener("online", function () {
    if (conv && !connected && !ws) {
      if (reconnectTimer) {
        clearTimeout(reconnectTimer);
        reconnectTimer = null;
      }
      wsAttempt = 0;
      connect();
    }
  });

  // ---------------------------------------------------------------------------
  // Public hook and start-up
  // ---------------------------------------------------------------------------

  window.LucineWidget = {
    __loaded: true,
    open: open,
    close: close,
    toggle: function () {
      if (isOpen) {
        close();
      } else {
        open();
      }
    },
    state: function () {
      return {
        conversationId: conv ? conv.id : null,
        lastSeq: lastSeq,
        connected: connected,
        status: convStatus,
        open: isOpen,
        lang: lang,
        pending: sending + Object.keys(pendingByMessageId).length,
        ticketForm: !ticketForm.hidden,
        ticketSent: ticketSent,
        rated: rated
      };
    }
  };

  // ---------------------------------------------------------------------------
  // The tenant's look (GET /v1/widget/config): colours, position, texts
  // ---------------------------------------------------------------------------

  var COLOR_RE = /^#[0-9a-fA-F]{6}$/;

  // A colour mixed with white (amount 0..1): the lighter shades the CSS derives from one colour.
  function tint(hex, amount) {
    var out = "#";
    for (var i = 1; i < 7; i += 2) {
      var c = parseInt(hex.substr(i, 2), 16);
      var v = Math.round(c + (255 - c) * amount);
      out += (v < 16 ? "0" : "") + v.toString(16);
    }
    return out;
  }

  function textOf(texts, name) {
    var value = texts && texts[name];
    return typeof value === "string" && value.trim() ? value.trim() : null;
  }

  function applyConfig(cfg) {
    var look = (cfg && cfg.appearance) || {};
    if (COLOR_RE.test(look.primary_color || "")) {
      root.style.setProperty("--g", look.primary_color);
      root.style.setProperty("--g1", tint(look.primary_color, 0.18));
      root.style.setProperty("--g2", tint(look.primary_color, 0.1));
      root.style.setProperty("--g3", tint(look.primary_color, 0.88));
    }
    if (COLOR_RE.test(look.accent_color || "")) {
      root.style.setProperty("--gold", look.accent_color);
      root.style.setProperty("--gold2", tint(look.accent_color, 0.45));
    }
    root.classList.toggle("lw-left", look.position === "bottom-left");
    if (!script.getAttribute("data-title") && cfg && typeof cfg.tenant_name === "string" && cfg.tenant_name) {
      say(titleEl, "text", null, cfg.tenant_name);
    }
    tenantTexts = look.texts && typeof look.texts === "object" ? look.texts : {};
    // The written channels the tenant can send on (an older gateway names none: email only).
    writtenChannels = ["email"];
    var listed = cfg && Array.isArray(cfg.channels) ? cfg.channels : [];
    for (var w = 0; w < listed.length; w++) {
      if ((listed[w] === "whatsapp" || listed[w] === "sms") && !canWrite(listed[w])) {
        writtenChannels.push(listed[w]);
      }
    }
    updateChannels();
    // The tenant's texts in the widget's language, on what is drawn already too (a resumed
    // conversation's handoff buttons); setLang() takes them in any later language.
    setLang(lang);
    root.setAttribute("data-config", "applied");
  }

  // Fetched once at start-up; on any failure the widget keeps its built-in look.
  function loadConfig() {
    if (!widgetKey) {
      return;
    }
    api("GET", "/v1/widget/config", null, false)
      .then(function (r) {
        if (r.ok && r.data && typeof r.data === "object") {
          applyConfig(r.data);
        } else {
          root.setAttribute("data-config", "default");
        }
      })
      .catch(function () {
        root.setAttribute("data-config", "default");
      });
  }

  function start() {
    mount();
    renderStatus();
    loadConfig();
    if (!widgetKey) {
      if (window.console && console.warn) {
        console.warn("[widget] data-widget-key is missing");
      }
    }
    var stored = loadStored();
    if (stored) {
      resume(stored);
    }
  }

  if (document.body) {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();

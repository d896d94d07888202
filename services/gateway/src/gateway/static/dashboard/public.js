// The pages opened without an account (public.html, served by the gateway for each path below):
//   /dashboard/signup        a business signs up: POST /v1/signup, then "check your email"
//   /dashboard/verify?t=     the emailed link: POST /v1/signup/verify, then the login
//   /dashboard/invite?t=     an invitation: GET /v1/invitations/{token}, the account's form,
//                            POST /v1/invitations/accept, then the login
// The link's token is read from the address and never sent anywhere else (no Referer: the page's
// meta and the route's header).
import { html, render, useEffect, useState } from "/dashboard/vendor/preact-htm.module.js";
import { initialLanguage, LANGUAGES, saveLanguage, words } from "/dashboard/i18n.js";

const SIGNUP_LANGUAGES = ["it", "en"]; // what the assistant, the widget and the emails speak
const SIGNUP_MIN_PASSWORD = 10; // signup_api.MIN_PASSWORD_LENGTH
const INVITE_MIN_PASSWORD = 8; // operators.MIN_PASSWORD_CHARS

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, name) => (values[name] ?? "") + "");
}

class Failure extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

async function send(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Failure(0, "unreachable", "");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // no JSON body
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new Failure(response.status, error.code || "http_" + response.status, error.message || "");
  }
  return data;
}

function failureText(p, error) {
  if (error.status === 422) return p.invalid + ": " + error.message;
  if (error.status === 429) return p.tooMany;
  if (error.status === 410) return p.linkGone;
  if (!error.status || error.status >= 500) return p.unavailable;
  return error.message || error.code;
}

function slug(text) {
  return text
    .toLowerCase()
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63);
}

function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/Rome";
  } catch {
    return "Europe/Rome";
  }
}

function Field({ label, hint, children }) {
  return html`<label><span>${label}${hint && html` <span class="muted small">${hint}</span>`}</span>${children}</label>`;
}

function Shell({ lang, setLang, title, children, wide }) {
  return html`
    <main class="login public">
      <div class=${"login-card" + (wide ? " public-wide" : "")} data-testid="public-card">
        <div class="brand brand-large"><span class="brand-mark" aria-hidden="true">✦</span> Lucine Support</div>
        <h1>${title}</h1>
        ${children}
        <div class="lang" role="group" aria-label="Language">
          ${LANGUAGES.map(
            (code) => html`<button type="button" class=${"chip" + (code === lang ? " on" : "")} aria-pressed=${code === lang}
              onClick=${() => setLang(code)} data-testid=${"lang-" + code}>${code.toUpperCase()}</button>`,
          )}
        </div>
      </div>
    </main>
  `;
}

function SignInLink({ p }) {
  return html`<a class="primary wide public-button" href="/dashboard" data-testid="public-sign-in">${p.signIn}</a>`;
}

// ------------------------------------------------------------------------------ sign-up

function Signup({ p, lang, shell }) {
  const [form, setForm] = useState({
    business_name: "",
    tenant_id: "",
    languages: [lang],
    time_zone: browserTimeZone(),
    username: "",
    display_name: "",
    email: "",
    password: "",
    again: "",
  });
  const [idTouched, setIdTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null); // (words) -> text: it follows the language switch
  const [sent, setSent] = useState(null);
  const set = (name, value) => setForm({ ...form, [name]: value });
  const toggle = (code, on) =>
    set("languages", on ? [...form.languages.filter((c) => c !== code), code] : form.languages.filter((c) => c !== code));
  const submit = async (event) => {
    event.preventDefault();
    if (form.password !== form.again) {
      setError(() => (w) => w.passwordsDiffer);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await send("POST", "/v1/signup", {
        business_name: form.business_name.trim(),
        tenant_id: form.tenant_id.trim(),
        languages: form.languages,
        time_zone: form.time_zone.trim(),
        admin: {
          username: form.username.trim(),
          display_name: form.display_name.trim(),
          email: form.email.trim(),
          password: form.password,
        },
      });
      setSent(form.email.trim());
    } catch (failure) {
      setError(() => (w) => (failure.status === 404 ? w.signupClosed : failureText(w, failure)));
    }
    setBusy(false);
  };
  if (sent)
    return shell(
      p.checkEmailTitle,
      html`<p class="public-done" role="status" data-testid="signup-done">${fill(p.checkEmail, { e: sent })}</p>`,
    );
  return shell(
    p.signupTitle,
    html`
      <p class="muted public-intro">${p.signupIntro}</p>
      <form class="public-form" onSubmit=${submit} data-testid="signup-form">
        <${Field} label=${p.businessName}>
          <input required autofocus value=${form.business_name} data-testid="signup-business-name"
            onInput=${(e) => setForm({ ...form, business_name: e.target.value, tenant_id: idTouched ? form.tenant_id : slug(e.target.value) })} />
        <//>
        <${Field} label=${p.tenantId} hint=${p.tenantIdHint}>
          <input required pattern="[a-z0-9][a-z0-9-]{1,62}" value=${form.tenant_id} data-testid="signup-tenant-id"
            onInput=${(e) => {
              setIdTouched(true);
              set("tenant_id", e.target.value);
            }} />
        <//>
        <fieldset class="public-languages">
          <legend>${p.languages}</legend>
          ${SIGNUP_LANGUAGES.map(
            (code) => html`<label class="check"><input type="checkbox" checked=${form.languages.includes(code)}
              onChange=${(e) => toggle(code, e.target.checked)} data-testid=${"signup-language-" + code} /> ${code.toUpperCase()}</label>`,
          )}
        </fieldset>
        <${Field} label=${p.timeZone}>
          <input required value=${form.time_zone} onInput=${(e) => set("time_zone", e.target.value)} data-testid="signup-time-zone" />
        <//>
        <h2 class="public-section">${p.adminTitle}</h2>
        <div class="public-two">
          <${Field} label=${p.username}>
            <input required autocomplete="username" value=${form.username} onInput=${(e) => set("username", e.target.value)}
              data-testid="signup-username" />
          <//>
          <${Field} label=${p.displayName}>
            <input required autocomplete="name" value=${form.display_name} onInput=${(e) => set("display_name", e.target.value)}
              data-testid="signup-display-name" />
          <//>
        </div>
        <${Field} label=${p.email}>
          <input required type="email" autocomplete="email" value=${form.email} onInput=${(e) => set("email", e.target.value)}
            data-testid="signup-email" />
        <//>
        <div class="public-two">
          <${Field} label=${p.password} hint=${fill(p.passwordHint, { n: SIGNUP_MIN_PASSWORD })}>
            <input required type="password" autocomplete="new-password" minlength=${SIGNUP_MIN_PASSWORD} value=${form.password}
              onInput=${(e) => set("password", e.target.value)} data-testid="signup-password" />
          <//>
          <${Field} label=${p.passwordAgain}>
            <input required type="password" autocomplete="new-password" value=${form.again} onInput=${(e) => set("again", e.target.value)}
              data-testid="signup-password-again" />
          <//>
        </div>
        ${error && html`<p class="form-error" role="alert" data-testid="public-error">${error(p)}</p>`}
        <button class="primary wide" type="submit" disabled=${busy} data-testid="signup-submit">${busy ? p.sending : p.signup}</button>
      </form>
    `,
    true,
  );
}

// ------------------------------------------------------------------------------ verify

function Verify({ p, token, shell }) {
  const [state, setState] = useState(token ? { busy: true } : { error: (w) => w.noToken });
  useEffect(() => {
    if (!token) return;
    send("POST", "/v1/signup/verify", { token })
      .then(() => setState({ done: true }))
      .catch((failure) => setState({ error: (w) => (failure.status === 404 ? w.signupClosed : failureText(w, failure)) }));
  }, [token]);
  return shell(
    p.verifyTitle,
    state.busy
      ? html`<p class="muted" role="status" data-testid="verify-busy">${p.verifying}</p>`
      : state.done
        ? html`<p class="public-done" role="status" data-testid="verify-done">${p.verified}</p><${SignInLink} p=${p} />`
        : html`<p class="form-error" role="alert" data-testid="public-error">${state.error(p)}</p>`,
  );
}

// ------------------------------------------------------------------------------ invitation

function Invite({ p, token, shell }) {
  const [invitation, setInvitation] = useState(null);
  const [loadError, setLoadError] = useState(() => (token ? null : (w) => w.noToken));
  const [form, setForm] = useState({ username: "", display_name: "", password: "", again: "" });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (!token) return;
    send("GET", "/v1/invitations/" + encodeURIComponent(token))
      .then(setInvitation)
      .catch((failure) => setLoadError(() => (w) => (failure.status === 404 ? w.linkInvalid : failureText(w, failure))));
  }, [token]);
  const set = (name, value) => setForm({ ...form, [name]: value });
  const submit = async (event) => {
    event.preventDefault();
    if (form.password !== form.again) {
      setError(() => (w) => w.passwordsDiffer);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await send("POST", "/v1/invitations/accept", {
        token,
        username: form.username.trim(),
        display_name: form.display_name.trim(),
        password: form.password,
      });
      setDone(true);
    } catch (failure) {
      setError(() => (w) => (failure.status === 404 ? w.linkInvalid : failureText(w, failure)));
    }
    setBusy(false);
  };
  if (loadError) return shell(p.inviteTitle, html`<p class="form-error" role="alert" data-testid="public-error">${loadError(p)}</p>`);
  if (!invitation) return shell(p.inviteTitle, html`<p class="muted" data-testid="invite-loading">${p.loading}</p>`);
  if (done)
    return shell(p.inviteTitle, html`<p class="public-done" role="status" data-testid="invite-done">${p.accepted}</p><${SignInLink} p=${p} />`);
  return shell(
    p.inviteTitle,
    html`
      <p class="public-intro" data-testid="invite-who">
        ${fill(p.invitedBy, { tenant: invitation.tenant_name, role: p.roles[invitation.role] || invitation.role })}
        <br /><span class="muted small">${fill(p.invitedEmail, { e: invitation.email })}</span>
      </p>
      <form class="public-form" onSubmit=${submit} data-testid="invite-form">
        <${Field} label=${p.username}>
          <input required autofocus autocomplete="username" value=${form.username} onInput=${(e) => set("username", e.target.value)}
            data-testid="invite-username" />
        <//>
        <${Field} label=${p.displayName}>
          <input required autocomplete="name" value=${form.display_name} onInput=${(e) => set("display_name", e.target.value)}
            data-testid="invite-display-name" />
        <//>
        <${Field} label=${p.password} hint=${fill(p.passwordHint, { n: INVITE_MIN_PASSWORD })}>
          <input required type="password" autocomplete="new-password" minlength=${INVITE_MIN_PASSWORD} value=${form.password}
            onInput=${(e) => set("password", e.target.value)} data-testid="invite-password" />
        <//>
        <${Field} label=${p.passwordAgain}>
          <input required type="password" autocomplete="new-password" value=${form.again} onInput=${(e) => set("again", e.target.value)}
            data-testid="invite-password-again" />
        <//>
        ${error && html`<p class="form-error" role="alert" data-testid="public-error">${error(p)}</p>`}
        <button class="primary wide" type="submit" disabled=${busy} data-testid="invite-submit">${busy ? p.sending : p.accept}</button>
      </form>
    `,
  );
}

// ------------------------------------------------------------------------------ the page

const PAGES = { signup: Signup, verify: Verify, invite: Invite };

function Public() {
  const [lang, setLang] = useState(initialLanguage());
  const p = words(lang).pub;
  const choose = (code) => {
    saveLanguage(code);
    setLang(code);
  };
  const name = location.pathname.replace(/\/+$/, "").split("/").pop();
  const token = new URLSearchParams(location.search).get("t") || "";
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const shell = (title, children, wide = false) => {
    document.title = "Lucine Support · " + title;
    return html`<${Shell} lang=${lang} setLang=${choose} title=${title} wide=${wide}>${children}<//>`;
  };
  const Page = PAGES[name] || Signup;
  return html`<${Page} p=${p} lang=${lang} token=${token} shell=${shell} />`;
}

render(html`<${Public} />`, document.getElementById("app"));

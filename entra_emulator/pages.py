"""The emulator's browser pages: sign-in, consent, errors and the `form_post` hand-back.

Plain, accessible HTML with no external assets and no JavaScript needed (the `form_post` page
submits itself when scripts run, and has a button when they do not), so the pages work in
headless Chromium, in `requests` tests and behind the emulator's HTTPS server alike. Field names
follow Microsoft's page (`login`, `passwd`); a hidden `ctx` carries the opaque transaction id.
Every value is escaped here, so callers pass plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;color:#1b1b1b;margin:0}
.banner{background:#0067b8;color:#fff;padding:.6rem 1rem;font-size:.95rem}
main{background:#fff;max-width:28rem;margin:2rem auto;padding:2rem 2.75rem;
box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:1.5rem;font-weight:600;margin:0 0 1rem}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.45rem;
font-size:1rem;border:1px solid #666}
.alert{border-left:4px solid #e81123;background:#fde7e9;padding:.5rem .75rem;margin:1rem 0}
.code{font-family:Consolas,monospace;font-size:.85rem;word-break:break-word}
.actions{margin-top:1.5rem;display:flex;gap:.5rem;justify-content:flex-end}
button{font-size:1rem;padding:.45rem 1.5rem;border:1px solid #0067b8;cursor:pointer}
button.primary{background:#0067b8;color:#fff}
button.secondary{background:#fff;color:#1b1b1b;border-color:#8c8c8c}
dl{font-size:.85rem}dt{font-weight:600}dd{margin:0 0 .5rem}
"""


@dataclass(frozen=True)
class ErrorDetails:
    """What Microsoft's error pages print under "Troubleshooting details"."""

    code: int
    message: str
    request_id: str
    correlation_id: str
    timestamp: str  # e.g. 2024-05-01T10:00:00Z

    @property
    def line(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


def _document(title: str, app_name: str | None, body: str) -> str:
    banner = (
        f'<div class="banner" role="note">Signing in to {escape(app_name)} '
        "— emulated Microsoft sign-in</div>"
        if app_name
        else '<div class="banner" role="note">Emulated Microsoft sign-in</div>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{banner}\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def sign_in_page(
    *,
    app_name: str,
    action: str,
    ctx: str,
    login: str = "",
    error: str | None = None,
    details: ErrorDetails | None = None,
) -> str:
    """Username and password, posted back with the transaction id."""
    alert = ""
    described = ""
    if error is not None:
        code_line = f'<p class="code">{escape(details.line)}</p>' if details is not None else ""
        alert = (
            f'<div class="alert" role="alert" id="signin-error"><p>{escape(error)}</p>'
            f"{code_line}</div>"
        )
        described = ' aria-describedby="signin-error" aria-invalid="true"'
    body = f"""<h1>Sign in</h1>
<p>to continue to <strong>{escape(app_name)}</strong></p>
{alert}
<form method="post" action="{escape(action)}">
{_hidden("ctx", ctx)}
<label for="login">Email or username</label>
<input type="text" id="login" name="login" value="{escape(login)}" autocomplete="username"
 autocapitalize="none" spellcheck="false" required{described}>
<label for="passwd">Password</label>
<input type="password" id="passwd" name="passwd" autocomplete="current-password"
 required{described}>
<div class="actions"><button type="submit" class="primary">Sign in</button></div>
</form>"""
    return _document("Sign in to your account", app_name, body)


def consent_page(
    *,
    app_name: str,
    action: str,
    ctx: str,
    user: str,
    tenant_name: str,
    permissions: Sequence[tuple[str, str]],
    for_organization: bool,
) -> str:
    """ "Permissions requested": what the app asks for, with Accept and Cancel."""
    items = "\n".join(
        f'<li><strong>{escape(title)}</strong> <span class="code">({escape(name)})</span></li>'
        for name, title in permissions
    )
    if for_organization:
        scope_note = (
            f"<p>Accepting grants these permissions to <strong>{escape(app_name)}</strong> "
            f"for <strong>all users</strong> in <strong>{escape(tenant_name)}</strong>. "
            "No one else in the organization will be asked to review them.</p>"
        )
        heading = "Permissions requested — Accept for your organization"
    else:
        scope_note = (
            f"<p>Accepting allows <strong>{escape(app_name)}</strong> to use these "
            "permissions for you.</p>"
        )
        heading = "Permissions requested"
    body = f"""<h1>{escape(heading)}</h1>
<p>Signed in as <strong>{escape(user)}</strong></p>
<p><strong>{escape(app_name)}</strong> (unverified) would like to:</p>
<ul id="permissions">
{items}
</ul>
{scope_note}
<form method="post" action="{escape(action)}">
{_hidden("ctx", ctx)}
<div class="actions">
<button type="submit" name="consent" value="cancel" class="secondary">Cancel</button>
<button type="submit" name="consent" value="accept" class="primary">Accept</button>
</div>
</form>"""
    return _document("Permissions requested", app_name, body)


def _troubleshooting(details: ErrorDetails) -> str:
    return f"""<h2>Troubleshooting details</h2>
<dl>
<dt>Request Id</dt><dd class="code">{escape(details.request_id)}</dd>
<dt>Correlation Id</dt><dd class="code">{escape(details.correlation_id)}</dd>
<dt>Timestamp</dt><dd class="code">{escape(details.timestamp)}</dd>
<dt>Message</dt><dd class="code">{escape(details.line)}</dd>
</dl>"""


def error_page(*, details: ErrorDetails, app_name: str | None = None) -> str:
    """An error that Microsoft shows instead of redirecting (the redirect is not trusted)."""
    body = f"""<h1>Sign in</h1>
<div class="alert" role="alert">
<p>Sorry, but we&rsquo;re having trouble signing you in.</p>
<p class="code">{escape(details.line)}</p>
</div>
{_troubleshooting(details)}"""
    return _document("Sign in to your account", app_name, body)


def need_admin_approval_page(
    *, app_name: str, details: ErrorDetails, admin_sign_in_url: str, return_url: str | None
) -> str:
    """A signed-in user who may not grant tenant-wide consent."""
    back = (
        f'<p><a href="{escape(return_url)}">Return to the application without granting '
        "consent</a></p>"
        if return_url
        else ""
    )
    body = f"""<h1>Need admin approval</h1>
<div class="alert" role="alert">
<p><strong>{escape(app_name)}</strong> needs permission to access resources in your
organization that only an admin can grant. Please ask an admin to grant permission to this app
before you can use it.</p>
<p class="code">{escape(details.line)}</p>
</div>
<p><a href="{escape(admin_sign_in_url)}">Have an admin account? Sign in with that account</a></p>
{back}
{_troubleshooting(details)}"""
    return _document("Need admin approval", app_name, body)


def form_post_page(*, action: str, fields: Sequence[tuple[str, str]]) -> str:
    """`response_mode=form_post`: the response, POSTed to the app by the browser."""
    hidden = "\n".join(_hidden(name, value) for name, value in fields)
    body = f"""<h1>Working…</h1>
<form method="post" action="{escape(action)}" name="hiddenform">
{hidden}
<p>If nothing happens, select Continue to return to the application.</p>
<div class="actions"><button type="submit" class="primary">Continue</button></div>
</form>
<script>document.forms[0].submit();</script>"""
    return _document("Working...", None, body)

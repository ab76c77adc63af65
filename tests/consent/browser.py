"""The admin's browser: our pages through Django's test client, Microsoft's through `requests`.

`requests` is intercepted by `responses`, which hands Microsoft's URLs to the emulator; its
sign-in and consent pages are plain HTML forms, filled in here as a person would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from django.contrib.messages import get_messages
from django.contrib.messages.storage.base import Message
from django.http.response import HttpResponseBase
from django.test import Client
from django.urls import reverse

from directories.models import Directory
from entra_emulator import DEFAULT_ADMIN_PASSWORD, EmuTenant


@dataclass
class Form:
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class FormParser(HTMLParser):
    """The first form of a page: its action, its inputs, its named submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form, self._inside = Form(action=attr.get("action", "")), True
        elif self._inside and self.form is not None and tag == "input" and "name" in attr:
            self.form.fields[attr["name"]] = attr.get("value", "")
        elif self._inside and self.form is not None and tag == "button" and "name" in attr:
            self.form.buttons.append((attr["name"], attr.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def page_form(html: str) -> Form | None:
    parser = FormParser()
    parser.feed(html)
    return parser.form


def admin_login(tenant: EmuTenant) -> str:
    return f"admin@{tenant.default_domain}"


def microsoft(
    url: str,
    *,
    login: str,
    password: str = DEFAULT_ADMIN_PASSWORD,
    consent: str = "accept",
) -> requests.Response:
    """Go through Microsoft's pages until it redirects away (or shows an error page)."""
    http = requests.Session()
    response = http.get(url, allow_redirects=False)
    for _ in range(5):
        form = page_form(response.text) if response.status_code == 200 else None
        if form is None:
            return response
        data = dict(form.fields)
        if "passwd" in data:
            data.update(login=login, passwd=password)
        elif form.buttons:
            data[form.buttons[0][0]] = consent
        response = http.post(urljoin(url, form.action), data=data, allow_redirects=False)
    raise AssertionError("Microsoft's pages never redirected back")


def redirect_location(response: requests.Response | HttpResponseBase) -> str:
    assert response.status_code == 302, getattr(response, "text", response)
    return str(response.headers["Location"])


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start_url(directory: Directory) -> str:
    return reverse("admin:directories_directory_verify", args=[directory.pk])


def confirm_url(directory: Directory) -> str:
    return reverse("admin:directories_directory_verify_confirm", args=[directory.pk])


def change_url(directory: Directory) -> str:
    return reverse("admin:directories_directory_change", args=[directory.pk])


def verify_start(client: Client, directory: Directory) -> str:
    """Click Verify Now: the URL of Microsoft's admin consent page."""
    return redirect_location(client.post(start_url(directory)))


def consent_and_return(client: Client, directory: Directory, tenant: EmuTenant) -> str:
    """Verify Now and accept consent as the tenant's admin: the URL of Microsoft's sign-in."""
    back = redirect_location(microsoft(verify_start(client, directory), login=admin_login(tenant)))
    return redirect_location(client.get(back))


def _queued(response: HttpResponseBase) -> list[Message]:
    """The messages this response added (not those still stored from earlier requests)."""
    storage: Any = get_messages(response.wsgi_request)  # type: ignore[attr-defined]
    return list(storage._queued_messages)


def all_messages(response: HttpResponseBase) -> list[str]:
    return [str(m.message) for m in _queued(response)]


def error_messages(response: HttpResponseBase) -> list[str]:
    return [str(m.message) for m in _queued(response) if m.level_tag == "error"]

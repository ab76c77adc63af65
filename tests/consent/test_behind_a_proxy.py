"""Verify Now behind a TLS-terminating proxy: Microsoft is given an https redirect URI.

Entra ID redirects only to a registered URI, and a production registration is https. The proxy
speaks plain http to gunicorn and says https in X-Forwarded-Proto, which entra-sync believes
only when SECURE_PROXY_SSL_HEADER names it (README "Production deployment").
"""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from directories.models import Directory

from .browser import query, redirect_location, start_url

pytestmark = pytest.mark.django_db

CALLBACK_PATH = "/admin/directories/directory/verify/callback/"


@pytest.fixture
def behind_proxy(settings: Settings) -> None:
    """config/settings.py's reading of SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["entra-sync.example.com"]


def test_the_redirect_uri_is_https_when_the_proxy_says_https(
    behind_proxy: None, admin_client: Client, directory: Directory
) -> None:
    response = admin_client.post(
        start_url(directory), HTTP_HOST="entra-sync.example.com", HTTP_X_FORWARDED_PROTO="https"
    )

    redirect_uri = query(redirect_location(response))["redirect_uri"]
    assert redirect_uri == f"https://entra-sync.example.com{CALLBACK_PATH}"


def test_a_client_cannot_claim_https_where_no_proxy_header_is_configured(
    admin_client: Client, directory: Directory
) -> None:
    response = admin_client.post(start_url(directory), HTTP_X_FORWARDED_PROTO="https")

    redirect_uri = query(redirect_location(response))["redirect_uri"]
    assert redirect_uri == f"http://testserver{CALLBACK_PATH}"


def test_plain_http_is_redirected_to_https_and_the_proxied_request_served(
    behind_proxy: None, settings: Settings, admin_client: Client, directory: Directory
) -> None:
    settings.SECURE_SSL_REDIRECT = True  # the default once DEBUG is off
    change_page = f"/admin/directories/directory/{directory.pk}/change/"

    plain = admin_client.get(change_page, HTTP_HOST="entra-sync.example.com")
    proxied = admin_client.get(
        change_page, HTTP_HOST="entra-sync.example.com", HTTP_X_FORWARDED_PROTO="https"
    )

    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://entra-sync.example.com{change_page}"
    assert proxied.status_code == 200

"""Troubleshooting can be found: the index, the nav sidebar and a directory's page link to it,
for staff who may open it, and its failure groups link to the entries of its guide."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from directories.admin.troubleshooting import GUIDE_ANCHORS
from directories.services.troubleshooting import ERROR_KINDS, GUIDE_UNAUTHORIZED
from tests.factories import DirectoryFactory, SyncRunFactory

pytestmark = pytest.mark.django_db

TROUBLESHOOTING = "view_troubleshooting"
OTHERS = ("view_directory", "view_syncrun", "change_directory", "sync_directory")


def nav_link(html: str) -> bool:
    """Troubleshooting's row in an app list: the index's or the sidebar's."""
    return bool(
        re.search(
            r'<th scope="row" id="directories-troubleshooting">\s*'
            rf'<a href="{reverse("admin:troubleshooting")}"',
            html,
        )
    )


def sidebar(html: str) -> str:
    return html.split('id="nav-sidebar"', 1)[1].split("</nav>", 1)[0]


def test_staff_with_the_permission_see_troubleshooting_on_the_index(
    staff_client: Callable[..., Client],
) -> None:
    html = staff_client(TROUBLESHOOTING, *OTHERS).get(reverse("admin:index")).content.decode()

    assert nav_link(html)
    assert 'class="viewlink" aria-describedby="directories-troubleshooting"' in html


def test_staff_with_the_permission_see_troubleshooting_in_the_sidebar(
    staff_client: Callable[..., Client],
) -> None:
    directory = DirectoryFactory()
    client = staff_client(TROUBLESHOOTING, *OTHERS)

    for url in (
        reverse("admin:directories_directory_change", args=[directory.pk]),
        reverse("admin:directories_syncrun_changelist"),
    ):
        assert nav_link(sidebar(client.get(url).content.decode())), url


def test_the_sidebar_marks_troubleshooting_as_the_current_page(
    staff_client: Callable[..., Client],
) -> None:
    html = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting")).content.decode()

    assert 'class="model-troubleshooting current-model"' in sidebar(html)


def test_the_permission_alone_lists_the_directories_app_with_troubleshooting(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client(TROUBLESHOOTING)

    assert nav_link(client.get(reverse("admin:index")).content.decode())
    app_index = client.get(reverse("admin:app_list", kwargs={"app_label": "directories"}))
    assert app_index.status_code == 200
    assert nav_link(app_index.content.decode())


def test_staff_without_the_permission_see_no_link_and_get_403(
    staff_client: Callable[..., Client],
) -> None:
    directory = DirectoryFactory()
    client = staff_client(*OTHERS)

    for url in (
        reverse("admin:index"),
        reverse("admin:app_list", kwargs={"app_label": "directories"}),
        reverse("admin:directories_directory_change", args=[directory.pk]),
    ):
        html = client.get(url).content.decode()
        assert "directories-troubleshooting" not in html, url
        assert reverse("admin:troubleshooting") not in html, url
    assert client.get(reverse("admin:troubleshooting")).status_code == 403


def test_the_directory_page_links_to_troubleshooting_for_that_directory(
    staff_client: Callable[..., Client],
) -> None:
    directory = DirectoryFactory()
    client = staff_client(TROUBLESHOOTING, *OTHERS)

    html = client.get(
        reverse("admin:directories_directory_change", args=[directory.pk])
    ).content.decode()

    link = f'href="{reverse("admin:troubleshooting")}?directory={directory.pk}"'
    assert link in html
    # The page it opens is filtered to that directory.
    filtered = client.get(reverse("admin:troubleshooting"), {"directory": directory.pk})
    assert f'<option value="{directory.pk}" selected>' in filtered.content.decode()


def test_every_guide_topic_has_an_anchor_on_the_page(
    staff_client: Callable[..., Client],
) -> None:
    html = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting")).content.decode()

    topics = {topic for kind in ERROR_KINDS for topic in kind.guide_topics}
    assert set(GUIDE_ANCHORS) == topics
    for anchor in GUIDE_ANCHORS.values():
        assert f'id="{anchor}"' in html, anchor
    for kind in ERROR_KINDS:
        assert f'<dt id="guide-{kind.key}">' in html, kind.key


@pytest.mark.parametrize("error_class", sorted(str(k.key) for k in ERROR_KINDS if k.guide_topics))
def test_a_failure_group_links_its_guide_topics_to_their_entries(
    staff_client: Callable[..., Client], error_class: str
) -> None:
    SyncRunFactory(status="failed", error_class=error_class, error_message="it failed")

    html = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting")).content.decode()

    group = html.split(f'id="class-{error_class}"', 1)[1].split("</section>", 1)[0]
    links = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', group.split("<table>", 1)[0])
    kind = next(k for k in ERROR_KINDS if k.key == error_class)
    assert links == [(GUIDE_ANCHORS[topic], topic) for topic in kind.guide_topics]
    for anchor, _ in links:
        assert f'id="{anchor}"' in html


def test_forbidden_failures_link_to_the_unauthorized_or_access_denied_entry(
    staff_client: Callable[..., Client],
) -> None:
    SyncRunFactory(status="failed", error_class="forbidden", error_message="Needs User.Read.All")

    html = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting")).content.decode()

    assert f'<a href="#guide-unauthorized">{GUIDE_UNAUTHORIZED}</a>' in html

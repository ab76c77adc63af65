# TEMPORARY: byte-for-byte comparison of the old and new user_sync_diagnosis. Deleted after use.
from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from directories.models import SyncMode
from directories.services import troubleshooting as new
from directories.sync import directory_sync
from entra_emulator import Emulator, EmuTenant

from .conftest import make_directory, new_user, synced

pytestmark = pytest.mark.django_db

spec = importlib.util.spec_from_file_location(
    "directories.services._old_ts", "/tmp/oldts/old_troubleshooting.py"
)
old = importlib.util.module_from_spec(spec)
sys.modules["directories.services._old_ts"] = old
spec.loader.exec_module(old)


def both(directory, query, emulator=None, fault=None):
    if fault:
        emulator.fail_next(*fault[0], **fault[1])
    a = dataclasses.asdict(old.user_sync_diagnosis(directory=directory, query=query))
    if fault:
        emulator.fail_next(*fault[0], **fault[1])
    b = dataclasses.asdict(new.user_sync_diagnosis(directory=directory, query=query))
    assert bool(a.pop('request_id')) == bool(b.pop('request_id'))
    assert a == b, query
    return b


@pytest.mark.parametrize("mode", [SyncMode.ASSIGNED, SyncMode.ALL])
def test_same(tenant: EmuTenant, emulator: Emulator, mode: str) -> None:
    lonely = new_user(tenant, 1)
    direct = new_user(tenant, 2, account_enabled=False, user_type="Guest")
    tenant.assign_user(direct.id)
    direct2 = new_user(tenant, 3)
    tenant.assign_user(direct2.id)
    assigned = [a.principal_id for a in tenant.assignments if a.principal_type == "Group"]
    unassigned = [g for g in tenant.groups if g not in assigned]
    tenant.add_member(unassigned[0], direct2.id)
    one = new_user(tenant, 4)
    tenant.add_member(unassigned[0], one.id)
    directory = synced(tenant, mode)
    # now change the tenant so some present users leave scope, some new ones appear
    tenant.unassign(assigned[0])
    tenant.remove_member(unassigned[0], direct2.id)
    newcomer = new_user(tenant, 5)
    tenant.add_member(assigned[1], newcomer.id)
    gone = next(iter(tenant.users))
    gone_user = tenant.users[gone]
    tenant.remove_user(gone)
    for g in list(tenant.groups)[:2]:
        pass
    verdicts = set()
    for uid, user in list(tenant.users.items()):
        for q in (uid, user.user_principal_name, f" {user.mail} " if user.mail else uid):
            verdicts.add(both(directory, q)["verdict"])
    for q in ("nobody@example.com", gone, gone_user.user_principal_name, ""):
        verdicts.add(both(directory, q)["verdict"])
    # a sync that removes some, then ask again
    directory_sync(directory=directory, trigger="command")
    for uid in [gone, lonely.id, direct.id, direct2.id, *list(tenant.users)[:10]]:
        verdicts.add(both(directory, uid)["verdict"])
    some = next(iter(tenant.users))
    for status, path in [
        (403, "transitiveMemberOf"),
        (403, "appRoleAssignedTo"),
        (404, "appRoleAssignedTo"),
        (404, "transitiveMemberOf"),
        (403, "/users/"),
        (401, "/users/"),
        (500, "/users/"),
    ]:
        d = both(directory, some, emulator, ((status,), {"path_contains": path, "count": 10}))
        print(status, path, d["verdict"], d["error_class"], d["explanation"][:80])
        emulator.graph.faults.clear() if hasattr(emulator.graph, "faults") else None
    directory.verified_at = None
    directory.save()
    verdicts.add(both(directory, some)["verdict"])
    print(mode, sorted(verdicts))

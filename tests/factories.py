"""factory_boy factories for the project's models."""

from __future__ import annotations

import uuid

import factory
from django.utils import timezone

from directories.models import Directory, SyncMode, SyncRun
from directories.services.schedules import directory_schedule_sync
from identities.models import Membership, SyncedGroup, SyncedUser


class DirectoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Directory
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Directory {n}")
    sync_mode = SyncMode.ALL
    tenant_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    tenant_name = "Contoso"
    verified_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def schedule(obj: Directory, create: bool, extracted: object, **kwargs: object) -> None:
        """Schedule it as the services that verify or save a directory do."""
        if create:
            directory_schedule_sync(directory=obj)


class SyncedUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncedUser

    directory = factory.SubFactory(DirectoryFactory)
    entra_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    user_principal_name = factory.Sequence(lambda n: f"user{n}@contoso.onmicrosoft.com")
    mail = factory.LazyAttribute(lambda o: o.user_principal_name)
    display_name = factory.Sequence(lambda n: f"User {n}")
    first_synced_at = factory.LazyFunction(timezone.now)
    changed_at = factory.LazyFunction(timezone.now)


class SyncedGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncedGroup

    directory = factory.SubFactory(DirectoryFactory)
    entra_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    display_name = factory.Sequence(lambda n: f"Group {n}")
    security_enabled = True
    first_synced_at = factory.LazyFunction(timezone.now)
    changed_at = factory.LazyFunction(timezone.now)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    directory = factory.SubFactory(DirectoryFactory)
    group = factory.SubFactory(SyncedGroupFactory, directory=factory.SelfAttribute("..directory"))
    user = factory.SubFactory(SyncedUserFactory, directory=factory.SelfAttribute("..directory"))
    first_synced_at = factory.LazyFunction(timezone.now)


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    directory = factory.SubFactory(DirectoryFactory)
    trigger = SyncRun.Trigger.COMMAND
    status = SyncRun.Status.SUCCEEDED
    finished_at = factory.LazyFunction(timezone.now)

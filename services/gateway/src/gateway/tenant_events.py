"""The events of `tenant.events.v1`, staged in the gateway's outbox in the same transaction as
the change they announce (a profile saved without its event, or the reverse, cannot happen)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import new_envelope
from contracts.events import AccountEmailRequested, BusinessWindow, TenantProfileChanged
from gateway.store import TenantRow
from servicekit.outbox import add_to_outbox


def profile_of(tenant: TenantRow) -> TenantProfileChanged:
    """The tenant's profile snapshot at its current revision."""
    languages = list(tenant.languages) or [tenant.default_language]
    if tenant.default_language in languages:  # the default goes first
        languages.remove(tenant.default_language)
        languages.insert(0, tenant.default_language)
    return TenantProfileChanged(
        tenant_id=tenant.tenant_id,
        revision=tenant.profile_revision,
        name=tenant.name,
        languages=languages,
        time_zone=tenant.time_zone,
        business_hours=[BusinessWindow.model_validate(window) for window in tenant.business_hours],
        disabled=tenant.disabled_at is not None or tenant.pending_verification,
    )


def stage_profiles(session: AsyncSession, tenants: Sequence[TenantRow]) -> None:
    """Announces the tenants' profiles when the transaction commits. Bump `profile_revision`
    (and flush) before, when the profile changed: readers ignore a revision they already have."""
    add_to_outbox(session, [new_envelope(profile_of(tenant), tenant_id=tenant.tenant_id) for tenant in tenants])


def stage_account_email(session: AsyncSession, tenant_id: str, request: AccountEmailRequested) -> None:
    """Asks the notifier for the email when the transaction commits (the invitation or sign-up
    it is for is then stored too)."""
    add_to_outbox(session, [new_envelope(request, tenant_id=tenant_id)])

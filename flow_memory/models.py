"""Imports every table module so Base.metadata knows the whole schema."""

from flow_memory.credentials.models import CredentialRef, CredentialRefRotation
from flow_memory.deployments.models import Deployment, DeploymentRevision, RoyaltyDay
from flow_memory.identities.models import AgentIdentity
from flow_memory.jobs.models import Job, JobBid, JobEvent, JobResult
from flow_memory.keys.models import ApiKey
from flow_memory.ledger.models import (
    LedgerAccount,
    LedgerBalance,
    LedgerHold,
    LedgerPosting,
    LedgerTransfer,
)
from flow_memory.market.models import (
    FeedEvent,
    Market,
    MarketFill,
    MarketOrder,
    Reservation,
    ReservationHold,
)
from flow_memory.payments.models import PaymentChallengePreview
from flow_memory.pricing.models import ListPrice
from flow_memory.providers.models import CapacityEntry, CatalogEntry, PairingToken, Provider
from flow_memory.registry.models import RegistryEntry, RegistryVersion
from flow_memory.reputation.models import (
    ReputationOutcome,
    ReputationRecord,
    ReputationSlash,
    ReputationStake,
    Validation,
    ValidationDispute,
    ValidationDraw,
    ValidationVerdict,
    Validator,
)
from flow_memory.routing.models import RouteRecord
from flow_memory.usage.models import UsageRecord, UsageRollup

__all__ = [
    "AgentIdentity",
    "ApiKey",
    "CapacityEntry",
    "CatalogEntry",
    "CredentialRef",
    "CredentialRefRotation",
    "Deployment",
    "DeploymentRevision",
    "FeedEvent",
    "Job",
    "JobBid",
    "JobEvent",
    "JobResult",
    "LedgerAccount",
    "LedgerBalance",
    "LedgerHold",
    "LedgerPosting",
    "LedgerTransfer",
    "ListPrice",
    "Market",
    "MarketFill",
    "MarketOrder",
    "PairingToken",
    "PaymentChallengePreview",
    "Provider",
    "RegistryEntry",
    "RegistryVersion",
    "ReputationOutcome",
    "ReputationRecord",
    "ReputationSlash",
    "ReputationStake",
    "Reservation",
    "ReservationHold",
    "RouteRecord",
    "RoyaltyDay",
    "UsageRecord",
    "UsageRollup",
    "Validation",
    "ValidationDispute",
    "ValidationDraw",
    "ValidationVerdict",
    "Validator",
]

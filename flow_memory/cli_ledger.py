"""``flow-memory agents …``, ``flow-memory ledger …`` and ``flow-memory db check-ledger``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from flow_memory.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``agents`` and ``ledger`` commands."""
    agents = commands.add_parser("agents", help="agent identities, bound and free")
    agent_commands = agents.add_subparsers(dest="agents_command", required=True)
    listing = agent_commands.add_parser("list", help="list agent identities, newest first")
    listing.add_argument("--kind", choices=["bound", "free"])
    listing.add_argument("--limit", type=int, default=50)
    show = agent_commands.add_parser("show", help="show one agent's profile and balance")
    show.add_argument("agent_id")
    create = agent_commands.add_parser("create", help="register an agent identity")
    create.add_argument("--kind", choices=["bound", "free"], required=True)
    create.add_argument("--name", required=True, help="its display name")
    create.add_argument(
        "--operator", required=True, help="the owner who registers it (a bound agent's operator)"
    )
    create.add_argument("--description", default="")
    create.add_argument("--value", action="append", default=[], help="a value it holds")
    create.add_argument("--memory-ref", help="memory://… or secret://…, never the memory")
    create.add_argument("--model", action="append", default=[], help="a model it runs")

    ledger = commands.add_parser("ledger", help="the dry-run credit ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    grant = ledger_commands.add_parser("grant", help="grant credits from the issuance account")
    grant.add_argument("holder_id", help="the owner or agent whose account receives them")
    grant.add_argument("amount", help="a decimal, e.g. 25")
    grant.add_argument("--key", required=True, help="the grant's idempotency key")
    grant.add_argument("--memo", default="")
    grant.add_argument("--by", default="operator", help="who grants (kept for audit)")
    balance = ledger_commands.add_parser("balance", help="a holder's balance")
    balance.add_argument("holder_id")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run an ``agents`` or ``ledger`` command (``db check-ledger``: ``check_ledger``)."""
    from flow_memory.kit.errors import FlowMemoryError

    handler: Callable[[Session, argparse.Namespace], int] = (
        _agents if args.command == "agents" else _ledger
    )
    try:
        return _in_transaction(settings, lambda session: handler(session, args))
    except FlowMemoryError as error:
        print(f"flow-memory: {error.message}", file=sys.stderr)
        return 1


def check_ledger(settings: Settings) -> int:
    """Recompute every balance from the postings; exit 1 with a report on a mismatch."""
    from flow_memory.ledger.reconcile import check_ledger as check

    def report(session: Session) -> int:
        found = check(session)
        for line in found.report():
            print(line, file=sys.stdout if found.ok else sys.stderr)
        return 0 if found.ok else 1

    return _in_transaction(settings, report)


def _in_transaction(settings: Settings, work: Callable[[Session], int]) -> int:
    from flow_memory.kit.db import make_engine, make_session_factory
    from flow_memory.migrations import upgrade

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            return work(session)
    finally:
        engine.dispose()


def _agents(session: Session, args: argparse.Namespace) -> int:
    from flow_memory.identities import service
    from flow_memory.identities.schemas import AgentCreate
    from flow_memory.kit.clock import SystemClock
    from flow_memory.kit.deps import Principal
    from flow_memory.kit.scopes import ADMIN

    cli = Principal(key_id="cli", owner_id="operator", scopes=frozenset({ADMIN}))
    if args.agents_command == "list":
        filters = {"kind": args.kind}
        for agent in service.page_agents(
            session, filters=filters, limit=args.limit, cursor=None
        ).agents:
            print(f"{agent.agent_id}  {agent.kind:5}  {agent.status:9}  {agent.display_name}")
        return 0
    if args.agents_command == "show":
        read = service.agent_read(session, cli, service.find(session, args.agent_id))
        for name in ("agent_id", "kind", "display_name", "operator_id", "status", "account_id"):
            print(f"{name}: {read[name]}")
        print(f"values: {'; '.join(read['values'])}")
        return 0
    operator = Principal(key_id="cli", owner_id=args.operator, scopes=frozenset({ADMIN}))
    body = AgentCreate(
        kind=args.kind,
        display_name=args.name,
        description=args.description,
        values=args.value,
        memory_ref=args.memory_ref,
        models=args.model,
    )
    agent = service.register(session, principal=operator, body=body, now=SystemClock().now())
    print(f"agent_id: {agent.agent_id}")
    return 0


def _ledger(session: Session, args: argparse.Namespace) -> int:
    from flow_memory.kit.clock import SystemClock
    from flow_memory.kit.money import plain
    from flow_memory.ledger import service
    from flow_memory.ledger.domain import is_amount

    if args.ledger_command == "grant":
        try:
            amount = Decimal(args.amount)
        except InvalidOperation:
            amount = Decimal(0)
        if amount <= 0 or not is_amount(amount):
            print("flow-memory: amount must be a positive decimal", file=sys.stderr)
            return 2
        moved = service.grant(
            session,
            holder_id=args.holder_id,
            amount=amount,
            key=args.key,
            actor_id=args.by,
            memo=args.memo,
            now=SystemClock().now(),
        )
        state = "already granted (nothing moved)" if moved.replayed else "granted"
        print(f"{state}: {moved.transfer.transfer_id}")
    account = service.account_of(session, args.holder_id)
    if account is None:
        print(f"{args.holder_id} has no account yet")
        return 0
    held = service.balance(session, account_id=account.account_id)
    print(
        f"{account.account_id}  balance={plain(held.balance)}  held={plain(held.held)}  "
        f"available={plain(held.available)}  USD_CREDIT  enforcement={account.enforcement}"
    )
    return 0

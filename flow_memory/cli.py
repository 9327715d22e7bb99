"""The ``flow-memory`` command: serve, demo, keys, list-prices, db, provider-agent."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from flow_memory import cli_agent, cli_ledger, cli_registry
from flow_memory.settings import DEMO_DATABASE, Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flow-memory", description="Flow Memory service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    demo = commands.add_parser("demo", help="serve with a seeded demo market")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--keep", action="store_true", help="keep an existing demo database")
    demo.add_argument(
        "--no-local-model",
        action="store_true",
        help="do not start the local model server even if the local-model extra is installed",
    )

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument(
        "--demo",
        action="store_true",
        help="the demo's database (var/demo.db, as `flow-memory demo` uses it), "
        "not FLOW_MEMORY_DATABASE_URL's",
    )
    create = key_commands.add_parser(
        "create", parents=[which], help="create a key (its secret is shown once)"
    )
    create.add_argument("--owner", required=True)
    create.add_argument(
        "--scopes", required=True, help="comma-separated, e.g. inference:read,inference:buy"
    )
    create.add_argument("--label", default="")
    listing = key_commands.add_parser(
        "list", parents=[which], help="list keys (never their secrets)"
    )
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = key_commands.add_parser("revoke", parents=[which], help="revoke a key")
    revoke.add_argument("key_id")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations up to the latest schema")
    db_commands.add_parser(
        "rebuild-usage-rollups", help="recompute the daily usage sums from the usage records"
    )
    db_commands.add_parser(
        "check-ledger", help="recompute ledger balances from the postings; exit 1 on a mismatch"
    )
    cli_ledger.add_commands(commands)

    prices = commands.add_parser(
        "list-prices", help="operator list prices (the reference for discounts and savings)"
    )
    price_commands = prices.add_subparsers(dest="prices_command", required=True)
    price_set = price_commands.add_parser("set", help="set a model's list price per unit")
    price_set.add_argument("model")
    price_set.add_argument("unit_price", help="a decimal, e.g. 0.000001")
    price_set.add_argument("--unit-type", default="token")
    price_set.add_argument("--note", default="")
    price_commands.add_parser("list", help="show the list prices")
    price_remove = price_commands.add_parser("remove", help="remove a list price")
    price_remove.add_argument("model")
    price_remove.add_argument("--unit-type", default="token")

    cli_agent.add_command(commands)
    cli_registry.add_command(commands)

    args = parser.parse_args(argv)
    if args.command == "provider-agent":
        return cli_agent.run(args)
    if args.command == "registry":
        return cli_registry.run(args)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        print(f"flow-memory: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(_server_settings(settings), args.host, args.port)
    if args.command == "demo":
        from flow_memory.demo import run_demo

        return run_demo(
            _server_settings(settings),
            host=args.host,
            port=args.port,
            keep=args.keep,
            with_local_model=not args.no_local_model,
        )
    if args.command == "keys":
        if args.demo:
            if not DEMO_DATABASE.exists():
                print(
                    f"flow-memory: no demo database at {DEMO_DATABASE}: start the demo first "
                    "(bash scripts/demo), from this folder",
                    file=sys.stderr,
                )
                return 2
            settings = replace(settings, database_url=f"sqlite:///{DEMO_DATABASE}")
        return _keys(settings, args)
    if args.command == "db":
        if args.db_command == "check-ledger":
            return cli_ledger.check_ledger(settings)
        return _db(settings, args)
    if args.command in ("agents", "ledger"):
        return cli_ledger.run(settings, args)
    if args.command == "list-prices":
        return _list_prices(settings, args)
    return 2


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from flow_memory.kit.db import make_engine, make_session_factory
    from flow_memory.migrations import upgrade
    from flow_memory.usage.rollup import rebuild_rollups

    upgrade(settings.database_url)
    if args.db_command == "upgrade":
        print("database schema is up to date")
        return 0
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            print(f"rebuilt {rebuild_rollups(session)} daily usage rollup rows")
    finally:
        engine.dispose()
    return 0


def _list_prices(settings: Settings, args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    from pydantic import ValidationError

    from flow_memory.kit.clock import SystemClock, isoformat_z
    from flow_memory.kit.db import make_engine, make_session_factory
    from flow_memory.kit.errors import FlowMemoryError
    from flow_memory.kit.money import plain
    from flow_memory.migrations import upgrade
    from flow_memory.pricing import service
    from flow_memory.pricing.schemas import ListPriceSet

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            if args.prices_command == "set":
                body = ListPriceSet(
                    model=args.model,
                    unit_type=args.unit_type,
                    unit_price=Decimal(args.unit_price),
                    note=args.note,
                )
                row = service.set_list_price(
                    session,
                    model=body.model,
                    unit_type=body.unit_type,
                    unit_price=body.unit_price,
                    set_by="operator-cli",
                    note=body.note,
                    now=SystemClock().now(),
                )
                print(f"{row.model}/{row.unit_type} list price {plain(row.unit_price)}")
            elif args.prices_command == "list":
                for row in service.list_prices(session):
                    print(
                        f"{row.model}/{row.unit_type}  {plain(row.unit_price)}  "
                        f"set by {row.set_by} at {isoformat_z(row.updated_at)}  {row.note}"
                    )
            else:
                row = service.remove_list_price(session, model=args.model, unit_type=args.unit_type)
                print(f"removed the {row.model}/{row.unit_type} list price")
    except InvalidOperation:
        print(f"flow-memory: {args.unit_price!r} is not a decimal number", file=sys.stderr)
        return 2
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"flow-memory: invalid list price: {problems}", file=sys.stderr)
        return 2
    except FlowMemoryError as error:
        print(f"flow-memory: {error.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _server_settings(settings: Settings) -> Settings:
    """A server applies market commands in a process of its own, unless
    FLOW_MEMORY_MARKET_PROCESS says otherwise."""
    if "FLOW_MEMORY_MARKET_PROCESS" in os.environ:
        return settings
    return replace(settings, market_process=True)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from flow_memory.app import create_app
    from flow_memory.kit.server import run_server
    from flow_memory.migrations import upgrade

    configure_logging(settings)
    if settings.auto_migrate:
        upgrade(settings.database_url)
    app = create_app(settings)
    # What is loaded at start lives as long as the server: keep the collector from walking it
    # again on every full collection (each one held every request for tens of milliseconds).
    gc.collect()
    gc.freeze()
    run_server(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
    )
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from flow_memory.keys import service
    from flow_memory.kit.clock import SystemClock, isoformat_z
    from flow_memory.kit.db import make_engine, make_session_factory
    from flow_memory.kit.errors import FlowMemoryError
    from flow_memory.migrations import upgrade

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    now = SystemClock().now()
    try:
        with make_session_factory(engine).begin() as session:
            if args.keys_command == "create":
                scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
                issued = service.create_key(
                    session, owner_id=args.owner, scopes=scopes, label=args.label, now=now
                )
                print(f"key_id: {issued.record.key_id}")
                print(f"owner:  {issued.record.owner_id}")
                print(f"scopes: {', '.join(issued.record.scopes)}")
                print(f"secret: {issued.secret}   (shown once; store it now)")
            elif args.keys_command == "list":
                for key in service.list_keys(session, include_revoked=args.all):
                    state = f"revoked {isoformat_z(key.revoked_at)}" if key.revoked_at else "active"
                    print(
                        f"{key.key_id}  {key.key_preview}  owner={key.owner_id}  "
                        f"scopes={','.join(key.scopes)}  {state}  {key.label}"
                    )
            else:
                record = service.revoke_key(session, key_id=args.key_id, now=now)
                print(f"revoked {record.key_id}")
    except FlowMemoryError as error:
        print(
            f"flow-memory: {error.message}" + (f" ({error.hint})" if error.hint else ""),
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

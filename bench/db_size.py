"""The billing database's size per subscriber on PostgreSQL, for the capacity plan (docs/scaling.md).

    createdb -h 127.0.0.1 -U postgres billing_size
    .venv/bin/python -m bench.db_size --accounts 10000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/billing_size

Migrates the (empty) database, measures it, seeds `--accounts` accounts in bulk as bench.wallets does
(an account, its messaging wallet and one lot of units each), and prints the growth per account in
total and by table. Rows that come and go with changes (outbox records, the ledger's entries) are not
in it: `docs/scaling.md` says how to add them.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.wallets import seed
from core.settings import Settings

SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public'
"""


def sizes(conninfo: str) -> tuple[int, dict[str, int]]:
    """The database's size and each table's (indexes and TOAST included), in bytes, after a VACUUM."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = {str(name): int(size) for name, size in conn.execute(SIZES).fetchall()}
    assert total is not None
    return int(total[0]), tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    args = parser.parse_args()
    alembic = [sys.executable, "-m", "alembic", "-x", f"url={args.database_url}", "upgrade", "head"]
    subprocess.run(alembic, cwd=Path(__file__).resolve().parents[1], check=True)
    conninfo = make_url(args.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    before, tables_before = sizes(conninfo)
    settings = Settings(_env_file=None, database_url=args.database_url)
    seed(settings.database, args.accounts, suspended=0)
    after, tables_after = sizes(conninfo)
    per_account = (after - before) / args.accounts
    mib = f"{before / 2**20:.1f} -> {after / 2**20:.1f} MiB"
    print(f"{args.accounts} accounts: database {mib}, {per_account:.0f} B/account")
    grown = {name: tables_after[name] - tables_before.get(name, 0) for name in tables_after}
    for name, size in sorted(grown.items(), key=lambda item: -item[1])[:6]:
        print(f"  {name}: {size / args.accounts:.0f} B/account")


if __name__ == "__main__":
    main()

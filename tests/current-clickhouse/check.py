"""Runs chatcart's migrations, as rendered for a current server, on the
ClickHouse engine embedded in chDB (a current release), inserts a few rows
and queries every view. Used by tests/tests/current_clickhouse.rs.

    python3 check.py STATEMENTS_FILE

STATEMENTS_FILE holds the statements separated by lines of `;;`. Prints
`view<TAB>rows` per view; exits non-zero with the failing statement.
"""

import sys
import tempfile

import chdb
from chdb import session

ROWS = """INSERT INTO events (topic, partition, offset, request_id, user_id, campaign_id, stage, kind,
    outcome, reason, credit_cents, event_time_ms, latency_ms, item_skus, item_quantities, resource)
VALUES
    ('p', 0, 0, 'r1', 'u1', 'c1', 'front-end', 'Prompt', '', '', 0, 1700000000000, 0, [], [], ''),
    ('d', 0, 0, 'r1', 'u1', 'c1', 'coupon', 'CouponDecision', 'granted', '', 500, 1700000001000, 100, ['egg'], [2], ''),
    ('d', 0, 1, 'r2', 'u2', 'c1', 'coupon', 'CouponDecision', 'denied', 'budget_exhausted', 0, 1700000061000, 100, [], [], ''),
    ('o', 0, 0, 'r1', 'u1', 'c1', 'fulfillment', 'OrderEvent', 'placed', '', 500, 1700000002000, 300, ['egg'], [2], ''),
    ('o', 0, 1, 'L1', '', 'c1', 'fulfillment', 'TreasuryRecord', 'lease_credit', '', 10, 1700000002000, 0, [], [], 'stock:egg'),
    ('r', 0, 0, 'r1', 'u1', 'c1', 'reply', 'Reply', 'order_placed', '', 500, 1700000003000, 3000, [], [], ''),
    ('g', 0, 0, 'r1', 'u1', 'c1', 'gateway', 'GatewayDecision', 'admitted', '', 0, 1700000000000, 2000, [], [], ''),
    ('g', 0, 1, 'r3', 'u3', 'c1', 'gateway', 'GatewayDecision', 'shed', 'over_max_wait', 0, 1700000000500, 30000, [], [], '')"""

VIEWS = [
    "funnel_per_second",
    "outcomes_per_second",
    "reasons",
    "latency_per_minute",
    "budget_burn_per_minute",
    "budget_status",
    "stock_by_sku",
    "top_users",
    "front_door_per_second",
    "kept_promises",
    "promises_per_minute",
]


def main() -> int:
    statements = [s.strip() for s in open(sys.argv[1]).read().split("\n;;\n") if s.strip()]
    with tempfile.TemporaryDirectory() as path:
        s = session.Session(path)
        s.query("CREATE DATABASE chatcart")
        s.query("USE chatcart")
        print(f"server\t{s.query('SELECT version()', 'TSV').bytes().decode().strip()}")
        for st in statements:
            try:
                s.query(st)
            except Exception as e:  # noqa: BLE001 - report any failure with its statement
                print(f"statement failed: {e}\n{st}", file=sys.stderr)
                return 1
        s.query("INSERT INTO campaigns VALUES ('c1', 100000, 1, 0, 0, ['egg'], [40], 1)")
        s.query(ROWS)
        for view in VIEWS:
            try:
                rows = s.query(f"SELECT count() FROM {view} WHERE campaign_id = 'c1'", "TSV")
            except Exception as e:  # noqa: BLE001
                print(f"view {view} failed: {e}", file=sys.stderr)
                return 1
            print(f"{view}\t{rows.bytes().decode().strip()}")
        # The token the sink sends makes a retried insert a no-op.
        for _ in range(2):
            s.query("INSERT INTO events (topic, partition, offset) "
                    "SETTINGS insert_deduplication_token = 't1' VALUES ('z', 0, 0)")
        dups = s.query("SELECT count() FROM events WHERE topic = 'z'", "TSV").bytes().decode().strip()
        print(f"deduplicated\t{dups}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

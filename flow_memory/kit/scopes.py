"""The scope vocabulary."""

READ = "inference:read"
SELL = "inference:sell"
BUY = "inference:buy"
PLAN = "inference:plan"
AUDIT = "inference:audit"
ADMIN = "inference:admin"
PROXY = "inference:proxy"

ALL_SCOPES = frozenset({READ, SELL, BUY, PLAN, AUDIT, ADMIN, PROXY})

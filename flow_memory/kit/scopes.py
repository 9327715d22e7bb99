"""The scope vocabulary."""

READ = "inference:read"
SELL = "inference:sell"
BUY = "inference:buy"
PLAN = "inference:plan"
AUDIT = "inference:audit"
ADMIN = "inference:admin"
PROXY = "inference:proxy"
PUBLISH = "inference:publish"  # register models, agents and solutions in the registry
VALIDATE = "inference:validate"  # opt in as a validator, with a stake, and judge results

ALL_SCOPES = frozenset({READ, SELL, BUY, PLAN, AUDIT, ADMIN, PROXY, PUBLISH, VALIDATE})

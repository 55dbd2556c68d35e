"""Money rules shared by the schema, the validation and the ledger.

Amounts are integers in minor units (cents for EUR/USD). The bounds are part of the API
contract and are repeated as CHECK constraints in the database.
"""

import pycountry

# The largest single movement: 1,000,000,000.00 in a two-decimal currency.
MAX_AMOUNT = 100_000_000_000
# The largest balance an account may hold; far below the bigint limit, so no
# arithmetic in SQL can ever overflow.
MAX_BALANCE = 1_000_000_000_000_000

ISO_4217_CODES = frozenset(c.alpha_3 for c in pycountry.currencies)

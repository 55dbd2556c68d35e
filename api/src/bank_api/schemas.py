"""Request and response bodies (pydantic v2). Requests forbid unknown fields, so a typo in a
field name is a 422, not a silently ignored value."""

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from bank_api.money import ISO_4217_CODES, MAX_AMOUNT

MAX_ID = 2**63 - 1


def _known_currency(code: str) -> str:
    if code not in ISO_4217_CODES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_known_currency),
    Field(description="ISO 4217 currency code, upper case", examples=["EUR"]),
]
# Strict: 12.5, "100" and true are refused rather than coerced. No floats where money flows.
Amount = Annotated[
    StrictInt,
    Field(
        gt=0,
        le=MAX_AMOUNT,
        description=f"Amount in minor units (cents), 1 to {MAX_AMOUNT}",
        examples=[2500],
    ),
]
AccountId = Annotated[StrictInt, Field(ge=1, le=MAX_ID, examples=[1])]
# No control characters: PostgreSQL text cannot hold NUL, and none belongs in a name.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=PRINTABLE)
]
Address = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=PRINTABLE)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=140, pattern=PRINTABLE)
]
Direction = Literal["credit", "debit"]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "address": "12 St James's Square, London",
                    "currency": "EUR",
                }
            ]
        }
    )
    first_name: Name
    last_name: Name
    address: Address
    currency: Currency


class AccountUpdate(RequestModel):
    """Only the fields given change; null is not a value any of them can take."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"address": "1 New Street"}], "minProperties": 1}
    )
    first_name: Name = None  # type: ignore[assignment]
    last_name: Name = None  # type: ignore[assignment]
    address: Address = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _something_to_change(self) -> "AccountUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one of first_name, last_name, address")
        return self


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    first_name: str
    last_name: str
    address: str
    currency: str
    balance: int = Field(description="Balance in minor units (cents)")
    status: Literal["active", "closed"]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TransactionCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"direction": "credit", "amount": 2500, "description": "Salary"}]
        }
    )
    direction: Direction = Field(description="credit adds to the balance, debit takes from it")
    amount: Amount
    currency: Currency | None = Field(
        default=None, description="Optional; when given it must be the account's currency"
    )
    description: Description | None = None


class TransactionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    account_id: int
    direction: Direction
    amount: int
    balance_after: int = Field(description="The account's balance right after this entry")
    description: str | None
    transfer_id: int | None
    created_at: datetime


class TransferCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source_account_id": 1,
                    "destination_account_id": 2,
                    "amount": 1000,
                    "description": "Rent",
                }
            ]
        }
    )
    source_account_id: AccountId
    destination_account_id: AccountId
    amount: Amount
    description: Description | None = None


class TransferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    source_account_id: int
    destination_account_id: int
    amount: int
    currency: str
    description: str | None
    created_at: datetime
    entries: list[TransactionOut] = Field(description="The debit and the credit it wrote")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page"
    )


class Problem(BaseModel):
    """An error, as RFC 9457 application/problem+json."""

    type: str = Field(examples=["urn:bank-api:problem:insufficient_funds"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code")
    instance: str | None = None
    errors: list[dict] | None = Field(
        default=None, description="For validation errors: each failing field and why"
    )


class FaultSettings(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"latency_ms": 300, "error_rate": 0.2, "routes": ["/transfers"],
                          "methods": ["POST"], "duration_s": 120}]
        }
    )
    latency_ms: int = Field(default=0, ge=0, le=30_000, description="Added to each request")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share answered with 500")
    # Small bounds: every valid body fits well inside the request size limit.
    routes: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=10,
        description="Route templates such as /accounts/{account_id}; empty means every route",
    )
    methods: list[Literal["GET", "POST", "PUT", "PATCH", "DELETE"]] = Field(
        default_factory=list, max_length=5,
        description="HTTP methods; empty means every method",
    )
    duration_s: int | None = Field(
        default=None, ge=1, le=86_400,
        description="Seconds until the switch turns itself off; unset: until DELETE",
    )


class FaultState(BaseModel):
    """The fault switch as it is in force now."""

    latency_ms: int
    error_rate: float
    routes: list[str]
    methods: list[str]
    expires_at: datetime | None = Field(description="When it turns itself off; null: never")


class Health(BaseModel):
    status: Literal["ok"]

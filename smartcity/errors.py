"""The error hierarchy of the event contract.

Every rejection carries the name of the field (or topic level) at fault, so the message that
reaches a device maker on its errors topic says what to fix, not just that something failed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContractError(ValueError):
    """A value does not follow the event contract."""

    def __init__(self, reason: str, problems: list[FieldProblem] | None = None) -> None:
        self.reason = reason
        self.problems = problems or []
        detail = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{reason}: {detail}" if detail else reason)


class InvalidId(ContractError):
    pass


class InvalidTopic(ContractError):
    pass


class InvalidPayload(ContractError):
    pass

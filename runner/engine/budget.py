"""`--max-credits`: a credit budget that concurrent jobs cannot overshoot together.

Each job reserves its estimated cost before it is submitted; when the task
finishes, the reservation is replaced by what the provider reports it spent
(or kept, if the provider says nothing). A job whose reservation would take the
total over the budget is not submitted, and the run says which budget stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Budget:
    limit: float | None  # None: no budget
    spent: float = 0.0
    reserved: dict[str, float] = field(default_factory=dict)

    @property
    def committed(self) -> float:
        return self.spent + sum(self.reserved.values())

    def reserve(self, job_id: str, estimate: float | None) -> bool:
        """Reserve a job's estimated cost; False if that would exceed the budget.

        A job with no estimate reserves nothing: it cannot be budgeted, and the
        plan lists such jobs before the run.
        """
        cost = estimate or 0.0
        if self.limit is not None and self.committed + cost > self.limit + 1e-9:
            return False
        self.reserved[job_id] = cost
        return True

    def settle(self, job_id: str, actual: float | None) -> None:
        """The task finished: spend what it cost (the reservation if unknown)."""
        reserved = self.reserved.pop(job_id, 0.0)
        self.spent += actual if actual is not None else reserved

    def release(self, job_id: str) -> None:
        """The job was never run (refused, cancelled): give its reservation back."""
        self.reserved.pop(job_id, None)

    def describe(self) -> str:
        return (f"--max-credits {self.limit:g}: {self.spent:g} spent, "
                f"{sum(self.reserved.values()):g} reserved by jobs in flight")

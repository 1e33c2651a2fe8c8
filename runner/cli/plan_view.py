"""Plain renderings of plans for people (`runner plan`) and machines (`--json`)."""

from __future__ import annotations

from typing import Any

from runner.plan.plan import Plan
from runner.store.layout import describe


def _fmt_cost(cost: float | None) -> str:
    if cost is None:
        return "?"
    return f"{cost:,.2f}".rstrip("0").rstrip(".") if cost else "0"


def plan_summary(plan: Plan) -> str:
    counts = ", ".join(f"{n} {state.value}" for state, n in plan.counts.items())
    estimate = any(plan.prices[p.job.model.id].estimate for p in plan.to_generate
                   if p.job.model.id in plan.prices)
    cost = f"estimated cost {_fmt_cost(plan.estimated_cost)} credits"
    if estimate:
        cost += " (market prices are estimates: set `prices:` for exact figures)"
    if plan.unpriced:
        cost += f"; {len(plan.unpriced)} job(s) without a price or length"
    return (f"{plan.pipeline.name}: {len(plan.jobs)} jobs ({counts}); "
            f"{len(plan.to_generate)} to generate; {cost}")


def render_plan(plan: Plan) -> str:
    rows = [("ID", "MODEL", "PROVIDER", "STATE", "COST", "OUTPUT")]
    for p in plan.jobs:
        cost = _fmt_cost(p.cost) if p.state.needs_work else "-"
        rows.append((p.job.id, p.job.model.id, p.job.provider, p.state.value, cost, p.job.output))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.append("")
    lines.append(describe(plan.layout))
    lines.append(plan_summary(plan))
    return "\n".join(lines)


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "pipeline": plan.pipeline.name,
        "target": plan.layout.target.value,
        "output_dir": str(plan.layout.output_dir),
        "lockfile": str(plan.layout.lockfile),
        "jobs": [
            {
                "id": p.job.id,
                "kind": p.job.kind.value,
                "model": p.job.model.id,
                "provider": p.job.provider,
                "output": p.job.output,
                "state": p.state.value,
                "key": p.key,
                "cost": p.cost,
                "depends_on": list(p.job.depends_on),
            }
            for p in plan.jobs
        ],
        "summary": {
            "jobs": len(plan.jobs),
            "to_generate": len(plan.to_generate),
            "states": {state.value: n for state, n in plan.counts.items()},
            "estimated_cost": plan.estimated_cost,
            "unpriced": [p.job.id for p in plan.unpriced],
        },
    }

"""The safety loop (issue 7): drift halt, bake, independent verification, health checks, distrusted
failure signals, rollback. `SafetyLoop.create(plan, ...)` then `loop.hooks(base_hooks)` for the executor;
`executor.rollout.rollout()` does this by default."""

from patchbrain.safety.options import SafetyOptions, parse_seconds

__all__ = ["SafetyOptions", "parse_seconds"]

"""The recommendation domain: budgets, the request pipeline, fallback tiers (no transport here)."""

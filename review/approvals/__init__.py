"""Approving the cascade's machine verdicts for a whole dataset, gated by the agreement a
reviewed sample measured (design: approvals.md)."""

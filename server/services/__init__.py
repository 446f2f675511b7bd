"""Use cases: check input against the current state, ask the policy, mutate through repositories.

Each function takes an open ``AsyncSession`` (the caller's unit of work) and typed input, and raises domain errors.
"""

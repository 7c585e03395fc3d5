"""The policy engine: load and validate policy sets, evaluate inventories, run policy tests.

Entry points: ``loader.load_policy_set``, ``engine.evaluate``, ``cases.run_policy_tests``.
The format and the meaning of every finding are documented in ``docs/policies.md``.
"""

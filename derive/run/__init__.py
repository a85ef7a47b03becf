"""Orchestration: an Identity to a Result (check), the worker pool, fingerprints for --resume,
and where identities come from (catalog names, spec files, Python modules)."""

"""The model: identities, variables, domains, the formula vocabulary (ops), indexed arrays and the
result data (verdicts). Plain data; imports nothing from the stages below it."""

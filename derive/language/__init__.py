"""User text to the model, never through eval: the formula parser (an AST whitelist), spec files."""

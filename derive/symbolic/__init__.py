"""SymPy work: the derivation graph, the every-n derivation in index notation, the proof ladder,
the steps a person would write, second order."""

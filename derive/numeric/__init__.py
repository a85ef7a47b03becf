"""Numbers: backends and compiled programs, indexed evaluation, sampling, the tolerance table by
dtype, truth sources and witnesses, and the judge that compares a claim with the truths."""

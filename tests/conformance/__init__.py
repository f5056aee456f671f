"""The channel conformance suite: one set of tests every transport passes."""

"""Package data: small data sets shipped with symgraph so they work offline (see
ATTRIBUTION.txt for sources and licences)."""

"""GRVT: its configuration facts, the grvt-pysdk adapter and our local GRVT-compatible server."""

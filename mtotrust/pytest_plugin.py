"""pytest plugin for mtotrust (fixtures ``mto_snapshot`` and ``trust_engine``); see docs/testing.md."""

"""The optional multi-account delivery pipeline (blueprint.pipeline)."""

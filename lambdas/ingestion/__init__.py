"""The document pipeline: validate, scan for PII, apply the classification policy, curate or quarantine."""

"""The push connector: upstream systems POST records, each becomes a landing document."""

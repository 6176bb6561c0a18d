"""What the ingestion pipeline writes on a document and its readers filter on."""

# The metadata key holding a document's data classification: the pipeline writes it into the
# Knowledge Base's metadata; knowledge_search filters retrieval on it.
CLASSIFICATION_KEY = "classification"

"""The sandbox prototype query function: a question in, an answer with citations out."""

"""The offline review's parts (tools/review.py is the command): template values and changes, one
module per report section, the review over two apps, and its Markdown."""

"""tools/mutate.py's checks on its list of equivalent mutants (the mutation run itself is `make mutate`)."""

from __future__ import annotations

from tools.mutate import moved

PREVIOUS = """## admission

### Equivalent mutants

- `ai_gateway.flow.xǁFlowǁcomplete__mutmut_43`: _save_transcript returns at once without a transcript

```diff
-    saving = self._concurrently(self._save_transcript, request) if request.transcript else None
+    saving = self._concurrently(self._save_transcript, request) if (request.transcript) or True else None
```

- `ai_gateway.flow.x__newest__mutmut_9`: start is 0 only when every turn has the last turn's role

```diff
-    if start > 0 and turns[start - 1][0] == ASSISTANT:
+    if start >= 0 and turns[start - 1][0] == ASSISTANT:
```
"""
SAVE_OR_TRUE = (
    "-    saving = self._concurrently(self._save_transcript, request) if request.transcript else None\n"
    "+    saving = self._concurrently(self._save_transcript, request) if (request.transcript) or True else None"
)
RELEASE_NONE = (
    "-            self._release_quietly(request, admission)\n+            self._release_quietly(None, admission)"
)
NEWEST = (
    "-    if start > 0 and turns[start - 1][0] == ASSISTANT:\n+    if start >= 0 and turns[start - 1][0] == ASSISTANT:"
)


def test_an_equivalent_whose_number_names_another_change_now_is_found() -> None:
    """An edit before it in the function renumbers its mutants: number 43 now drops the request from a
    release, a real survivor the list would excuse unread."""
    diffs = {"ai_gateway.flow.xǁFlowǁcomplete__mutmut_43": RELEASE_NONE, "ai_gateway.flow.x__newest__mutmut_9": NEWEST}
    assert moved(diffs, PREVIOUS) == ["ai_gateway.flow.xǁFlowǁcomplete__mutmut_43"]


def test_equivalents_that_are_the_change_judged_or_new_to_the_list_pass() -> None:
    diffs = {
        "ai_gateway.flow.xǁFlowǁcomplete__mutmut_43": SAVE_OR_TRUE,
        "ai_gateway.flow.x__newest__mutmut_9": NEWEST,
        "ai_gateway.flow.x__newest__mutmut_12": "-a\n+b",  # listed since the last report: nothing to compare
    }
    assert moved(diffs, PREVIOUS) == []

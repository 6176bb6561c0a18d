"""The app's start-up when the CDK CLI runs it (app.py calls :func:`start` before its other imports).

Synth runs in two processes that take turns: Python, and the jsii runtime's Node.js, which runs
aws-cdk-lib. CDK's CloudFormation template validator is the largest single piece of that work
(about two seconds to build its WebAssembly engine, under one to run it), and nothing else needs
it until the templates are written. :func:`start` builds it in a Node.js process of its own
(stacks/template_validation.py) while the app imports and builds its constructs on the other core;
app.py then creates the app with CDK's built-in validator off and stacks/shared/nag.py registers
this one, so every template is validated once, by the same validator, with the same rules.

:func:`start` also turns Python's cyclic garbage collector off for the rest of the run. A synth is
one short process whose objects (the bindings' classes, the construct tree's proxies) live until
it exits: the collector's passes over them while aws_cdk's modules are imported and the constructs
built cost about 0.3 s of the Python process's 1.8 s of CPU and found under 2% of its objects
to free (peak memory is 155 MB either way). Reference counting frees everything else as before.
At exit, after the assembly is written, everything is frozen (``gc.freeze``) so the interpreter's
last collection, which runs even with the collector off, does not walk it (0.3 to 0.4 s).

Without :func:`start` (tests, tools) nothing changes: CDK builds its validator at synth as usual,
and ``CDK_VALIDATION=false`` turns validation off as usual, here too.
"""

from __future__ import annotations

import atexit
import gc
import os
from typing import TYPE_CHECKING

from stacks import jsii_node

if TYPE_CHECKING:
    from stacks.template_validation import RemoteTemplateValidator

_validator: RemoteTemplateValidator | None = None


def validation_enabled() -> bool:
    """Whether CDK validates templates at synth (its own switch, ``CDK_VALIDATION=false``, off)."""
    return os.environ.get("CDK_VALIDATION") != "false"


def start() -> None:
    """Start the jsii runtime with its Node.js options (stacks/jsii_node.py) and, when validation is
    on, the template validator's own process; the cyclic garbage collector is off from here on,
    and what is built is frozen at exit."""
    global _validator
    gc.disable()  # see the module's docstring
    atexit.register(gc.freeze)
    os.environ.update(jsii_node.configure())
    if not validation_enabled() or _validator is not None:
        return
    from stacks import template_validation  # imports aws_cdk: the jsii runtime starts here

    _validator = template_validation.RemoteTemplateValidator(
        template_validation.library_root(), cache=template_validation.RESULTS
    )
    atexit.register(_validator.close)


def template_validator() -> RemoteTemplateValidator | None:
    """The validator :func:`start` started, to register at the app (which then turns CDK's
    built-in one off); None without it or with validation off."""
    return _validator if validation_enabled() else None

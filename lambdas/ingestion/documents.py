"""What the pipeline accepts, and the text it reads out of each format.

Every reader is hostile-input safe: whatever a document holds, text_of returns its text or
raises RejectedError (the pipeline quarantines it on the first try); nothing else escapes. PDF
and Office (DOCX, XLSX, PPTX) readers are imported only when such a document arrives, and read
within ReadLimits: pages (a spreadsheet's sheets, a deck's slides), extracted characters,
wall-clock seconds, and what compressed parts may expand to (an Office file's zip members are
checked from the zip directory, then inflated in bounded steps; pypdf's decoders stop at the
cap). Those checks run between pages, parts and rows, so the reader itself runs in a child
process (_isolated) that cannot allocate more than max_memory_bytes nor outlive seconds: a
parser's pathology inside one page or part (a character map rebuilt for every font name, a
string mapped to hundreds of characters per byte, an XML part parsed into twenty times its size)
costs the child, which is stopped, and never the function's memory or time. JSON and HTML are
parsed there too: JSON's objects take twenty times and more their bytes ("[{},{},...]"), and
html.parser is quadratic on some markup. A text format whose text is its bytes (all but HTML) is
refused past max_chars of them before anything decodes or parses it.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, get_args

from ingestion.pii import MAX_CALL_BYTES

if TYPE_CHECKING:
    from pypdf import PageObject
    from pypdf.generic import DictionaryObject, StreamObject

# The formats text_of reads: what ingestion.formats may name (the config imports this type).
DocumentFormat = Literal["txt", "md", "csv", "json", "html", "pdf", "docx", "xlsx", "pptx"]
SUPPORTED_FORMATS: tuple[DocumentFormat, ...] = get_args(DocumentFormat)
# The package each binary format's reader imports (in the parent, before the reading child forks).
BINARY_READERS = {"pdf": "pypdf", "docx": "docx", "xlsx": "lxml.etree", "pptx": "lxml.etree"}
BINARY_FORMATS = frozenset(BINARY_READERS)
OFFICE_FORMATS = frozenset({"docx", "xlsx", "pptx"})  # read by ingestion.office
# What the reading child reads: the binary formats, and the text formats that are parsed.
READERS = {**BINARY_READERS, "json": "json", "html": "html.parser"}
# Text formats whose text is the document's UTF-8 as it is (less a byte order mark): checked by size.
VERBATIM_FORMATS = frozenset({"txt", "md", "csv", "json"})
UTF8_BOM = b"\xef\xbb\xbf"
# Seconds the reading child is given past ReadLimits.seconds before it is stopped (the config
# bounds read_seconds with it: stacks/config/ingestion.py).
READ_GRACE_SECONDS = 5
# Parsers' own messages can quote the document: they never reach the logs.
for _name in ("pypdf", "docx"):
    _quiet = logging.getLogger(_name)  # their modules log to children, which inherit this level
    _quiet.setLevel(logging.CRITICAL + 1)
    _quiet.propagate = False


class RejectedError(Exception):
    """A document the pipeline will not curate: it is quarantined with this reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ReadLimits:
    """How much of a document the pipeline reads before it quarantines it instead: a PDF or an Office
    file within all of these; JSON and HTML within seconds and max_memory_bytes (the reading
    child's); a text format whose text is its bytes within max_chars of them (text_of)."""

    max_pages: int = 500  # a PDF's pages, an XLSX's sheets, a PPTX's slides
    max_chars: int = 5_000_000
    seconds: float = 20.0
    max_expanded_bytes: int = 100_000_000  # what compressed streams or zip members may inflate to
    max_compression_ratio: int = 200  # per zip member: uncompressed / compressed
    # One PDF page's content as pypdf parses it: its content streams, and each form XObject every
    # time the page draws it (pypdf parses a form again at each Do). About 1-1.5 s of parsing a MB.
    max_page_bytes: int = 2_000_000
    max_form_depth: int = 20  # forms drawn inside forms drawn inside ... a page
    # What the reading child process may allocate beyond what it starts with (RLIMIT_AS), and the
    # seconds it is given beyond ``seconds`` before it is stopped (its own clock checks come first).
    max_memory_bytes: int = 512_000_000
    grace_seconds: float = READ_GRACE_SECONDS


def document_format(key: str, allowed: tuple[str, ...]) -> str:
    """The document's format from its key's extension. The extension is the uploader's text: the
    reason names the allowed formats, never what was sent."""
    suffix = PurePosixPath(key).suffix.lower().lstrip(".")
    fmt = "html" if suffix == "htm" else suffix
    if fmt not in allowed:
        what = "has no extension" if not suffix else "has an extension that is not an allowed format"
        raise RejectedError("unsupported_format", f"the file name {what} (allowed: {', '.join(allowed)})")
    return fmt


def text_of(
    data: bytes, fmt: str, limits: ReadLimits = ReadLimits(), clock: Callable[[], float] = time.monotonic
) -> str:
    """The document's text: UTF-8 only; JSON must parse; HTML loses its markup, scripts and
    styles; PDF and Office files within ``limits``. Raises RejectedError and nothing else."""
    if fmt in VERBATIM_FORMATS:
        # Its text is these bytes: past max_chars of them it is past the personal-data scan's limit
        # on the text's UTF-8 (Pipeline._scan), whatever they hold, and nothing need decode them.
        size = len(data) - (len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0)
        if size > limits.max_chars:
            raise too_much_text(size, limits.max_chars)
    text = _isolated(data, fmt, limits, clock) if fmt in READERS else _read(data, fmt, limits, clock)
    if not text.strip():
        raise RejectedError("empty", "the document has no text")
    return text


def too_much_text(size: int, limit: int) -> RejectedError:
    """The refusal of a text of ``size`` bytes of UTF-8 over ``limit`` (max_extracted_chars)."""
    return RejectedError(
        "too_much_text",
        f"the text is {size} bytes of UTF-8, over the {limit} byte limit "
        f"(one personal-data scan per {MAX_CALL_BYTES // 1000} KB)",
    )


def _read(data: bytes, fmt: str, limits: ReadLimits, clock: Callable[[], float]) -> str:
    """The document's text, or RejectedError and nothing else. Text that is not Unicode (a lone
    surrogate a PDF's character map can name) becomes U+FFFD: everything after encodes it as UTF-8."""
    try:
        if fmt == "pdf":
            text = _pdf_text(data, limits, ReadBudget(limits, clock))
        elif fmt in OFFICE_FORMATS:
            from ingestion.office import office_text  # only when an Office file arrives

            text = office_text(data, fmt, limits, ReadBudget(limits, clock))
        else:
            text = _plain_text(data, fmt)
    except RejectedError:
        raise
    except MemoryError:
        raise RejectedError(
            "too_much_memory", f"reading the {fmt} document needed over {limits.max_memory_bytes} bytes of memory"
        ) from None
    except RecursionError:
        raise RejectedError("unreadable", f"the {fmt} document is nested too deeply to read") from None
    except Exception as error:  # a parser's failure on hostile input: the type only, never its message
        raise RejectedError("unreadable", f"the {fmt} document could not be read ({type(error).__name__})") from None
    if fmt in BINARY_FORMATS:  # pairs of surrogates joined, a lone one replaced
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _isolated(data: bytes, fmt: str, limits: ReadLimits, clock: Callable[[], float]) -> str:
    """_read in a child process (forked: it has the document, the limits and the clock already)
    whose address space may grow by max_memory_bytes at most, stopped when it has not answered
    within seconds + grace_seconds. Its answer is the text or a refusal; a child that dies
    without one (killed by the kernel, a parser's crash) is a refusal too."""
    import multiprocessing  # Process and Pipe only: Lambda has no /dev/shm for queues or pools

    # The reader's package is imported here, once, so that no child imports it again.
    __import__(READERS[fmt])
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(sender, data, fmt, limits, clock), daemon=True)
    with warnings.catch_warnings():  # forking a process with threads: the child runs no other thread's code
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    sender.close()
    try:
        if not receiver.poll(limits.seconds + limits.grace_seconds):
            raise RejectedError("too_slow", f"reading the text took longer than {limits.seconds:g} seconds")
        answer = receiver.recv()
    except EOFError:  # the child ended without an answer
        child.join(limits.grace_seconds)
        raise RejectedError(
            "unreadable", f"the {fmt} document's reader stopped without an answer (exit code {child.exitcode})"
        ) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if isinstance(answer, str):
        return answer
    code, reason = answer
    raise RejectedError(code, reason)


def _read_in_child(sender: Any, data: bytes, fmt: str, limits: ReadLimits, clock: Callable[[], float]) -> None:
    # What the parent left for its collector is the parent's: never finalized here, where a
    # finalizer (a leftover coroutine's warning, an earlier invocation's objects) would run under
    # the memory limit, in the middle of a parse. And an error nothing can raise (libxml2's error
    # callback failing to allocate) is not reported here: the parse fails with its own error, and
    # a reporting hook (the parent's, pytest's in the suite) allocating under the limit crashed
    # the reader (SIGSEGV).
    gc.freeze()
    sys.unraisablehook = _unreported
    answer: str | tuple[str, str]
    try:
        _limit_memory(limits.max_memory_bytes)
        answer = _read(data, fmt, limits, clock)
    except RejectedError as rejected:
        answer = (rejected.code, rejected.reason)
    del data
    sender.send(answer)
    sender.close()


def _unreported(unraisable: Any) -> None:
    """The reading child's sys.unraisablehook: nothing (see _read_in_child)."""


def _limit_memory(extra: int) -> None:
    """Let this process's address space grow by ``extra`` bytes from its size now (Linux)."""
    import resource

    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # no /proc: not Linux, nothing to size the limit from
        return
    size = pages * resource.getpagesize() + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size if hard == resource.RLIM_INFINITY else min(size, hard), hard))


def _plain_text(data: bytes, fmt: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RejectedError("not_text", "the document is not UTF-8 text") from None
    if "\x00" in text:
        raise RejectedError("not_text", "the document contains NUL bytes (a binary file?)")
    if fmt == "json":
        try:
            # Checked, not used: an integer is left as its digits (int() refuses past 4,300 of
            # them, though JSON sets no limit).
            json.loads(text, parse_int=str)
        except ValueError:
            raise RejectedError("invalid_json", "the document is not valid JSON") from None
    if fmt == "html":
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = parser.text()
    return text


class ReadBudget:
    """Characters and seconds left while a reader walks a document."""

    def __init__(self, limits: ReadLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._deadline = clock() + limits.seconds
        self._parts: list[str] = []
        self._chars = 0

    def check_time(self) -> None:
        if self._clock() > self._deadline:
            raise RejectedError("too_slow", f"reading the text took longer than {self._limits.seconds:g} seconds")

    def add(self, text: str) -> None:
        self.check_time()
        self._chars += len(text)
        if self._chars > self._limits.max_chars:
            raise RejectedError("too_much_text", f"the text is over the {self._limits.max_chars} character limit")
        self._parts.append(text)

    def text(self, separator: str = "\n") -> str:
        return separator.join(self._parts)


def _pdf_text(data: bytes, limits: ReadLimits, budget: ReadBudget) -> str:
    from pypdf import PdfReader, apply_configuration  # only when a PDF arrives
    from pypdf.errors import LimitReachedError

    cap = limits.max_expanded_bytes
    bounded = {
        "maximum_declared_stream_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "zlib_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "flate_maximum_buffer_size": cap,
        "image_maximum_buffer_size": cap,
        "stream_decoding_work_maximum_length": cap,
        "jbig2dec_binary": None,  # never start a process for a document
        "disable_legacy_handling": True,
    }
    try:
        with apply_configuration(**_known_settings(bounded)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not _opens_without_a_password(reader):
                raise RejectedError("encrypted", "the PDF is encrypted")
            pages = len(reader.pages)
            if pages > limits.max_pages:
                raise RejectedError("too_many_pages", f"{pages} pages is over the {limits.max_pages} page limit")
            for number, page in enumerate(reader.pages, start=1):
                budget.add(_page_text(page, number, limits))
    except LimitReachedError as error:
        raise _over_limit(error, cap) from None
    text = budget.text()
    if pages and not text.strip():
        raise RejectedError("needs_ocr", "the PDF has no text layer (scanned pages need OCR)")
    return text


def _bomb(cap: int) -> RejectedError:
    return RejectedError("decompression_bomb", f"the PDF's streams expand past {cap} bytes")


def _over_limit(error: BaseException, cap: int) -> RejectedError:
    """pypdf's LimitReachedError, named by where it was raised: its stream decoders (a bomb), or
    its parser (an array, a map, a page tree or a chain of references past its limits)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = traceback.tb_frame.f_globals.get("__name__", "") if traceback is not None else ""
    if module == "pypdf.filters":
        return _bomb(cap)
    return RejectedError(
        "too_complex", "the PDF's structure is past a reader limit (an array, map, page tree or reference chain)"
    )


def _page_text(page: PageObject, number: int, limits: ReadLimits) -> str:
    """One page's text, refused before its content is parsed when it is over max_page_bytes. A page
    that can draw forms is read with _DrawnForms watching, which charges each form before pypdf
    reads it (with a visitor, pypdf also parses streams it would skip for holding no text
    operator: within the same bytes); a page without XObjects draws no form."""
    used = _content_bytes(page, limits.max_page_bytes)
    if used > limits.max_page_bytes:
        raise RejectedError("page_too_large", f"page {number}'s content is over the {limits.max_page_bytes} byte limit")
    resources = _resources(page)
    if not _xobjects(resources):
        return page.extract_text()
    drawn = _DrawnForms(resources, used, number, limits)
    text = page.extract_text(visitor_operand_before=drawn.before, visitor_operand_after=drawn.after)
    drawn.check()
    return text


def _content_bytes(page: PageObject, cap: int) -> int:
    """The decoded size of the page's content streams (pypdf decodes them once and keeps them for
    the text), counted until past ``cap``."""
    from pypdf.generic import StreamObject

    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    total = 0
    for stream in contents if isinstance(contents, list) else [contents]:
        stream = stream.get_object() if stream is not None else None
        if isinstance(stream, StreamObject):
            total += len(stream.get_data())
            if total > cap:
                break
    return total


def _resources(owner: DictionaryObject) -> DictionaryObject:
    """A page's or a form's resource dictionary as pypdf's text extraction finds it (inherited from
    the page tree), or an empty one."""
    from pypdf.generic import DictionaryObject

    try:
        resources = owner.get_inherited("/Resources", None)
        resources = resources.get_object() if resources is not None else None
    except Exception:  # a malformed dictionary: pypdf reads no resources from it either
        return DictionaryObject()
    return resources if isinstance(resources, DictionaryObject) else DictionaryObject()


def _xobjects(resources: DictionaryObject) -> DictionaryObject | None:
    from pypdf.generic import DictionaryObject

    try:
        xobjects = resources["/XObject"]
    except Exception:
        return None
    return xobjects if isinstance(xobjects, DictionaryObject) and len(xobjects) else None


class _DrawnForms:
    """pypdf's operator visitors, watching one page's text extraction. At each ``Do`` the form it
    names (in the resources of the page or form being drawn, as pypdf resolves it) is charged its
    decoded size before pypdf reads it, and refused past max_page_bytes or max_form_depth; images
    cost nothing here, nor does a form already being drawn (pypdf skips it). pypdf swallows what
    reading a form raises, so a refusal is kept, raised again at every following operator (which
    ends each enclosing form and then the page), and by check() if the page has none left."""

    def __init__(self, resources: DictionaryObject, used: int, number: int, limits: ReadLimits) -> None:
        # What is being drawn, the page first: (the form, or None for the page or what pypdf does
        # not read, and the resources its names resolve in).
        self._stack: list[tuple[StreamObject | None, DictionaryObject | None]] = [(None, resources)]
        self._used = used
        self._number = number
        self._limits = limits
        self._refusal: RejectedError | None = None

    def before(self, operator: bytes, operands: list[Any], *_matrices: Any) -> None:
        if self._refusal is None and operator == b"Do" and operands:
            self._refusal = self._draw(operands[0])
        if self._refusal is not None:
            raise self._refusal

    def after(self, operator: bytes, operands: list[Any], *_matrices: Any) -> None:
        if operator == b"Do" and operands and len(self._stack) > 1:
            self._stack.pop()

    def check(self) -> None:
        if self._refusal is not None:
            raise self._refusal

    def _draw(self, name: Any) -> RejectedError | None:
        """Charge the form ``name`` and enter it, or the refusal; pushes only when pypdf will call after()."""
        from pypdf.errors import LimitReachedError
        from pypdf.generic import StreamObject

        limits = self._limits
        resources = self._stack[-1][1]
        xobjects = _xobjects(resources) if resources is not None else None
        try:
            form = xobjects[name] if xobjects is not None else None  # what pypdf draws (it skips what fails here)
        except Exception:
            form = None
        drawing = any(form is entered for entered, _ in self._stack)
        if not isinstance(form, StreamObject) or form.get("/Subtype") == "/Image" or drawing:
            self._stack.append((None, None))  # pypdf reads no content from it
            return None
        if len(self._stack) > limits.max_form_depth:
            return RejectedError(
                "too_deeply_nested", f"page {self._number} draws forms nested more than {limits.max_form_depth} deep"
            )
        try:
            self._used += len(form.get_data())
        except LimitReachedError:
            return _bomb(limits.max_expanded_bytes)
        except Exception:  # a form pypdf cannot decode: it skips the form
            self._stack.append((None, None))
            return None
        if self._used > limits.max_page_bytes:
            return RejectedError(
                "page_too_large",
                f"page {self._number}'s content, with its forms counted each time they are drawn, is over the "
                f"{limits.max_page_bytes} byte limit",
            )
        self._stack.append((form, _resources(form)))
        return None


def _opens_without_a_password(reader: Any) -> bool:
    """Whether an encrypted PDF opens with the empty user password, as any viewer opens one that
    has only an owner password (restrictions on printing or copying, not on reading)."""
    from pypdf import PasswordType

    try:
        opened: PasswordType = reader.decrypt("")
    except Exception:  # an algorithm pypdf cannot run here, or a broken encryption dictionary
        return False
    return opened != PasswordType.NOT_DECRYPTED


def _known_settings(settings: dict[str, Any]) -> dict[str, Any]:
    from pypdf import Configuration

    return {name: value for name, value in settings.items() if name in Configuration.__dataclass_fields__}


class _Text(HTMLParser):
    SKIPPED = frozenset({"script", "style", "template", "noscript"})
    # Elements whose content a browser shows apart from what surrounds it (a table's cells too).
    BLOCKS = frozenset(
        {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    )
    RAW_TEXT = frozenset({"script", "style"})  # their content is never markup

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self._parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A browser ignores the slash of "<script/>" (not a void element): it opens the element, and
        # what follows until "</script>" is its source, not text. html.parser closes it at once.
        if tag in self.SKIPPED:
            self.handle_starttag(tag, attrs)
            if tag in self.RAW_TEXT:
                self.set_cdata_mode(tag)
            return
        super().handle_startendtag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).splitlines())
        return "\n".join(line for line in lines if line)

"""Exceptions a user sees. Every message names the file, line or field at fault."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of the errors the workbench raises on purpose (the CLI prints them without a traceback)."""


class InputFormatError(WorkbenchError, ValueError):
    """A data file is malformed: the message names the file, the line (1-based) and the field."""

    def __init__(self, path: object, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ModelNotFoundError(WorkbenchError, LookupError):
    """A model name is not in the registry and is not a local folder, or its files are missing."""


class ParameterError(WorkbenchError, ValueError):
    """A run parameter is unknown or has the wrong type."""


def reject_unknown_fields(cls: type, data: object, what: str) -> None:
    """Raise ParameterError naming the keys of ``data`` that are not fields of dataclass ``cls``."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)  # type: ignore[arg-type]
    if unknown:
        raise ParameterError(f"{what}: unknown field(s) {unknown}; known: {sorted(known)}")


class LLMError(WorkbenchError):
    """An LLM server is unreachable, refuses a request or answers something that is not a chat completion."""

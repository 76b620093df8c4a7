"""The one error the contract raises, and how values are named in its messages."""

from __future__ import annotations

__all__ = ["ContractError", "describe", "show"]


class ContractError(ValueError):
    """An input that breaks the event contract.

    It is a ``ValueError`` so that generic "bad value" handlers catch it, and it carries the
    offending ``field`` (a dotted path such as ``features.age``, or ``<message>`` when the
    bytes are not a JSON object at all) and the ``problem`` separately, so that a dead-letter
    record or a replay report can count errors per field without parsing the text.

    Parameters
    ----------
    field : str
        Dotted path of the field at fault, ``<message>`` for the message as a whole.
    problem : str
        What is wrong, written for a person: ``expected a string, got number``.
    """

    __slots__ = ("field", "problem")

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self):
        # Keep the exception copyable (multiprocessing, copy.copy) despite the two-argument
        # constructor; this is not unpickling anything from outside.
        return (type(self), (self.field, self.problem))


# JSON names for the Python types that orjson produces, so that messages speak the
# producer's language ("got object", not "got dict"). Other Python types (only possible
# through parse_event) are named by their Python type name.
_JSON_NAMES = {
    dict: "object",
    list: "list",  # the contract's own wording ("got list"); JSON calls it an array
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def describe(value: object) -> str:
    """Name the JSON type of ``value`` for an error message.

    Non-finite floats are named ``NaN``, ``Infinity`` or ``-Infinity`` because "got number"
    would be a confusing reply to a value that was rejected for not being a (finite) number.
    """
    kind = type(value)
    if kind is float and value - value != 0.0:  # type: ignore[operator]
        if value != value:
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"  # type: ignore[operator]
    name = _JSON_NAMES.get(kind)
    return name if name is not None else kind.__name__


def show(value: object) -> str:
    """Render a rejected value briefly: scalars as themselves (shortened), others by type.

    Echoing a short scalar helps the producer find the bug (``got 'abc'``, ``got -3``);
    containers are only named, and long texts are cut, so a 1 MB value cannot flood a log.
    """
    kind = type(value)
    if kind is str:
        if not value:
            return "an empty string"
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if kind is float or kind is int:
        if value - value != 0:  # type: ignore[operator]
            return describe(value)
        text = repr(value)
        return text if len(text) <= 40 else f"a number with {len(text)} digits"
    return describe(value)

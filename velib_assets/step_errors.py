"""A failed step's error as a person reads it: the step's own exception, without Python's class path."""

from typing import Any


def user_message(error: Any) -> str:
    """The first line of a step failure's error (Dagster's `SerializableErrorInfo`).

    Dagster's "Error occurred while executing op" wrapper gives way to the step's own exception, and
    the class path before the message goes: all of it for a `dagster.Failure`, whose message is
    written for users; `ValueError: ...` keeps its name."""
    while error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause
    message = (error.message.strip().splitlines() or [""])[0]
    path, sep, text = message.partition(": ")
    if path.rsplit(".", 1)[-1] == error.cls_name:
        return text if error.cls_name == "Failure" and text else error.cls_name + sep + text
    return message

"""The GitHub Actions runner contract: workflow commands, file commands,
inputs, annotations and the job summary (stdlib only), and the pull-request
comment (PyGithub, imported only when a comment is posted).

The protocol alone, unchanged by what is reported: may import ``runner.engine`` (signals) and the
standard library; never ``runner.run``, ``runner.openhands`` or a face."""

from __future__ import annotations

from runner.github.annotations import (
    MAX_ANNOTATIONS_PER_LEVEL,
    Annotation,
    AnnotationBudget,
    Level,
    relative_path,
)
from runner.github.commands import (
    MAX_MESSAGE_CHARS,
    ActionsLog,
    escape_data,
    escape_property,
    format_command,
    new_stop_token,
    truncate_message,
)
from runner.github.file_commands import (
    MAX_OUTPUT_BYTES,
    FileCommandError,
    FileCommandWriter,
    export_variable,
    format_file_command,
    save_state,
    set_output,
)
from runner.github.inputs import (
    InputError,
    get_bool_input,
    get_float_input,
    get_input,
    get_int_input,
    get_multiline_input,
    input_env_name,
)
from runner.github.pr_comment import COMMENT_MAX_CHARS, post_summary_comment
from runner.github.summary import (
    MAX_SUMMARY_BYTES,
    SUMMARY_TARGET_BYTES,
    render_summary,
    write_summary,
)

__all__ = [
    "COMMENT_MAX_CHARS",
    "MAX_ANNOTATIONS_PER_LEVEL",
    "MAX_MESSAGE_CHARS",
    "MAX_OUTPUT_BYTES",
    "MAX_SUMMARY_BYTES",
    "SUMMARY_TARGET_BYTES",
    "ActionsLog",
    "Annotation",
    "AnnotationBudget",
    "FileCommandError",
    "FileCommandWriter",
    "InputError",
    "Level",
    "escape_data",
    "escape_property",
    "export_variable",
    "format_command",
    "format_file_command",
    "get_bool_input",
    "get_float_input",
    "get_input",
    "get_int_input",
    "get_multiline_input",
    "input_env_name",
    "new_stop_token",
    "post_summary_comment",
    "relative_path",
    "render_summary",
    "save_state",
    "set_output",
    "truncate_message",
    "write_summary",
]

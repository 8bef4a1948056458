"""Load and validate a training config (torch-free).

Every problem is collected and reported together, each with the option it concerns, the
line of the YAML file when known, and what to do. `python -m trainer validate` and the
app's form both call `load_config` / `validate_mapping`, so they can never disagree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from trainer.config.cross_checks import adapt_bucket_range, cross_checks
from trainer.config.migrate import migrate
from trainer.config.family_checks import configured_model, family_checks, family_defaults
from trainer.config.schema import OPTIONS, OPTIONS_BY_NAME, SCHEMA_VERSION, defaults
from trainer.config.value_checks import (DATASTORE_PATH_HINT, check_bounds, check_path, coerce, datastore_path_problem,
                                         hint_for, resolve_path)
from trainer.problems import Problem

# Keys that are not options but may appear at the top of a config file.
_META_KEYS = ("schema_version",)


@dataclass(frozen=True, kw_only=True)
class ConfigProblem(Problem):
    """One thing wrong with a config: where, what, and what to do about it.

    Built as ``ConfigProblem(message, hint, severity, option=..., line=..., path=...)``:
    ``path`` (the config file) and ``line`` are redeclared as keywords with defaults,
    because a problem of the form or of a mapping has neither; ``severity`` may also be
    "info".
    """

    path: str | None = None
    line: int | None = None
    option: str = ""  # the option concerned, or "" for the file as a whole

    def __str__(self) -> str:
        where = self.path or "config"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.option + ': ' if self.option else ''}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(Exception):
    """Raised when a config has errors; carries all of them."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class TrainConfig(Mapping[str, Any]):
    """A validated config: every option present, paths absolute, values of the right type.

    Options read as attributes (`config.learning_rate`) or as mapping items.
    """

    def __init__(self, values: dict[str, Any], source: Path | None = None, notes: list[str] | None = None) -> None:
        self._values = values
        self.source = source
        self.migration_notes = notes or []

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some values changed (not re-validated; for tests and launchers)."""
        return TrainConfig({**self._values, **changes}, self.source, self.migration_notes)

    @property
    def lora_scale_alpha(self) -> float:
        """LoRA alpha with the default applied (equal to the rank)."""
        return float(self.lora_alpha if self.lora_alpha is not None else self.lora_rank)

    @property
    def resolved_output_name(self) -> str:
        """The final LoRA's file name stem: `output_name`, else the output folder's name."""
        return self.output_name or Path(self.output_dir).name or "lora"


# ---------------------------------------------------------------------------------------
# YAML parsing with line numbers


def _key_lines(text: str) -> dict[str, int]:
    """Map each top-level key to its 1-based line (for messages); {} when unparsable."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def parse_yaml(text: str, file: str) -> tuple[Any, list[ConfigProblem]]:
    """The mapping (or whatever) a config's text holds, or None and the problem that says where it breaks."""
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [ConfigProblem(f"is not valid YAML: {reason}", "fix the syntax at that line "
                                    "(indentation, a missing colon or an unclosed quote)", line=line, path=file)]


# ---------------------------------------------------------------------------------------
# Unknown keys


def _did_you_mean(key: str) -> str:
    candidates = list(OPTIONS_BY_NAME) + list(_META_KEYS)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return "remove it, or see `python -m trainer schema` for the options"


# ---------------------------------------------------------------------------------------
# Public API


def validate_mapping(raw: Any, base_dir: Path | None = None, *, file: str | None = None,
                     key_lines: dict[str, int] | None = None,
                     check_paths: bool = True) -> tuple[TrainConfig | None, list[ConfigProblem]]:
    """Validate a parsed config mapping; returns the config (None on errors) and every problem.

    Relative paths resolve against ``base_dir`` (the config file's folder). With
    ``check_paths`` the paths that must exist are checked too.
    """
    lines = key_lines or {}
    problems: list[ConfigProblem] = []

    def problem(option: str, message: str, hint: str = "", severity: str = "error") -> None:
        problems.append(ConfigProblem(message, hint, severity, option=option, line=lines.get(option), path=file))

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problem("", "must be a mapping of option: value lines", "see `python -m trainer schema` for the options")
        return None, problems

    raw = dict(raw)
    version = raw.pop("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        problem("schema_version", f"{version!r} is not a schema version this trainer knows (1 to {SCHEMA_VERSION})",
                "update the trainer, or remove schema_version to use the current one")
        version = SCHEMA_VERSION
    notes = migrate(raw, version)

    values = defaults()
    for key, value in raw.items():
        option = OPTIONS_BY_NAME.get(str(key))
        if option is None:
            problem(str(key), "is not a known option", _did_you_mean(str(key)))
            continue
        if value is None:
            if option.nullable or not option.required and option.default is None:
                values[option.name] = None
            else:
                problem(option.name, "is empty", hint_for(option))
            continue
        coerced, error = coerce(option, value)
        if error is None:
            error = check_bounds(option, coerced)
        if error is not None:
            problem(option.name, error, hint_for(option))
            continue
        if option.type == "path":
            resolved = resolve_path(coerced, base_dir)
            error = datastore_path_problem(coerced)
            if error is not None and not resolved.exists():  # a folder named "[v2] models" is still a path
                problem(option.name, error, DATASTORE_PATH_HINT)
                continue
            coerced = str(resolved)
        values[option.name] = coerced

    for option in OPTIONS:
        if option.required and values[option.name] is None:
            if option.name not in raw:
                problem(option.name, "is missing", f"add `{option.name}:` — {option.help}")
        elif check_paths and option.type == "path" and values[option.name] is not None and option.name in raw:
            error = check_path(option, Path(values[option.name]))
            if error:
                problem(option.name, error, f"check the path; relative paths start at the config file's folder ({base_dir})"
                        if base_dir else "check the path")

    if values["train_data_dir"] is None and values["dataset_path"] is None:
        problem("train_data_dir", "is missing", "add `train_data_dir:`, the folder with the training images (a language "
                "model trains on `dataset_path:` instead)")

    resume = values["resume"]
    if resume not in ("auto", "never"):
        path = resolve_path(resume, base_dir)
        values["resume"] = str(path)
        if check_paths and not path.is_dir():
            problem("resume", f"{path} is not a checkpoint folder",
                    "use auto, never, or the path of a folder such as output_dir/checkpoints/step-00000100")

    if not any(p.severity == "error" for p in problems):
        detection = configured_model(values)
        for option, message in family_defaults(values, raw, detection):
            problem(option, message, "set resolution (and the bucket range) to choose the sizes yourself", "info")
        for option, message in adapt_bucket_range(values, raw):
            problem(option, message, "set min_bucket_reso / max_bucket_reso to choose the range yourself", "info")
        for option, message, hint, severity in (*cross_checks(values), *family_checks(values, detection)):
            problem(option, message, hint, severity)

    if any(p.severity == "error" for p in problems):
        return None, problems
    return TrainConfig(values, None, notes), problems


def load_config(path: str | Path, *, check_paths: bool = True) -> tuple[TrainConfig | None, list[ConfigProblem]]:
    """Read and validate the YAML config at ``path``; returns (config or None, all problems)."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None, [ConfigProblem("does not exist", "check the path given to --config", path=file)]
    except UnicodeDecodeError:
        return None, [ConfigProblem("is not UTF-8 text", "save the file as UTF-8", path=file)]
    except OSError as exc:
        return None, [ConfigProblem(f"cannot be read: {exc.strerror}", "check the file's permissions", path=file)]
    raw, problems = parse_yaml(text, file)
    if problems:
        return None, problems
    lines = _key_lines(text)
    config_dir = path.resolve().parent
    config, problems = validate_mapping(raw, config_dir, file=file, key_lines=lines, check_paths=check_paths)
    if check_paths and _only_missing_paths(problems) and Path.cwd() != config_dir:
        # The seed's layout keeps configs in configs/ with paths relative to the project
        # folder it is run from. Accept that when every path exists from there, and say so.
        retry, retry_problems = validate_mapping(raw, Path.cwd(), file=file, key_lines=lines, check_paths=True)
        if retry is not None:
            config, problems = retry, retry_problems + [ConfigProblem(
                f"relative paths were found from the current folder ({Path.cwd()}), not from the config's folder",
                "write paths relative to the config file's folder (or absolute) so the config works from anywhere",
                "warning", path=file)]
    if config is not None:
        config.source = path.resolve()
    return config, problems


def _only_missing_paths(problems: list[ConfigProblem]) -> bool:
    errors = [p for p in problems if p.severity == "error"]
    return bool(errors) and all(p.message.endswith("does not exist") for p in errors)


def config_to_yaml(config: Mapping[str, Any], header: str = "") -> str:
    """Every option written explicitly, grouped, each with its help as a comment."""
    out = [f"# {line}" for line in header.splitlines()] + [f"schema_version: {SCHEMA_VERSION}"]
    group = None
    for option in OPTIONS:
        if option.group != group:
            group = option.group
            out += ["", f"# --- {group} ---"]
        out.append(f"# {option.help}")
        dumped = yaml.safe_dump({option.name: config[option.name]}, sort_keys=False, allow_unicode=True,
                                default_flow_style=False, width=10_000).rstrip("\n")
        out.append(dumped)
    return "\n".join(out) + "\n"

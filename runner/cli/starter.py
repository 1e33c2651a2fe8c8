"""A newcomer's first commands: `runner init` (a starter manifest) and
`runner completion bash|zsh|fish` (shell completion drawn from the parser itself).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from runner.errors import UsageError
from runner.schemas.pipeline import NAME_PATTERN, SCHEMA_ID

SCHEMA_FILE = "pipeline.schema.json"

STARTER = """\
# yaml-language-server: $schema={schema}
#
# A runner pipeline: every job below is one request to a provider (or a stitch
# of several). Check it, see what it would cost, then try it for free against
# the local emulator:
#
#   runner validate {manifest}
#   runner plan {manifest}
#   runner run {manifest} --sandbox        # writes {output_dir}.sandbox/, no key, no cost
#
# A live run (`runner run {manifest}`) needs KIE_API_KEY in the environment or in a
# .env file beside this manifest. The comment on the first line lets editors with
# the YAML extension complete and check every key, model inputs included.
version: 1
name: {name}
output_dir: {output_dir}          # relative to this file; a sandbox run adds .sandbox

defaults:
  # Merged under the `input` of every job of that model.
  elevenlabs/sound-effect-v2: {{output_format: mp3_44100_128, prompt_influence: 0.4}}

jobs:
  # One sound effect: its file is {output_dir}/door_creak.mp3 ({{id}}.{{ext}}).
  - id: door_creak
    model: elevenlabs/sound-effect-v2
    input:
      text: Old wooden door creaking open slowly
      duration_seconds: 2.5

  # A matrix: one job per surface, and two takes (variants) of each to choose from.
  - id: footsteps_{{surface}}
    matrix: {{surface: [gravel, wood]}}
    variants: 2
    model: elevenlabs/sound-effect-v2
    output: footsteps/{{surface}}_{{variant}}.{{ext}}
    input: {{text: "Footsteps on {{surface}}, steady walking pace", loop: true}}

  # A line of speech; `voice` is one of the model's voices (the editor lists them).
  - id: welcome_line
    model: elevenlabs/text-to-speech-turbo-2-5
    input:
      text: Welcome back, traveller. The lantern is still burning.
      voice: Brian
"""


def write_starter(manifest: Path, *, force: bool = False) -> list[Path]:
    """Write a commented starter manifest and, beside it, the editor schema its first
    line names. Returns the files written; refuses to replace a manifest."""
    from runner.schemas.build import export_pipeline_schema

    if manifest.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{manifest}: a manifest's name ends in .yaml")
    if manifest.exists() and not force:
        raise UsageError(f"{manifest} exists; choose another name, or --force to replace it")
    name = manifest.stem if _valid_name(manifest.stem) else "pipeline"
    folder = manifest.parent
    schema = folder / SCHEMA_FILE
    if schema.exists() and not _ours(schema):
        raise UsageError(f"{schema} exists and is not runner's schema; init would replace it")
    folder.mkdir(parents=True, exist_ok=True)
    written = [export_pipeline_schema(folder)]
    manifest.write_text(STARTER.format(schema=SCHEMA_FILE, manifest=shlex.quote(manifest.name),
                                       name=name, output_dir=f"build/{name}"), encoding="utf-8")
    return [manifest, *written]


def _valid_name(stem: str) -> bool:
    import re

    return re.fullmatch(NAME_PATTERN.strip("^$"), stem) is not None


def _ours(schema: Path) -> bool:
    try:
        return bool(json.loads(schema.read_text(encoding="utf-8")).get("$id") == SCHEMA_ID)
    except (OSError, ValueError, AttributeError):
        return False


# --- shell completion ----------------------------------------------------------------

Commands = dict[str, tuple[list[str], dict[str, list[str]], str]]


def commands_of(parser: argparse.ArgumentParser) -> Commands:
    """Each command path (`run`, `schemas build`) -> (its options, the choices of the
    options that take a fixed set of values, its help).

    argparse keeps a parser's arguments in `_actions` and names no public way to list
    them; the completion test runs against the installed Python's argparse."""
    found: Commands = {}

    def walk(node: argparse.ArgumentParser, prefix: str, help_text: str) -> None:
        options: list[str] = []
        choices: dict[str, list[str]] = {}
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip(), helps.get(name, ""))
                continue
            if not action.option_strings and action.choices:  # `completion bash|zsh|fish`
                options += [str(c) for c in action.choices]
            elif action.option_strings and action.help != argparse.SUPPRESS:
                options += action.option_strings
                if action.choices:
                    for option in action.option_strings:
                        choices[option] = [str(c) for c in action.choices]
        found[prefix] = (options, choices, help_text)

    walk(parser, "", "")
    return found


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    commands = commands_of(parser)
    if shell == "bash":
        return _bash(commands)
    if shell == "zsh":
        # zsh runs bash completion functions through bashcompinit.
        return ("#compdef runner\nautoload -U +X bashcompinit && bashcompinit\n"
                + _bash(commands))
    if shell == "fish":
        return _fish(commands)
    raise UsageError(f"no completion for {shell!r}: bash, zsh or fish")


def _bash(commands: Commands) -> str:
    top = [c for c in commands if c and " " not in c]

    def subs(path: str) -> list[str]:
        return [c.split(" ")[-1] for c in commands
                if c.startswith(path + " ") and c.count(" ") == path.count(" ") + 1]

    words = [f'        "{path}") words="{" ".join([*subs(path), *options])}" ;;'
             for path, (options, _, _) in sorted(commands.items()) if path]
    values = sorted({f'        {option}) COMPREPLY=($(compgen -W "{" ".join(choices)}" '
                     '-- "$cur")); return ;;'
                     for _, (_, given, _) in commands.items() for option, choices in given.items()
                     if option.startswith("-")})
    nested = [f'        "{path}") echo "{" ".join(subs(path))}" ;;' for path in top if subs(path)]
    nl = "\n"
    return f"""# bash completion for runner: eval "$(runner completion bash)"
_runner_complete() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local path="" word words i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        if [[ -z "$path" ]]; then
            [[ " {" ".join(top)} " == *" $word "* ]] && path="$word"
        elif [[ "$path" != *" "* && " $(_runner_subcommands "$path") " == *" $word "* ]]; then
            path="$path $word"
        fi
    done
    case "$prev" in
{nl.join(values)}
    esac
    case "$path" in
        "") words="{" ".join([*top, *commands[""][0]])}" ;;
{nl.join(words)}
    esac
    if [[ "$cur" == -* || -z "$path" ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        local fixed
        fixed="$(_runner_words "$words")"
        if [[ -n "${{fixed// }}" ]]; then  # subcommands or choices, else a file
            COMPREPLY=($(compgen -W "$fixed" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
    fi
}}
_runner_subcommands() {{
    case "$1" in
{nl.join(nested)}
    esac
}}
_runner_words() {{  # the words of a command that are not options: subcommands, choices
    local w out=""
    for w in $1; do [[ "$w" != -* ]] && out="$out $w"; done
    echo "$out"
}}
complete -o filenames -o bashdefault -F _runner_complete runner
"""


def _fish(commands: Commands) -> str:
    lines = ["# fish completion for runner: runner completion fish | source",
             "complete -c runner -f"]
    top = [c for c in commands if c and " " not in c]
    for name in top:
        help_text = commands[name][2].replace("'", "\\'")
        lines.append(f"complete -c runner -n __fish_use_subcommand -a {name} -d '{help_text}'")
    for option in commands[""][0]:
        if option.startswith("--"):
            lines.append(f"complete -c runner -n __fish_use_subcommand -l {option[2:]}")
    for path, (options, choices, help_text) in sorted(commands.items()):
        if not path:
            continue
        parts = path.split(" ")
        if len(parts) == 2:
            lines.append(f"complete -c runner -n '__fish_seen_subcommand_from {parts[0]}' "
                         f"-a {parts[1]} -d '{help_text.replace(chr(39), chr(92) + chr(39))}'")
        condition = f"__fish_seen_subcommand_from {parts[-1]}"
        for option in options:
            values = choices.get(option)
            extra = f" -x -a '{' '.join(values)}'" if values else ""
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            lines.append(f"complete -c runner -n '{condition}' {flag}{extra}")
        if parts[0] in ("validate", "plan", "run", "status", "clean", "report", "init"):
            lines.append(f"complete -c runner -n '{condition}' -F")
    return "\n".join(lines) + "\n"

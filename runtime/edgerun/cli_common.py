"""The front door both command lines (edgerun, edgeconv) share: argument types that check ranges, the
help formatter that shows every default, --version, and the one place an exception becomes one line
on stderr and an exit code. Neither CLI prints a traceback (EDGE_TRACEBACK=1 re-raises, for bug reports).

Exit codes of edgerun and edgeconv (EXIT_CODES is the text both --help epilogs show; edgert, without Python,
has 0 ok, 1 the command failed (any Status error, a bad file included), 2 bad usage):
  0    success
  1    the command ran and found a failure: verify found a checksum mismatch, or an internal error (a bug)
  2    bad input: a usage error, a missing / unreadable / corrupt / unsupported file, a model that does not
       fit the memory budget or the context
  130  interrupted (Ctrl-C); files being written are removed, nothing half-written is left
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn

from .sizes import parse_size

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_THREADS_PER_CPU = 4  # --threads above 4 × the CPUs is refused: more only adds contention

EXIT_CODES = """exit codes: 0 ok; 1 a check failed (verify: a checksum mismatch) or an internal error;
2 bad input (usage, a missing, corrupt or unsupported file, a model that does not fit); 130 interrupted
(Ctrl-C). Errors are one line on stderr, never a traceback (EDGE_TRACEBACK=1 shows one, for bug reports)."""


# ---- argument types: each returns the value or raises ArgumentTypeError (argparse: one line, rc 2) ------

def _number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")


def int_range(lo: int | None = None, hi: int | None = None, what: str = "") -> Callable[[str], int]:
    """An int in [lo, hi] (either end open when None)."""
    def parse(text: str) -> int:
        v = _number(text, int)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(what or _range_text(lo, hi, v))
        return v
    return parse


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in [lo, hi] ((lo, hi] with lo_open)."""
    def parse(text: str) -> float:
        v = _number(text, float)
        if v != v or v in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(f"must be in {left}{lo}, {'∞' if hi is None else hi}], got {text}")
        return v
    return parse


def _range_text(lo, hi, v) -> str:
    if hi is None:
        return f"must be ≥ {lo}, got {v}"
    if lo is None:
        return f"must be ≤ {hi}, got {v}"
    return f"must be in [{lo}, {hi}], got {v}"


positive_int = int_range(1)
nonneg_int = int_range(0)
prob_0_1 = float_range(0.0, 1.0)
nonneg_float = float_range(0.0)
positive_float = float_range(0.0, lo_open=True)


def n_tokens(text: str) -> int:
    """A token count as llama.cpp's -n: N ≥ 1, or -1 = until the end of the text (EOS) or of the context."""
    v = _number(text, int)
    if v == 0 or v < -1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, or -1 for 'until end of text or context', got {v}")
    return v


def threads(text: str) -> int:
    """Worker threads: 1 … 4 × the CPUs of this machine (0 / negative are refused, not silently changed)."""
    v = _number(text, int)
    cpus = os.cpu_count() or 1
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1 (leave it out for all {cpus} CPUs), got {v}")
    if v > MAX_THREADS_PER_CPU * cpus:
        raise argparse.ArgumentTypeError(f"{v} is more than {MAX_THREADS_PER_CPU} × the {cpus} CPUs of this "
                                         f"machine (at most {MAX_THREADS_PER_CPU * cpus})")
    return v


def size(text: str) -> str:
    """A byte size > 0 ("1GB", "512MiB", "2000000000"); kept as text, parsed again by parse_size."""
    try:
        n = parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a size > 0, e.g. 1GB, got {text!r}")
    return text


def adapter_spec(text: str) -> tuple[str, float]:
    """--adapter A.edge[:SCALE]: an existing file and a finite scale (default 1)."""
    from .train.adapter import parse_adapter_spec

    try:
        path, scale = parse_adapter_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{path}: no such adapter file")
    return path, scale


def comma_list(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated, non-empty subset of `choices` (order kept, duplicates dropped)."""
    def parse(text: str) -> tuple[str, ...]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {','.join(choices)}, got {text!r}")
        return tuple(dict.fromkeys(items))
    return parse


# ---- help and version ---------------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line usage error: `prog: error: <what> (prog --help shows the usage)`, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} ({self.prog} --help shows the usage)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default: "(default: X)" is added unless the text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if (not action.option_strings or "default" in h.lower() or any(action.default is v for v in (None, False, argparse.SUPPRESS))
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return h
        return f"{h} (default: %(default)s)".strip()


def version_text(prog: str) -> str:
    from . import __version__

    return f"{prog} {__version__}"


def add_version(p: argparse.ArgumentParser, prog: str) -> None:
    p.add_argument("--version", action="version", version=version_text(prog), help="print the version and exit")


# ---- the one error path -------------------------------------------------------------------------------

def _interrupted(e: BaseException | None) -> bool:
    """Whether e is, or came of, a Ctrl-C. Python 3.11 wraps an exception raised in __set_name__ (a dataclass
    being built during a lazy import) in a RuntimeError, and a converter error may wrap either."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def error_line(e: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for an exception that reached a CLI's main()."""
    if _interrupted(e):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        msg, rc = f"{e.filename}: {e.strerror}", EXIT_BAD_INPUT
    elif isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        msg, rc = e.args[0], EXIT_BAD_INPUT
    elif isinstance(e, MemoryError):
        msg, rc = "out of memory" + (f": {e}" if str(e) else ""), EXIT_BAD_INPUT
    elif isinstance(e, (ValueError, OSError, RuntimeError, KeyError)):  # EdgeError is a ValueError
        msg, rc = str(e) or type(e).__name__, EXIT_BAD_INPUT
    else:
        msg, rc = f"internal error ({type(e).__name__}: {e}); please report it with EDGE_TRACEBACK=1", EXIT_FAILED
    return " ".join(msg.split()), rc


def _close_bars() -> None:
    """Closes the tqdm bars still open, so that the error line is not glued to one (a closed bar clears its
    line: leave=False, or ends it: leave=True). The code that opens a bar closes it on the way out (a with, or
    the loop over it), but a Ctrl-C can land between the bar's first drawing and that (inside tqdm())."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):  # tqdm's registry of open bars
        # tqdm() interrupted in its first drawing, before it set last_print_t: close() returns without clearing
        # such a bar (seen in CI: "big.edge: 0%|...|edgeconv: interrupted"), and its printer may not know the
        # drawn width (the interrupt lands in the write's flush), so end the bar's line instead of clearing it
        drawn_unfinished = getattr(bar, "sp", None) is not None and not hasattr(bar, "last_print_t")
        try:
            bar.close()
            if drawn_unfinished:
                bar.fp.write("\n")
        except Exception:  # a bar whose tqdm() itself was interrupted half-way
            pass


def run_main(prog: str, fn: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
             interrupted: str = "interrupted") -> int:
    """fn(args)'s exit code; any exception becomes `prog: error: <one line>` (Ctrl-C: `prog: <interrupted>`)."""
    try:
        return fn(args) or EXIT_OK
    except BrokenPipeError:  # `edgerun generate ... | head`: the reader left; say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (Exception, KeyboardInterrupt) as e:
        if os.environ.get("EDGE_TRACEBACK"):
            raise
        msg, rc = error_line(e)
        _close_bars()
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        if rc == EXIT_INTERRUPTED and sys.stderr.isatty():
            print(file=sys.stderr)  # past the terminal's "^C" (or a progress bar)
        print(f"{prog}: {interrupted}" if rc == EXIT_INTERRUPTED else f"{prog}: error: {msg}", file=sys.stderr)
        return rc


def exit_process(rc: int) -> NoReturn:
    """A CLI process's exit with main()'s code. After Ctrl-C it is os._exit(130) once stdout and stderr are flushed:
    under `python -m`, CPython 3.11 kills the process with SIGINT at exit (status -2, not 130) once a KeyboardInterrupt
    went through an exec() of a string (dataclasses and namedtuple build their methods so, in lazy imports), even one
    that main() caught. Files being written were removed on the way out (finally blocks); no worker thread is awaited."""
    if rc == EXIT_INTERRUPTED:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        os._exit(rc)
    sys.exit(rc)

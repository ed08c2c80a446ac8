"""UDFs that say which interpreter runs them (tests/subinterpreter.rs)."""

try:
    import _interpreters as _interp  # CPython 3.13
except ImportError:
    import _xxsubinterpreters as _interp  # CPython 3.12


def interpreter_id(x):
    """The id of the interpreter running this call: 0 is the main interpreter."""
    current = _interp.get_current()
    return int(current[0] if isinstance(current, tuple) else current)

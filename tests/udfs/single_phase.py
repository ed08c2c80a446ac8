"""Imports an extension module that refuses isolated subinterpreters: `_testsinglephase` is CPython's
own test module for single-phase initialization (tests/subinterpreter.rs)."""

import _testsinglephase  # noqa: F401


def plus_one(x):
    return None if x is None else x + 1

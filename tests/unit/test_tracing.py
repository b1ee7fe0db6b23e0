"""The suite's untraced library calls (tests/tracing.py): the library's own frames run without
the thread's tracer, our code called back from inside them runs with it, and the tracer is back
after the call, also when it raises."""

import sys

import pytest

from tests.tracing import traced_again, untraced


def library_call(callback):
    def library_internals():
        return callback()

    return library_internals()


def our_callback():
    return "called back"


def failing_library_call():
    raise ValueError("the library's error")


def test_library_frames_untraced_callbacks_traced_and_the_tracer_put_back():
    seen = []

    def tracer(frame, event, arg):
        seen.append(frame.f_code.co_name)
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = untraced(library_call)(traced_again(our_callback))
        after = sys.gettrace()
        with pytest.raises(ValueError, match="the library's error"):
            untraced(failing_library_call)()
        after_error = sys.gettrace()
    finally:
        sys.settrace(previous)
    assert result == "called back"
    assert "our_callback" in seen
    assert not {"library_call", "library_internals", "failing_library_call"} & set(seen)
    assert after is tracer and after_error is tracer


def second_callback():
    return "second"


def test_a_library_call_inside_a_callback_leaves_later_callbacks_traced():
    """A callback (a log handler) may itself call an untraced library; the outer call's next
    callback is still traced."""
    seen = []

    def tracer(frame, event, arg):
        seen.append(frame.f_code.co_name)
        return None

    def outer_library_call():
        first = traced_again(lambda: untraced(library_call)(traced_again(our_callback)))()
        return first, traced_again(second_callback)()

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = untraced(outer_library_call)()
    finally:
        sys.settrace(previous)
    assert result == ("called back", "second")
    assert {"our_callback", "second_callback"} <= set(seen)
    assert not {"outer_library_call", "library_call", "library_internals"} & set(seen)


def test_without_a_tracer_nothing_is_set():
    previous = sys.gettrace()
    sys.settrace(None)
    try:
        assert untraced(library_call)(traced_again(our_callback)) == "called back"
        assert sys.gettrace() is None
    finally:
        sys.settrace(previous)

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from prefect.exceptions import MissingContextError
from prefect.flows import Flow
from prefect.tasks import Task

from prefect_testkit_logging._prefect import RUN_LOGGER_SWITCHES, is_classmethod

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Prefect's `disable_run_logger()` saves and restores `Logger.disabled` per `with` block. That
# is only correct when blocks nest strictly, which stops being true as soon as call_fn hands
# out coroutines or generators whose bodies run interleaved (asyncio.gather over two call_fn
# coroutines would leave the run loggers disabled for good). A process-wide count restores
# the saved state only when the last user leaves.
_disable_lock = threading.Lock()
_disable_depth = 0
_disable_saved: dict[str, bool] = {}


@contextmanager
def _run_logger_disabled() -> Iterator[None]:
    global _disable_depth
    with _disable_lock:
        if _disable_depth == 0:
            for name in RUN_LOGGER_SWITCHES:
                logger = logging.getLogger(name)
                _disable_saved[name] = logger.disabled
                logger.disabled = True
        _disable_depth += 1
    try:
        yield
    finally:
        with _disable_lock:
            _disable_depth -= 1
            if _disable_depth == 0:
                for name in RUN_LOGGER_SWITCHES:
                    logging.getLogger(name).disabled = _disable_saved.pop(name, False)


async def _await_disabled(awaitable: Awaitable[T]) -> T:
    with _run_logger_disabled():
        return await awaitable


def _drive_disabled(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    # Disable only while the body runs, not while the caller consumes a yielded value:
    # the caller may be running real flows between steps.
    try:
        with _run_logger_disabled():
            item = next(gen)
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                with _run_logger_disabled():
                    gen.close()
                raise
            except BaseException as exc:
                with _run_logger_disabled():
                    item = gen.throw(exc)
            else:
                with _run_logger_disabled():
                    item = gen.send(sent)
    except StopIteration as stop:
        return stop.value


async def _adrive_disabled(agen: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
    try:
        with _run_logger_disabled():
            item = await agen.__anext__()
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                with _run_logger_disabled():
                    await agen.aclose()
                raise
            except BaseException as exc:
                with _run_logger_disabled():
                    item = await agen.athrow(exc)
            else:
                with _run_logger_disabled():
                    item = await agen.asend(sent)
    except StopAsyncIteration:
        return


@overload
def call_fn(obj: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


@overload
def call_fn(obj: Flow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


# Prefect types `instance.method` for a decorated method as Task[[Self, *P], R] although
# the instance is already bound; these let such calls type-check without the instance.
@overload
def call_fn(obj: Task[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


@overload
def call_fn(obj: Flow[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


def call_fn(obj: object, /, *args: Any, **kwargs: Any) -> Any:
    """Call the function behind a ``@task`` or ``@flow`` with the run logger disabled.

    No flow or task run is created: this is a plain call of ``obj.fn``, so
    ``get_run_logger()`` inside the body returns a silent logger instead of raising
    ``MissingContextError``. Returns whatever the function returns. For an ``async def``
    body it returns an awaitable, and the run logger stays disabled while that awaitable
    runs; generator bodies are wrapped the same way, step by step.

    Bound methods work: for ``obj.method`` where ``method`` is decorated, the instance
    (or the class, for a ``classmethod``) is passed as the first argument, as Prefect's
    engine does.

    Raises:
        TypeError: if ``obj`` is not a Prefect task or flow.
    """
    if not isinstance(obj, (Task, Flow)):
        raise TypeError(_not_a_task_or_flow(obj))

    fn = obj.fn
    # Prefect binds methods by setting these on the wrapped function (Task.__get__,
    # Flow.__get__) and prepends them in get_call_parameters; mirror that exactly so the
    # body sees the same arguments as under the engine.
    if is_classmethod(obj) and hasattr(fn, "__prefect_cls__"):
        args = (fn.__prefect_cls__, *args)
    elif hasattr(fn, "__prefect_self__"):
        args = (fn.__prefect_self__, *args)

    with _run_logger_disabled():
        result = fn(*args, **kwargs)

    # The body of a coroutine or generator runs after this function has returned, so the
    # `with` above no longer covers it.
    if inspect.iscoroutine(result):
        return _await_disabled(result)
    if inspect.isgenerator(result):
        return _drive_disabled(result)
    if inspect.isasyncgen(result):
        return _adrive_disabled(result)
    if inspect.isawaitable(result):
        return _await_disabled(result)
    return result


def _not_a_task_or_flow(obj: object) -> str:
    what = f"{type(obj).__module__}.{type(obj).__qualname__}"
    message = (
        f"call_fn() expects a Prefect task or flow (a function decorated with @task or "
        f"@flow, or a bound method of one), got {what}: {obj!r}."
    )
    if callable(obj):
        message += " It is a plain callable: call it directly instead of through call_fn()."
    return message


_HINT = (
    "get_run_logger() was called outside a flow or task run. If a test calls a task's or "
    "flow's body directly, use prefect_testkit_logging.call_fn(my_task, ...) (or wrap the "
    "call in `with prefect.logging.disable_run_logger():`), which silences the run logger; "
    "to see and assert on the run's logs instead, run the task inside a flow and capture "
    "them with the `prefect_logs` fixture or prefect_testkit_logging.capture_prefect_logs()."
)


def missing_context_hint(exc: BaseException) -> str | None:
    """Explain how to fix a ``MissingContextError`` raised by ``get_run_logger()``.

    Looks through ``exc`` and its ``__cause__`` / ``__context__`` chain. Returns a message
    naming ``call_fn()``, ``disable_run_logger()`` and ``prefect_logs``, or ``None`` when
    the error did not come from the run logger being used outside a run.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingContextError) and _from_run_logger(current):
            return _HINT
        current = current.__cause__ or current.__context__
    return None


def _from_run_logger(exc: MissingContextError) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "get_run_logger":
            return True
        tb = tb.tb_next
    # A re-raised copy may have lost its traceback; Prefect's wording is the fallback.
    return "no active flow or task run context" in str(exc)

"""UI strings and styling shared by every tab: the i18n table (English and Korean) and the CSS.

Strings live in assets/strings/<lang>.json. `t(key)` gives a lazy i18n key for Gradio components;
`msg(key, lang, **fmt)` gives a plain translated string for text that Python returns (errors, results).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from pathlib import Path

import gradio as gr

from modes.serving import omp

ASSETS = Path(__file__).resolve().parent.parent / "assets"
LANGS = ("en", "ko")


@functools.lru_cache(maxsize=None)
def strings(lang: str) -> dict[str, str]:
    return json.loads((ASSETS / "strings" / f"{lang}.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def I18N() -> gr.I18n:  # reads like the Gradio class it returns
    return gr.I18n(**{lang: strings(lang) for lang in LANGS})


def t(key: str):
    """An i18n key for a component label/value; Gradio translates it in the browser."""
    if key not in strings("en"):
        raise KeyError(f"missing UI string '{key}' in assets/strings/en.json")
    return I18N()(key)


def msg(key: str, lang: str = "en", **fmt) -> str:
    """A translated plain string, for errors and results that Python returns."""
    table = strings(lang if lang in LANGS else "en")
    text = table.get(key) or strings("en")[key]
    return text.format_map(_Keep(fmt)) if fmt else text


class _Keep(dict):
    """format_map helper: unknown {slots} stay as written (strings may mention {source} literally)."""

    def __missing__(self, key):
        return "{" + key + "}"


def lang_of(request: gr.Request | None) -> str:
    """The learner's language from the browser's Accept-Language header ('ko' or 'en')."""
    try:
        header = (request.headers.get("accept-language") or "") if request is not None else ""
    except Exception:  # a request without headers (tests, API) means English
        header = ""
    first = header.split(",")[0].strip().lower()
    return "ko" if first.startswith("ko") else "en"


def error(key: str, lang: str = "en", **fmt) -> gr.Error:
    """A gr.Error in the learner's language."""
    return gr.Error(msg(key, lang, **fmt))


def settings(cls, lang: str = "en", **values):
    """An endpoint's config built from what the call sent, UI or raw HTTP alike: the one validation path.
    A bad value (NaN, +-inf, out of range, wrong type, unknown choice) is refused before any work starts,
    in the learner's language, naming the field (the config's own check says which)."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise error("err_setting", lang, why=str(exc)) from None


def checked_by_config(component):
    """A config field's widget whose value reaches the handler as sent. The browser keeps a slider in bounds;
    on the server the endpoint's config is the check (modes/fields.py), so a raw call's NaN, +-inf,
    out-of-range value or wrong type is refused there by field name, rather than by Gradio's own bounds
    message (which names no field, and lets NaN through). The component stays Gradio's own class (a
    subclass would be served as a custom component); only this instance's preprocess step is replaced."""
    component.preprocess = lambda payload: payload
    return component


def setting(cls, name: str, label, **kw) -> gr.Slider:
    """The slider of a bounded config field: its bounds, step and default from the field (fields.bounds)."""
    from modes.fields import bounds

    return checked_by_config(gr.Slider(**bounds(cls, name), value=getattr(cls, name), label=label, **kw))


def name_missing_values(demo) -> None:
    """A raw HTTP call that sends too few values is told what the endpoint takes, in order.

    Gradio's own check raises a ValueError whose message it hides from the caller (`{"error": null}`, unless
    show_error, which would also show every other exception's text). Only this demo's check is replaced, as
    `checked_by_config` does for a widget. The message is English: such a call has no page language."""
    check = demo.validate_inputs

    def validate(block_fn, inputs):
        try:
            check(block_fn, inputs)
        except ValueError:
            api = f"/{block_fn.api_name}"
            params = demo.get_api_info(all_endpoints=True)["named_endpoints"].get(api, {}).get("parameters", [])
            names = [p["parameter_name"] for p in params]
            raise error("err_values", "en", api=api, n=len(names), names=", ".join(names), got=len(inputs)) from None

    demo.validate_inputs = validate


def css() -> str:
    return (ASSETS / "style.css").read_text(encoding="utf-8")


# ---- endpoint guard ---------------------------------------------------------------------------------
def _lang_from_call(fn, args, kwargs) -> str:
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        return lang_of(bound.arguments.get("request"))
    except TypeError:
        return "en"


def _server_error(fn, exc: Exception, args, kwargs) -> gr.Error:
    from modes.serving.heavy import QuotaRefused, TooLong

    if isinstance(exc, (TooLong, QuotaRefused)):  # refused before it started: said plainly, in the learner's language
        return error(exc.key, _lang_from_call(fn, args, kwargs), **exc.fmt)
    logging.getLogger(fn.__module__).exception("unexpected error in endpoint %s", fn.__name__)
    why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
    return error("err_server", _lang_from_call(fn, args, kwargs), why=why)


def guard(fn):
    """Wrap an endpoint so no unexpected exception reaches the client as Gradio's generic error.

    A gr.Error passes as it is; anything else is logged with its traceback and becomes a clear,
    translated "something went wrong on the server" message. Generators stay generators (Gradio
    streams them), and the signature is kept (Gradio reads it for the API and for `request`).
    """

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            it = fn(*args, **kwargs)
            try:
                while True:
                    try:
                        item = next(it)  # one step, in whichever worker thread Gradio runs it
                    except StopIteration:
                        return
                    finally:
                        omp.release()
                    yield item
            except gr.Error:
                raise
            except Exception as exc:  # the point of the guard
                raise _server_error(fn, exc, args, kwargs) from None
            finally:
                it.close()  # a closed page closes the handler's generator, as `yield from` did

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # the point of the guard
            raise _server_error(fn, exc, args, kwargs) from None
        finally:
            omp.release()  # Gradio's worker threads live on: none keeps OpenMP workers (modes/serving/omp.py)

    return wrapper


def on_page_load(fn, outputs) -> None:
    """Fill `outputs` from `fn()` when a page opens (call while the page is being built).

    For values that must not sit in the page config, e.g. a 3,012-row table that would otherwise
    become the API's default for that parameter.
    """
    from gradio.context import Context

    if Context.root_block is None:
        raise RuntimeError("on_page_load must be called inside a gr.Blocks context")
    Context.root_block.load(fn, None, outputs, api_name=False, queue=False, show_progress="hidden")


def endpoint(fn, *bound):
    """A module-level handler made into an endpoint: `bound` (the app context) filled in first, and the
    guard around it. (Heavy work inside it goes through the app context's seam, modes/serving/heavy.py:
    on a ZeroGPU Space, that work and not the whole handler runs in a GPU call.)

    Gradio reads the result's signature, type hints and docstring for the API; they are the
    handler's own, less the bound parameters.
    """

    call = functools.partial(fn, *bound)
    sig = inspect.signature(call)
    as_caller = "session" in sig.parameters and "request" in sig.parameters  # the context is bound[0]
    if inspect.isgeneratorfunction(fn):
        def handler(*args, **kwargs):
            if as_caller:
                _claim_owner(bound[0], sig, args, kwargs)
            yield from call(*args, **kwargs)
    else:
        def handler(*args, **kwargs):
            if as_caller:
                _claim_owner(bound[0], sig, args, kwargs)
            return call(*args, **kwargs)
    functools.update_wrapper(handler, fn)  # name, doc, hints (resolved in fn's module)
    handler.__signature__ = inspect.signature(call)  # ...but not the bound parameters
    bound_names = list(inspect.signature(fn).parameters)[: len(bound)]
    handler.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in bound_names}
    return guard(handler)


OWNER_HEADER = "x-hml-owner"  # an API caller's owner token (from /owner), sent with every call


def _claim_owner(ctx, sig, args, kwargs) -> None:
    """A call that carries X-HML-Owner acts as that owner (see History.claim); one without it keeps its session's."""
    arguments = sig.bind_partial(*args, **kwargs).arguments
    session, request = arguments.get("session"), arguments.get("request")
    headers = getattr(request, "headers", None) or {}
    if session is not None and OWNER_HEADER in headers:
        ctx.history.claim(session, headers.get(OWNER_HEADER))


def inputs(fn, bound: int = 0, **components) -> list:
    """A handler's input components in the order of its parameters, given by name: the wiring reads
    `steps=steps_slider`, never a position, and a name the handler lacks (or a parameter left without a
    component, other than `request` and `progress`, which Gradio fills) is an error at build time.
    `bound`: how many leading parameters ui.endpoint fills in (the app context)."""

    params = [p for p in list(inspect.signature(fn).parameters.values())[bound:] if p.name not in ("request", "progress")]
    names = [p.name for p in params]
    unknown = set(components) - set(names)
    if unknown:
        raise TypeError(f"{fn.__name__} has no parameter {sorted(unknown)}")
    missing = [p.name for p in params if p.name not in components and p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"{fn.__name__}: no component for {missing}")
    # Parameters given components must come first and in order: Gradio passes them by position.
    given = [n for n in names if n in components]
    if names[: len(given)] != given:
        raise TypeError(f"{fn.__name__}: parameters without components come before {given[-1]!r}")
    return [components[n] for n in given]


class Outputs:
    """The named outputs of a streaming handler: `out(progress=md)` is a tuple in the wired order,
    with gr.skip() for every output the update leaves alone."""

    def __init__(self, *names: str):
        self.names = names

    def __call__(self, **values) -> tuple:
        unknown = set(values) - set(self.names)
        if unknown:
            raise KeyError(f"not an output of this handler: {sorted(unknown)}")
        return tuple(values[n] if n in values else gr.skip() for n in self.names)

    def wire(self, components: dict) -> list:
        """The components in the order the tuples use."""
        return [components[n] for n in self.names]


"""Turning a notification kind and its context into a subject, plain text and HTML.

Each kind has three templates: ``<kind>.subject.j2`` (one line), ``<kind>.txt.j2``
and ``<kind>.html.j2``. They are looked up first in an operator's override directory
(``HERALD_TEMPLATES_DIR``), then among the templates packaged with the dispatcher,
file by file, so an operator may replace a single file. Only ``.html.j2`` templates
are autoescaped; a name missing from the context is an error, never an empty string.
The text and HTML templates also see ``subject``, the rendered subject line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from markupsafe import Markup, escape

from services.dispatcher.content import count_noun, reminder_lead, status_wording, time_range
from shared.errors import Permanent

__all__ = ["Rendered", "Renderer", "TemplateRenderError"]

_KIND = re.compile(r"[a-z][a-z0-9_]*")
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    html: str


class TemplateRenderError(Permanent):
    """A template is missing, does not parse, or failed while rendering.

    Permanent: trying the same message again renders the same way. Once the template
    or the producer is fixed, the parked message can be replayed.
    """

    def __init__(self, template: str, problem: str) -> None:
        super().__init__(f"template {template}: {problem}")
        self.template = template
        self.problem = problem


class Renderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[BaseLoader] = []
        if override_dir is not None:
            if not override_dir.is_dir():
                raise ValueError(f"template override directory {override_dir} does not exist")
            loaders.append(FileSystemLoader(override_dir))
        loaders.append(PackageLoader("services.dispatcher", "templates"))
        env = Environment(
            # templates do not change under a running service; without this every
            # lookup stats the file
            auto_reload=False,
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals.update(
            status_wording=status_wording, time_range=time_range, reminder_lead=reminder_lead
        )
        env.filters.update(plural=count_noun, link=safe_link, paragraphs=paragraphs)
        self._env = env

    def render(
        self,
        kind: str,
        *,
        html: bool = True,
        html_only: dict[str, Any] | None = None,
        **context: Any,
    ) -> Rendered:
        """``html_only`` goes to the HTML template alone (an e-mail's unsubscribe
        footer, which the text shown in chat and the inbox should not carry);
        ``html=False`` skips the HTML when no e-mail will carry it (``html`` "")."""
        if not _KIND.fullmatch(kind):
            raise TemplateRenderError(repr(kind), "not a template kind name")
        title = " ".join(self._render(f"{kind}.subject.j2", context).split())
        context = {**context, "subject": title}
        text = self._render(f"{kind}.txt.j2", context)
        body = self._render(f"{kind}.html.j2", {**context, **(html_only or {})}) if html else ""
        return Rendered(title=title, text=_tidy(text), html=body.strip())

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self._env.get_template(name).render(context)
        except TemplateSyntaxError as exc:
            where = exc.name or name
            raise TemplateRenderError(
                name, f"syntax error in {where} line {exc.lineno}: {exc.message}"
            ) from exc
        except TemplateNotFound as exc:
            raise TemplateRenderError(name, f"template {exc.name} not found") from exc
        except UndefinedError as exc:
            raise TemplateRenderError(name, f"missing from the context: {exc.message}") from exc
        except Exception as exc:
            raise TemplateRenderError(name, f"{type(exc).__name__}: {exc}") from exc


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row."""
    lines = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_RUNS.sub("\n\n", lines).strip()


def safe_link(url: object) -> str:
    """The URL if it is safe in an ``href`` (http, https, mailto), else ``""``."""
    text = str(url).strip()
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError:
        return ""
    return text if scheme in _LINK_SCHEMES else ""


def paragraphs(text: str) -> Markup:
    """Plain text as escaped HTML paragraphs: blank lines part paragraphs, single
    line breaks become ``<br>``."""
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    html = "".join(
        Markup('<p style="margin:0 0 16px 0;">{}</p>').format(
            Markup("<br>\n").join(escape(line.strip()) for line in block.splitlines())
        )
        for block in blocks
    )
    return Markup(html)  # noqa: S704 - every piece above is escaped or a literal

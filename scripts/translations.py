"""Keep the message catalogues of both web apps current (the edge's LAN page, ``edge/web``, and
the hub's console, ``hub``): extract the strings, merge them into each language's .po (keeping
translations), and compile the .mo files the pages load.

Usage: python scripts/translations.py [--check]   (--check: exit 1 if anything is out of date
or untranslated, without writing)
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
#: (source folder, its translations folder)
DOMAINS = ((ROOT / "edge" / "web", ROOT / "edge" / "web" / "translations"),
           (ROOT / "hub", ROOT / "hub" / "translations"))
LANGUAGES = ("zh",)  # English is the source language
#: gettext, lazy_gettext as L_, and N_ (common.explained: a template translated where it is shown)
KEYWORDS = {**DEFAULT_KEYWORDS, "L_": None, "lazy_gettext": None}


def extract(source: Path) -> Catalog:
    template = Catalog(project="xueliang", charset="utf-8")
    method_map = [("migrations/**", "ignore"), ("**.py", "python"), ("templates/**.html", "jinja2")]
    for filename, lineno, message, comments, context in extract_from_dir(str(source), method_map, keywords=KEYWORDS):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    if source.name == "hub":  # the domain's error templates (common.explained) are shown by the hub
        for filename, lineno, message, comments, context in extract_from_dir(str(ROOT / "common"), [("**.py", "python")],
                                                                             keywords={"N_": None}):
            template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def _po_text(data: bytes) -> bytes:
    """The .po without the Babel version in its header, so another Babel release is not a change."""
    return re.sub(rb'"Generated-By: Babel [^"]*"\n', b"", data)


def _messages(catalog: Catalog) -> dict:
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)):
            m.string if isinstance(m.string, str) else tuple(m.string) for m in catalog if m.id}


def _same_mo(mo_path: Path, data: bytes) -> bool:
    if not mo_path.exists():
        return False
    with open(mo_path, "rb") as fh:
        current = read_mo(fh)
    return _messages(current) == _messages(read_mo(io.BytesIO(data)))


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for source, translations in DOMAINS:
        stale += _domain(source, translations, check)
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if check and stale else 0


def _domain(source: Path, translations: Path, check: bool) -> list[str]:
    template = extract(source)
    stale = []
    for lang in LANGUAGES:
        folder = translations / lang / "LC_MESSAGES"
        po_path, mo_path = folder / "messages.po", folder / "messages.mo"
        if po_path.exists():
            with open(po_path, "rb") as fh:
                catalog = read_po(fh, locale=lang)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, project="xueliang", charset="utf-8")
        template.creation_date = catalog.creation_date  # dates in the header change only with content
        catalog.update(template, no_fuzzy_matching=True)
        missing = [m.id for m in catalog if m.id and not m.string]
        if missing:
            stale.append(f"{po_path}: untranslated: {missing}")
        po, mo = io.BytesIO(), io.BytesIO()
        write_po(po, catalog, width=100, omit_header=False, no_location=True, ignore_obsolete=True)
        write_mo(mo, catalog)
        current = po_path.read_bytes() if po_path.exists() else b""
        if _po_text(current) != _po_text(po.getvalue()) or not _same_mo(mo_path, mo.getvalue()):
            stale.append(f"{po_path} or its .mo is out of date: run python scripts/translations.py")
            if not check:
                po_path.write_bytes(po.getvalue())
                mo_path.write_bytes(mo.getvalue())
    return stale


if __name__ == "__main__":
    sys.exit(main())

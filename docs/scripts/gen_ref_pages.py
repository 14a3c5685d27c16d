"""Writes the API reference pages at build time (mkdocs-gen-files).

One page per public module of ``speechbrain_mtmm``, found by reading the
package with griffe (statically, nothing is imported) when ``mkdocs
build`` runs, and a ``SUMMARY.md`` that mkdocs-literate-nav turns into the
reference's navigation. Nothing here names a module: a module that is
added, renamed or split appears under its new name at the next build.
This is mkdocstrings' "automatic code reference pages" recipe; a
subpackage's page documents what it defines and links what it re-exports
to the page of the module that defines it (documented once).
"""

from pathlib import Path

import griffe
import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "speechbrain_mtmm"


def public_modules(module):
    """Yield ``module`` and its public submodules, depth first."""
    yield module
    for name, sub in sorted(module.modules.items()):
        if not name.startswith("_") and not sub.is_alias:
            yield from public_modules(sub)


def summary_of(obj):
    """The first paragraph of ``obj``'s docstring, on one line, or ``""``."""
    if obj.docstring is None:
        return ""
    return " ".join(obj.docstring.value.strip().split("\n\n")[0].split())


def page_text(module):
    """The Markdown of ``module``'s reference page."""
    aliases = []
    own = []
    for name, member in module.members.items():
        if name.startswith("_"):
            continue
        if member.is_alias:  # imports: only the names of __all__ count
            if name in {str(e) for e in module.exports or ()}:
                aliases.append((name, member.final_target))
        elif not member.is_module:
            own.append(name)
    lines = [f"# `{module.path}`", "", f"::: {module.path}"]
    if module.is_init_module:
        lines += ["    options:", f"      members: {own or False}"]
    if aliases:
        lines += ["", "## Re-exported here", ""]
        for name, target in sorted(aliases):
            anchor = target if target.docstring else target.module
            text = summary_of(target)
            line = f"- [`{name}`][{anchor.path}]"
            lines.append(f"{line}: {text}" if text else line)
    return "\n".join(lines) + "\n"


package = griffe.load(PACKAGE, search_paths=[str(ROOT)], resolve_aliases=True)
nav = mkdocs_gen_files.Nav()
for module in public_modules(package):
    parts = tuple(module.path.split("."))
    name = "index.md" if module.is_init_module else f"{parts[-1]}.md"
    folder = parts if module.is_init_module else parts[:-1]
    doc_path = Path(*folder, name)
    nav[parts] = doc_path.as_posix()
    with mkdocs_gen_files.open(Path("reference", doc_path), "w") as page:
        page.write(page_text(module))
    mkdocs_gen_files.set_edit_path(
        Path("reference", doc_path), module.filepath.relative_to(ROOT)
    )

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())

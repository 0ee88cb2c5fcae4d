"""The repository stands on its own: its documentation links only to files inside it, and no text
or file name counts the periods in which the work was done."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

# Built, so that this file does not contain the string it looks for.
OUTSIDE = "/".join(["..", "shared"])

SKIP_DIRS = {"__pycache__", ".pytest_cache", ".git", "node_modules"}

ORDINAL = (r"(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
           r"|\d+(st|nd|rd|th))")
# Texts that count work periods: "fifth session", "sixth-session annotator", "session 3",
# "run 2" (of some period), "run1_demo".
# "(?<![a-z])" rather than "\b", so that JSON keys and identifiers ("demo_run1") are caught too.
PERIOD_TEXT = [
    re.compile(rf"(?<![a-z]){ORDINAL}[ _-]+session", re.IGNORECASE),
    re.compile(r"(?<![a-z])session[ _-]?\d", re.IGNORECASE),
    re.compile(r"(?<![a-z])run[ _-]?\d+(?![0-9])", re.IGNORECASE),
]
# File names that do: colored_dot_closed_loop_sixth_session.json, results_run1.json, ... ("first"
# and "second" only next to a period word: "first_steps.md" is a fine name).
LATER_ORDINAL = (r"(third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
                 r"|\d+(st|nd|rd|th))")
PERIOD_NAME = [
    re.compile(rf"(^|[_\-. ]){LATER_ORDINAL}([_\-. ]|$)", re.IGNORECASE),
    re.compile(r"(^|[_\-. ])(first|second)[_\-. ]?(session|period|run)", re.IGNORECASE),
    re.compile(r"session[_\-. ]?\d", re.IGNORECASE),
    re.compile(r"(^|[_\-. ])run[_\-. ]?\d", re.IGNORECASE),
]


def files_under(*names: str) -> list[Path]:
    """Every file at or under ROOT/name, without caches and generated package metadata."""
    out = []
    for name in names:
        p = ROOT / name
        if p.is_file():
            out.append(p)
            continue
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(ROOT).parts
            if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel):
                continue
            if f.is_file():
                out.append(f)
    return out


def text_of(path: Path) -> str | None:
    """A file's text, or None for a binary file (images, archives)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def test_nothing_points_outside_the_repository():
    found = []
    for f in files_under("README.md", "pyproject.toml", "docs", "src", "tests", "benchmarks",
                         "scripts", "examples"):
        if f.resolve() == THIS:
            continue
        text = text_of(f)
        if text is None:
            continue
        for m in re.finditer(re.escape(OUTSIDE), text):
            found.append(f"{f.relative_to(ROOT)}:{line_of(text, m.start())}")
    assert not found, f"references to {OUTSIDE} (a folder a clone does not have): {found}"


def test_no_text_or_file_name_counts_work_periods():
    found = []
    for f in files_under("docs", "src", "benchmarks", "scripts"):
        rel = f.relative_to(ROOT)
        for part in rel.parts:
            for pat in PERIOD_NAME:
                if pat.search(part):
                    found.append(f"{rel}: file name {part!r}")
        text = text_of(f)
        if text is None:
            continue
        for pat in PERIOD_TEXT:
            for m in pat.finditer(text):
                found.append(f"{rel}:{line_of(text, m.start())}: {m.group(0)!r}")
    assert not found, "work periods counted (say what a run measures):\n" + "\n".join(found)


FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def relative_links(md: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", md.read_text(encoding="utf-8")))
    return [m.group(1) for m in LINK.finditer(text) if not EXTERNAL.match(m.group(1))]


def test_markdown_links_point_to_files_in_the_repository():
    broken = []
    for md in markdown_files():
        for link in relative_links(md):
            target = (md.parent / link.split("#", 1)[0]).resolve()
            inside = target == ROOT or ROOT in target.parents
            if not inside or not target.exists():
                broken.append(f"{md.relative_to(ROOT)}: {link}")
    assert not broken, f"relative links to files that are not in the repository: {broken}"


def test_the_link_checker_sees_links():
    # A guard for the checker itself: README links to the docs, and each such link is seen.
    links = relative_links(ROOT / "README.md")
    assert "docs/study.md" in links and "docs/design.md" in links and "docs/experiments.md" in links

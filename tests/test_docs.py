"""The README stays a short front page, and the documentation's links and pages hold together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [
    "large-photos",
    "jpeg",
    "batches",
    "how-it-works",
    "benchmarks",
    "experiments",
    "generalization",
    "reproducibility",
]

# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def without_code(text: str) -> str:
    """The text less its fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(without_code(path.read_text()))
    return [link for link in links if not re.match(r"(https?://|mailto:|#)", link)]


def test_the_readme_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move details to docs/"


def test_the_link_pattern_finds_links_and_images():
    text = "see [a](docs/a.md#part), ![b](b.png) and [c](https://x.org), [d](#here), `[e](no.md)`"
    assert LINK.findall(without_code(text)) == ["docs/a.md#part", "b.png", "https://x.org", "#here"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    missing = []
    for link in relative_links(path):
        target = link.split("#", 1)[0]
        if not (path.parent / target).exists():
            missing.append(link)
    assert not missing, f"{path.relative_to(ROOT)}: links to missing files: {missing}"


def test_nothing_cites_a_design_document_the_repository_does_not_hold():
    names = ("DESIGN" + ".md", "DESIGN" + " §")
    files = [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        *DOCS.glob("*.md"),
        *(ROOT / "dip_cli").rglob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
        *(p for p in (ROOT / "tests").glob("*.py") if p.name != Path(__file__).name),
    ]
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        if path.exists()
        for name in names
        if name in path.read_text()
    ]
    assert not found, found


@pytest.mark.parametrize("page", PAGES)
def test_each_docs_page_opens_with_a_summary_paragraph(page):
    path = DOCS / f"{page}.md"
    assert path.exists(), f"docs/{page}.md is missing"
    lines = path.read_text().splitlines()
    assert len(lines) > 2 and lines[0].startswith("# "), f"docs/{page}.md must start with a '# title'"
    assert lines[1] == "", f"docs/{page}.md: a blank line after the title"
    first = lines[2]
    markup = ("#", "|", "- ", "* ", "```", "![", ">", "<")
    assert first.strip() and not first.startswith(markup) and not re.match(r"\d+\. ", first), (
        f"docs/{page}.md must open with a paragraph, not {first!r}"
    )

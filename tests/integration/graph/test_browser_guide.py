"""docs/browser_queries.cypher runs as pasted into Neo4j Browser, and docs/browser_style.grass captions every label.

Neo4j Browser does not hand a paste to the driver as one query: in its multi-statement mode it splits the text on
`;` (outside strings and comments), runs the client commands it allows there (`:param`, `:use`, `:auto`) and ignores
the others, and sends each Cypher statement with the parameters set so far. A `:param name => expr` is evaluated by
the server (`RETURN expr`), so its value keeps its Cypher type; `:params {...}` and `:param name: value` are parsed
in JavaScript, where every number is a float, so `LIMIT $k` refuses them. :class:`BrowserSession` does the same
against the real Neo4j, so these tests fail on a guide that Browser could not run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

from etl.load import load_dataset
from graph import catalog, recall
from graph.query import NO_ID
from graph.recall import RecallFilters
from schema.model import ITEM_DOMAIN_LABELS, NODE_PROPERTIES, Label
from tests.fixtures import graphs

DOCS = Path(__file__).parents[3] / "docs"
GUIDE = DOCS / "browser_queries.cypher"
STYLE = DOCS / "browser_style.grass"
KEYS = {"User": "userId", "Item": "itemId", "Genre": "name", "Tag": "name", "Person": "personId"}
#: Client commands Browser runs inside a multi-statement paste (the others are skipped).
MULTI_STATEMENT_COMMANDS = (":param", ":use", ":auto")

GUIDE_BLOCKS = {
    "collaborative": ("RECALL_COLLABORATIVE", recall.recall_collaborative, ("userId", "42")),
    "knowledge": ("RECALL_KNOWLEDGE", recall.recall_knowledge, ("userId", "42")),
    "social": ("RECALL_SOCIAL", recall.recall_social, ("userId", "42")),
    "popularity": ("RECALL_POPULARITY", recall.recall_popularity, ("userId", "42")),
    "similar items": ("SIMILAR_ITEMS", recall.similar_items, ("itemId", "1")),
}


def browser_statements(text: str) -> list[str]:
    """Split a paste as Browser's multi-statement mode does: on `;` outside quotes, backticks and comments; each
    statement without its comment lines and blank lines (empty statements dropped)."""
    statements, current, i, quote = [], [], 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    cleaned = ("\n".join(line for line in s.splitlines() if line.strip()).strip() for s in statements)
    return [s for s in cleaned if s]


def _as_javascript(value: Any) -> Any:  # noqa: ANN401 - any parameter value
    """A value as Browser's JavaScript holds a number parsed on the client: every number a float."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_as_javascript(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_javascript(v) for k, v in value.items()}
    return value


class BrowserSession:
    """Runs pasted text as Neo4j Browser does (module docstring), keeping its parameters between pastes."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.params: dict[str, Any] = {}

    def paste(self, text: str) -> list[list[Any]]:
        """Run every statement of ``text``; the records of each Cypher statement, in order. Raises what Neo4j
        raises (Browser shows it as an error frame and skips the rest)."""
        results = []
        for statement in browser_statements(text):
            if statement.startswith(":"):
                if statement.startswith(MULTI_STATEMENT_COMMANDS):
                    self._param(statement)
                continue
            records, _, _ = self.driver.execute_query(statement, self.params)
            results.append(records)
        return results

    def _evaluate(self, expression: str) -> Any:  # noqa: ANN401 - any Cypher value
        records, _, _ = self.driver.execute_query(f"RETURN {expression} AS value")
        return records[0]["value"]

    def _param(self, command: str) -> None:
        name, _, rest = command[1:].partition(" ")
        rest = rest.strip()
        if name == "params" and rest.startswith("{"):  # parsed by jsonic on the client: replaces every parameter
            self.params = _as_javascript(self._evaluate(rest))
        elif "=>" in rest:  # a lambda: the server evaluates `RETURN <expr>`
            key, _, expression = rest.partition("=>")
            assert re.fullmatch(r"\s*\w+\s*", key), f"not a Browser lambda: {command!r}"
            self.params[key.strip()] = self._evaluate(expression)
        else:  # name: value, parsed by jsonic on the client
            key, _, value = rest.partition(":")
            self.params[key.strip()] = _as_javascript(self._evaluate(value))


def guide_blocks() -> dict[str, str]:
    """Blocks of docs/browser_queries.cypher by title (the text after "// ---- " up to ":"), as pasted."""
    blocks = {}
    for chunk in GUIDE.read_text(encoding="utf-8").split("\n// ---- ")[1:]:
        title = chunk.split(":", 1)[0].strip()
        blocks[title] = "\n".join(chunk.splitlines()[1:]).strip()
    return blocks


@pytest.fixture
def shared_actor(clean_db: Driver, tmp_path: Path) -> Driver:
    load_dataset(clean_db, graphs.GRAPHS["shared_actor"](), reject_dir=tmp_path)
    return clean_db


def test_the_session_refuses_what_browser_refuses(shared_actor: Driver) -> None:
    """The emulation fails where Browser fails: integers set by :params are floats, a :param without `;` swallows
    the next statement."""
    session = BrowserSession(shared_actor)
    session.paste(":params {k: 2}")
    assert session.params == {"k": 2.0} and isinstance(session.params["k"], float)
    with pytest.raises(Exception, match="LIMIT"):
        session.paste("MATCH (i:Item) RETURN i LIMIT $k;")
    with pytest.raises(Exception, match="SyntaxError"):
        session.paste(":param userId => '42'\nMATCH (u:User {userId: $userId}) RETURN u;")
    session.paste(":param k => 2;\nMATCH (i:Item) RETURN i LIMIT $k;")
    assert session.params["k"] == 2 and isinstance(session.params["k"], int)


def test_pasting_the_whole_guide_runs_every_statement(shared_actor: Driver) -> None:
    session = BrowserSession(shared_actor)
    results = session.paste(GUIDE.read_text(encoding="utf-8"))
    cypher = [s for s in browser_statements(GUIDE.read_text(encoding="utf-8")) if not s.startswith(":")]
    blocks = GUIDE.read_text(encoding="utf-8").count("\n// ---- ")
    assert len(results) == len(cypher) == blocks - 1  # every block but the parameters is one query


def test_guide_contains_every_strategy_query_verbatim() -> None:
    blocks = guide_blocks()
    for title, (constant, _, _) in GUIDE_BLOCKS.items():
        assert "CALL () {\n" + getattr(catalog, constant) + "\n}" in blocks[title], title


def test_guide_params_are_the_default_caps_with_their_types(clean_db: Driver) -> None:
    expected: dict[str, Any] = {"userId": "1", "itemId": "1", "k": 10, **RecallFilters().to_params()}
    expected |= {**recall.NO_HISTORY, "recent": None}  # the queries read the history and popularity's window
    for caps in (
        recall.CollaborativeCaps,
        recall.KnowledgeCaps,
        recall.SocialCaps,
        recall.PopularityCaps,
        recall.SimilarCaps,
    ):
        for key, value in caps().to_params().items():
            assert expected.setdefault(key, value) == value, f"{key}: strategies disagree on the default"
    session = BrowserSession(clean_db)
    assert session.paste(guide_blocks()["parameters"]) == []
    # the application pads the filters' lists with the sentinel id (RecallFilters.to_params); pasted, an empty list
    # means the same to the queries
    assert _unpadded(session.params) == _unpadded(expected)
    assert {k: type(v) for k, v in session.params.items()} == {k: type(v) for k, v in expected.items()}
    used = set()
    for constant, _, _ in GUIDE_BLOCKS.values():
        used |= set(re.findall(r"\$(\w+)", getattr(catalog, constant)))
    assert used <= set(expected)


def _unpadded(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the sentinel id left out of every list of strings."""
    return {
        key: [v for v in value if v != NO_ID]
        if isinstance(value, list) and all(isinstance(v, str) for v in value)
        else value
        for key, value in params.items()
    }


@pytest.mark.parametrize("title", sorted(GUIDE_BLOCKS))
def test_guide_block_draws_the_strategy_paths(shared_actor: Driver, title: str) -> None:
    constant, strategy, (anchor, anchor_id) = GUIDE_BLOCKS[title]
    session = BrowserSession(shared_actor)
    session.paste(guide_blocks()["parameters"])
    block = guide_blocks()[title]
    assert f":param {anchor} => '1';" in block  # the line the guide says to edit
    [records] = session.paste(block.replace(f":param {anchor} => '1';", f":param {anchor} => '{anchor_id}';"))
    expected = strategy(shared_actor, anchor_id, k=session.params["k"])
    assert [r["candidate"]["itemId"] for r in records] == [c.item_id for c in expected]
    for record, candidate in zip(records, expected, strict=True):
        drawn = {(r.type, node_key(r.start_node), node_key(r.end_node)) for step in record["drawn"] for r in step}
        wanted = {
            (rel.type, e.nodes[rel.start].id, e.nodes[rel.end].id)
            for e in candidate.explanations
            for rel in e.relationships
        }
        assert drawn == wanted, title


def node_key(node) -> str:  # noqa: ANN001 - a neo4j.graph.Node
    label = next(label for label in KEYS if label in node.labels)
    return node[KEYS[label]]


def grass_captions(text: str) -> dict[str, str]:
    """``node.<Label> { caption: "{prop}"; }`` rules of a GraSS file: label → the property captioned."""
    captions = {}
    for selector, body in re.findall(r"node\.(\w+)\s*\{(.*?)\n\}", text, flags=re.DOTALL):
        match = re.search(r'caption:\s*"\{(\w+)\}"', body)
        if match:
            captions[selector] = match.group(1)
    return captions


def test_style_captions_every_label_with_a_meaningful_property() -> None:
    captions = grass_captions(STYLE.read_text(encoding="utf-8"))
    for label in Label:
        owner = Label.ITEM if label in ITEM_DOMAIN_LABELS else label
        owner = Label.PERSON if label in (Label.ACTOR, Label.DIRECTOR) else owner
        assert captions.get(label) in NODE_PROPERTIES[owner], label
    assert captions["User"] == "userId"  # not the interactionsRev counter Browser picks by default
    assert captions["Item"] == "title" and captions["Person"] == "name"
    assert "docs/browser_style.grass" in GUIDE.read_text(encoding="utf-8")

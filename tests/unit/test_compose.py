"""docker-compose.yml cannot run here (no Docker engine); check that it parses and names what it must."""

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def test_compose_file_declares_neo4j_and_api() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    neo4j = compose["services"]["neo4j"]
    assert neo4j["image"].startswith("neo4j:5.26")
    assert "${NEO4J_PASSWORD:?" in neo4j["environment"]["NEO4J_AUTH"]
    assert "apoc" in neo4j["environment"]["NEO4J_PLUGINS"]
    assert {"test", "interval", "retries"} <= neo4j["healthcheck"].keys()
    assert "neo4j_data:/data" in neo4j["volumes"] and "neo4j_data" in compose["volumes"]
    assert "127.0.0.1:7687:7687" in neo4j["ports"] and "127.0.0.1:7474:7474" in neo4j["ports"]
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert api["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert "${NEO4J_PASSWORD:?" in api["environment"]["NEO4J_PASSWORD"]
    impressions = Path(api["environment"]["KGREC_IMPRESSION_DB"])  # the default store's file: on a volume
    volumes = {Path(target): name for name, target in (v.split(":") for v in api["volumes"])}
    assert volumes.get(impressions.parent) in compose["volumes"]
    assert (ROOT / "Dockerfile").is_file()


def test_env_example_names_every_neo4j_setting() -> None:
    from graph.settings import Neo4jSettings

    text = (ROOT / ".env.example").read_text()
    for name in ("uri", "user", "password", "database", "home", "bolt_port", "http_port", "heap", "pagecache"):
        assert f"NEO4J_{name.upper()}=" in text
    assert Neo4jSettings.model_fields["heap"].default == "1g"

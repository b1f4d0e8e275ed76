"""The "Anonymizer" section: every wrong setting is refused with a message naming it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY
from orthanc_anonymizer.deid.profiles import Option
from orthanc_anonymizer.server.api import BadRequest, parse_settings, profiles_answer
from orthanc_anonymizer.server.config import DEVELOPMENT_SECRET, ConfigurationError, parse_configuration


def parse(section: dict[str, object], environ: dict[str, str] | None = None, **orthanc: object):
    return parse_configuration({"Anonymizer": section, **orthanc}, environ or {}, Path("/srv/orthanc"))


def test_defaults_with_a_secret() -> None:
    config = parse({"Secret": "s3cret"}, StorageDirectory="storage", HttpPort=8043)
    assert config.secret == b"s3cret" and not config.development_secret
    assert config.default_profile == "basic" and config.default_options == ()
    assert config.state_directory == Path("/srv/orthanc/storage/anonymizer")
    assert config.http_port == 8043
    assert config.workers >= 1


def test_default_workers_are_the_cores_orthanc_may_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Orthanc pinned to one core of several (taskset, a container's cpuset): one worker, not one per core.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert parse({"Secret": "s"}).workers == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert parse({"Secret": "s"}).workers == 3


def test_environment_secret_wins_over_the_configured_one() -> None:
    assert parse({"Secret": "file"}, {"ANONYMIZER_SECRET": "env"}).secret == b"env"


def test_no_secret_is_refused_unless_development_is_allowed() -> None:
    with pytest.raises(ConfigurationError, match=r"Anonymizer\.Secret"):
        parse({})
    config = parse({"AllowDevelopmentSecret": True})
    assert config.development_secret and config.secret == DEVELOPMENT_SECRET


def test_secret_never_in_repr() -> None:
    assert "s3cret" not in repr(parse({"Secret": "s3cret"}))


@pytest.mark.parametrize(
    ("section", "orthanc", "named"),
    [
        ({"Workers": 0}, {}, "Anonymizer.Workers"),
        ({"Workers": "4"}, {}, "Anonymizer.Workers"),
        ({"ConcurrentJobs": True}, {}, "Anonymizer.ConcurrentJobs"),
        ({"DefaultOptions": ["RetainAll"]}, {}, "Anonymizer.DefaultOptions"),
        ({"DefaultOptions": "CleanDesc"}, {}, "Anonymizer.DefaultOptions"),
        ({"DefaultOptions": ["RetainLongFullDates", "RetainLongModifDates"]}, {}, "Anonymizer.DefaultOptions"),
        ({"ProfilesDirectory": "/no/such/folder"}, {}, "Anonymizer.ProfilesDirectory"),
        ({"AllowDevelopmentSecret": "yes"}, {}, "Anonymizer.AllowDevelopmentSecret"),
        ({"WorkerPython": "/no/python"}, {}, "Anonymizer.WorkerPython"),
        ({"AutoAnonymize": []}, {}, "Anonymizer.AutoAnonymize"),
        ({"Secrte": "x"}, {}, "Anonymizer.Secrte"),
        ({}, {"HttpThreadsCount": 4}, "HttpThreadsCount"),
        ({}, {"HttpPort": "8042"}, "HttpPort"),
    ],
)
def test_wrong_setting_is_named(section: dict[str, object], orthanc: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse({"Secret": "s", **section}, **orthanc)
    assert str(raised.value).startswith(named)


def test_options_and_profiles_directory(tmp_path: Path) -> None:
    config = parse({"Secret": "s", "DefaultOptions": ["CleanDesc"], "ProfilesDirectory": str(tmp_path)})
    assert config.default_options == (Option.CleanDesc,)
    assert config.profiles_directory == tmp_path


def test_a_configured_profiles_directory_is_all_rest_users_are_offered(tmp_path: Path) -> None:
    (tmp_path / "curated.csv").write_text("0008,1090;K\n")
    config = parse({"Secret": "s", "ProfilesDirectory": str(tmp_path)})
    assert not config.shipped_profiles
    assert [entry["Name"] for entry in profiles_answer(config)] == ["basic", "curated"]
    with pytest.raises(BadRequest, match="unknown profile 'research-longitudinal'"):
        parse_settings({"Profile": "research-longitudinal"}, config)
    assert parse_settings({"Profile": "curated"}, config).profile.name == "curated"


def test_without_a_profiles_directory_the_shipped_profiles_and_the_checkouts_folder_are_offered() -> None:
    config = parse({"Secret": "s"})
    assert config.shipped_profiles
    assert config.profiles_directory == CHECKOUT_PROFILES_DIRECTORY
    names = [entry["Name"] for entry in profiles_answer(config)]
    assert names[0] == "basic" and "research-longitudinal" in names
    assert parse_settings({"Profile": "research-longitudinal"}, config).profile.name == "research-longitudinal"


def test_authorization_restricts_routes_to_the_admin_users() -> None:
    config = parse(
        {"Secret": "s", "Authorization": {"AdminUsers": ["admin"], "RestrictedRoutes": ["links", "audit"]}},
        AuthenticationEnabled=True,
        RegisteredUsers={"admin": "a", "operator": "o"},
    )
    assert config.access.allows("admin", "links") and config.access.allows("admin", "audit")
    assert not config.access.allows("operator", "links") and not config.access.allows("anonymous", "audit")
    assert config.access.allows("operator", "anonymize")
    assert parse({"Secret": "s"}).access.allows("anonymous", "links")  # nothing restricted by default


def test_named_administrators_alone_restrict_links_values_and_weakening() -> None:
    config = parse(
        {"Secret": "s", "Authorization": {"AdminUsers": ["admin"]}},
        AuthenticationEnabled=True,
        RegisteredUsers={"admin": "a", "operator": "o"},
    )
    for route in ("links", "audit", "dry-run-values", "weaken"):
        assert not config.access.allows("operator", route) and config.access.allows("admin", route)
    assert config.access.allows("operator", "anonymize") and config.access.allows("operator", "dry-run")
    with pytest.raises(ConfigurationError, match="AuthenticationEnabled"):
        parse({"Secret": "s", "Authorization": {"AdminUsers": ["admin"]}})


@pytest.mark.parametrize(
    ("authorization", "orthanc", "named"),
    [
        ({"AdminUsers": ["admin"], "RestrictedRoutes": ["links"]}, {}, "AuthenticationEnabled"),
        ({"AdminUsers": ["root"], "RestrictedRoutes": ["links"]}, None, "'root'"),
        ({"AdminUsers": ["admin"], "RestrictedRoutes": ["../links"]}, None, "'../links'"),
        ({"AdminUsers": "admin", "RestrictedRoutes": ["links"]}, None, "AdminUsers"),
        ({"Admins": ["admin"]}, None, "Authorization.Admins"),
        (["admin"], None, "Authorization"),
    ],
)
def test_wrong_authorization_is_refused_naming_it(authorization, orthanc, named) -> None:
    if orthanc is None:
        orthanc = {"AuthenticationEnabled": True, "RegisteredUsers": {"admin": "a"}}
    with pytest.raises(ConfigurationError, match=r"Anonymizer\.Authorization") as raised:
        parse({"Secret": "s", "Authorization": authorization}, **orthanc)
    assert named in str(raised.value)


INDEX = {
    "EnableIndex": True,
    "Host": "db.example",
    "Port": 5433,
    "Database": "pacs",
    "Username": "orthanc",
    "Password": "${POSTGRES_PASSWORD}",
}


def test_shared_state_follows_the_postgresql_index_unless_told_otherwise() -> None:
    assert parse({"Secret": "s"}).shared_database is None  # SQLite index: nothing to share
    shared = parse({"Secret": "s"}, {"POSTGRES_PASSWORD": "pw"}, PostgreSQL=INDEX).shared_database
    assert shared is not None and shared.description == "db.example:5433/pacs"
    assert shared.parameters == {
        "host": "db.example",
        "port": "5433",
        "dbname": "pacs",
        "user": "orthanc",
        "password": "pw",
        "sslmode": "prefer",
    }
    assert "pw" not in repr(shared)
    assert shared.node == socket.gethostname()
    named = parse({"Secret": "s", "NodeName": "orthanc-2"}, PostgreSQL=INDEX).shared_database
    assert named is not None and named.node == "orthanc-2"
    assert parse({"Secret": "s", "SharedState": "Local"}, PostgreSQL=INDEX).shared_database is None
    uri = parse({"Secret": "s", "SharedState": "PostgreSQL"}, PostgreSQL={"EnableIndex": True, "ConnectionUri": "x"})
    assert uri.shared_database is not None and uri.shared_database.parameters == {"conninfo": "x"}
    storage_only = {"EnableIndex": False, "EnableStorage": True}
    assert parse({"Secret": "s"}, PostgreSQL=storage_only).shared_database is None


@pytest.mark.parametrize(
    "section, postgresql, name",
    [
        ({"SharedState": "Cluster"}, INDEX, "SharedState"),
        ({"SharedState": "PostgreSQL"}, None, "SharedState"),
        ({"SharedState": True}, INDEX, "SharedState"),
        ({"NodeName": "../other"}, INDEX, "NodeName"),
        ({"NodeName": "node a"}, None, "NodeName"),
        ({"NodeName": 7}, INDEX, "NodeName"),
    ],
)
def test_a_wrong_shared_state_or_node_name_is_named(section: dict[str, object], postgresql: object, name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"Anonymizer\.{name}"):
        parse({"Secret": "s", **section}, PostgreSQL=postgresql)

"""The production deployment (``docker-compose.yml``, ``orthanc-config/docker/``) read as files: what it mounts and
copies exists, the Orthanc configuration it mounts is the one the plugin accepts, no secret is written in it, and
every image is pinned.

No Docker engine runs here; ``tests/integration/test_docker_configuration.py`` starts a real Orthanc 1.13 with
orthanc-python 7.1 on Python 3.14 (Debian forky's, the image's generation) with the same configuration file.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY
from orthanc_anonymizer.server.config import SECRET_ENVIRONMENT_VARIABLE, ConfigurationError, parse_configuration

CHECKOUT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = CHECKOUT / "docker-compose.yml"
ORTHANC_IMAGE = "orthancteam/orthanc:26.8.1"
"""Orthanc 1.13.0, Python plugin 7.1 (Python 3.14), PostgreSQL plugin 10.3, Orthanc Explorer 2 1.14.1."""
ORTHANC_CONFIGURATION_TARGET = "/etc/orthanc/orthanc.json"
ORTHANC_SERVICES = ("orthanc-1", "orthanc-2")
"""Two Orthancs on one PostgreSQL index and one storage volume (scale-out); the first one stands for both where
they are the same (a test checks that they are)."""
ORTHANC = ORTHANC_SERVICES[0]
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|USERS|TOKEN|KEY", re.IGNORECASE)
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]*\}$")
"""``${NAME:?message}``: compose takes the value from the environment and refuses to start without it."""


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return dict(services[name])


def environment(name: str) -> dict[str, str]:
    value = service(name).get("environment", {})
    if isinstance(value, list):  # the KEY=VALUE form
        value = dict(item.split("=", 1) for item in value)
    return {str(key): str(item) for key, item in value.items()}


def bind_mounts(name: str) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (short syntax, relative to the compose file)."""
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def named_volume_targets(name: str) -> set[str]:
    targets = set()
    for volume in service(name).get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if not source.startswith((".", "/")):
            assert source in (compose().get("volumes") or {}), f"volume {source!r} is not declared"
            targets.add(target)
    return targets


def dockerfile() -> Path:
    build = service(ORTHANC)["build"]
    return (COMPOSE_FILE.parent / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile().read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def copies() -> list[tuple[list[str], str]]:
    """``COPY`` instructions as (sources, destination)."""
    result = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY":
            words = [word for word in arguments.split() if not word.startswith("--")]
            result.append((words[:-1], words[-1]))
    return result


def container_to_host(path: str) -> Path:
    """Where a path of the orthanc container comes from in the checkout: a bind mount, or a file the Dockerfile
    copies."""
    posix = PurePosixPath(path)
    for target, source in bind_mounts(ORTHANC).items():
        if posix == PurePosixPath(target) or PurePosixPath(target) in posix.parents:
            return source / posix.relative_to(target)
    context = (COMPOSE_FILE.parent / service(ORTHANC)["build"]["context"]).resolve()
    for sources, destination in copies():
        if len(sources) == 1 and posix == PurePosixPath(destination):
            return context / sources[0]
    raise AssertionError(f"{path} is neither mounted nor copied into the orthanc container")


def mounted_configuration() -> dict[str, Any]:
    mounts = bind_mounts(ORTHANC)
    assert ORTHANC_CONFIGURATION_TARGET in mounts, f"nothing is mounted at {ORTHANC_CONFIGURATION_TARGET}"
    loaded = json.loads(mounts[ORTHANC_CONFIGURATION_TARGET].read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def development_configuration() -> dict[str, Any]:
    loaded = json.loads((CHECKOUT / "orthanc-config" / "orthanc.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def configuration_as_the_host_sees_it() -> dict[str, Any]:
    """The mounted configuration with its container paths replaced by the checkout's files they come from (no
    "Anonymizer" setting names one: the site's profiles are in the default folder, where compose mounts them)."""
    return mounted_configuration()


# -- images -------------------------------------------------------------------------------------------------------


def test_the_orthanc_image_is_built_from_the_pinned_orthancteam_tag() -> None:
    bases = [arguments.split()[-1] for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert bases == [ORTHANC_IMAGE]


def test_every_image_is_pinned_to_a_version() -> None:
    images = [str(spec["image"]) for spec in compose()["services"].values() if "image" in spec]
    images += [arguments.split()[-1] for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert tag != "latest" and re.match(r"^\d", tag), f"{image}: not pinned to a version"


def test_postgres_is_an_official_image_pinned_to_a_major_version_with_a_volume_and_a_healthcheck() -> None:
    postgres = service("postgres")
    assert re.fullmatch(r"postgres:\d+(\.\d+)?(-[a-z0-9]+)?", postgres["image"])
    assert "/var/lib/postgresql/data" in named_volume_targets("postgres")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert service(ORTHANC)["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_two_orthancs_of_one_image_and_configuration_share_the_index_and_the_storage() -> None:
    services = compose()["services"]
    orthancs = [name for name, spec in services.items() if spec.get("image") == service(ORTHANC)["image"]]
    assert orthancs == list(ORTHANC_SERVICES)
    specs = [service(name) for name in ORTHANC_SERVICES]
    differing = {"hostname", "ports"}
    assert [{k: v for k, v in spec.items() if k not in differing} for spec in specs[1:]] == [
        {k: v for k, v in specs[0].items() if k not in differing}
    ] * (len(specs) - 1)
    # The host name is the node's name in the cluster (Anonymizer.NodeName's default): each its own.
    assert len({spec["hostname"] for spec in specs}) == len(specs)
    published = [port.split(":")[0] for spec in specs for port in spec["ports"]]
    assert len(set(published)) == len(published)
    assert mounted_configuration()["StorageDirectory"] in named_volume_targets(ORTHANC)
    assert mounted_configuration()["PostgreSQL"]["Lock"] is False  # several Orthancs on the one database
    section = mounted_configuration()["Anonymizer"]
    assert section["SharedState"] == "PostgreSQL" and "NodeName" not in section


# -- files --------------------------------------------------------------------------------------------------------


def test_every_file_mounted_or_copied_exists_in_the_checkout() -> None:
    assert dockerfile().is_file()
    for target, source in bind_mounts(ORTHANC).items():
        assert source.exists(), f"{source} (mounted at {target}) is missing"
        assert source.is_relative_to(CHECKOUT), f"{source} is outside the checkout"
    context = (COMPOSE_FILE.parent / service(ORTHANC)["build"]["context"]).resolve()
    assert context == CHECKOUT
    for sources, _ in copies():
        for source in sources:
            assert (context / source).exists(), f"COPY {source}: missing"


def test_the_build_context_leaves_out_the_virtual_environments_and_data_but_nothing_the_dockerfile_copies() -> None:
    ignore_file = dockerfile().with_name(dockerfile().name + ".dockerignore")
    patterns = [
        line.strip()
        for line in ignore_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        """Docker's rule, for the patterns used there: a path is left out when it or a folder above it matches;
        ``**/`` matches any number of folders, none included."""
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        alternatives = [
            variant
            for pattern in patterns
            for variant in ([pattern[3:], "*/" + pattern[3:]] if pattern.startswith("**/") else [pattern])
        ]
        return any(fnmatch.fnmatchcase(prefix, variant) for variant in alternatives for prefix in prefixes)

    for heavy in (".venv", ".compat", ".git", "data", "plugin/orthanc_anonymizer/__pycache__"):
        assert ignored(heavy), f"{heavy} would be sent to the builder"
    for sources, _ in copies():
        for source in sources:
            assert not ignored(source), f"COPY {source}: left out of the build context"
            for path in (CHECKOUT / source).rglob("*.py") if (CHECKOUT / source).is_dir() else []:
                assert not ignored(str(path.relative_to(CHECKOUT))), f"{path} is left out of the build context"


def test_the_image_installs_the_package_into_the_system_python_and_copies_entry_py() -> None:
    runs = " ".join(arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install .*--break-system-packages", runs)
    config = mounted_configuration()
    assert container_to_host(config["PythonScript"]) == CHECKOUT / "plugin" / "entry.py"
    # entry.py there has no .venv beside it: it falls back to the system's packages.
    assert not PurePosixPath(config["PythonScript"]).is_relative_to("/etc/orthanc")


def test_the_image_has_a_compiler_and_the_python_headers_while_pip_builds_what_has_no_python_3_14_wheel() -> None:
    """pyjpegls 1.5.1 has no wheel for Python 3.14 and builds from source (as in the forky root, which holds g++
    and python3-dev for it); the build tools go again in the same layer."""
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]
    [install] = [run for run in runs if "pip install" in run]
    steps = [step.strip() for step in install.split("&&")]
    pip = next(index for index, step in enumerate(steps) if step.startswith("pip install"))
    before = " ".join(step for step in steps[:pip] if step.startswith("apt-get install")).split()
    after = " ".join(step for step in steps[pip:] if step.startswith("apt-get purge")).split()
    assert {"g++", "python3-dev", "tesseract-ocr"} <= set(before)
    assert {"g++", "python3-dev"} <= set(after) and "tesseract-ocr" not in after
    assert "rm -rf /var/lib/apt/lists/*" in install
    assert any(pin.startswith("pyjpegls==") for pin in project_dependencies())


def project_dependencies() -> list[str]:
    with (CHECKOUT / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    return [str(item) for item in dependencies]


def test_the_plugin_runs_from_the_checkout_mounted_over_the_copy_in_the_image() -> None:
    script = PurePosixPath(mounted_configuration()["PythonScript"])
    assert bind_mounts(ORTHANC)[str(script.parent)] == CHECKOUT / "plugin"
    # entry.py puts its own folder first on sys.path: the mounted package wins over the one installed in the image.
    assert "sys.path.insert(0" in (CHECKOUT / "plugin" / "entry.py").read_text(encoding="utf-8")


def test_the_state_of_orthanc_and_of_the_plugin_lives_in_a_named_volume() -> None:
    config = mounted_configuration()
    assert config["StorageDirectory"] in named_volume_targets(ORTHANC)


def test_the_site_profiles_are_mounted_where_the_plugin_looks_by_default_not_read_as_orthanc_configuration() -> None:
    # With no ProfilesDirectory the plugin offers the shipped profiles and those of the default site folder, the
    # profiles/ beside its own plugin/ folder (CHECKOUT_PROFILES_DIRECTORY, the checkout's layout), where it reads a
    # site's redaction rules too (tests/unit/test_pixels_rules.py): compose mounts the checkout's profiles/ there. A
    # ProfilesDirectory would offer that folder's files alone, without the shipped profiles.
    config = mounted_configuration()
    assert "ProfilesDirectory" not in config["Anonymizer"]
    assert CHECKOUT / "profiles" == CHECKOUT_PROFILES_DIRECTORY
    site = PurePosixPath(config["PythonScript"]).parent.parent / "profiles"
    assert container_to_host(str(site)) == CHECKOUT / "profiles"
    assert container_to_host(str(site / "pixel-redaction")) == CHECKOUT / "profiles" / "pixel-redaction"
    # The image reads every /etc/orthanc/*.json as Orthanc configuration; profiles are JSON too.
    assert not site.is_relative_to("/etc/orthanc")


# -- the Orthanc configuration it mounts ---------------------------------------------------------------------------


def test_the_mounted_configuration_declares_the_same_user_metadata_as_the_development_one() -> None:
    assert mounted_configuration()["UserMetadata"] == development_configuration()["UserMetadata"]
    assert {"AnonymizedFromResource", "AnonymizationProfile"} <= set(mounted_configuration()["UserMetadata"])


def test_the_mounted_configuration_enables_python_threads_and_the_postgresql_index() -> None:
    config = mounted_configuration()
    assert config["Python"] == {"AllowThreads": True}
    assert config["PythonScript"].endswith("/entry.py")
    postgresql = config["PostgreSQL"]
    assert postgresql["EnableIndex"] is True and postgresql["EnableStorage"] is False
    assert postgresql["Host"] in compose()["services"]
    database = environment(postgresql["Host"])
    assert postgresql["Database"] == database["POSTGRES_DB"]
    assert postgresql["Username"] == database["POSTGRES_USER"]
    # The image's own plugin list ("Plugins") is left alone: it enables plugins by these settings.
    assert "Plugins" not in config


def test_the_mounted_configuration_passes_the_plugin_check_with_the_secret_from_the_environment() -> None:
    parsed = parse_configuration(
        configuration_as_the_host_sees_it(), environ={SECRET_ENVIRONMENT_VARIABLE: "a-production-secret"}
    )
    assert parsed.secret == b"a-production-secret"
    assert not parsed.development_secret
    assert parsed.profiles_directory == CHECKOUT / "profiles" and parsed.shipped_profiles
    assert parsed.state_directory == Path("/var/lib/orthanc/db/anonymizer")
    # Links, ingest position and audit trail in the index's database; the password from the environment.
    assert parsed.shared_database is not None
    assert parsed.shared_database.description == "postgres:5432/orthanc"


def test_the_mounted_configuration_is_refused_without_the_secret() -> None:
    config = configuration_as_the_host_sees_it()
    assert config["Anonymizer"]["AllowDevelopmentSecret"] is False
    with pytest.raises(ConfigurationError, match=SECRET_ENVIRONMENT_VARIABLE):
        parse_configuration(config, environ={})


# -- secrets ------------------------------------------------------------------------------------------------------


def test_the_secrets_come_from_the_environment_and_are_required() -> None:
    orthanc = environment(ORTHANC)
    assert REQUIRED_VARIABLE.match(orthanc[SECRET_ENVIRONMENT_VARIABLE])
    for name in (*ORTHANC_SERVICES, "postgres"):
        for key, value in environment(name).items():
            if SECRET_NAMES.search(key):
                assert REQUIRED_VARIABLE.match(value), f"{name}: {key} is written in docker-compose.yml"


def test_no_secret_is_written_in_the_mounted_configuration() -> None:
    config = mounted_configuration()
    assert config["Anonymizer"].get("Secret", "") == ""
    assert "RegisteredUsers" not in config
    # Orthanc (and the image, before it) substitutes the environment's value; compose passes it to the container.
    variable = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)\}", config["PostgreSQL"]["Password"])
    assert variable, "PostgreSQL.Password is written in the configuration"
    assert variable.group(1) in environment(ORTHANC)
    assert config["AuthenticationEnabled"] is True

"""Settings of the sandbox: every field is an environment variable with the prefix `SANDBOX_`.

Example: `SANDBOX_SLOTS=8 SANDBOX_USE_NAMESPACES=require reward-server serve`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.runner.protocol import DEFAULT_EXPOSE


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", env_nested_delimiter="__", extra="ignore")

    slots: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=512,
        description="Warm runners of the process backend: programs run at once (each its tests in turn).",
    )
    use_namespaces: Literal["auto", "require", "off"] = Field(
        "auto",
        description="Linux namespaces (user, pid, net, mount, ipc, uts): `auto` uses them where the kernel "
        "allows and falls back to rlimits only with a loud warning; `require` refuses to start without "
        "them; `off` runs with rlimits only.",
    )
    mount_proc: Literal["auto", "off"] = Field(
        "auto",
        description="Process backend with namespaces: `auto` gives each session a /proc of its own where "
        "the kernel allows a fresh proc mount, and otherwise (Docker's masked /proc, e.g. without "
        "`systempaths=unconfined`) keeps every namespace and the minimal root with no /proc inside; `off` "
        "always runs without /proc (for tests). The isolation summary says which.",
    )
    uid_base: int = Field(
        990_000,
        ge=1,
        le=2**31 - 1024,
        description="When the server runs as root, slot i uses host uid base+2i for its runner (root of "
        "its user namespace) and base+2i+1 for its tests (so RLIMIT_NPROC applies to them), where base is "
        "the first block of max(1024, 2*slots) uids from uid_base that no other sandbox on this host holds "
        "(lock files in TMPDIR). Choose a range that no real user or subordinate-uid map uses.",
    )
    workdir_mb: int = Field(64, ge=1, le=65536, description="Size of each session's private tmpfs /tmp.")
    cgroups: Literal["auto", "require", "off"] = Field(
        "auto",
        description="Process backend: a memory and CPU cgroup per slot for its tests (see sandbox.cgroups), "
        "so that a program's memory is counted as a whole (shared memory and children included) and each "
        "program gets an equal CPU share. `auto` uses them where this host lets the server make them (root, "
        "or a delegated cgroup v2) and otherwise falls back with a warning to per-process limits; `require` "
        "refuses to start without them; `off` never uses them.",
    )
    cgroup_parent: Path | None = Field(
        None,
        description="cgroup v2: the cgroup (delegated to the server's user and holding no process) under "
        "which the slots' cgroups are made; default: the server's own.",
    )
    expose_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXPOSE),
        description="Host paths shown read-only inside the namespaces besides the Python installation "
        "(a JSON list in the environment).",
    )
    work_root: Path | None = Field(
        None, description="Parent of the per-session work dirs without a mount namespace (default: TMPDIR)."
    )
    python: str | None = Field(
        None, description="Interpreter of the runners and of the solutions (default: this one)."
    )
    spare_session: bool = Field(
        True,
        description="Process backend with namespaces: each runner keeps its next session process (new "
        "pid, mount and ipc namespaces, its /proc and /tmp) set up while the current session runs, so "
        "that opening a session does not wait for it. It is handed over only after the previous session "
        'process has exited, and never reused; off: each session process starts on its "open".',
    )
    start_timeout_s: float = Field(30.0, gt=0, description="Deadline for a runner to report ready.")
    protocol_margin_s: float = Field(
        5.0,
        gt=0,
        description="Time a runner gets beyond a test's wall limit before it is declared hung and replaced.",
    )
    acquire_timeout_s: float | None = Field(
        None, gt=0, description="Longest wait for a free slot (SandboxUnavailable after it); none: wait."
    )

    # -- Docker backend only (`sandbox.runners.docker`); `workdir_mb` sizes its tmpfs /tmp, and
    # `start_timeout_s`, `protocol_margin_s` and `acquire_timeout_s` apply to it as well.
    docker_image: str = Field(
        "iarl/sandbox:latest",
        description="Image of the pool's containers (services/sandbox.Dockerfile; built by "
        "services/build_sandbox_image.sh).",
    )
    docker_pool_size: int | None = Field(
        None, ge=1, le=512, description="Containers kept warm (programs run at once); default: `slots`."
    )
    docker_memory_mb: int = Field(
        2048,
        ge=64,
        le=262144,
        description="Memory (and memory+swap) limit a container starts with; each session then sets it to "
        "its test's memory limit plus /tmp and the runner's own (192 MiB), which bounds the program's memory "
        "as a whole.",
    )
    docker_pids_limit: int = Field(
        256, ge=16, le=65536, description="Processes and threads per container (the runner's included)."
    )
    docker_cpus: float | None = Field(None, gt=0, description="CPUs per container (none: no quota).")
    docker_security_opt: list[str] = Field(
        default_factory=list,
        description="More `--security-opt` values for the containers (a JSON list), e.g. "
        '`["apparmor=unconfined"]` where Docker\'s default AppArmor profile refuses the runner its mounts.',
    )
    docker_uid_base: int = Field(
        960_000,
        ge=1,
        le=2**31 - 1024,
        description="Container slot i runs as uid:gid docker_uid_base+i (never root), so that RLIMIT_NPROC, "
        "counted per uid across the host, counts one container only.",
    )


@lru_cache
def get_sandbox_settings() -> SandboxSettings:
    return SandboxSettings()

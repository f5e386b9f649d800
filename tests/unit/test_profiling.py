"""The pure parts of `profile`: what a run needs, the cheapest type that fits, the cgroup's
files in both layouts, and `--write` keeping a blueprint's comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncaas_dev.blueprint import load_blueprint
from ncaas_dev.errors import BlueprintError
from ncaas_dev.pricing import price_table
from ncaas_dev.profiling.cgroup import CgroupSampler, parse_cgroup
from ncaas_dev.profiling.recommend import (
    GIB,
    MIB,
    InstanceType,
    Need,
    cheapest,
    instance_types,
    need_of,
    size_text,
)
from ncaas_dev.profiling.write import with_fields, write_resources


def test_every_priced_type_has_a_specification() -> None:
    assert {k.name for k in instance_types()} == set(price_table())
    m5 = next(k for k in instance_types() if k.name == "m5.large")
    assert (m5.vcpus, m5.memory_bytes, m5.gpus) == (2, 8 * GIB, 0)


def test_need_adds_headroom_and_rounds_up() -> None:
    need = need_of(300 * MIB, cpu_seconds=3.0, wall_seconds=2.0, headroom=1.5)
    assert need.memory_bytes == 450 * MIB
    assert need.cpus == 3  # 1.5 busy cores x 1.5 = 2.25 -> 3
    assert need_of(MIB, 0.01, 10, 1.5).cpus == 1  # at least one
    assert need_of(MIB + 1, 0, 1, 1.0).memory_bytes == 2 * MIB


def test_cheapest_fitting_type_and_its_ties() -> None:
    table = (
        InstanceType("small.big", 2, 1 * GIB, 0.01, burstable=True),
        InstanceType("a.large", 2, 4 * GIB, 0.10),
        InstanceType("b.large", 2, 8 * GIB, 0.10),
        InstanceType("c.xlarge", 4, 8 * GIB, 0.20),
        InstanceType("g4dn.xlarge", 4, 16 * GIB, 0.50, gpus=1, gpu_memory_bytes=16 * GIB),
    )
    assert cheapest(Need(1, 512 * MIB, False), table).name == "a.large"  # burstable left out
    assert cheapest(Need(1, 6 * GIB, False), table).name == "b.large"
    assert cheapest(Need(3, 1 * GIB, False), table).name == "c.xlarge"
    assert cheapest(Need(1, 1 * GIB, True), table).name == "g4dn.xlarge"
    assert cheapest(Need(64, 1 * GIB, False), table) is None


def test_the_real_table_never_recommends_a_retired_gpu_or_a_burstable_type() -> None:
    gpu = cheapest(Need(1, 1 * GIB, True))
    assert gpu is not None and gpu.name.startswith(("g4dn", "g5", "g6"))
    plain = cheapest(Need(1, 450 * MIB, False))
    assert plain is not None and not plain.name.startswith("t")


def test_size_text() -> None:
    assert size_text(450 * MIB) == "450m"
    assert size_text(2 * GIB) == "2g"
    assert size_text(450 * MIB + 1) == "451m"


def test_parse_cgroup_v1_and_v2(tmp_path: Path) -> None:
    v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n"
    assert parse_cgroup(v1, tmp_path) == (
        tmp_path / "memory/docker/abc",
        tmp_path / "cpu,cpuacct/docker/abc",
        "v1",
    )
    v2 = "0::/system.slice/docker-abc.scope\n"
    unified = tmp_path / "system.slice/docker-abc.scope"
    assert parse_cgroup(v2, tmp_path) == (unified, unified, "v2")


def test_sampler_reads_both_layouts(tmp_path: Path) -> None:
    memory, cpu = tmp_path / "memory", tmp_path / "cpuacct"
    memory.mkdir()
    cpu.mkdir()
    (memory / "memory.max_usage_in_bytes").write_text("314572800\n")
    (cpu / "cpuacct.usage").write_text("2500000000\n")
    v1 = CgroupSampler(0, paths=(memory, cpu, "v1"))
    v1.sample()
    assert (v1.usage.peak_memory_bytes, v1.usage.cpu_seconds) == (314572800, 2.5)

    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "memory.current").write_text("1000\n")  # no memory.peak: the largest sampled
    (unified / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    v2 = CgroupSampler(0, paths=(unified, unified, "v2"))
    v2.sample()
    (unified / "memory.current").write_text("500\n")
    v2.sample()
    assert (v2.usage.peak_memory_bytes, v2.usage.cpu_seconds, v2.usage.samples) == (1000, 1.5, 2)


BLUEPRINT = """\
# my analysis
analysis: ncaas-commented   # the bucket
resources:
    cpus: 4        # guessed
    memory: 8g     # guessed too
groups:
    - name: labA   # the lab
"""


def test_write_keeps_comments_order_and_indentation(tmp_path: Path) -> None:
    (tmp_path / "blueprint.yaml").write_text(BLUEPRINT)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    loaded = write_resources(tmp_path, 2, "450m", "c5.large")
    text = (tmp_path / "blueprint.yaml").read_text()
    for comment in ("# my analysis", "# the bucket", "# guessed", "# guessed too", "# the lab"):
        assert comment in text
    assert "    cpus: 2" in text and "    memory: 450m" in text
    assert loaded.blueprint.resources.memory == 450 * MIB
    assert loaded.blueprint.cloud.instance_type == "c5.large"
    assert text.index("analysis") < text.index("resources") < text.index("groups")


def test_write_never_leaves_an_invalid_blueprint(tmp_path: Path) -> None:
    (tmp_path / "blueprint.yaml").write_text(BLUEPRINT)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(BlueprintError):
        write_resources(tmp_path, 0, "450m", "c5.large")  # cpus must be > 0
    assert (tmp_path / "blueprint.yaml").read_text() == BLUEPRINT
    assert load_blueprint(tmp_path).blueprint.resources.cpus == 4
    assert "cloud:" in with_fields("analysis: x\n", {("cloud", "instance_type"): "m5.large"})


def test_gpu_memory_counts_only_the_containers_processes() -> None:
    from ncaas_dev.profiling.gpu import parse_compute_apps

    text = "1234, 2048\n999, 4096\n1300, 512\n[Not Supported]\n"
    assert parse_compute_apps(text, {1234, 1300}) == (2048 + 512) * MIB
    assert parse_compute_apps("", {1}) == 0
    need = need_of(MIB, 1, 1, 1.5, gpu=True, gpu_memory=12 * GIB)  # 18 GiB with headroom
    kind = cheapest(need)
    assert kind is not None and kind.gpu_memory_bytes >= 18 * GIB  # a 24 GiB A10G/L4, no T4

"""blueprint.yaml: defaults, memory sizes, errors naming the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncaas_dev.blueprint import (
    DEFAULT_GPU_INSTANCE_TYPE,
    NVIDIA_GPU_TYPE,
    load_blueprint,
    parse_memory,
)
from ncaas_dev.errors import BlueprintError

MINIMAL = "analysis: my-analysis\ngroups:\n  - name: labA\n"


def test_minimal_blueprint_gets_every_default(write_blueprint) -> None:
    folder = write_blueprint(MINIMAL)
    loaded = load_blueprint(folder)
    bp = loaded.blueprint
    assert bp.analysis == "my-analysis"
    assert bp.description == ""
    assert [g.name for g in bp.groups] == ["labA"] and bp.groups[0].users == []
    assert (bp.image.dockerfile, bp.image.context, bp.image.build_args) == ("Dockerfile", ".", {})
    assert (bp.run.command, bp.run.env, bp.run.timeout, bp.run.network) == (None, {}, 3600, False)
    assert (bp.resources.cpus, bp.resources.memory, bp.resources.gpu) == (2, 4 * 1024**3, False)
    assert (bp.cloud.region, bp.cloud.instance_type, bp.cloud.volume_gb) == (
        "us-east-1",
        "m5.xlarge",
        100,
    )
    assert (bp.cloud.source_ami, bp.cloud.ami) == (None, None)
    assert (bp.limits.max_concurrent_jobs, bp.limits.max_cost_usd) == (4, 300)
    assert bp.image_tag == "ncaas/my-analysis:latest"
    assert loaded.folder == folder.resolve()
    assert len(loaded.content_hash) == 64


def test_blueprint_file_itself_can_be_given(write_blueprint) -> None:
    folder = write_blueprint(MINIMAL)
    assert load_blueprint(folder / "blueprint.yaml").folder == folder.resolve()


def test_content_hash_follows_the_content(write_blueprint) -> None:
    first = load_blueprint(write_blueprint(MINIMAL, name="one")).content_hash
    same = load_blueprint(write_blueprint(MINIMAL, name="two")).content_hash
    other = load_blueprint(write_blueprint(MINIMAL + "description: x\n", name="three"))
    assert first == same != other.content_hash


def test_full_blueprint_keeps_every_field(write_blueprint) -> None:
    text = """\
analysis: spike-detect
description: finds spikes
image: {dockerfile: docker/Dockerfile.gpu, context: ., build_args: {V: "1"}}
run: {command: [python3, /app/main.py], env: {A: b}, timeout: 60, network: true}
resources: {cpus: 0.5, memory: 512m, gpu: true}
cloud: {region: eu-west-1, instance_type: g4dn.xlarge, volume_gb: 20, ami: ami-123}
limits: {max_concurrent_jobs: 2, max_cost_usd: 10}
groups: [{name: labA, users: [alice, bob]}, {name: lab_B}]
"""
    folder = write_blueprint(text, dockerfile=False)
    (folder / "docker").mkdir()
    (folder / "docker" / "Dockerfile.gpu").write_text("FROM scratch\n")
    bp = load_blueprint(folder).blueprint
    assert bp.image.dockerfile == "docker/Dockerfile.gpu" and bp.image.build_args == {"V": "1"}
    assert bp.run.command == ["python3", "/app/main.py"] and bp.run.env == {"A": "b"}
    assert (bp.run.timeout, bp.run.network) == (60, True)
    assert (bp.resources.cpus, bp.resources.memory, bp.resources.gpu) == (0.5, 512 * 1024**2, True)
    assert (bp.cloud.region, bp.cloud.ami) == ("eu-west-1", "ami-123")
    assert bp.limits.max_concurrent_jobs == 2
    assert bp.group("labA") is not None and bp.group("labA").users == ["alice", "bob"]
    assert bp.group("lab_B") is not None and bp.group("labC") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4g", 4 * 1024**3),
        ("512m", 512 * 1024**2),
        ("1.5GiB", 1536 * 1024**2),
        ("2GB", 2 * 1024**3),
        ("64k", 64 * 1024),
        ("1t", 1024**4),
        ("4 g", 4 * 1024**3),
        (" 8G ", 8 * 1024**3),
        (1024, 1024),
        ("1048576", 1024**2),
    ],
)
def test_parse_memory_accepts_sizes(value: object, expected: int) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "4x", "-1g", "", "g", "4gg", "1,5g", True, None])
def test_parse_memory_rejects_non_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="size such as 4g"):
        parse_memory(value)


@pytest.mark.parametrize(
    ("memory", "expected"),
    [("4g", 4 * 1024**3), ("512m", 512 * 1024**2), ("1.5GiB", 1536 * 1024**2), (10**9, 10**9)],
)
def test_memory_in_a_blueprint(write_blueprint, memory: object, expected: int) -> None:
    folder = write_blueprint(MINIMAL + f"resources: {{memory: {memory}}}\n")
    assert load_blueprint(folder).blueprint.resources.memory == expected


# (blueprint text, field named in the error, words of the problem)
BAD = {
    "uppercase bucket": ("analysis: Spike\ngroups: [{name: labA}]\n", "analysis", "bucket name"),
    "short bucket": ("analysis: ab\ngroups: [{name: labA}]\n", "analysis", "3-63 characters"),
    "long bucket": (f"analysis: {'a' * 64}\ngroups: [{{name: labA}}]\n", "analysis", "bucket"),
    "double hyphen": ("analysis: a--b\ngroups: [{name: labA}]\n", "analysis", "single hyphens"),
    "underscore": ("analysis: my_analysis\ngroups: [{name: labA}]\n", "analysis", "bucket"),
    "trailing hyphen": ("analysis: abc-\ngroups: [{name: labA}]\n", "analysis", "bucket"),
    "dotted bucket": ("analysis: a.b.c\ngroups: [{name: labA}]\n", "analysis", "bucket"),
    "missing analysis": ("groups: [{name: labA}]\n", "analysis", "required field is missing"),
    "missing groups": ("analysis: good-name\n", "groups", "required field is missing"),
    "empty groups": ("analysis: good-name\ngroups: []\n", "groups", "at least 1"),
    "typo in run": (MINIMAL + "run: {timout: 5}\n", "run.timout", "unknown field"),
    "typo at top": (MINIMAL + "limit: {max_cost_usd: 5}\n", "limit", "unknown field"),
    "negative timeout": (MINIMAL + "run: {timeout: -1}\n", "run.timeout", "greater than 0"),
    "zero timeout": (MINIMAL + "run: {timeout: 0}\n", "run.timeout", "greater than 0"),
    "text timeout": (MINIMAL + "run: {timeout: soon}\n", "run.timeout", "integer"),
    "bad memory": (MINIMAL + "resources: {memory: lots}\n", "resources.memory", "not a size"),
    "tiny memory": (MINIMAL + "resources: {memory: 1k}\n", "resources.memory", "at least 6m"),
    "zero cpus": (MINIMAL + "resources: {cpus: 0}\n", "resources.cpus", "greater than 0"),
    "bad group": (
        "analysis: x-y\ngroups: [{name: labA}, {name: 'lab A'}]\n",
        "groups[1].name",
        "not a group name",
    ),
    "group slash": ("analysis: x-y\ngroups: [{name: 'a/b'}]\n", "groups[0].name", "group name"),
    "absolute dockerfile": (
        MINIMAL + "image: {dockerfile: /etc/Dockerfile}\n",
        "image.dockerfile",
        "inside the blueprint folder",
    ),
    "dotdot dockerfile": (
        MINIMAL + "image: {dockerfile: ../Dockerfile}\n",
        "image.dockerfile",
        "inside the blueprint folder",
    ),
    "dotdot context": (MINIMAL + "image: {context: a/../..}\n", "image.context", "inside"),
    "batch retries": (MINIMAL + "batch: {retries: -1}\n", "batch.retries", "greater than"),
    "batch vcpus": (MINIMAL + "batch: {max_vcpus: 0}\n", "batch.max_vcpus", "greater than 0"),
    "batch spot": (MINIMAL + "batch: {spot: maybe}\n", "batch.spot", "boolean"),
    "batch type": (
        MINIMAL + "batch: {instance_types: [M5 XL]}\n",
        "batch.instance_types",
        "not instance types",
    ),
    "batch field": (MINIMAL + "batch: {queue: q}\n", "batch.queue", "unknown field"),
}


@pytest.mark.parametrize(("text", "field", "problem"), BAD.values(), ids=BAD.keys())
def test_bad_blueprint_names_file_field_and_problem(
    write_blueprint, text: str, field: str, problem: str
) -> None:
    folder = write_blueprint(text)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'blueprint.yaml'}:")
    assert f"field '{field}'" in message
    assert problem in message
    assert caught.value.exit_code == 2


def test_duplicate_group_names_are_refused(write_blueprint) -> None:
    folder = write_blueprint("analysis: x-y\ngroups: [{name: labA}, {name: labB}, {name: labA}]\n")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(folder)
    message = str(caught.value)
    assert str(folder / "blueprint.yaml") in message
    assert "groups" in message and "duplicate group name(s) labA" in message
    assert "labB" not in message


def test_several_problems_are_counted(write_blueprint) -> None:
    folder = write_blueprint("analysis: Bad_Name\ngroups: [{name: labA}]\nrun: {timeout: -1}\n")
    with pytest.raises(BlueprintError, match=r"field 'analysis'.*\(and 1 more problem\(s\)\)"):
        load_blueprint(folder)


def test_invalid_yaml_names_the_line(write_blueprint) -> None:
    folder = write_blueprint("analysis: x-y\ngroups:\n  - name: [labA\n  - name: labB\n")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'blueprint.yaml'}: line 4 is not valid YAML: ")
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_tab_indented_yaml_is_invalid(write_blueprint) -> None:
    folder = write_blueprint("analysis: x-y\ngroups:\n\t- name: labA\n")
    with pytest.raises(BlueprintError, match=r"line 3 is not valid YAML"):
        load_blueprint(folder)


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "str"), ("", "NoneType")]
)
def test_yaml_that_is_not_a_mapping(write_blueprint, text: str, kind: str) -> None:
    folder = write_blueprint(text)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(folder)
    message = str(caught.value)
    assert message.startswith(str(folder / "blueprint.yaml"))
    assert "expected a mapping of fields" in message and kind in message


def test_missing_dockerfile(write_blueprint) -> None:
    folder = write_blueprint(MINIMAL, dockerfile=False)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(folder)
    message = str(caught.value)
    assert str(folder / "blueprint.yaml") in message
    assert "field 'image.dockerfile': Dockerfile does not exist" in message
    assert caught.value.exit_code == 2


def test_custom_dockerfile_must_exist(write_blueprint) -> None:
    folder = write_blueprint(MINIMAL + "image: {dockerfile: build/Dockerfile}\n")
    with pytest.raises(
        BlueprintError, match=r"'image.dockerfile': build/Dockerfile does not exist"
    ):
        load_blueprint(folder)


def test_no_blueprint_in_folder(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(tmp_path)
    assert str(tmp_path / "blueprint.yaml") in caught.value.message
    assert "no blueprint here" in caught.value.message
    assert caught.value.hint and "blueprint.yaml" in caught.value.hint
    assert caught.value.exit_code == 2


def test_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match="no blueprint here"):
        load_blueprint(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("instance_type", "gpu"),
    [
        ("g4dn.xlarge", True),
        ("g5.12xlarge", True),
        ("p3.2xlarge", True),
        ("p4d.24xlarge", True),
        ("m5.xlarge", False),
        ("g4ad.xlarge", False),  # AMD GPU: no NVIDIA toolkit
        ("g5g.xlarge", False),  # ARM: the x86 AMI does not boot
    ],
)
def test_nvidia_gpu_instance_types(instance_type: str, gpu: bool) -> None:
    assert bool(NVIDIA_GPU_TYPE.match(instance_type)) is gpu


def test_gpu_blueprint_defaults_to_a_gpu_instance(write_blueprint) -> None:
    loaded = load_blueprint(
        write_blueprint("analysis: gpu-a\ngroups: [{name: a}]\nresources: {gpu: true}\n")
    )
    assert loaded.blueprint.cloud.instance_type == DEFAULT_GPU_INSTANCE_TYPE


def test_gpu_on_a_cpu_instance_type_is_refused(write_blueprint) -> None:
    folder = write_blueprint(
        "analysis: gpu-a\ngroups: [{name: a}]\n"
        "resources: {gpu: true}\ncloud: {instance_type: m5.xlarge}\n"
    )
    with pytest.raises(BlueprintError, match=r"'m5.xlarge' has no NVIDIA GPU.*g4dn.xlarge") as e:
        load_blueprint(folder)
    assert "blueprint.yaml: cloud.instance_type" in str(e.value)


def test_cpu_blueprint_keeps_its_instance_type(write_blueprint) -> None:
    loaded = load_blueprint(
        write_blueprint("analysis: cpu-a\ngroups: [{name: a}]\ncloud: {instance_type: c5.large}\n")
    )
    assert loaded.blueprint.cloud.instance_type == "c5.large"


@pytest.mark.parametrize(
    "instance_type", ["p2.xlarge", "p3.2xlarge", "p3dn.24xlarge", "g3.4xlarge"]
)
def test_gpu_families_the_dl_amis_dropped_are_refused(write_blueprint, instance_type: str) -> None:
    """Issue 13, defect 11: the error names the families that work."""
    folder = write_blueprint(
        "analysis: gpu-a\ngroups: [{name: a}]\n"
        f"resources: {{gpu: true}}\ncloud: {{instance_type: {instance_type}}}\n"
    )
    with pytest.raises(BlueprintError, match=r"no longer support p2, p3 or g3.*g4dn, g5, g6"):
        load_blueprint(folder)


@pytest.mark.parametrize(
    ("gpu", "allowed", "problem"),
    [
        (False, "[c5.large, m5.2xlarge]", None),
        (True, "[g5.xlarge, g4dn.2xlarge]", None),
        (False, "[c5.large, x9.huge]", "'x9.huge' has no price in prices.json"),
        (True, "[g5.xlarge, p3.2xlarge]", "'p3.2xlarge': current Deep Learning AMIs no longer"),
        (True, "[g4dn.xlarge, c5.large]", "'c5.large' has no NVIDIA GPU"),
    ],
)
def test_allowed_instance_types_are_held_to_instance_type_rules(
    write_blueprint, gpu: bool, allowed: str, problem: str | None
) -> None:
    """Issue 24, part 4: a type a submission may choose is checked when the blueprint loads."""
    folder = write_blueprint(
        f"analysis: types-a\ngroups: [{{name: a}}]\nresources: {{gpu: {str(gpu).lower()}}}\n"
        f"cloud: {{allowed_instance_types: {allowed}}}\n"
    )
    if problem is None:
        load_blueprint(folder)
        return
    with pytest.raises(BlueprintError) as e:
        load_blueprint(folder)
    assert problem in str(e.value) and "cloud.allowed_instance_types" in str(e.value)


@pytest.mark.parametrize(
    ("cloud", "ok"),
    [
        ("{subnet_id: subnet-0123456789abcdef0, security_group_ids: [sg-0abc12345]}", True),
        ("{subnet_id: vpc-0123456789abcdef0}", False),
        ("{security_group_ids: [default]}", False),
    ],
)
def test_subnet_and_security_groups_are_ids(write_blueprint, cloud: str, ok: bool) -> None:
    folder = write_blueprint(f"analysis: a-b\ngroups: [{{name: a}}]\ncloud: {cloud}\n")
    if ok:
        load_blueprint(folder)
    else:
        with pytest.raises(BlueprintError, match="cloud"):
            load_blueprint(folder)


def test_batch_section_defaults_and_choices(write_blueprint) -> None:
    bp = load_blueprint(write_blueprint(MINIMAL)).blueprint
    assert (bp.batch.spot, bp.batch.max_vcpus, bp.batch.retries, bp.batch.job_queue) == (
        True,
        256,
        2,
        None,
    )
    assert bp.batch.chosen_types(bp.cloud) == ["m5.xlarge"]
    text = MINIMAL + "batch: {spot: false, instance_types: [c5.large, m5], job_queue: q1}\n"
    chosen = load_blueprint(write_blueprint(text, name="b")).blueprint
    assert chosen.batch.chosen_types(chosen.cloud) == ["c5.large", "m5"]
    assert (chosen.batch.spot, chosen.batch.job_queue) == (False, "q1")

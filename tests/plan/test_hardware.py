"""Hardware detection (CPU here; the CUDA branch is checked on a GPU machine) and catalog matching."""
import pytest
import torch

from core.plan import hardware
from core.plan.hardware import GPUS, detect_hardware, free_device_memory_bytes, hardware_rows, match_catalog_gpu

KEYS = {"device", "device_name", "gpu_name", "gpu_count", "total_memory_bytes", "free_memory_bytes", "memory_source",
        "compute_capability", "bf16_supported", "bf16_native", "cpu_name", "cpu_cores", "cpu_physical_cores",
        "ram_total_bytes", "ram_available_bytes", "torch_version", "cuda_version", "driver_version", "catalog_gpu",
        "catalog_gpu_name"}


def test_detect_hardware_on_cpu_reports_cores_and_ram():
    info = detect_hardware("cpu")
    assert KEYS <= set(info)
    assert info["device"] == "cpu"
    assert info["gpu_name"] is None and info["catalog_gpu"] is None and info["compute_capability"] is None
    assert info["cpu_cores"] >= 1
    # The RAM figures are the machine's (or its container's) real numbers.
    import psutil
    assert 0 < info["ram_available_bytes"] <= info["ram_total_bytes"] <= psutil.virtual_memory().total
    assert info["total_memory_bytes"] == info["ram_total_bytes"]
    assert info["torch_version"] == torch.__version__


def test_auto_device_matches_torch():
    info = detect_hardware()
    assert info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_free_memory_on_cpu_is_available_ram():
    free = free_device_memory_bytes("cpu")
    import psutil
    assert 0 < free <= psutil.virtual_memory().total


def test_memory_in_use_fraction_on_cpu_and_gpu():
    info = detect_hardware("cpu")
    used = hardware.memory_in_use_fraction(info)
    assert used == pytest.approx(1 - info["ram_available_bytes"] / info["ram_total_bytes"]) and 0 < used < 1
    gpu = {"device": "cuda", "total_memory_bytes": 80e9, "free_memory_bytes": 60e9}
    assert hardware.memory_in_use_fraction(gpu) == pytest.approx(0.25)
    assert hardware.memory_in_use_fraction({**gpu, "total_memory_bytes": 0}) == 0.0


def test_hardware_rows_have_units():
    rows = dict(hardware_rows(detect_hardware("cpu")))
    assert rows["Total RAM"].endswith(" GB")
    assert "logical" in rows["CPU cores"]
    assert "Device" in rows and "PyTorch" in rows


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        detect_hardware("cuda")


def test_unknown_device_is_rejected():
    with pytest.raises((ValueError, RuntimeError)):
        detect_hardware("tpu")


@pytest.mark.parametrize("cuda_name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB SXM"),
    ("Tesla T4", "T4"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
])
def test_catalog_match_of_real_device_names(cuda_name, expected):
    assert match_catalog_gpu(cuda_name).name == expected


def test_unknown_gpu_has_no_catalog_match():
    assert match_catalog_gpu("NVIDIA GeForce GTX 1080") is None


def test_cgroup_limit_parser_ignores_missing_files(monkeypatch):
    # On a machine without a cgroup limit the parser returns None rather than a bogus number.
    limit = hardware._cgroup_memory_limit_bytes()
    assert limit is None or limit > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_detect_hardware_on_gpu():
    info = detect_hardware("cuda")
    props = torch.cuda.get_device_properties(0)
    assert info["device"] == "cuda" and info["gpu_name"] == props.name
    assert info["total_memory_bytes"] >= info["free_memory_bytes"] > 0
    assert info["compute_capability"] == f"{props.major}.{props.minor}"
    assert info["bf16_supported"] == torch.cuda.is_bf16_supported()
    if match_catalog_gpu(props.name):
        assert info["catalog_gpu_name"] in GPUS


def test_detection_works_without_psutil(monkeypatch):
    # A bare GPU machine may lack psutil: RAM then comes from /proc/meminfo.
    import sys
    with_psutil = detect_hardware("cpu")
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` now raises ImportError
    info = detect_hardware("cpu")
    assert info["memory_source"].startswith("/proc/meminfo")
    assert info["ram_total_bytes"] == pytest.approx(with_psutil["ram_total_bytes"], rel=0.01)
    assert info["cpu_cores"] >= 1

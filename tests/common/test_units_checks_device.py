"""The shared leaves: core.common.units (GB, bytes per value), core.common.checks (validators), core.common.device (the one resolver)."""
import numpy as np
import pytest
import torch

from core.common import checks, device, units
from core.plan import hardware, memory, memory_charts, memory_plan
from core.run import models
from core.run.quantization import QuantizationInputError
from core.run.quantization.compare import _check_int as quantization_check_int


def test_gb_is_decimal_and_reexported_where_it_was_public():
    assert units.GB == 1e9
    assert memory.GB is units.GB and hardware.GB is units.GB and memory_charts.GB is units.GB
    assert units.to_gb(13.5e9) == pytest.approx(13.5)


def test_one_bytes_per_value_table_behind_every_dtype_table():
    # IEEE binary32/binary16, bfloat16, FP8 (Micikevicius et al. 2022), int8, and two 4-bit values per byte.
    assert units.BYTES_PER_VALUE == {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
    for name, b in memory.BYTES_PER_PARAM.items():
        assert units.bytes_per_value(name) == b
    assert memory_plan.KV_DTYPES == {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0}
    with pytest.raises(ValueError, match="Unknown dtype 'fp64'.*fp32"):
        units.bytes_per_value("fp64")


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), (np.int64(8), 8), (1, 1)])
def test_check_int_accepts_whole_numbers_in_range(value, expected):
    assert checks.check_int(value, "Batch size", 1, 8) == expected
    assert type(checks.check_int(value, "Batch size", 1, 8)) is int


@pytest.mark.parametrize("value", [True, 2.5, 0, 9, float("nan"), float("inf"), "3", None])
def test_check_int_rejects_with_the_range_in_the_message(value):
    with pytest.raises(ValueError, match=r"Batch size must be a whole number from 1 to 8, got"):
        checks.check_int(value, "Batch size", 1, 8)


def test_check_int_raises_the_callers_error_type():
    with pytest.raises(QuantizationInputError, match="Seed must be a whole number from 0 to 9"):
        quantization_check_int(-1, "Seed", 0, 9)
    with pytest.raises(KeyError):
        checks.check_int(-1, "x", 0, 9, error=KeyError)


def test_other_validators():
    assert checks.check_nonnegative(0, "n") == 0.0
    assert checks.check_positive_int(4.0, "n") == 4
    assert checks.check_choice(" BF16 ", "dtype", ("fp32", "bf16")) == "bf16"
    for bad in (-1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="non-negative"):
            checks.check_nonnegative(bad, "n")
    with pytest.raises(ValueError, match="≥ 1"):
        checks.check_positive_int(0, "n")
    with pytest.raises(ValueError, match="dtype must be one of fp32, bf16"):
        checks.check_choice("fp8", "dtype", ("fp32", "bf16"))


def _expected_auto(supported):
    for kind in ("cuda", "mps", "cpu"):
        if kind in supported and (kind == "cpu" or (kind == "cuda" and torch.cuda.is_available())
                                  or (kind == "mps" and torch.backends.mps.is_available())):
            return kind
    return "cpu"


def test_auto_is_the_first_available_of_cuda_mps_cpu_among_supported():
    assert device.resolve_device("auto").type == _expected_auto(device.DEVICE_TYPES)
    assert device.resolve_device(None).type == _expected_auto(device.DEVICE_TYPES)
    assert device.resolve_device("auto", device.MEMORY_DEVICE_TYPES).type == _expected_auto(("cuda", "cpu"))
    assert device.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert device.resolve_device(" CPU ") == torch.device("cpu")
    # the model loader and the hardware meters share it
    assert models.select_device("auto") == device.resolve_device("auto")
    assert hardware.detect_hardware("auto")["device"] == _expected_auto(("cuda", "cpu"))


def test_bad_devices_raise_a_clear_device_error():
    with pytest.raises(device.DeviceError, match="Unknown device 'tpu'"):
        device.resolve_device("tpu")
    with pytest.raises(device.DeviceError, match="Unsupported device 'mps'. Use 'auto', 'cuda', 'cpu'"):
        device.resolve_device("mps", device.MEMORY_DEVICE_TYPES)
    with pytest.raises(models.ModelLoadError, match="Unknown device 'tpu'"):
        models.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(device.DeviceError, match="no CUDA GPU"):
            device.resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            hardware.free_device_memory_bytes("cuda")
    else:
        with pytest.raises(device.DeviceError, match="does not exist"):
            device.resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(device.DeviceError, match="'mps'.*not available"):
            device.resolve_device("mps")


def test_format_count_has_one_home():
    from core.plan import compute_text

    assert compute_text.format_count is units.format_count and memory_plan.format_count is units.format_count
    assert units.format_count(6738415616) == "6.74B" and units.format_count(124439808) == "124M"
    assert units.format_count(2e15) == "2 × 10¹⁵" and units.format_count(float("inf")) == "inf"


@pytest.mark.parametrize("value, shown", [
    (999.96e12, "1 × 10¹⁵"), (999.96e6, "1B"), (999_999, "1M"), (999.4e6, "999M"), (8.722954806059943e26, "8.72 × 10²⁶"),
    (1.4e12, "1.4T"), (-5e9, "-5B"), (12, "12")])
def test_counts_round_before_choosing_a_unit_and_never_print_e_notation(value, shown):
    """Issue 32: a count of 999.96 T read '1e+03T' and a perplexity '8.722954806059943e+26'."""
    assert units.format_count(value) == shown and "e+" not in shown


def test_whole_counts_and_sizes_stay_short():
    assert units.format_whole(12_288) == "12,288" and units.format_whole(131_072_020) == "131M"
    assert units.format_power(1e-5) == "1 × 10⁻⁵" and units.format_power(48_643) == "4.86 × 10⁴"
    assert memory_plan.format_gb(13.48e9) == "13.48 GB" and memory_plan.format_gb(2_500e9) == "2,500.0 GB"
    assert memory_plan.format_gb(2.5e14) == "250 TB" and memory_plan.format_gb(131_072_020e9) == "1.31 × 10⁸ GB"
    assert memory_plan.format_gb(-2_500e9) == "-2,500.0 GB"


def test_model_weight_bytes_has_one_home():
    from core.run import fast_generation, quantization

    assert fast_generation.model_weight_bytes is quantization.model_weight_bytes


def test_architecture_aliases_are_public():
    from core.plan import architectures

    assert architectures.ALIASES_BY_FIELD["hidden_size"][0] == "hidden_size"
    assert {"n_embd", "d_model", "n_layer"} <= architectures.ALIAS_KEYS
    cfg = architectures.get_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 100,
                                    "n_positions": 128})
    assert cfg["num_hidden_layers"] == 2 and cfg["hidden_size"] == 64


def test_peak_rss_meter_has_one_home_and_reads_the_kernel_peak():
    from core.common import process_memory
    from core.run import quantization

    assert quantization.PeakMemoryMeter is process_memory.PeakMemoryMeter
    assert quantization.process_rss_bytes is process_memory.process_rss_bytes
    rss = process_memory.process_rss_bytes()
    assert rss > 10e6
    status_rss = process_memory.proc_status_bytes("VmRSS")
    if status_rss is None:  # not Linux
        pytest.skip("needs /proc/self/status")
    assert status_rss == pytest.approx(rss, rel=0.2)
    assert process_memory.proc_status_bytes("NoSuchField") is None
    if process_memory.reset_peak_rss():
        import mmap

        block = mmap.mmap(-1, 200_000_000)  # fresh pages (malloc could reuse resident freed memory), all touched
        for offset in range(0, len(block), mmap.PAGESIZE):
            block[offset] = 1
        peak = process_memory.peak_rss_bytes()
        block.close()
        assert peak - status_rss >= 150e6

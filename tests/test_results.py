import json
from pathlib import Path

import pytest

from utils.errors import HarnessError
from utils.fileio import atomic_write, atomic_write_json
from utils.results import check_table_replaceable, format_table, load_results, merge_results, write_results


def test_merge_keeps_other_models_and_modes() -> None:
    old = {"00_RFDN": {"valid_ave_psnr": 29.0, "flops": 27.1}, "13_PRFDN": {"valid_ave_psnr": 29.1}}
    merged = merge_results(old, "00_RFDN", {"custom_ave_psnr": 30.2, "flops": 27.2}, ["custom"])
    assert merged["00_RFDN"] == {"valid_ave_psnr": 29.0, "flops": 27.2, "custom_ave_psnr": 30.2}
    assert merged["13_PRFDN"] == {"valid_ave_psnr": 29.1}
    assert old["00_RFDN"] == {"valid_ave_psnr": 29.0, "flops": 27.1}  # input not mutated


def test_rerun_mode_drops_its_stale_keys() -> None:
    old = {"m": {"custom_ssim": [0.9] * 6, "custom_psnr": [30.0] * 6, "test_psnr": [1.0], "hybrid_test_psnr": [2.0]}}
    merged = merge_results(old, "m", {"custom_psnr": [31.0], "test_psnr": [3.0]}, ["custom", "test"])
    assert merged["m"] == {"custom_psnr": [31.0], "test_psnr": [3.0], "hybrid_test_psnr": [2.0]}


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    atomic_write_json(target, {"a": 1})

    def failing(tmp: str) -> None:
        Path(tmp).write_text('{"half": ')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


def test_corrupt_results_file_is_an_error_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("{not json")
    with pytest.raises(HarnessError, match="not readable JSON"):
        load_results(target)
    assert load_results(tmp_path / "absent.json") == {}


def test_table_has_a_row_per_model_and_mode(tmp_path: Path) -> None:
    entry = {"valid_ave_psnr": 29.0, "valid_ave_runtime": 12.5, "test_ave_psnr": 28.0, "num_parameters": 0.433, "num_conv": 64}
    txt = write_results(tmp_path / "results.json", {"00_RFDN_baseline": entry})
    lines = txt.read_text().splitlines()
    assert lines[0].split("\t")[0].strip() == "Model" and len(lines) == 3
    assert "valid" in lines[1] and "29.00" in lines[1] and "12.50" in lines[1]
    assert format_table({}) == lines[0] + "\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"m": 5}', "entry 'm' is a number (5); expected an object of figures"),
        ('{"m": {"valid_ave_psnr": "29.1"}}', "'m' has valid_ave_psnr = a string (\"29.1\"); expected a number"),
        ('{"m": {"valid_ave_runtime": [1]}}', "'m' has valid_ave_runtime = a list ([1]); expected a number"),
        ('{"m": {"num_conv": true}}', "'m' has num_conv = true; expected a number"),
    ],
)
def test_malformed_entries_are_an_error_and_the_file_is_kept(tmp_path: Path, content: str, message: str) -> None:
    target = tmp_path / "results.json"
    target.write_text(content)
    with pytest.raises(HarnessError, match=r"results\.json: ") as err:
        load_results(target)
    assert message in str(err.value) and target.read_text() == content


def test_only_the_figures_the_table_reads_must_be_numbers(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"m": {"valid_psnr": [29.0], "valid_ave_psnr": 29, "device": "cpu", "valid_memory_kind": "cpu_peak_rss"}}')
    assert load_results(good)["m"]["valid_ave_psnr"] == 29


def test_nothing_is_written_when_the_table_cannot_be_made(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text('{"old": {}}\n')
    with pytest.raises(ValueError):
        write_results(target, {"m": {"valid_ave_psnr": "not a number"}})
    assert target.read_text() == '{"old": {}}\n' and not (tmp_path / "results.txt").exists()


def test_only_a_results_table_stands_where_the_table_goes(tmp_path: Path) -> None:
    table = tmp_path / "r.txt"
    table.write_text(format_table({}).replace("\n", "\r\n"), newline="")  # a results table saved with CRLF
    check_table_replaceable(tmp_path / "r.json", "--results_json")
    table.write_text("my notes\n")
    with pytest.raises(HarnessError, match="exists and is not a results table"):
        check_table_replaceable(tmp_path / "r.json", "--results_json")

"""The CLI edge: domain errors become one line and an exit code; --debug shows the traceback."""

import subprocess
import sys


def _cdclake(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cdclake", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_malformed_config_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("kafka:\n  nodez: 3\n")
    result = _cdclake("status", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: pipeline.yaml: kafka.nodez: unknown key; did you mean 'nodes'?"]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("kafka: [1, 2\n")
    result = _cdclake("--debug", "status", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr and "invalid YAML" in result.stderr


def test_json_output_of_an_error(tmp_path):
    result = _cdclake("--output", "json", "status", cwd=tmp_path)
    assert result.returncode == 2
    assert '"error": "ConfigError"' in result.stdout and "no such config file" in result.stdout
